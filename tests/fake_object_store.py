"""An object store (no directories, like GCS) for Beam's FileSystems, kept in a local folder.

URLs look like `fakegs://bucket/path`; objects live under `FakeObjectStore.root`.
Tests use it to run the Beam jobs and the artifact layer against a remote-style
workdir without a network.
"""

import os
import shutil

from apache_beam.io.filesystem import CompressedFile, CompressionTypes, FileMetadata, FileSystem

SCHEME = "fakegs"
PREFIX = f"{SCHEME}://"


class FakeObjectStore(FileSystem):
    root = None  # set by the test before use

    @classmethod
    def scheme(cls):
        return SCHEME

    def _local(self, url):
        assert url.startswith(PREFIX), url
        return os.path.join(self.root, url[len(PREFIX) :])

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass  # an object store has no directories

    def has_dirs(self):
        return False

    def _objects(self):
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                local = os.path.join(dirpath, name)
                yield PREFIX + os.path.relpath(local, self.root), local

    def _list(self, dir_or_prefix):
        for url, local in self._objects():
            if url.startswith(dir_or_prefix):
                yield FileMetadata(url, os.path.getsize(local), os.path.getmtime(local))

    def _open(self, path, mode, compression_type):
        local = self._local(path)
        if "w" in mode:
            os.makedirs(os.path.dirname(local), exist_ok=True)
        raw = open(local, mode)
        compression_type = FileSystem._get_compression_type(path, compression_type)
        return (
            raw
            if compression_type == CompressionTypes.UNCOMPRESSED
            else CompressedFile(raw, compression_type)
        )

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self._local(dst)), exist_ok=True)
            shutil.copyfile(self._local(src), self._local(dst))

    def rename(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            os.makedirs(os.path.dirname(self._local(dst)), exist_ok=True)
            os.replace(self._local(src), self._local(dst))

    def exists(self, path):
        return os.path.isfile(self._local(path))

    def size(self, path):
        return os.path.getsize(self._local(path))

    def last_updated(self, path):
        return os.path.getmtime(self._local(path))

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        for path in paths:
            local = self._local(path)
            if os.path.isdir(local):  # a "prefix": delete what is under it
                shutil.rmtree(local)
            elif os.path.exists(local):
                os.remove(local)
