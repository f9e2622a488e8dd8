"""Patrini's transition estimator: recovers a known T at percentile 100 and 97, bad input."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from label_smearing import cli
from label_smearing.beam_core.tfrecords import encode_png
from label_smearing.core import artifacts
from label_smearing.core.config import load_config
from label_smearing.core.schema import make_example
from label_smearing.modeling import noise
from label_smearing.stages import estimate_transition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")
TRUE_T = np.array([[0.80, 0.15, 0.05], [0.10, 0.75, 0.15], [0.05, 0.10, 0.85]])
ANCHORS, BULK, OUTLIERS = 20, 500, 5


def synthetic_probabilities(outliers: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Class probabilities whose answer is known.

    For each class i: ANCHORS examples with p(x) = T[i] (the highest p_i there is
    apart from outliers); BULK examples with every p_j < 0.6 < min_i T[i, i]; with
    `outliers`, OUTLIERS near-one-hot examples per class above the anchors. Of
    575 examples, class i's outliers take the top 0.9% of p_i and its anchors the
    next 3.5%: the 97th percentile falls on an anchor, the maximum on an outlier.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(3):
        for k in range(ANCHORS):
            out[f"anchor/{i}/{k}"] = TRUE_T[i]
        if outliers:
            for k in range(OUTLIERS):
                p = np.full(3, 0.015)
                p[i] = 0.97
                out[f"outlier/{i}/{k}"] = p
    bulk = rng.dirichlet([2.0, 2.0, 2.0], size=4 * BULK)
    for k, p in enumerate(bulk[bulk.max(axis=1) < 0.6][:BULK]):
        out[f"bulk/{k}"] = p
    return out


def write_logits_artifact(directory, probabilities: dict[str, np.ndarray]):
    directory.mkdir(parents=True)
    png = encode_png(np.zeros((2, 2, 1), np.uint8))
    files = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    writers = [tf.io.TFRecordWriter(str(directory / f)) for f in files]
    for n, (example_id, p) in enumerate(sorted(probabilities.items())):
        label = int(np.argmax(p))
        logits = np.log(p) + 3.0  # any shift: softmax(log p + c) = p
        writers[n % 2].write(
            make_example(example_id, png, label, label, {"teacher_logits": logits, "pre_logits": [0.0]})
        )
    for w in writers:
        w.close()
    n = len(probabilities)
    description = {"examples": n, "first": sorted(probabilities)[0]}
    artifacts.write_manifest(
        directory, stage="export_logits", fingerprint=artifacts.fingerprint("export_logits", description),
        config=description, counts={"train": n},
        extra={"dataset": "synthetic", "num_classes": 3, "image_shape": [2, 2, 1], "class_names": ["a", "b", "c"],
               "splits": {"train": {"files": files, "num_examples": n}}},
    )  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def logits_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate")
    return {
        "clean": write_logits_artifact(root / "clean", synthetic_probabilities(outliers=False)),
        "outliers": write_logits_artifact(root / "outliers", synthetic_probabilities(outliers=True)),
    }


def estimate(logits_dir, out_dir, percentile):
    config = load_config(f"{QUICKSTART}:smoke", [f"estimate.percentile={percentile}"])
    return estimate_transition.estimate_stage(config, logits_dir, out_dir, log=lambda _: None)


@pytest.mark.parametrize("data, percentile", [("clean", 100), ("outliers", 97)])
def test_recovers_a_known_transition(logits_dirs, tmp_path, data, percentile):
    manifest = estimate(logits_dirs[data], tmp_path / "t", percentile)
    estimated = noise.load_transition(tmp_path / "t" / "transition.json", 3)
    assert np.max(np.abs(estimated - TRUE_T)) < 0.02
    np.testing.assert_allclose(np.load(tmp_path / "t" / "transition.npy"), estimated)
    summary = artifacts.read_manifest(tmp_path / "t")
    assert summary == manifest and manifest["percentile"] == percentile
    rows_from = json.loads((tmp_path / "t" / "transition.json").read_text())["rows_from_ids"]
    assert [r.split("/")[:2] for r in rows_from] == [["anchor", "0"], ["anchor", "1"], ["anchor", "2"]]
    assert manifest["counts"]["examples"] == len(synthetic_probabilities(data == "outliers"))


def test_the_maximum_is_fooled_by_outliers_the_97th_percentile_is_not(logits_dirs, tmp_path):
    estimate(logits_dirs["outliers"], tmp_path / "max", 100)
    estimated = noise.load_transition(tmp_path / "max" / "transition.json", 3)
    np.testing.assert_allclose(np.diag(estimated), 0.97, atol=1e-6)  # the outliers, not T


def test_closest_combiner_is_independent_of_order_and_grouping():
    fn = estimate_transition.ClosestFn()
    candidates = [(0.2, "c", [1.0]), (0.1, "b", [2.0]), (0.1, "a", [3.0]), (0.3, "d", [4.0])]
    results = set()
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        left, right = fn.create_accumulator(), fn.create_accumulator()
        for n, k in enumerate(order):
            if n % 2:
                left = fn.add_input(left, candidates[k])
            else:
                right = fn.add_input(right, candidates[k])
        merged = fn.merge_accumulators([left, fn.create_accumulator(), right])
        results.add(tuple(map(str, fn.extract_output(merged))))
    assert results == {("0.1", "a", "[3.0]")}


@pytest.mark.parametrize(
    "extra, message",
    [(["--logits", "{tmp}/nowhere"], "logits artifact not found"),
     (["--logits", "{tmp}/nowhere", "--config.estimate.percentile=101"], "estimate.percentile must be in [0, 100]"),
     ([], "data artifact not found")],
)  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, message):
    args = ["estimate-transition", "--config", f"{QUICKSTART}:smoke", "--workdir", str(tmp_path / "work")]
    assert cli.main(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "work" / "transitions").exists()
