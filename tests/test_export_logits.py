"""The export-logits Beam job: logits equal model.predict, nothing lost, bad input."""

import glob
import json
import os

import apache_beam as beam
import keras
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from label_smearing import cli
from label_smearing.beam_core.tfrecords import encode_png
from label_smearing.core import artifacts, layout, locks, tfdata
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.core.schema import make_example
from label_smearing.modeling import models, noise
from label_smearing.stages import export_logits
from tests.conftest import write_data_artifact
from tests.test_cli_errors import rechecksum

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")
NUM_TRAIN = 70  # not a multiple of the batch size: the last batch is partial


def make_model_artifact(directory, *, num_classes=10, image_shape=(28, 28, 1), seed=0):
    """A tiny untrained ResNet-8 saved like `smear train` saves a teacher."""
    keras.utils.set_random_seed(seed)
    model = models.cifar_resnet(8, num_classes, image_shape, width=4)
    for layer in model.layers:  # non-trivial batch-norm statistics, so inference differs from training mode
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(seed).normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 1.5))
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, "model.keras"))
    description = {"num_classes": num_classes, "image_shape": list(image_shape), "seed": seed}
    artifacts.write_manifest(
        directory, stage="train", fingerprint=artifacts.fingerprint("train", description), config=description,
        extra={"num_classes": num_classes, "image_shape": list(image_shape)},
    )  # fmt: skip
    return model


def config(*overrides):
    return load_config(f"{QUICKSTART}:smoke", ["export.batch_size=16", "export.num_shards=3", *overrides])


def read_records(directory, split="train"):
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(raw).features.feature
            out[feature["id"].bytes_list.value[0].decode()] = feature
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data_dir = write_data_artifact(root, dataset="fashion_mnist", num_train=NUM_TRAIN, num_test=8)
    model = make_model_artifact(root / "models" / "teacher")
    out = root / "logits" / "one-worker"
    manifest = export_logits.export_stage(
        config(), root / "models" / "teacher", data_dir, out, log=lambda _: None
    )
    return {"root": root, "data": data_dir, "model": model, "out": out, "manifest": manifest}


def test_logits_equal_model_predict_on_the_evaluation_inputs(exported):
    # The reference inputs come from label_smearing.core.tfdata's evaluation pipeline, not from the job's code.
    batches = tfdata.make_dataset(
        exported["data"], "train", batch_size=32, training=False, num_classes=10, include_metadata=True
    )
    ids, images = [], []
    for batch in batches:
        ids += [i.decode() for i in batch["id"].numpy()]
        images.append(batch["image"].numpy())
    images = np.concatenate(images)
    logits, pre_logits = models.pre_logits_model(exported["model"]).predict(images, verbose=0)
    records = read_records(exported["out"])
    assert sorted(records) == sorted(ids) and len(records) == NUM_TRAIN
    for i, example_id in enumerate(ids):
        np.testing.assert_allclose(
            records[example_id]["teacher_logits"].float_list.value, logits[i], atol=1e-5
        )
        np.testing.assert_allclose(
            records[example_id]["pre_logits"].float_list.value, pre_logits[i], atol=1e-5
        )
    assert np.std(logits) > 0.1  # the comparison is not between near-constant vectors


def test_preprocessing_is_exactly_the_evaluation_pipelines(exported):
    raw = {}
    for path in glob.glob(os.path.join(exported["data"], "train-*.tfrecord")):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            raw[tf.train.Example.FromString(record).features.feature["id"].bytes_list.value[0]] = record
    batch = next(iter(tfdata.make_dataset(exported["data"], "train", batch_size=24, training=False, num_classes=10,
                                        include_metadata=True)))  # fmt: skip
    teacher = export_logits.TeacherModel(
        exported["model"], (28, 28, 1), *tfdata.normalization("fashion_mnist", 1)
    )
    ours = teacher.preprocess([raw[i] for i in batch["id"].numpy()]).numpy()
    np.testing.assert_array_equal(ours, batch["image"].numpy())  # bit for bit
    assert abs(float(ours.mean())) < 1.0 < float(ours.max())  # normalised, not merely scaled to [0, 1]


def test_every_original_feature_is_kept_and_the_manifest_matches(exported):
    originals = read_records(exported["data"])
    records = read_records(exported["out"])
    assert sorted(records) == sorted(originals)
    for example_id, feature in records.items():
        for name in ("id", "image", "label", "clean_label", "is_noisy"):
            assert feature[name] == originals[example_id][name]
    m = exported["manifest"]
    assert artifacts.read_manifest(exported["out"]) == m
    assert m["splits"]["train"]["num_examples"] == NUM_TRAIN and m["counts"]["train"] == NUM_TRAIN
    assert len(m["splits"]["train"]["files"]) == 3
    assert (
        m["teacher"]["fingerprint"]
        == artifacts.read_manifest(exported["root"] / "models" / "teacher")["fingerprint"]
    )
    for key in ("dataset", "num_classes", "image_shape", "class_names"):
        assert m[key] == artifacts.read_manifest(exported["data"])[key]
    assert m["pre_logits_dim"] == 16
    # A student reads it with label_smearing.core.tfdata (TF's fast Example parser).
    batch = next(iter(tfdata.make_dataset(exported["out"], "train", batch_size=8, training=False, num_classes=10,
                                        with_teacher_logits=True, include_metadata=True)))  # fmt: skip
    expected = [records[i.decode()]["teacher_logits"].float_list.value for i in batch["id"].numpy()]
    np.testing.assert_array_equal(batch["teacher_logits"].numpy(), expected)


def test_exporting_again_writes_the_same_bytes_into_the_same_files(exported, tmp_path):
    again = tmp_path / "again"
    export_logits.export_stage(
        config(), exported["root"] / "models" / "teacher", exported["data"], again, log=lambda _: None
    )
    first = {p.name: p.read_bytes() for p in exported["out"].glob("train-*.tfrecord")}
    second = {p.name: p.read_bytes() for p in again.glob("train-*.tfrecord")}
    assert len(first) == 3 and first == second  # a student then reads the same data in the same order


@pytest.mark.slow
def test_two_worker_direct_runner_gives_the_same_records(exported):
    out = exported["root"] / "logits" / "two-workers"
    export_logits.export_stage(
        config("export.num_shards=2"), exported["root"] / "models" / "teacher", exported["data"], out,
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"], log=lambda _: None,
    )  # fmt: skip
    one, two = read_records(exported["out"]), read_records(out)
    assert sorted(one) == sorted(two) and len(two) == NUM_TRAIN
    # Each record sits in the shard its id hashes to, in id order, whatever the workers did.
    for shard in sorted(out.glob("train-*.tfrecord")):
        ids = [tf.train.Example.FromString(r.numpy()).features.feature["id"].bytes_list.value[0].decode()
               for r in tf.data.TFRecordDataset(str(shard))]  # fmt: skip
        assert ids == sorted(ids) and {export_logits.shard_of(i, 2) for i in ids} == {int(shard.name[6:11])}
    for example_id, feature in one.items():
        assert two[example_id]["image"] == feature["image"]
        np.testing.assert_allclose(
            two[example_id]["teacher_logits"].float_list.value,
            feature["teacher_logits"].float_list.value,
            atol=1e-5,
        )


def test_bad_records_go_to_the_dead_letter_output():
    png = encode_png(np.zeros((28, 28, 1), np.uint8))
    good = make_example("d/train/0", png, 1, 1)
    wrong_shape = make_example("d/train/1", encode_png(np.zeros((32, 32, 3), np.uint8)), 1, 1)
    not_png = make_example("d/train/2", b"GIF89a", 1, 1)
    missing = tf.train.Example(
        features=tf.train.Features(
            feature={"id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"d/train/3"]))}
        )
    ).SerializeToString()
    stale = make_example("d/train/4", png, 2, 2, {"teacher_logits": [9.0] * 10})
    fresh = make_example("d/train/4", png, 2, 2)  # an exported record re-exported: its old logits are dropped
    with test_pipeline.TestPipeline() as p:
        out = (
            p
            | beam.Create([good, wrong_shape, not_png, missing, b"\xff\x00garbage", stale])
            | beam.ParDo(export_logits.CheckRecord((28, 28, 1))).with_outputs("dead_letter", main="valid")
        )
        assert_that(out.valid, equal_to([("d/train/0", good), ("d/train/4", fresh)]), label="valid")
        assert_that(
            out.dead_letter | beam.Map(lambda s: s.split("\t")[0]),
            equal_to(["d/train/1", "d/train/2", "d/train/3", "?"]),
            label="dead",
        )


def test_count_mismatch_is_an_error_and_writes_no_manifest(tmp_path):
    data_dir = write_data_artifact(tmp_path, num_train=20, num_test=4, num_shards=1)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    manifest["splits"]["train"]["num_examples"] = 21  # one example "lost" between noisify and export
    (data_dir / "manifest.json").write_text(json.dumps(manifest))
    make_model_artifact(tmp_path / "teacher")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="exported 20 records with 20 distinct ids.*lists 21"):
        export_logits.export_stage(config(), tmp_path / "teacher", data_dir, out, log=lambda _: None)
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"num_classes": 5}, "has 5 classes, but the data"),
     ({"image_shape": (32, 32, 3)}, "takes images of shape [32, 32, 3], but the data")],
)  # fmt: skip
def test_a_teacher_that_does_not_fit_the_data_is_refused(tmp_path, kwargs, message):
    data_dir = write_data_artifact(tmp_path, num_train=4, num_test=4, num_shards=1)
    make_model_artifact(tmp_path / "teacher", **kwargs)
    with pytest.raises(UserError) as e:
        export_logits.export_stage(
            config(), tmp_path / "teacher", data_dir, tmp_path / "out", log=lambda _: None
        )
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model_flag", [True, False])
def test_cli_missing_model_is_one_line_exit_2(tmp_path, capsys, model_flag):
    workdir = tmp_path / "work"
    cfg = load_config(f"{QUICKSTART}:smoke")
    write_data_artifact(
        workdir, num_train=4, num_test=4, num_shards=1, directory=layout.data(cfg, workdir).path
    )
    args = ["export-logits", "--config", f"{QUICKSTART}:smoke", "--workdir", str(workdir)]
    if model_flag:
        args += ["--model", str(workdir / "models" / "nowhere")]
    (workdir / "models").mkdir()
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert ("model artifact not found" if model_flag else "no trained model at") in err[0]
    assert not glob.glob(str(workdir / "logits" / "*" / "manifest.json"))


def test_cli_export_then_estimate_with_default_paths(tmp_path, capsys):

    workdir = tmp_path / "work"
    cfg = load_config(f"{QUICKSTART}:smoke")
    data_dir = write_data_artifact(
        workdir, num_train=24, num_test=4, num_shards=2, directory=layout.data(cfg, workdir).path
    )
    data_fp = artifacts.read_manifest(data_dir)["fingerprint"]
    model_dir = layout.configured_model(cfg, workdir)[0].path  # quickstart's teacher is plain CE
    make_model_artifact(model_dir)
    base = ["--config", f"{QUICKSTART}:smoke", "--workdir", str(workdir)]
    assert cli.main(["export-logits", *base]) == 0
    model_fp = artifacts.read_manifest(model_dir)["fingerprint"]
    logits_dir = layout.logits(cfg, workdir, layout.base_name(model_dir), model_fp, data_fp).path
    assert logits_dir.name.startswith(model_dir.name[:-11] + "-train-")
    assert artifacts.read_manifest(logits_dir)["counts"]["train"] == 24
    assert cli.main(["estimate-transition", *base]) == 0
    (transition_dir,) = (workdir / "transition").iterdir()
    logits_fp = artifacts.read_manifest(logits_dir)["fingerprint"]
    assert transition_dir == layout.transition(cfg, workdir, layout.base_name(model_dir), logits_fp).path
    assert noise.load_transition(transition_dir / "transition.npy", 10).shape == (10, 10)  # row-stochastic
    capsys.readouterr()
    written = (logits_dir / "manifest.json").read_text()
    assert cli.main(["export-logits", *base]) == 0  # complete with its fingerprint: reused, not overwritten
    assert "export-logits: cached: " in capsys.readouterr().out
    assert (logits_dir / "manifest.json").read_text() == written


# ---------------------------------------------------------------- in process and on Beam
FORCE_BEAM = ["--direct_num_workers=1"]  # any Beam flag runs the Beam job; this one is the local default


def _without_timing(manifest):
    return {key: value for key, value in manifest.items() if key not in ("created", "seconds")}


def _shards(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.glob("train-*.tfrecord"))}


def _export_both_ways(data_dir, model_dir, out_root):
    """(in-process result, Beam result): each the manifest or the UserError's text, with the out dir as OUT."""
    results = []
    for name, beam_args in (("in-process", []), ("beam", FORCE_BEAM)):
        logs = []
        out = out_root / name
        try:
            result = _without_timing(
                export_logits.export_stage(
                    config(), model_dir, data_dir, out, beam_args=beam_args, log=logs.append
                )
            )
        except UserError as e:
            result = str(e).replace(str(out), "OUT")
        finally:
            locks.release_all()  # as `smear` does after a stage that failed: its lock is not left to later tests
        results.append(result)
        if logs[-1].startswith("export-logits: wrote"):
            assert logs[-1].endswith("in process)" if name == "in-process" else "Beam job)"), logs
    return results


def test_in_process_and_beam_exports_write_the_same_bytes(exported, tmp_path):
    # 70 records in two files, batches of 16: a batch spans both files and the last is short. A record's
    # logits depend in their last bits on its batch, so this holds only if both run the same batches.
    teacher = exported["root"] / "models" / "teacher"
    in_process, beam_job = _export_both_ways(exported["data"], teacher, tmp_path)
    shards = _shards(tmp_path / "in-process")
    assert len(shards) == 3 and shards == _shards(tmp_path / "beam")
    assert in_process == beam_job
    assert in_process["files"] == _without_timing(exported["manifest"])["files"]
    for name in ("in-process", "beam"):  # no summary file or temporary shard is left
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted([*shards, "manifest.json"])


def _rewrite_train_shard(data_dir, extra_records):
    """Writes `extra_records` between the records of the first train shard; the checksums then match again."""
    path = data_dir / "train-00000-of-00002.tfrecord"
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, record in enumerate(records):
            writer.write(record)
            if i < len(extra_records):
                writer.write(extra_records[i])
    rechecksum(data_dir)


def test_dead_letters_and_corrupt_input_are_handled_alike_in_process_and_on_beam(tmp_path):
    model_dir = tmp_path / "teacher"
    make_model_artifact(model_dir)
    bad = [
        make_example("fashion_mnist/train/bad-0", encode_png(np.zeros((32, 32, 3), np.uint8)), 1, 1),
        make_example("fashion_mnist/train/bad-1", b"GIF89a", 1, 1),
        b"\xff\x00garbage",
    ]
    dead = write_data_artifact(tmp_path / "dead", dataset="fashion_mnist", num_train=40, num_test=4)
    _rewrite_train_shard(dead, bad)
    in_process, beam_job = _export_both_ways(dead, model_dir, tmp_path / "dead-out")
    assert in_process == beam_job and "3 of 40 records could not be exported" in in_process
    dead_letters = (tmp_path / "dead-out" / "in-process" / "dead_letter.txt").read_text()
    assert dead_letters == (tmp_path / "dead-out" / "beam" / "dead_letter.txt").read_text()
    assert [line.split("\t")[0] for line in dead_letters.splitlines()] == [
        "?", "fashion_mnist/train/bad-0", "fashion_mnist/train/bad-1"
    ]  # fmt: skip

    corrupt = write_data_artifact(tmp_path / "corrupt", dataset="fashion_mnist", num_train=40, num_test=4)
    path = corrupt / "train-00001-of-00002.tfrecord"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped in the middle of a record, then checksummed as written
    path.write_bytes(bytes(data))
    rechecksum(corrupt)
    in_process, beam_job = _export_both_ways(corrupt, model_dir, tmp_path / "corrupt-out")
    assert in_process == beam_job and "train-00001-of-00002.tfrecord is corrupt" in in_process
    for name in ("in-process", "beam"):
        assert not (tmp_path / "corrupt-out" / name / "manifest.json").exists()
        assert not (tmp_path / "dead-out" / name / "manifest.json").exists()


def test_small_exports_without_beam_flags_run_in_process_and_any_other_on_beam(exported):
    data = exported["data"]
    files = tfdata.split_files(data, artifacts.read_manifest(data), "train")
    pattern = export_logits.in_process_pattern([], NUM_TRAIN, files)
    assert pattern == os.path.join(str(data), "train-*.tfrecord")
    assert export_logits.in_process_pattern(FORCE_BEAM, NUM_TRAIN, files) is None
    assert export_logits.in_process_pattern(["--runner=DataflowRunner"], NUM_TRAIN, files) is None
    assert export_logits.in_process_pattern([], export_logits.IN_PROCESS_MAX_EXAMPLES + 1, files) is None
    # The glob matches another file too: the Beam job reads the files one by one, in batches not reproduced here.
    assert export_logits.in_process_pattern([], NUM_TRAIN, files[:1]) is None


def test_the_help_names_the_in_process_limit():
    from label_smearing.core.cli_common import command_parser

    help_text = " ".join(command_parser("export_logits").format_help().split())
    assert (
        f"at most {export_logits.IN_PROCESS_MAX_EXAMPLES:,} examples is exported in this process" in help_text
    )


def test_beams_false_resource_warning_is_not_shown(caplog):
    """RunInference warns "Resource module is not available" on Linux (Beam's own import mix-up)."""
    from apache_beam.ml.inference import base

    assert export_logits is not None  # imported: its filter is on the root logger
    with caplog.at_level("WARNING"):
        base._get_current_process_memory_in_bytes()
        import logging

        logging.warning("another warning still shows")
    assert [r.getMessage() for r in caplog.records] == ["another warning still shows"]
