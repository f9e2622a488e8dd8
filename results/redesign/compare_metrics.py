"""Compares the metrics.json of two workdirs' evaluations, model by model, leaving out paths and fingerprints."""
import json, re, sys
from pathlib import Path

VOLATILE = {"path", "fingerprint", "data_fingerprint", "training_fingerprint"}

def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in VOLATILE}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node

def leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, node

def load(workdir):
    out = {}
    for d in sorted(Path(workdir, "eval").iterdir()):
        metrics = json.loads((d / "metrics.json").read_text())
        key = f'{re.sub(r"-[0-9a-f]{10}$", "", d.name)} @{metrics["setting"]["data"]}'
        assert key not in out, key
        out[key] = strip(metrics)
    return out

a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
identical = 0
for name in a:
    if a[name] == b[name]:
        identical += 1
        continue
    la, lb = dict(leaves(a[name])), dict(leaves(b[name]))
    diffs = [(k, la.get(k), lb.get(k)) for k in sorted(set(la) | set(lb)) if la.get(k) != lb.get(k)]
    print(f"{name}: {len(diffs)} leaves differ, e.g. {diffs[:3]}")
print(f"{identical} of {len(a)} evaluations identical (metrics.json without paths and fingerprints)")
