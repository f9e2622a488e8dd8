"""The noisify Beam job: transforms, the CLI end to end, determinism, bad input."""

import glob
import json
import os
import subprocess
import sys
import zipfile

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from label_smearing import cli
from label_smearing.beam_core.sources import IdxSource, TfdsSource
from label_smearing.core import layout
from label_smearing.core.datasets import DATASETS
from label_smearing.modeling import noise
from label_smearing.stages import noisify
from tests.idx_fixture import write_idx_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), num_train=2000, num_test=200)


def _read_records(directory, split):
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            f = example.features.feature
            out[f["id"].bytes_list.value[0].decode()] = (
                f["label"].int64_list.value[0],
                f["clean_label"].int64_list.value[0],
                f["is_noisy"].int64_list.value[0],
                raw,
            )
    return out


def _noisify(workdir, idx_dir, *extra):
    args = [
        "noisify", "--config", f"{QUICKSTART}:smoke", "--workdir", str(workdir),
        "--config.data.source=idx", f"--config.data.source_dir={idx_dir}",
        "--config.data.max_train_examples=0", "--config.data.max_test_examples=0",
        "--config.data.chunk_size=300", *extra,
    ]  # fmt: skip
    return cli.main(args)


def _artifact(workdir):
    (path,) = glob.glob(os.path.join(workdir, "data", "*"))
    return path


def _id_and_label(kv):
    """(id, noisy label) of a NoisifyChunk output (split, serialised Example)."""
    f = tf.train.Example.FromString(kv[1]).features.feature
    return f["id"].bytes_list.value[0].decode(), f["label"].int64_list.value[0]


def test_noisify_chunk_labels_equal_the_pure_function(idx_dir):
    source = IdxSource("fashion_mnist", idx_dir)
    t = noise.symmetric_transition(10, 0.4)
    ids = [f"fashion_mnist/train/{i}" for i in range(100, 160)]
    expected = list(zip(ids, noise.assign_noisy_labels(ids, np.arange(100, 160) % 10, t, seed=5).tolist()))

    with TestPipeline() as p:
        outputs = (
            p
            | beam.Create([("train", 100, 130), ("train", 130, 160)])
            | beam.ParDo(
                noisify.NoisifyChunk(source, "fashion_mnist", 10, (28, 28, 1), t, None, 5)
            ).with_outputs(noisify.DEAD_LETTER, "counts", main="examples")
        )
        assert_that(outputs.examples | beam.Map(_id_and_label), equal_to(expected))
        assert_that(outputs[noisify.DEAD_LETTER], equal_to([]), label="NoDeadLetters")


def test_instance_noise_chunks_equal_the_pure_function_and_its_report(tmp_path, idx_dir):
    source = IdxSource("fashion_mnist", idx_dir)
    images, clean = source.read("train", 100, 160)
    ids = [f"fashion_mnist/train/{i}" for i in range(100, 160)]
    expected = noise.instance_noisy_labels(ids, images, clean, 10, 0.4, seed=5)

    with TestPipeline() as p:
        outputs = (
            p
            | beam.Create([("train", 100, 130), ("train", 130, 160)])
            | beam.ParDo(
                noisify.NoisifyChunk(
                    source, "fashion_mnist", 10, (28, 28, 1), None, None, 5, instance_rate=0.4
                )
            ).with_outputs(noisify.DEAD_LETTER, "counts", main="examples")
        )
        assert_that(outputs.examples | beam.Map(_id_and_label), equal_to(list(zip(ids, expected.tolist()))))
    # The whole stage: the realised rate against the flip rates' mean, and the realised class-to-class matrix.
    assert _noisify(tmp_path, idx_dir, "--config.noise.model=instance", "--config.noise.rate=0.4") == 0
    report = json.loads(open(os.path.join(_artifact(tmp_path), "noise_report.json")).read())["train"]
    assert report["expected_transition"] is None
    assert report["expected_flip_rate"] == pytest.approx(noise.instance_expected_rate(0.4))
    assert abs(report["flip_rate_z"]) < 4
    realised = np.array(report["realised_transition"])
    counts = np.array(report["realised_counts"])
    np.testing.assert_allclose(realised, counts / counts.sum(axis=1, keepdims=True))
    assert 1 - np.trace(counts) / counts.sum() == pytest.approx(report["realised_flip_rate"])


def test_bad_records_go_to_the_dead_letter_output(idx_dir):
    class BadLabels(IdxSource):
        def read(self, split, start, end):
            images, labels = super().read(split, start, end)
            labels[0] = 99
            return images, labels

    t = noise.symmetric_transition(10, 0.2)
    with TestPipeline() as p:
        outputs = (
            p
            | beam.Create([("train", 0, 5)])
            | beam.ParDo(
                noisify.NoisifyChunk(
                    BadLabels("fashion_mnist", idx_dir), "fashion_mnist", 10, (28, 28, 1), t, None, 0
                )
            ).with_outputs(noisify.DEAD_LETTER, "counts", main="examples")
        )
        assert_that(outputs.examples | beam.combiners.Count.Globally(), equal_to([4]))
        assert_that(
            outputs[noisify.DEAD_LETTER],
            equal_to(["fashion_mnist/train/0\tlabel 99 outside [0, 10)"]),
            label="DeadLetter",
        )


def test_cli_writes_schema_report_and_manifest(tmp_path, idx_dir):
    assert _noisify(tmp_path, idx_dir) == 0
    artifact = _artifact(tmp_path)
    manifest = json.load(open(os.path.join(artifact, "manifest.json")))
    counts = manifest["counts"]
    assert (
        counts["train"] + counts["validation"] == 2000
        and counts["test"] == 200
        and counts["dead_letter"] == 0
    )
    assert manifest["image_shape"] == [28, 28, 1] and manifest["num_classes"] == 10
    assert set(manifest["files"]) >= {"noise_report.json", *manifest["splits"]["train"]["files"]}
    train, test = _read_records(artifact, "train"), _read_records(artifact, "test")
    validation = _read_records(artifact, "validation")
    assert len(train) == counts["train"] and len(validation) == counts["validation"] and len(test) == 200
    assert sum(v[2] for v in test.values()) == 0 and all(v[0] == v[1] for v in test.values())
    assert all(v[2] == int(v[0] != v[1]) for v in (*train.values(), *validation.values()))
    reports = json.load(open(os.path.join(artifact, "noise_report.json")))
    for split, records in (("train", train), ("validation", validation)):
        report = reports[split]
        flips = sum(v[2] for v in records.values())
        assert report["realised_flip_rate"] == flips / len(records)
        assert abs(report["flip_rate_z"]) < 3  # realised within 3 standard errors of rho = 0.2
        assert np.array(report["realised_counts"]).sum() == len(records)
    # The image round-trips through PNG exactly.
    raw = next(iter(train.values()))[3]
    f = tf.train.Example.FromString(raw).features.feature
    index = int(f["id"].bytes_list.value[0].decode().rsplit("/", 1)[1])
    images, _ = IdxSource("fashion_mnist", idx_dir).read("train", index, index + 1)
    np.testing.assert_array_equal(tf.io.decode_png(f["image"].bytes_list.value[0]).numpy(), images[0])


def test_validation_split_is_disjoint_by_id_noisy_and_fixed_across_noise_seeds(tmp_path, idx_dir):
    assert _noisify(tmp_path / "a", idx_dir) == 0
    assert _noisify(tmp_path / "b", idx_dir, "--config.noise.seed=3") == 0
    splits = {s: _read_records(_artifact(tmp_path / "a"), s) for s in ("train", "validation", "test")}
    ids = {s: set(records) for s, records in splits.items()}
    assert not ids["train"] & ids["validation"] and not ids["validation"] & ids["test"]
    assert not ids["train"] & ids["test"]
    # About 10% held out (binomial: 200 +- 3 standard errors of 13.4), all from the source's train split.
    assert abs(len(ids["validation"]) - 200) < 41 and all("/train/" in i for i in ids["validation"])
    # Each id's side is the hash's, whatever the chunking, noise seed or rate.
    expected = noisify.validation_mask(sorted(ids["train"] | ids["validation"]), 0.1)
    assert {i for i, held in zip(sorted(ids["train"] | ids["validation"]), expected) if held} == ids[
        "validation"
    ]
    other = _read_records(_artifact(tmp_path / "b"), "validation")
    assert set(other) == ids["validation"]
    # Noisy labels, as a practitioner would have them, with the clean ones kept beside them.
    validation = splits["validation"]
    assert 0.1 < sum(v[2] for v in validation.values()) / len(validation) < 0.3
    assert sum(other[k][0] != v[0] for k, v in validation.items()) > 0  # a new noise draw, same examples


def test_no_validation_split_with_fraction_zero_and_a_too_small_fraction_is_refused(
    tmp_path, idx_dir, capsys
):
    assert _noisify(tmp_path / "a", idx_dir, "--config.data.validation_fraction=0") == 0
    manifest = json.load(open(os.path.join(_artifact(tmp_path / "a"), "manifest.json")))
    assert "validation" not in manifest["splits"] and manifest["counts"]["train"] == 2000
    capsys.readouterr()
    assert _noisify(tmp_path / "b", idx_dir, "--config.data.validation_fraction=0.0001") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "less than one example" in err[0], err
    assert not glob.glob(str(tmp_path / "b" / "data" / "*"))


@pytest.mark.slow
def test_same_labels_with_one_and_two_workers_and_across_runs(tmp_path, idx_dir):
    assert _noisify(tmp_path / "a", idx_dir) == 0
    assert _noisify(tmp_path / "b", idx_dir) == 0
    env = dict(os.environ, PYTHONPATH=ROOT)
    two_workers = subprocess.run(
        [sys.executable, "-m", "label_smearing.cli", "noisify", "--config", f"{QUICKSTART}:smoke",
         "--workdir", str(tmp_path / "c"), "--config.data.source=idx", f"--config.data.source_dir={idx_dir}",
         "--config.data.max_train_examples=0", "--config.data.max_test_examples=0", "--config.data.chunk_size=300",
         "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert two_workers.returncode == 0, two_workers.stderr[-2000:]
    runs = [_read_records(_artifact(tmp_path / r), "train") for r in "abc"]
    # Byte-identical records, whatever the run or the worker count.
    assert {k: v[3] for k, v in runs[0].items()} == {k: v[3] for k, v in runs[1].items()}
    assert {k: v[3] for k, v in runs[0].items()} == {k: v[3] for k, v in runs[2].items()}
    assert _noisify(tmp_path / "d", idx_dir, "--config.noise.seed=1") == 0
    other = _read_records(_artifact(tmp_path / "d"), "train")
    changed = sum(other[k][0] != v[0] for k, v in runs[0].items())
    assert changed > 0.2 * len(other)


def test_per_example_noisy_labels_file(tmp_path, idx_dir):
    labels = (np.arange(2000) * 7) % 10
    np.save(tmp_path / "noisy.npy", labels)
    assert (
        _noisify(
            tmp_path / "w",
            idx_dir,
            "--config.noise.model=labels",
            f"--config.noise.labels_file={tmp_path}/noisy.npy",
        )
        == 0
    )
    train = _read_records(_artifact(tmp_path / "w"), "train")
    for key, value in train.items():
        assert value[0] == labels[int(key.rsplit("/", 1)[1])]


def test_tfds_source_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=48):
        code = cli.main([
            "noisify", "--config", f"{QUICKSTART}:smoke", "--workdir", str(tmp_path),
            "--config.data.dataset=cifar10", "--config.data.source=tfds", "--config.data.chunk_size=20",
        ])  # fmt: skip
    assert code == 0
    manifest = json.load(open(os.path.join(_artifact(tmp_path), "manifest.json")))
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 48
    assert manifest["image_shape"] == [32, 32, 3]
    assert len(manifest["class_names"]) == 10


def _corrupt_idx(tmp_path, idx_dir):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for name in os.listdir(idx_dir):
        data = open(os.path.join(idx_dir, name), "rb").read()
        (bad / name).write_bytes(data[: len(data) // 2] if name.startswith("train-images") else data)
    return str(bad)


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("rate", ["--config.noise.rate=1.5"], "noise.rate must be in [0, 1]"),
        ("validation", ["--config.data.validation_fraction=1"], "data.validation_fraction must be in [0, 1)"),
        ("unknown key", ["--config.noise.rho=0.1"], "unknown config key: noise.rho"),
        ("dataset", ["--config.data.dataset=mnist"], "unknown data.dataset 'mnist'"),
        ("missing source", ["--config.data.source_dir={tmp}/nowhere"], "not found"),
        ("corrupt source", ["--config.data.source_dir={corrupt}"], "truncated or corrupt"),
        (
            "instance features",
            ["--config.noise.model=instance", "--config.noise.instance_features=standardised"],
            "unknown noise.instance_features 'standardised'; one of raw, standardized",
        ),
        (
            "instance noise without images",
            ["--config.noise.model=instance", "--config.data.source_dir={blank}"],
            "noise.model=instance needs images: the first 256 training images of fashion_mnist are blank",
        ),
        (
            "T not stochastic",
            ["--config.noise.model=matrix", "--config.noise.transition_file={tmp}/bad.json"],
            "row-stochastic",
        ),
        (
            "T wrong size",
            ["--config.noise.model=matrix", "--config.noise.transition_file={tmp}/small.npy"],
            "10 classes",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, idx_dir, capsys, case, extra, message):
    (tmp_path / "bad.json").write_text(json.dumps((np.eye(10) * 0.9).tolist()))
    np.save(tmp_path / "small.npy", np.eye(3))
    fmt = {"tmp": tmp_path, "corrupt": _corrupt_idx(tmp_path, idx_dir) if case == "corrupt source" else ""}
    fmt["blank"] = write_idx_dataset(tmp_path / "blank", num_train=300, num_test=10, blank=True)
    workdir = tmp_path / "work"
    args = [
        "noisify", "--config", f"{QUICKSTART}:smoke", "--workdir", str(workdir),
        "--config.data.source=idx", f"--config.data.source_dir={idx_dir}",
    ] + [a.format(**fmt) for a in extra]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not glob.glob(str(workdir / "data" / "*" / "manifest.json"))
    if case == "instance noise without images":
        assert not workdir.exists()  # refused before anything is written


def test_a_complete_artifact_is_reused_and_force_recomputes_it(tmp_path, idx_dir, capsys):
    assert _noisify(tmp_path, idx_dir) == 0
    manifest = os.path.join(_artifact(tmp_path), "manifest.json")
    before = open(manifest).read()
    capsys.readouterr()
    assert _noisify(tmp_path, idx_dir) == 0  # the same lifecycle as `smear run`: cached, not an error
    assert "noisify: cached: " in capsys.readouterr().out
    assert open(manifest).read() == before
    assert _noisify(tmp_path, idx_dir, "--force") == 0
    assert "cached" not in capsys.readouterr().out


def _check_worker_wheel(path: str, tmp_path) -> None:
    """The wheel Dataflow's workers get holds the whole installed package, its version and requirements."""
    import importlib.metadata

    import label_smearing

    assert os.path.basename(path) == f"label_smearing-{label_smearing.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = f"label_smearing-{label_smearing.__version__}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        record = wheel.read(f"{info}/RECORD").decode()
    package = {
        os.path.relpath(p, os.path.dirname(os.path.dirname(label_smearing.__file__))).replace(os.sep, "/")
        for p in glob.glob(
            os.path.join(os.path.dirname(label_smearing.__file__), "**", "*.py"), recursive=True
        )
    }
    assert package <= names and "label_smearing/configs/quickstart.py" in names
    assert all(f"Requires-Dist: {r}" in metadata for r in importlib.metadata.requires("label-smearing"))
    assert all(name in record for name in package)
    # pip installs it: the workers' view, without dependencies, into a throw-away directory
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), path],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (target / "label_smearing" / "stages" / "noisify.py").is_file()


def test_dataflow_options_ship_this_package_as_a_wheel_built_from_the_install(tmp_path):
    options = noisify.pipeline_options(
        ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp"]
    ).get_all_options()
    assert options["setup_file"] is None  # no setup.py: an installed package has none beside it
    (wheel,) = options["extra_packages"]
    _check_worker_wheel(wheel, tmp_path)
    local = noisify.pipeline_options([]).get_all_options()
    assert not local["extra_packages"] and local["setup_file"] is None
    # A user who ships the package themselves is left alone.
    own = noisify.pipeline_options(
        ["--runner=DataflowRunner", "--extra_package=/w/label_smearing-9-py3-none-any.whl"]
    )
    assert own.get_all_options()["extra_packages"] == ["/w/label_smearing-9-py3-none-any.whl"]


@pytest.fixture
def object_store(gcs_env, tmp_path):
    """A fresh prefix in the GCS stand-in's bucket (TF and Beam both reach it as gs://)."""
    return f"gs://bucket/{tmp_path.name}"


@pytest.mark.slow
def test_noisify_writes_to_an_object_store_workdir(object_store, idx_dir):
    from label_smearing.core import artifacts
    from label_smearing.core.config import load_config

    config = load_config(f"{QUICKSTART}:smoke", ["data.source=idx", f"data.source_dir={idx_dir}"])
    out_dir = layout.data(config, f"{object_store}/run").path
    assert str(out_dir).startswith(f"{object_store}/run/data/")
    manifest = noisify.noisify_stage(config, out_dir, log=lambda _: None)
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 512
    assert manifest["splits"]["train"]["files"] == [f"train-{i:05d}-of-00004.tfrecord" for i in range(4)]
    assert artifacts.read_manifest(out_dir)["fingerprint"] == layout.data_fingerprint(config)
    from label_smearing.core.errors import UserError

    with pytest.raises(UserError, match="--force"):
        noisify.noisify_stage(config, out_dir, log=lambda _: None)


def test_dataflow_submission_gets_the_package_and_the_remote_paths(object_store, idx_dir, monkeypatch):
    """Everything up to the job submission: the outside world starts at run_pipeline."""
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    from label_smearing.core.config import load_config

    submitted = {}

    class Submitted(Exception):
        pass

    def fake_run_pipeline(self, pipeline, options):
        submitted["options"] = options.get_all_options()
        submitted["labels"] = [t.full_label for t in pipeline.transforms_stack[0].parts]
        raise Submitted

    monkeypatch.setattr(DataflowRunner, "run_pipeline", fake_run_pipeline)
    config = load_config(f"{QUICKSTART}:smoke", ["data.source=idx", f"data.source_dir={idx_dir}"])
    out_dir = layout.data(config, f"{object_store}/run").path
    flags = [
        "--runner=DataflowRunner",
        "--project=my-project",
        "--region=us-central1",
        "--temp_location=gs://bucket/tmp",
    ]
    with pytest.raises(Submitted):
        noisify.noisify_stage(config, out_dir, beam_args=flags, log=lambda _: None)
    (wheel,) = submitted["options"]["extra_packages"]
    assert wheel.endswith(".whl") and os.path.isfile(wheel)
    assert {"Chunks", "ReadNoisifyWrite", "WriteCounts"} <= set(submitted["labels"])
    assert not noisify.artifacts.is_complete(out_dir)


def test_a_mistyped_beam_flag_is_an_error_not_a_warning(tmp_path, idx_dir, capsys):
    # Beam alone would drop --direct_num_worker with a warning and run on one worker.
    assert _noisify(tmp_path, idx_dir, "--direct_num_worker=2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --direct_num_worker" in err[0]
    assert not (tmp_path / "data").exists()


CIFAR_N = os.path.join(ROOT, "label_smearing", "configs", "cifar_n.py")


def test_human_noise_reads_cifar10_n_annotations_through_tfds(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        code = cli.main([
            "noisify", "--config", f"{CIFAR_N}:cifar10_n,worse_label,smoke", "--workdir", str(tmp_path),
            "--config.data.chunk_size=16", "--config.data.max_test_examples=8",
        ])  # fmt: skip
        annotations = DATASETS["cifar10_n"].annotations
        # Mock data are drawn per slice: read the slices noisify read (chunks of 16).
        slices = [TfdsSource("cifar10_n").read("train", a, min(a + 16, 40), annotations) for a in (0, 16, 32)]
    clean = np.concatenate([s[1] for s in slices])
    human = {name: np.concatenate([s[2][name] for s in slices]) for name in annotations}
    assert code == 0
    path = _artifact(tmp_path)
    assert os.path.basename(path).startswith("cifar10_n-human-worse_label-s0-")
    records = {**_read_records(path, "train"), **_read_records(path, "validation")}
    assert len(records) == 40
    for i in range(40):
        label, clean_label, is_noisy, _ = records[f"cifar10_n/train/{i}"]
        # The noisy label is the annotators' worse_label; the clean one CIFAR's; noisy = they disagree.
        assert (label, clean_label, is_noisy) == (
            human["worse_label"][i],
            clean[i],
            int(human["worse_label"][i] != clean[i]),
        )
    report = json.load(open(os.path.join(path, "noise_report.json")))
    assert set(report["annotations"]) == set(annotations)
    for name in annotations:
        assert report["annotations"][name]["realised_flip_rate"] == pytest.approx(
            np.mean(human[name] != clean)
        )
    flipped = report["train"]["realised_flip_rate"] * report["train"]["num_examples"]
    flipped += report["validation"]["realised_flip_rate"] * report["validation"]["num_examples"]
    assert flipped == pytest.approx(np.sum(human["worse_label"] != clean))
    assert report["train"]["expected_transition"] is None and "expected_flip_rate" not in report["train"]


def test_human_noise_reads_cifar100_n_noise_label(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        code = cli.main(["noisify", "--config", f"{CIFAR_N}:cifar100_n,smoke", "--workdir", str(tmp_path),
                         "--config.data.max_test_examples=8"])  # fmt: skip
    assert code == 0
    report = json.load(open(os.path.join(_artifact(tmp_path), "noise_report.json")))
    assert list(report["annotations"]) == ["noise_label"] and report["noise"]["annotation"] == "noise_label"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--config.noise.annotation=noise_label"],
         "noise.annotation 'noise_label': cifar10_n has aggre_label, worse_label, random_label1, random_label2, random_label3"),
        (["--config.noise.annotation=random_label4"], "noise.annotation 'random_label4': cifar10_n has"),
        (["--config.data.dataset=cifar10", "--config.noise.annotation=worse_label"],
         "noise.model=human reads a dataset's human labels: data.dataset must be one of cifar10_n, cifar100_n, got 'cifar10'"),
    ],
)  # fmt: skip
def test_a_bad_annotation_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    workdir = tmp_path / "work"
    code = cli.main(
        ["noisify", "--config", f"{CIFAR_N}:cifar10_n,worse_label,smoke", "--workdir", str(workdir), *extra]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not workdir.exists()


def test_missing_cifar_n_files_are_one_line_naming_the_manual_download(tmp_path, capsys):
    code = cli.main([
        "noisify", "--config", f"{CIFAR_N}:cifar10_n,worse_label,smoke", "--workdir", str(tmp_path / "work"),
        f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
    ])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cifar10_n needs a manual download" in err[0] and "CIFAR-10_human_annotations.csv" in err[0], err
    assert not glob.glob(str(tmp_path / "work" / "data" / "*" / "manifest.json"))


def test_the_matrices_of_many_classes_leave_the_json_for_an_npz(tmp_path):
    """ImageNet's three 1000 x 1000 matrices per split made noise_report.json 134 MB."""
    rng = np.random.default_rng(0)
    report = {}
    for classes, directory in ((10, tmp_path / "few"), (noisify.JSON_MATRIX_CLASSES + 1, tmp_path / "many")):
        directory.mkdir()
        counts = rng.integers(0, 5, size=(classes, classes))
        report = {"train": noisify.noise_report(counts, np.eye(classes)), "noise": {"rate": 0.2}}
        noisify.write_noise_report(directory, report)
    few = json.loads((tmp_path / "few" / "noise_report.json").read_text())
    assert len(few["train"]["realised_counts"]) == 10 and not (tmp_path / "few" / "noise_report.npz").exists()
    many = json.loads((tmp_path / "many" / "noise_report.json").read_text())
    assert many["matrices"] == "noise_report.npz" and "realised_counts" not in many["train"]
    assert many["train"]["realised_flip_rate"] == pytest.approx(1 - np.trace(counts) / counts.sum())
    with np.load(tmp_path / "many" / "noise_report.npz") as arrays:
        np.testing.assert_array_equal(arrays["train/realised_counts"], counts)
        assert arrays["train/expected_transition"].shape == (counts.shape[0],) * 2


def test_noise_instance_features_reach_the_labels_the_stage_writes(tmp_path, idx_dir):
    # raw (the default, Xia et al.'s features) and standardized: each run writes the pure function's labels
    # for its features, into its own artifact; symmetric data would ignore the key.
    ids = [f"fashion_mnist/train/{i}" for i in range(2000)]
    images, clean = IdxSource("fashion_mnist", idx_dir).read("train", 0, 2000)
    paths = {}
    for features in noise.INSTANCE_FEATURES:
        workdir = tmp_path / features
        extra = ["--config.noise.model=instance", "--config.noise.rate=0.4"]
        assert _noisify(workdir, idx_dir, *extra, f"--config.noise.instance_features={features}") == 0
        paths[features] = artifact = _artifact(workdir)
        manifest = json.load(open(os.path.join(artifact, "manifest.json")))
        assert manifest["config"]["noise"]["instance_features"] == features
        seed = manifest["config"]["noise"]["seed"]
        expected = noise.instance_noisy_labels(ids, images, clean, 10, 0.4, seed, features=features)
        records = {**_read_records(artifact, "train"), **_read_records(artifact, "validation")}
        assert [records[i][0] for i in ids] == expected.tolist(), features
    assert os.path.basename(paths["raw"]) != os.path.basename(paths["standardized"])  # two fingerprints
