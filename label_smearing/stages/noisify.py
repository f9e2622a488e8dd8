"""Noisify: a clean dataset -> noisy-label TFRecords (Apache Beam).

    smear noisify --config quickstart --workdir W [--force] [Beam flags]

Reads the source's train and test splits in slices on the workers, keeps the
test split clean, draws each training example's noisy label as a pure function
of (seed, id, clean label, T), or of (seed, id, image, clean label) for
instance-dependent noise (label_smearing.modeling.noise), holds out a validation
split of the noisy training examples (data.validation_fraction, chosen by a
hash of the example id: the same examples whatever the noise seed, rate or
runner; its labels are noisy, as a practitioner would have them, and the clean
labels are kept), writes sharded TFRecords in the schema of
label_smearing/core/schema.py, the
realised noise per split in `noise_report.json` (its L x L matrices in `noise_report.npz` above
100 classes), and the manifest last. Images are
stored as PNGs (data.image_encoding=png: Fashion-MNIST, CIFAR), or as the source's own
encoded bytes with their format (source: ImageNet's JPEGs, cropped at training). Any Beam runner flag is passed through, e.g.
`--direct_num_workers=2 --direct_running_mode=multi_processing`, or
`--runner=DataflowRunner --project=P --region=R --temp_location=gs://...`
(the installed package is shipped to Dataflow's workers as a wheel, `--extra_package`).
"""

from __future__ import annotations

import io
import json
import math
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from label_smearing.beam_core.runners import make_pipeline, pipeline_options  # noqa: F401 - pipeline_options re-exported
from label_smearing.beam_core.sources import resolve_source
from label_smearing.beam_core.tfrecords import encode_png, tfrecord_frame
from label_smearing.core import artifacts, layout
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.config import to_plain
from label_smearing.core.datasets import DATASETS
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import NOISIFY, StageRequest
from label_smearing.core.schema import IMAGE_ENCODINGS, image_format_of, make_example
from label_smearing.modeling import noise

SOURCE_SPLITS = ("train", "test")  # read from the source
SPLITS = ("train", "validation", "test")  # written: validation is held out of the source's train split
DEAD_LETTER = "dead_letter"
ANNOTATION_PREFIX = "annotation-"  # counts of each human annotation: .counts-annotation-<feature>.json
# The key of the validation hold-out's hash: fixed, so the validation examples do not change with noise.seed.
VALIDATION_KEY = 0x56414C4944  # "VALID"


def validation_mask(ids, fraction: float) -> np.ndarray:
    """Which training examples are held out for validation: a keyed hash of the id below `fraction`."""
    if fraction <= 0:
        return np.zeros(len(ids), bool)
    return noise.example_uniforms(ids, VALIDATION_KEY) < fraction


# ---------------------------------------------------------------- transforms
class NoisifyChunk(beam.DoFn):
    """Reads one slice of a split and yields (split, serialised Example).

    Bad records (a label outside [0, L), an image of the wrong shape, or with `encoded` bytes
    neither JPEG nor PNG) go to the `dead_letter` output as "id<TAB>reason" and increment a counter.
    With `encoded`, the source yields each image's encoded bytes, written as they are with
    their `image_format`; otherwise uint8 pixels, written as PNG.
    """

    def __init__(
        self,
        source,
        dataset,
        num_classes,
        image_shape,
        transition,
        noisy_labels,
        seed,
        validation_fraction=0.0,
        instance_rate=None,
        annotation="",
        annotations=(),
        encoded=False,
        instance_features=noise.RAW,
    ):
        self._source = source
        self._encoded = encoded  # images are the source's encoded bytes (data.image_encoding=source)
        self._instance_rate = instance_rate  # instance-dependent noise at this rate; None: T or labels
        self._instance_features = instance_features  # what its scores read: noise.INSTANCE_FEATURES
        self._annotation = annotation  # human noise: the source's feature of noisy labels
        self._annotations = tuple(annotations) or ((annotation,) if annotation else ())  # all counted
        self._validation_fraction = validation_fraction
        self._dataset = dataset
        self._num_classes = num_classes
        self._image_shape = tuple(image_shape)
        self._transition = transition
        self._noisy_labels = noisy_labels
        self._seed = seed
        self._examples = Metrics.counter(NOISIFY, "examples")
        self._flipped = Metrics.counter(NOISIFY, "noisy_examples")
        self._bad = Metrics.counter(NOISIFY, "dead_letter")

    def process(self, chunk):
        split, start, end = chunk
        human = split == "train" and bool(self._annotation)
        # A source's read takes annotations only when asked for them (the IDX source has none).
        images, clean, *annotated = self._source.read(
            split, start, end, *((self._annotations,) if human else ())
        )
        annotated = annotated[0] if annotated else {}
        ids = [f"{self._dataset}/{split}/{i}" for i in range(start, start + len(clean))]
        valid = (clean >= 0) & (clean < self._num_classes)
        if human:
            valid &= (annotated[self._annotation] >= 0) & (annotated[self._annotation] < self._num_classes)
        formats = [image_format_of(bytes(image)) for image in images] if self._encoded else []
        if self._encoded:
            valid &= np.array([f is not None for f in formats], bool).reshape(-1)
        elif images.shape[1:] != self._image_shape:
            valid[:] = False
        if human:
            labels = annotated[self._annotation]
        elif split == "train" and self._noisy_labels is not None:
            labels = self._noisy_labels[start : start + len(clean)]
        elif split == "train" and self._instance_rate is not None:
            labels = clean.copy()
            labels[valid] = noise.instance_noisy_labels(
                [ids[i] for i in np.flatnonzero(valid)], images[valid], clean[valid], self._num_classes,
                self._instance_rate, self._seed, features=self._instance_features,
            )  # fmt: skip
        elif split == "train":
            labels = clean.copy()
            labels[valid] = noise.assign_noisy_labels(
                [ids[i] for i in np.flatnonzero(valid)], clean[valid], self._transition, self._seed
            )
        else:
            labels = clean
        held_out = (
            validation_mask(ids, self._validation_fraction) if split == "train" else np.zeros(len(ids), bool)
        )
        counts = {
            s: np.zeros((self._num_classes, self._num_classes), np.int64) for s in (split, "validation")
        }
        for i, example_id in enumerate(ids):
            if not valid[i]:
                self._bad.inc()
                if self._encoded and formats[i] is None:
                    reason = f"image bytes are neither JPEG nor PNG (they begin {bytes(images[i][:8])!r})"
                elif not self._encoded and images.shape[1:] != self._image_shape:
                    reason = f"image shape {images.shape[1:]} != {self._image_shape}"
                elif not 0 <= clean[i] < self._num_classes:
                    reason = f"label {clean[i]} outside [0, {self._num_classes})"
                else:
                    reason = f"{self._annotation} {labels[i]} outside [0, {self._num_classes})"
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, f"{example_id}\t{reason}")
                continue
            out_split = "validation" if held_out[i] else split
            counts[out_split][clean[i], labels[i]] += 1
            if self._encoded:
                record = make_example(
                    example_id, bytes(images[i]), labels[i], clean[i], image_format=formats[i]
                )
            else:
                record = make_example(example_id, encode_png(images[i]), labels[i], clean[i])
            yield out_split, record
        self._examples.inc(int(valid.sum()))
        self._flipped.inc(int((labels[valid] != clean[valid]).sum()))
        for out_split, matrix in counts.items():
            yield beam.pvalue.TaggedOutput("counts", (out_split, matrix))
        for name, values in annotated.items():  # every annotation's flips, on the examples kept
            matrix = np.zeros((self._num_classes, self._num_classes), np.int64)
            ok = valid & (values >= 0) & (values < self._num_classes)
            np.add.at(matrix, (clean[ok], values[ok]), 1)
            yield beam.pvalue.TaggedOutput("counts", (f"{ANNOTATION_PREFIX}{name}", matrix))


class NoisifyChunkToShard(NoisifyChunk):
    """NoisifyChunk that writes its chunk's records straight to TFRecord shards.

    Shard i of a split holds chunk i of its source split (`train-00003-of-00024.tfrecord`;
    the validation examples of training chunk 3 go to `validation-00003-of-00024.tfrecord`),
    so no record is shuffled between workers and memory stays flat in the dataset size.
    A chunk without examples of a split writes no shard of it. Each shard is written under a
    temporary name and renamed: a retried bundle writes the same bytes again. Yields the
    shards' names.
    """

    def __init__(self, out_dir, chunk_size, num_chunks, **kwargs):
        super().__init__(**kwargs)
        self._out_dir, self._chunk_size, self._num_chunks = str(out_dir), chunk_size, num_chunks

    def process(self, chunk):
        split, start, _ = chunk
        records: dict[str, list[bytes]] = {}
        for output in super().process(chunk):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield output
            else:
                records.setdefault(output[0], []).append(output[1])
        for out_split, serialised in records.items():
            name = f"{out_split}-{start // self._chunk_size:05d}-of-{self._num_chunks[split]:05d}.tfrecord"
            final = FileSystems.join(self._out_dir, name)
            temporary = FileSystems.join(self._out_dir, f".{name}.tmp-{uuid.uuid4().hex}")
            with FileSystems.create(temporary) as f:
                for record in serialised:
                    f.write(tfrecord_frame(record))
            FileSystems.rename([temporary], [final])
            yield name


def _write_counts(item, out_dir):
    split, matrix = item
    with FileSystems.create(FileSystems.join(str(out_dir), f".counts-{split}.json")) as f:
        f.write(json.dumps(matrix.tolist()).encode())


def build_pipeline(p, *, chunks, out_dir, chunk_size, **dofn_args):
    """Wires the job: chunks -> one noisy TFRecord shard per chunk + count matrices + dead letters."""
    num_chunks = {split: sum(c[0] == split for c in chunks) for split in SOURCE_SPLITS}
    outputs = (
        p
        | "Chunks" >> beam.Create(chunks)
        | "Distribute" >> beam.Reshuffle()
        | "ReadNoisifyWrite"
        >> beam.ParDo(NoisifyChunkToShard(out_dir, chunk_size, num_chunks, **dofn_args)).with_outputs(
            DEAD_LETTER, "counts", main="shards"
        )
    )
    _ = (
        outputs.counts
        | "CountsPerSplit" >> beam.CombinePerKey(lambda matrices: np.sum(list(matrices), axis=0))
        | "WriteCounts" >> beam.Map(_write_counts, out_dir)
    )
    _ = outputs[DEAD_LETTER] | "WriteDeadLetter" >> beam.io.WriteToText(
        str(artifacts.join(out_dir, DEAD_LETTER)), file_name_suffix=".txt", shard_name_template=""
    )
    return outputs


# ---------------------------------------------------------------- launcher
def validate_config(config) -> None:
    n = config.noise
    if n.model not in noise.NOISE_MODELS:
        raise UserError(f"unknown noise.model {n.model!r}; one of {', '.join(noise.NOISE_MODELS)}")
    if not 0.0 <= n.rate <= 1.0:
        raise UserError(f"noise.rate must be in [0, 1], got {n.rate}")
    if config.data.chunk_size < 1:
        raise UserError(f"data.chunk_size must be >= 1, got {config.data.chunk_size}")
    for key in ("max_train_examples", "max_test_examples"):
        if config.data[key] < 0:
            raise UserError(f"data.{key} must be >= 0 (0 = all), got {config.data[key]}")
    if not 0.0 <= config.data.validation_fraction < 1.0:
        raise UserError(f"data.validation_fraction must be in [0, 1), got {config.data.validation_fraction}")
    encoding = config.data.image_encoding
    if encoding not in IMAGE_ENCODINGS:
        raise UserError(f"unknown data.image_encoding {encoding!r}; one of {', '.join(IMAGE_ENCODINGS)}")
    if encoding == "source" and config.data.image_size < 1:
        raise UserError(
            "data.image_encoding=source needs data.image_size > 0: the size training and evaluation crop to"
        )
    if n.instance_features not in noise.INSTANCE_FEATURES:
        raise UserError(
            f"unknown noise.instance_features {n.instance_features!r}; one of {', '.join(noise.INSTANCE_FEATURES)}"
        )
    if encoding == "source" and noise.NOISE_MODELS[n.model].instance:
        raise UserError(
            f"noise.model={n.model} reads the images' pixels: it needs data.image_encoding=png, not source"
        )
    if noise.NOISE_MODELS[n.model].annotated:
        annotations = DATASETS[config.data.dataset].annotations if config.data.dataset in DATASETS else ()
        if not annotations:
            annotated = ", ".join(name for name, d in DATASETS.items() if d.annotations)
            raise UserError(
                f"noise.model={n.model} reads a dataset's human labels: data.dataset must be one of {annotated}, "
                f"got {config.data.dataset!r}"
            )
        if n.annotation not in annotations:
            raise UserError(
                f"noise.annotation {n.annotation!r}: {config.data.dataset} has {', '.join(annotations)}"
            )


def noise_report(
    counts: np.ndarray, transition: np.ndarray | None, expected_rate: float | None = None
) -> dict:
    """Realised L x L counts and class-to-class matrix, flip rate and its expected value with a z-score.

    The expected rate is T's (for the split's class frequencies), or `expected_rate` for a noise
    model without T (instance-dependent: the mean flip rate).
    """
    n = int(counts.sum())
    flipped = n - int(np.trace(counts))
    rows = counts.sum(axis=1, keepdims=True)
    report = {
        "num_examples": n,
        "realised_counts": counts.tolist(),
        # row i: the share of class i's examples that carry each noisy label (an empty class: zeros)
        "realised_transition": np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0).tolist(),
        "realised_flip_rate": flipped / n if n else 0.0,
        "expected_transition": transition.tolist() if transition is not None else None,
    }
    expected = None
    if transition is not None and n:
        class_freq = counts.sum(axis=1) / n
        expected = float(np.sum(class_freq * (1.0 - np.diag(transition))))
    elif expected_rate is not None and n:
        expected = float(expected_rate)
    if expected is not None:
        stderr = math.sqrt(max(expected * (1 - expected), 1e-300) / n)
        report.update(
            expected_flip_rate=expected,
            flip_rate_standard_error=stderr,
            flip_rate_z=(report["realised_flip_rate"] - expected) / stderr if expected > 0 else 0.0,
        )
    return report


# Above this many classes the L x L matrices leave noise_report.json for noise_report.npz: ImageNet's
# three 1000 x 1000 matrices per split made a 134 MB JSON.
JSON_MATRIX_CLASSES = 100
MATRICES = ("realised_counts", "realised_transition", "expected_transition")


def write_noise_report(out_dir, report: dict) -> None:
    """noise_report.json; with more than JSON_MATRIX_CLASSES classes its matrices go to noise_report.npz
    (keys `<split>/<matrix>`, `annotations/<name>/<matrix>`), which the JSON names under "matrices"."""
    entries = {k: v for k, v in report.items() if isinstance(v, dict) and "realised_counts" in v}
    entries.update({f"annotations/{k}": v for k, v in report.get("annotations", {}).items()})
    if all(len(entry["realised_counts"]) <= JSON_MATRIX_CLASSES for entry in entries.values()):
        artifacts.atomic_write_json(artifacts.join(out_dir, "noise_report.json"), report)
        return
    arrays = {}
    for key, entry in entries.items():
        for name in MATRICES:
            value = entry.pop(name, None)
            if value is not None:
                arrays[f"{key}/{name}"] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    artifacts.atomic_write_bytes(artifacts.join(out_dir, "noise_report.npz"), buffer.getvalue())
    report["matrices"] = "noise_report.npz"
    artifacts.atomic_write_json(artifacts.join(out_dir, "noise_report.json"), report)


def _check_images_vary(source, dataset: str, n: int) -> None:
    """Instance-dependent noise reads the image: refuse data whose first training images carry none."""
    images = np.asarray(source.read("train", 0, n)[0]).reshape(n, -1)
    if images.shape[1] < 2 or not np.any(images.std(axis=1) > 0):
        raise UserError(
            f"noise.model=instance needs images: the first {n} training images of {dataset} are blank "
            f"(shape {images.shape[1:]}, every pixel equal), so no flip could depend on the image"
        )


def noisify_stage(config, out_dir, *, force: bool = False, beam_args=(), log=print) -> dict:
    """Runs the noisify job into `out_dir`; returns the manifest."""
    validate_config(config)
    started = time.time()
    source = resolve_source(config.data)
    info = source.info()
    sizes = dict(info.split_sizes)
    for split, key in (("train", "max_train_examples"), ("test", "max_test_examples")):  # SOURCE_SPLITS
        if config.data[key]:
            sizes[split] = min(sizes[split], config.data[key])
        if sizes[split] == 0:
            raise UserError(f"the {split} split of {info.dataset} ({info.origin}) is empty")
    if 0 < config.data.validation_fraction * sizes["train"] < 1:
        raise UserError(
            f"data.validation_fraction={config.data.validation_fraction} of {sizes['train']} training examples "
            "holds out less than one example; raise it, or set 0 for no validation split"
        )
    try:
        transition = noise.make_transition(
            config.noise.model, info.num_classes, config.noise.rate, config.noise.transition_file
        )
        noisy_labels = (
            noise.load_noisy_labels(config.noise.labels_file, info.split_sizes["train"], info.num_classes)[
                : sizes["train"]
            ]
            if noise.NOISE_MODELS[config.noise.model].per_example
            else None
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    encoded = config.data.image_encoding == "source"
    if encoded:  # images of any size: the model's input is data.image_size square
        image_shape = (int(config.data.image_size), int(config.data.image_size), source.channels())
    else:
        image_shape = source.read("test", 0, 1)[0].shape[1:]
    model = noise.NOISE_MODELS[config.noise.model]
    if model.instance:
        _check_images_vary(source, info.dataset, min(sizes["train"], 256))
    log(
        f"noisify: {info.origin}: {sizes['train']} train, {sizes['test']} test examples, "
        f"{info.num_classes} classes, images {tuple(image_shape)}"
        + (" (the source's encoded images, kept as they are; crops at training)" if encoded else "")
    )
    what = f"annotation {config.noise.annotation}" if model.annotated else f"rate {config.noise.rate}"
    if model.instance:
        what += f" ({config.noise.instance_features} features)"
    log(f"noisify: noise {config.noise.model} {what} seed {config.noise.seed} -> {out_dir}")

    out_dir = artifacts.prepare_output(out_dir, force=force)
    size = config.data.chunk_size
    chunks = [(s, a, min(a + size, sizes[s])) for s in SOURCE_SPLITS for a in range(0, sizes[s], size)]
    with make_pipeline(list(beam_args)) as p:
        build_pipeline(
            p, chunks=chunks, out_dir=str(out_dir), chunk_size=config.data.chunk_size,
            source=source, dataset=info.dataset, num_classes=info.num_classes, image_shape=image_shape,
            transition=transition, noisy_labels=noisy_labels, seed=config.noise.seed,
            validation_fraction=float(config.data.validation_fraction),
            instance_rate=float(config.noise.rate) if model.instance else None,
            instance_features=config.noise.instance_features,
            annotation=config.noise.annotation if model.annotated else "",
            annotations=DATASETS[info.dataset].annotations if model.annotated else (), encoded=encoded,
        )  # fmt: skip

    # Read back through Beam's FileSystems: out_dir may be local or a URL (gs://...).
    counts, scratch = {}, []
    for split in SPLITS:
        path = str(artifacts.join(out_dir, f".counts-{split}.json"))
        counts[split] = np.array(json.loads(artifacts.read_bytes(path)), np.int64)
        scratch.append(path)
    dead_path = str(artifacts.join(out_dir, f"{DEAD_LETTER}.txt"))
    dead = len(artifacts.read_bytes(dead_path).splitlines()) if artifacts.exists(dead_path) else 0
    if dead == 0 and artifacts.exists(dead_path):
        scratch.append(dead_path)
    FileSystems.delete(scratch)
    written = [s for s in SPLITS if s != "validation" or config.data.validation_fraction > 0]
    for split in written:
        if not counts[split].sum():
            raise UserError(
                f"the {split} split of {info.dataset} holds no example after the validation hold-out"
            )
    expected_rate = noise.instance_expected_rate(config.noise.rate) if model.instance else None
    report = {
        s: noise_report(counts[s], *((transition, expected_rate) if s != "test" else (None, None)))
        for s in written
    }
    if model.annotated:  # the realised rate of every annotation the dataset has, on the same examples
        report["annotations"] = {}
        for name in DATASETS[info.dataset].annotations:
            path = str(artifacts.join(out_dir, f".counts-{ANNOTATION_PREFIX}{name}.json"))
            report["annotations"][name] = noise_report(
                np.array(json.loads(artifacts.read_bytes(path)), np.int64), None
            )
            FileSystems.delete([path])
    report["noise"] = to_plain(config.noise)
    if config.noise.model != noise.INSTANCE:  # only instance noise reads it: other data keep their bytes
        report["noise"].pop("instance_features", None)
    report["dead_letter_records"] = dead
    write_noise_report(out_dir, report)

    splits = {
        s: {
            "files": sorted(
                m.path.rsplit("/", 1)[-1]
                for m in FileSystems.match([f"{artifacts.join(out_dir, s)}-*.tfrecord"])[0].metadata_list
            ),
            "num_examples": int(counts[s].sum()),
        }
        for s in written
    }
    elapsed = time.time() - started
    total = sum(v["num_examples"] for v in splits.values())
    manifest = artifacts.write_manifest(
        out_dir,
        stage=NOISIFY,
        fingerprint=layout.data_fingerprint(config),
        config=layout.data_section(config),
        counts={s: v["num_examples"] for s, v in splits.items()} | {DEAD_LETTER: dead},
        extra={
            "dataset": info.dataset,
            "num_classes": info.num_classes,
            "class_names": list(info.class_names),
            "image_shape": list(image_shape),
            "image_encoding": config.data.image_encoding,
            "splits": splits,
            "source": info.origin,
            "seconds": round(elapsed, 2),
        },
    )
    train = report["train"]
    log(
        "noisify: wrote " + " + ".join(f"{v['num_examples']} {s}" for s, v in splits.items()) + " records "
        f"in {elapsed:.1f} s ({total / elapsed:.0f} examples/s); realised flip rate "
        f"{train['realised_flip_rate']:.4f} (expected {train.get('expected_flip_rate', float('nan')):.4f}, "
        f"z = {train.get('flip_rate_z', float('nan')):+.2f})"
        + (f"; {dead} bad records in {dead_path}" if dead else "")
    )
    return manifest


def compute_planned(request: StageRequest) -> dict:
    """A plan node's noisy data (`registry.STAGES`' entry point)."""
    return noisify_stage(
        request.config, request.out_dir, force=request.force, beam_args=request.beam_args, log=request.log
    )


def run(argv=None) -> None:
    args, config, beam_args = parse_stage_args(
        command_parser(NOISIFY), argv, known_only=True, validate=validate_config, extra_flags=pipeline_options
    )
    data = layout.data(config, args.workdir)
    run_standalone(data, config, compute_planned, force=args.force, beam_args=beam_args)
    print(f"noisify: data artifact {data.path}")
