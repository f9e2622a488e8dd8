"""Export a trained teacher's logits and pre-logits with Beam RunInference.

    smear export-logits --config quickstart --workdir W [--model DIR] [--split train]
        [--force] [Beam flags]

Reads one split of a data artifact (`smear noisify`), runs the teacher
(`models/<name>/model.keras`) over it with `apache_beam.ml.inference.RunInference`
and a Keras 3 model handler, and writes TFRecords holding every original feature
plus `teacher_logits` (float list, L) and `pre_logits` (float list, D), then the
manifest, last, once the output count and the distinct ids equal the input
manifest's count. Images are decoded and normalised exactly as
`label_smearing.core.tfdata` does for evaluation, a whole batch in one TensorFlow
call. Any Beam runner flag is passed through, e.g.
`--direct_num_workers=2 --direct_running_mode=multi_processing` or
`--runner=DataflowRunner ...`; without --runner the job runs on the FnApiRunner
(the DirectRunner's batch engine, see `make_pipeline`).

Which path runs: with no Beam flag at all, a split of at most
`IN_PROCESS_MAX_EXAMPLES` (32,768) examples whose files are exactly those their
glob matches is exported in this process, without Beam (`export_in_process`):
the same reader, `CheckRecord`, teacher batches as RunInference's, `add_logits`,
`shard_of`, `WriteShard` and `SummaryFn`, so the same shard bytes, summary,
dead letters and manifest, without Beam's fixed start-up (about 0.6 s). Every
other export runs the Beam job; any Beam flag forces it, e.g.
`--direct_num_workers=1` (the local default, one worker).

Source-encoded images (data image_encoding "source": ImageNet's JPEGs) are decoded
to their centre crop, as evaluation takes it (`label_smearing.core.crops`).

A record that cannot be read (not an Example, a missing feature, an image that is
not a PNG of the artifact's shape, or source-encoded bytes not of their
`image_format`) goes to the dead-letter output as
"id<TAB>reason"; the stage then fails without writing a manifest (a student must
see every training example) and leaves the first 100 of them in `dead_letter.txt`.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from label_smearing.beam_core.runners import make_pipeline, pipeline_options
from label_smearing.beam_core.tfrecords import tfrecord_frame
from label_smearing.core import artifacts, layout, schema, trained_model
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import EXPORT_LOGITS, NOISIFY, TRAIN, StageRequest
from label_smearing.core.schema import LOGIT_FEATURES, read_features

DEAD_LETTER = "dead_letter"
SUMMARY_FILE = ".export-summary.json"
SAMPLE = 100  # problem ids / dead letters kept for the error message and dead_letter.txt
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels tf.io.decode_png yields


class _NoResourceWarning(logging.Filter):
    """Drops RunInference's "Resource module is not available" warning (twice per export job).

    Beam imports `resource` in one try with an optional module that fails to import here, so
    it takes the module for missing on Linux, where it is not; it then only loses a memory
    metric this stage does not read.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Resource module is not available" not in record.getMessage()


logging.getLogger().addFilter(_NoResourceWarning())  # Beam logs it through the root logger


# ---------------------------------------------------------------- the model
class TeacherModel:
    """A loaded teacher: serialised Examples in, (logits, pre_logits) out, one graph call per batch.

    Parsing, PNG decoding and normalisation run inside the same `tf.function` as
    the forward pass, so no per-example TensorFlow eager op is paid. The
    normalisation is `label_smearing.core.tfdata`'s for evaluation:
    (uint8 / 255 - mean) / std with the dataset's per-channel statistics.
    """

    def __init__(
        self,
        keras_model,
        image_shape: Sequence[int],
        mean: np.ndarray,
        std: np.ndarray,
        encoding: str = "png",
    ):
        import tensorflow as tf

        from label_smearing.core import crops
        from label_smearing.modeling.models import pre_logits_model

        self.model = pre_logits_model(keras_model)
        image_shape = tuple(int(d) for d in image_shape)
        spec = tf.TensorSpec(image_shape, tf.uint8)
        # The constants are arguments, not captured: Grappler would otherwise rewrite x / 255 as
        # x * (1 / 255) and the inputs would differ from label_smearing.core.tfdata's by an ulp.
        self._constants = (tf.constant(255.0), tf.constant(mean, tf.float32), tf.constant(std, tf.float32))
        channels = [image_shape[-1]]
        signature = [tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.float32)]
        signature += [tf.TensorSpec(channels, tf.float32)] * 2

        def decode_and_normalise(serialized, scale, mean, std):
            if encoding == "source":  # the centre crop, as evaluation takes it
                parsed = tf.io.parse_example(
                    serialized,
                    {name: tf.io.FixedLenFeature([], tf.string) for name in ("image", schema.IMAGE_FORMAT)},
                )
                images = tf.map_fn(
                    lambda x: crops.eval_crop(x[0], x[1], image_shape[0], image_shape[-1]),
                    (parsed["image"], parsed[schema.IMAGE_FORMAT]),
                    fn_output_signature=spec,
                )
                return (tf.cast(images, tf.float32) / scale - mean) / std
            parsed = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string)})
            images = tf.map_fn(
                lambda png: tf.ensure_shape(tf.io.decode_png(png, channels=image_shape[-1]), image_shape),
                parsed["image"],
                fn_output_signature=spec,
            )
            return (tf.cast(images, tf.float32) / scale - mean) / std

        def infer(serialized, scale, mean, std):
            logits, pre_logits = self.model(
                decode_and_normalise(serialized, scale, mean, std), training=False
            )
            return logits, pre_logits

        # Traced once here, for any batch size (RunInference's last batch is short): see TracedOnce.
        self._infer = trained_model.TracedOnce(infer, signature)
        self._decode_and_normalise, self._signature = decode_and_normalise, signature
        self._preprocess = None

    def preprocess(self, serialized: Sequence[bytes]):
        """The model's inputs for a batch of serialised Examples (float32 [B, H, W, C])."""
        if self._preprocess is None:  # only tests ask: traced on first use
            self._preprocess = trained_model.TracedOnce(self._decode_and_normalise, self._signature)
        return self._preprocess(np.asarray(serialized, dtype=object), *self._constants)

    def __call__(self, serialized: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        logits, pre_logits = self._infer(np.asarray(serialized, dtype=object), *self._constants)
        return logits.numpy(), pre_logits.numpy()


class KerasTeacherHandler(ModelHandler[bytes, PredictionResult, TeacherModel]):
    """RunInference handler for a Keras 3 `model.keras` teacher over serialised Examples.

    Each prediction's `inference` is (logits [L], pre_logits [D]) as float32 arrays;
    its `example` is the input record unchanged.
    """

    def __init__(
        self,
        model_path: str,
        image_shape: Sequence[int],
        dataset: str,
        batch_size: int,
        encoding: str = "png",
    ):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        from label_smearing.core.tfdata import normalization

        self.encoding = encoding  # the data's image_encoding: png | source
        self._model_path = str(model_path)
        self._image_shape = tuple(int(d) for d in image_shape)
        self._mean, self._std = normalization(dataset, self._image_shape[-1])

    def load_model(self) -> TeacherModel:
        return TeacherModel(
            trained_model.load(self._model_path), self._image_shape, self._mean, self._std, self.encoding
        )

    def run_inference(
        self, batch: Sequence[bytes], model: TeacherModel, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        logits, pre_logits = model(batch)
        return [PredictionResult(x, (lg, pl)) for x, lg, pl in zip(batch, logits, pre_logits)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(x) for x in batch)

    def get_metrics_namespace(self) -> str:
        return EXPORT_LOGITS


# ---------------------------------------------------------------- transforms
def _png_shape(png: bytes) -> tuple[int, int, int] | None:
    """(height, width, channels) from a PNG header, or None if it is not an 8-bit PNG."""
    if len(png) < 33 or not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", png[16:26])
    if bit_depth != 8 or colour_type not in _PNG_CHANNELS:
        return None
    return height, width, _PNG_CHANNELS[colour_type]


class CheckRecord(beam.DoFn):
    """Passes well-formed Examples on as (id, record); the rest go to `dead_letter` as "id<TAB>reason"."""

    def __init__(self, image_shape: Sequence[int], encoding: str = "png"):
        self._image_shape = tuple(int(d) for d in image_shape)
        self._encoding = encoding
        self._bad = Metrics.counter(EXPORT_LOGITS, "dead_letter")

    def process(self, record: bytes):
        from tensorflow.core.example import example_pb2

        example_id, feature = read_features(record)
        reason = "not a serialised tf.train.Example" if feature is None else None
        if feature is not None:
            missing = [name for name in schema.required_features(self._encoding) if name not in feature]
            if missing:
                reason = f"missing feature {', '.join(missing)}"
            elif self._encoding == "source":
                image = feature["image"].bytes_list.value[0] if feature["image"].bytes_list.value else b""
                declared = b"".join(feature[schema.IMAGE_FORMAT].bytes_list.value[:1]).decode(
                    errors="replace"
                )
                found = schema.image_format_of(image)
                if found != declared:
                    reason = f"image is {found or 'neither JPEG nor PNG'}, its image_format says {declared!r}"
            else:
                shape = _png_shape(
                    feature["image"].bytes_list.value[0] if feature["image"].bytes_list.value else b""
                )
                if shape is None:
                    reason = "image is not an 8-bit PNG"
                elif shape != self._image_shape:
                    reason = f"image shape {list(shape)} != {list(self._image_shape)}"
        if reason is None:
            if any(name in feature for name in LOGIT_FEATURES):  # re-exporting exported records: replace them
                example = example_pb2.Example.FromString(record)
                for name in LOGIT_FEATURES:
                    example.features.feature.pop(name, None)
                record = example.SerializeToString(deterministic=True)
            yield example_id, record
        else:
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, f"{example_id}\t{reason}")


def add_logits(example_id: str, result: PredictionResult) -> tuple[str, bytes]:
    """The input Example plus `teacher_logits` and `pre_logits`, keyed by id.

    A serialised message followed by another parses as their merge (map entries
    added, a repeated key's last value winning), so the two features are appended
    as bytes instead of parsing and re-serialising every record.
    """
    from tensorflow.core.example import example_pb2

    logits, pre_logits = result.inference
    extra = example_pb2.Example()
    feature = extra.features.feature
    feature["teacher_logits"].float_list.value.extend(logits.tolist())
    feature["pre_logits"].float_list.value.extend(pre_logits.tolist())
    return example_id, result.example + extra.SerializeToString(deterministic=True)


class ExportLogits(beam.PTransform):
    """Serialised Examples -> (id, Example with teacher logits), plus a dead-letter output.

    Returns a `DoOutputsTuple`-like dict: "examples" (id, serialised Example) and
    "dead_letter" ("id<TAB>reason" strings).
    """

    def __init__(self, handler: KerasTeacherHandler, image_shape: Sequence[int]):
        super().__init__()
        self._handler, self._image_shape = handler, image_shape

    def expand(self, records):
        check = CheckRecord(self._image_shape, self._handler.encoding)
        checked = records | "Check" >> beam.ParDo(check).with_outputs(DEAD_LETTER, main="valid")
        examples = (
            checked.valid
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler))
            | "AddLogits" >> beam.MapTuple(add_logits)
        )
        return {"examples": examples, DEAD_LETTER: checked[DEAD_LETTER]}


class SummaryFn(beam.CombineFn):
    """Counts records, distinct ids and dead letters; keeps small sorted samples of the problems.

    Inputs are ("id", (id, times seen)) and ("dead", "id<TAB>reason"). The result
    does not depend on how the runner groups or orders them.
    """

    def create_accumulator(self):
        return {
            "records": 0,
            "distinct_ids": 0,
            "duplicated_ids": [],
            "dead_letters": 0,
            "dead_letter_sample": [],
        }

    def add_input(self, acc, item):
        kind, value = item
        if kind == "id":
            acc["records"] += value[1]
            acc["distinct_ids"] += 1
            if value[1] > 1:
                acc["duplicated_ids"] = sorted(acc["duplicated_ids"] + [value[0]])[:SAMPLE]
        else:
            acc["dead_letters"] += 1
            acc["dead_letter_sample"] = sorted(acc["dead_letter_sample"] + [value])[:SAMPLE]
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            for key in ("records", "distinct_ids", "dead_letters"):
                out[key] += acc[key]
            for key in ("duplicated_ids", "dead_letter_sample"):
                out[key] = sorted(out[key] + acc[key])[:SAMPLE]
        return out

    def extract_output(self, acc):
        return acc


class Summarise(beam.PTransform):
    """(examples keyed by id, dead-letter lines) -> one summary dict (see `SummaryFn`).

    Ids are grouped per id first (a duplicate is only visible there); what reaches
    one worker is a few counters and capped samples, not the ids.
    """

    def expand(self, inputs):
        examples, dead_letters = inputs
        per_id = (
            examples
            | "One" >> beam.MapTuple(lambda example_id, _: (example_id, 1))
            | "PerId" >> beam.CombinePerKey(sum)
            | "TagIds" >> beam.Map(lambda kv: ("id", kv))
        )
        dead = dead_letters | "TagDead" >> beam.Map(lambda line: ("dead", line))
        return (per_id, dead) | "Both" >> beam.Flatten() | "Summary" >> beam.CombineGlobally(SummaryFn())


def shard_glob(files: Sequence[str]) -> str | None:
    """The glob of `files`' shard names ("DIR/train-*.tfrecord") if it matches exactly them, else None."""
    directory = os.path.dirname(files[0])
    pattern = os.path.join(directory, os.path.basename(files[0]).split("-", 1)[0] + "-*.tfrecord")
    try:
        matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # noqa: BLE001 - unmatchable pattern: read file by file
        matched = []
    if [os.path.normpath(m) for m in matched] == sorted(os.path.normpath(f) for f in files):
        return pattern
    return None


class ReadTFRecordFiles(beam.PTransform):
    """Reads exactly `files`: one ReadFromTFRecord over their glob when it matches just them, else one per file.

    One read keeps the job to fewer stages (each costs a bundle on the
    DirectRunner); files stay the unit of parallelism either way.
    """

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)

    def expand(self, pbegin):
        pattern = shard_glob(self._files)
        if pattern is not None:
            return pbegin | "ReadGlob" >> beam.io.ReadFromTFRecord(pattern)
        reads = [pbegin | f"Read-{i}" >> beam.io.ReadFromTFRecord(f) for i, f in enumerate(self._files)]
        return reads | "Flatten" >> beam.Flatten()


def _write_json(obj, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(obj).encode())


class WriteShard(beam.DoFn):
    """(shard number, its (id, record) pairs) -> one TFRecord shard, records in id order, written atomically.

    A record's shard is a hash of its id and the order within a shard is the ids'
    order, so every export puts the same records into the same files in the same
    order on any runner, worker count or retry (Beam's WriteToTFRecord deals
    records to shards in whatever order bundles finish, and a student then reads
    them in another order). Yields the shard's file name.
    """

    def __init__(self, out_dir: str, split: str, num_shards: int):
        self._out_dir, self._split, self._num_shards = str(out_dir), split, num_shards

    def process(self, item):
        shard, records = item
        name = f"{self._split}-{shard:05d}-of-{self._num_shards:05d}.tfrecord"
        final = FileSystems.join(self._out_dir, name)
        temporary = FileSystems.join(self._out_dir, f".{name}.tmp-{uuid.uuid4().hex}")
        with FileSystems.create(temporary) as f:
            for _, record in sorted(records, key=lambda pair: pair[0]):
                f.write(tfrecord_frame(record))
        FileSystems.rename([temporary], [final])
        yield name


def shard_of(example_id: str, num_shards: int) -> int:
    """The shard an exported record goes to: a stable hash of its id (the same in every process)."""
    return zlib.crc32(example_id.encode()) % num_shards


def build_pipeline(p, *, files, handler, image_shape, out_dir, split, num_shards):
    """Wires the job: TFRecords -> check -> RunInference -> TFRecord shards + a summary (counts, dead letters)."""
    records = p | "Read" >> ReadTFRecordFiles(files)
    outputs = records | "Export" >> ExportLogits(handler, image_shape)
    examples = outputs["examples"]
    _ = (
        examples
        | "ShardById" >> beam.Map(lambda pair: (shard_of(pair[0], num_shards), pair))
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(out_dir, split, num_shards))
    )
    _ = (
        (examples, outputs[DEAD_LETTER])
        | "Summarise" >> Summarise()
        | "WriteSummary" >> beam.Map(_write_json, os.path.join(out_dir, SUMMARY_FILE))
    )
    return outputs


# ---------------------------------------------------------------- in process
# An export of at most this many examples with no Beam flag runs in this process (`export_in_process`): Beam's
# fixed start-up (about 0.6 s: building, translating and fusing the job, then one bundle per stage) is a large
# part of such a job. A larger one runs the Beam job (the one Dataflow runs), where it is a few per cent.
IN_PROCESS_MAX_EXAMPLES = 32_768


def in_process_pattern(beam_args: Sequence[str], num_examples: int, files: Sequence[str]) -> str | None:
    """The glob `export_in_process` reads if this export runs in this process, else None (it runs on Beam).

    In process when no Beam flag is given (Beam would run the job on the local
    FnApiRunner with one worker), the split has at most `IN_PROCESS_MAX_EXAMPLES`
    examples and its files are exactly what their glob matches (Beam then reads
    them as one source: see `export_in_process`). Any Beam flag, e.g.
    --direct_num_workers=1, runs the Beam job.
    """
    if beam_args or num_examples > IN_PROCESS_MAX_EXAMPLES:
        return None
    return shard_glob(files)


def export_in_process(
    *, pattern: str, handler: KerasTeacherHandler, image_shape, out_dir: str, split: str, num_shards: int
) -> None:
    """`build_pipeline`'s job without Beam: the same functions on the same batches, so the same files.

    The local Beam job with one worker reads the glob `ReadTFRecordFiles` reads as
    one source (its files in the filesystem's listing order, each front to back)
    into one bundle, and RunInference cuts the checked records into batches of the
    handler's batch size. This reads that source with the same reader and runs the
    teacher on the same batches: a record's logits depend, in their last bits, on
    the batch it ran in. Each record goes through `CheckRecord`,
    `KerasTeacherHandler.run_inference`, `add_logits`, `shard_of` and `WriteShard`;
    the summary is `SummaryFn`'s over the same inputs, written to `SUMMARY_FILE`.
    Like the local runner's grouping, it holds the exported records in memory
    until the shards are written.
    """
    batch_size = handler.batch_elements_kwargs()["max_batch_size"]
    source = beam.io.ReadFromTFRecord(pattern)._source  # ReadTFRecordFiles' reader, with its settings
    check = CheckRecord(image_shape, handler.encoding)
    model = handler.load_model()
    shards: dict[int, list[tuple[str, bytes]]] = {}
    dead_letters: list[str] = []
    batch: list[tuple[str, bytes]] = []

    def infer(batch: list[tuple[str, bytes]]) -> None:
        results = handler.run_inference([record for _, record in batch], model)
        for (example_id, _), result in zip(batch, results, strict=True):
            exported = add_logits(example_id, result)
            shards.setdefault(shard_of(example_id, num_shards), []).append(exported)

    for record in source.read(source.get_range_tracker(None, None)):
        for out in check.process(record):
            if isinstance(out, beam.pvalue.TaggedOutput):
                dead_letters.append(out.value)
                continue
            batch.append(out)
            if len(batch) == batch_size:
                infer(batch)
                batch = []
    if batch:
        infer(batch)

    writer = WriteShard(out_dir, split, num_shards)
    for shard in sorted(shards):
        for _ in writer.process((shard, shards[shard])):
            pass
    summary = SummaryFn()
    acc = summary.create_accumulator()
    per_id = collections.Counter(example_id for records in shards.values() for example_id, _ in records)
    for example_id, times in per_id.items():
        acc = summary.add_input(acc, ("id", (example_id, times)))
    for line in dead_letters:
        acc = summary.add_input(acc, ("dead", line))
    _write_json(summary.extract_output(acc), os.path.join(out_dir, SUMMARY_FILE))


# ---------------------------------------------------------------- launcher
def validate_config(config) -> None:
    if config.export.batch_size < 1:
        raise UserError(f"export.batch_size must be >= 1, got {config.export.batch_size}")
    if config.export.num_shards < 1:
        raise UserError(f"export.num_shards must be >= 1, got {config.export.num_shards}")


def _check_summary(out_dir: Path, expected: int, data_dir, split: str) -> None:
    """Refuses an export that dead-lettered, lost or duplicated a record (no manifest is then written).

    Raises:
      UserError: naming the count and, for dead letters, the file that keeps the first `SAMPLE` of them.
    """
    summary_path = out_dir / SUMMARY_FILE
    summary = (
        json.loads(summary_path.read_text()) if summary_path.exists() else SummaryFn().create_accumulator()
    )
    summary_path.unlink(missing_ok=True)
    if summary["dead_letters"]:
        dead_path = out_dir / f"{DEAD_LETTER}.txt"
        artifacts.atomic_write_bytes(
            dead_path, "".join(f"{line}\n" for line in summary["dead_letter_sample"]).encode()
        )
        raise UserError(
            f"{summary['dead_letters']} of {expected} records could not be exported (first {SAMPLE} in "
            f"{dead_path}); no manifest written"
        )
    if summary["records"] != expected or summary["distinct_ids"] != expected:
        duplicated = (
            f" (duplicated: {', '.join(summary['duplicated_ids'][:5])})" if summary["duplicated_ids"] else ""
        )
        raise UserError(
            f"exported {summary['records']} records with {summary['distinct_ids']} distinct ids{duplicated}, but "
            f"{data_dir} lists {expected} {split} examples; no manifest written"
        )


def export_stage(
    config,
    model_dir,
    data_dir,
    out_dir,
    *,
    split: str = "train",
    force: bool = False,
    beam_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> dict:
    """Exports `split` of `data_dir` with the teacher in `model_dir` into `out_dir`; returns the manifest.

    Raises:
      UserError: missing or incomplete model or data artifact, a teacher that does
        not fit the data, a complete `out_dir` without `force`, or examples lost,
        duplicated or dead-lettered during the job (then no manifest is written).
    """
    from label_smearing.core import tfdata

    validate_config(config)
    model_manifest, model_path = trained_model.read(model_dir)
    data_manifest = tfdata.read_data_manifest(data_dir)
    files = tfdata.split_files(data_dir, data_manifest, split)
    num_classes = int(data_manifest["num_classes"])
    image_shape = tuple(int(d) for d in data_manifest["image_shape"])
    expected = int(data_manifest["splits"][split]["num_examples"])
    teacher = trained_model.load(model_path, keep=True)  # loaded once here; the in-process runner reuses it
    pre_logits_dim = trained_model.check_fits(teacher, model_path, data_dir, num_classes, image_shape)
    fp = layout.logits_fingerprint(config, model_manifest["fingerprint"], data_manifest["fingerprint"], split)
    log(f"export-logits: teacher {model_dir} on {expected} {split} examples of {data_dir} -> {out_dir}")

    started = time.time()
    out_dir = artifacts.prepare_output(out_dir, force=force)
    handler = KerasTeacherHandler(
        str(model_path), image_shape, str(data_manifest["dataset"]), config.export.batch_size,
        schema.image_encoding(data_manifest),
    )  # fmt: skip
    pattern = in_process_pattern(beam_args, expected, files)
    try:
        if pattern is not None:
            export_in_process(
                pattern=pattern, handler=handler, image_shape=image_shape, out_dir=str(out_dir), split=split,
                num_shards=config.export.num_shards,
            )  # fmt: skip
        else:
            with make_pipeline(beam_args) as p:
                build_pipeline(
                    p, files=files, handler=handler, image_shape=image_shape, out_dir=str(out_dir), split=split,
                    num_shards=config.export.num_shards,
                )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a corrupt input TFRecord fails the read; name the file
        explained = tfdata.explain_input_error(e, data_dir, files, num_classes)
        if explained is None:
            raise
        raise explained from e
    finally:
        trained_model.forget()
    elapsed = time.time() - started

    _check_summary(out_dir, expected, data_dir, split)

    splits = {
        split: {
            "files": sorted(f.name for f in out_dir.glob(f"{split}-*.tfrecord")),
            "num_examples": expected,
        }
    }
    manifest = artifacts.write_manifest(
        out_dir,
        stage=EXPORT_LOGITS,
        fingerprint=fp,
        config=layout.export_section(config, split),
        inputs={
            "model": artifacts.input_ref(model_dir, model_manifest),
            "data": artifacts.input_ref(data_dir, data_manifest),
        },
        counts={split: expected, DEAD_LETTER: 0},
        extra={
            "dataset": data_manifest["dataset"],
            "num_classes": num_classes,
            "image_shape": list(image_shape),
            "image_encoding": schema.image_encoding(data_manifest),
            "class_names": list(data_manifest.get("class_names", [])),
            "splits": splits,
            "teacher": artifacts.input_ref(model_dir, model_manifest),
            "pre_logits_dim": pre_logits_dim,
            "seconds": round(elapsed, 2),
        },
    )
    log(
        f"export-logits: wrote {expected} records in {elapsed:.1f} s ({expected / max(elapsed, 1e-9):.0f} "
        f"examples/s, {'in process' if pattern is not None else 'Beam job'})"
    )
    return manifest


def compute_planned(request: StageRequest) -> dict:
    """A plan node's export of its teacher's train-split logits (`registry.STAGES`' entry point)."""
    return export_stage(
        request.config, request.input(TRAIN), request.input(NOISIFY), request.out_dir, split="train",
        force=request.force, beam_args=request.beam_args, log=request.log,
    )  # fmt: skip


def run(argv=None) -> None:
    args, config, beam_args = parse_stage_args(
        command_parser(EXPORT_LOGITS), argv, known_only=True, validate=validate_config,
        extra_flags=pipeline_options,
    )  # fmt: skip
    from label_smearing.core import tfdata

    # Paths and fingerprints only: export_stage verifies both artifacts' checksums when it reads them.
    data_dir = artifacts.path(layout.data(config, args.workdir).path)
    if args.model:
        model_dir = artifacts.path(args.model)
        model_manifest = artifacts.read_manifest(model_dir, what="model artifact", verify=False)
        data_manifest = tfdata.read_data_manifest(data_dir, verify=False)
    else:
        data_manifest = tfdata.read_data_manifest(data_dir, verify=False)
        model_dir = artifacts.path(layout.configured_model(config, args.workdir)[0].path)
        if not artifacts.is_complete(model_dir):
            raise UserError(
                f"no trained model at {model_dir}; run `smear train` with this config or pass --model"
            )
        model_manifest = artifacts.read_manifest(model_dir, what="model artifact", verify=False)
    logits = layout.logits(
        config, args.workdir, layout.base_name(model_dir), model_manifest["fingerprint"],
        data_manifest["fingerprint"], args.split,
    )  # fmt: skip

    def compute(request: StageRequest) -> dict:
        return export_stage(
            config, model_dir, data_dir, request.out_dir, split=args.split, force=request.force,
            beam_args=request.beam_args,
        )  # fmt: skip

    inputs = {TRAIN: [model_dir], NOISIFY: [data_dir]}
    run_standalone(logits, config, compute, inputs=inputs, force=args.force, beam_args=beam_args)
    print(f"export-logits: logits artifact {logits.path}")
