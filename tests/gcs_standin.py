"""A local stand-in for Google Cloud Storage that TF's and Beam's own gs:// clients both reach.

- The store is `gcp-storage-emulator` (PyPI): GCS's JSON API (upload, list, rewrite,
  delete) and its download URLs, over plain HTTP on 127.0.0.1, data in a local folder.
- Beam's GcsFileSystem (google-cloud-storage) is pointed at it by `STORAGE_EMULATOR_HOST`,
  and signs in with a generated service-account key (`GOOGLE_APPLICATION_CREDENTIALS`)
  whose token endpoint is the stand-in (without credentials Beam retries for ~20 s).
- TensorFlow's built-in GCS filesystem has no endpoint setting: it always calls
  https://www.googleapis.com and https://storage.googleapis.com. It does honour
  `https_proxy`, `CURL_CA_BUNDLE` and `GOOGLE_AUTH_TOKEN_FOR_TESTING`, so a local
  CONNECT proxy answers for those two hosts: it terminates TLS with a certificate
  from a throw-away CA (the bundle TF is given) and passes the decrypted HTTP to the
  emulator unchanged. Any other host is refused: nothing leaves the machine.

So the test exercises TF's and Beam's real GCS code (HTTP requests, resumable
uploads, ranged reads, listing, rename-by-rewrite), not a fake scheme. It cannot
exercise real authentication, IAM, regional latency or GCS's consistency under real load.

Run as a process: `python tests/gcs_standin.py DATA_DIR BUCKET...` prints one JSON line
(the environment a client process needs), then serves until killed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import socket
import socketserver
import ssl
import sys
import threading

HOSTS = ("www.googleapis.com", "storage.googleapis.com")


def _write_certificates(directory: str) -> tuple[str, str, str]:
    """A CA and a leaf certificate for HOSTS signed by it: (ca.pem, leaf.pem, leaf.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=7))

    def build(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "label-smearing test CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])])
    leaf = build(leaf_name, ca_name, leaf_key.public_key(), ca_key, ca=False)
    paths = tuple(os.path.join(directory, n) for n in ("ca.pem", "leaf.pem", "leaf.key"))
    pem = serialization.Encoding.PEM
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(paths[2], "wb") as f:
        f.write(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def _write_service_account(path: str, token_uri: str) -> None:
    """A service-account key file whose token endpoint is the stand-in's: Beam's client finds
    credentials (GOOGLE_APPLICATION_CREDENTIALS) and signs in without leaving the machine."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "stand-in",
        "private_key_id": "stand-in",
        "private_key": pem,
        "client_email": "stand-in@stand-in.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    with open(path, "w") as f:
        json.dump(account, f)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copies bytes both ways until either side closes."""
    sockets = [a, b]
    try:
        while True:
            pending = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
            readable = pending or select.select(sockets, [], [], 60)[0]
            if not readable:
                return
            for s in readable:
                data = s.recv(1 << 16)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator_port: int, tls: ssl.SSLContext):
        self.emulator_port = emulator_port
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b"\r\n", 1)[0].split(b" ")[:2]
        if method == b"POST" and target == b"/token":  # the service account's token endpoint (Beam's)
            self._token(head)
            return
        host = target.decode().rsplit(":", 1)[0]
        if method != b"CONNECT" or host not in HOSTS:
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            client = self.server.tls.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with socket.create_connection(("127.0.0.1", self.server.emulator_port)) as upstream:
            _pipe(client, upstream)

    def _token(self, head: bytes) -> None:
        """An OAuth token for any request (the emulator checks none), as Google's token endpoint answers."""
        header, _, body = head.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", header)
        remaining = int(length[1]) - len(body) if length else 0
        while remaining > 0:
            chunk = self.request.recv(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        token = json.dumps({"access_token": "stand-in", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(token)}\r\n\r\n".encode()
            + token
        )


def _patch_emulator() -> None:
    """Five fixes to the emulator, for what TF does. It must answer `Expect: 100-continue`
    (curl otherwise waits a second before every upload). A body sent in chunks with a
    Content-Length too must be read as chunks (HTTP/1.1 says so; TF sends both). Behind the proxy, the URLs it hands out
    (a resumable upload's session) must say https, as the client reached it. TF marks a directory with an empty object
    `dir/`. The emulator reads an empty upload body as None (and crashes), and stores object
    `a/` as a file `a` on disk, so that `a/b` cannot be stored after it. Give it an empty body,
    and store each object as one file named by its quoted name (its listing comes from its
    metadata, not from the disk)."""
    from urllib.parse import quote

    from gcp_storage_emulator import server, storage
    from gcp_storage_emulator.handlers import objects

    if getattr(objects._media_upload, "patched", False):
        return
    request_init = server.Request.__init__

    def init(self, request_handler, method):  # behind the TLS proxy, its URLs (upload sessions) are https
        request_init(self, request_handler, method)
        if request_handler.headers.get("Host", "").split(":")[0] in HOSTS:
            self._base_url = self._base_url.replace("http://", "https://", 1)
            self._full_url = self._full_url.replace("http://", "https://", 1)

    server.Request.__init__ = init
    read_raw_data = server._read_raw_data

    def read_body(request_handler):  # HTTP/1.1: Transfer-Encoding wins over Content-Length (TF sends both)
        if request_handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            del request_handler.headers["Content-Length"]
        return read_raw_data(request_handler)

    server._read_raw_data = read_body
    parse_request = server.RequestHandler.parse_request

    def parse_expecting(self):  # curl waits a second for "100 Continue" before each upload's body
        ok = parse_request(self)
        if ok and self.headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        return ok

    server.RequestHandler.parse_request = parse_expecting
    storage.Storage._object_path = lambda self, bucket, name: f"{bucket}/{quote(name, safe='')}"
    original = objects._media_upload

    def media_upload(request, response, storage):
        if request.data is None:
            request._data = b""
        return original(request, response, storage)

    media_upload.patched = True
    objects._media_upload = media_upload


class GcsStandIn:
    """The emulator and the proxy, serving from `data_dir`, with `buckets` created."""

    def __init__(self, data_dir: str, buckets: tuple[str, ...] = ("bucket",)):
        from gcp_storage_emulator.handlers import buckets as bucket_handlers
        from gcp_storage_emulator.server import create_server

        _patch_emulator()
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        with socket.socket() as s:  # a free port for the emulator (it takes a number, not 0)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._server = create_server("127.0.0.1", port, in_memory=False, data_dir=data_dir)
        for name in buckets:
            bucket_handlers.create_bucket(name, self._server._storage)
        self.emulator_port = port
        ca, leaf, key = _write_certificates(data_dir)
        self.ca_bundle = ca
        self.credentials = os.path.join(data_dir, "service-account.json")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(leaf, key)
        self._proxy = _Proxy(port, tls)
        _write_service_account(self.credentials, f"http://127.0.0.1:{self._proxy.server_address[1]}/token")

    def start(self) -> GcsStandIn:
        self._server.start()
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._server.stop()

    def environment(self) -> dict[str, str]:
        """What a client process needs in its environment to use the stand-in for gs://."""
        proxy = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        return {
            # TensorFlow (libcurl): through the proxy, trusting the stand-in's CA, a fixed token
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": self.ca_bundle,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "stand-in",
            "NO_GCE_CHECK": "true",
            # Beam (google-cloud-storage): straight to the emulator, signed in with a stand-in account
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.emulator_port}",
            "GOOGLE_APPLICATION_CREDENTIALS": self.credentials,
            "GOOGLE_CLOUD_PROJECT": "stand-in",
        }


if __name__ == "__main__":
    standin = GcsStandIn(sys.argv[1], tuple(sys.argv[2:]) or ("bucket",)).start()
    print(json.dumps(standin.environment()), flush=True)
    threading.Event().wait()
