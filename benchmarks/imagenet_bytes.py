"""ImageNet bytes per example: noisify's records (the source's JPEGs) against the tfds source and the former PNG path.

    .venv/bin/python benchmarks/imagenet_bytes.py [--examples 64] [--output results/imagenet_bytes/bytes.json]

Runs `smear noisify` with imagenet:smoke on tfds' mock `imagenet2012`
(random JPEGs of varied sizes) twice: with data.image_encoding=source (what the config
does) and =png (resize the shorter side to 224, centre-crop, re-encode as PNG: the path
before). Bytes per example are the manifest's TFRecord bytes over its records. Mock images
are small noise, which PNG compresses worse than a photo, so one real photo is measured
too: matplotlib's sample grace_hopper.jpg, as one record each way.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64, help="mock examples per split")
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "imagenet_bytes", "bytes.json"))
    args = parser.parse_args()

    import matplotlib
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from label_smearing import cli
    from label_smearing.beam_core.tfrecords import encode_png, tfrecord_frame
    from label_smearing.core.schema import make_example

    n = args.examples
    flags = ["--config", os.path.join(ROOT, "label_smearing", "configs", "imagenet.py") + ":smoke", f"--config.data.chunk_size={n}",
             f"--config.data.max_train_examples={n}", f"--config.data.max_test_examples={n}"]  # fmt: skip

    def record_bytes(workdir: str, encoding: str) -> float:
        out = os.path.join(workdir, encoding)
        with tfds.testing.mock_data(num_examples=n):
            status = cli.main(
                ["noisify", *flags, "--workdir", out, f"--config.data.image_encoding={encoding}"]
            )
        assert status == 0, f"noisify with image_encoding={encoding} failed"
        (data,) = glob.glob(os.path.join(out, "data", "*"))
        with open(os.path.join(data, "manifest.json")) as f:
            manifest = json.load(f)
        shards = [name for name in manifest["files"] if name.endswith(".tfrecord")]
        records = sum(v for k, v in manifest["counts"].items() if k != "dead_letter")
        return sum(manifest["files"][name]["bytes"] for name in shards) / records

    with tfds.testing.mock_data(num_examples=n):
        source = tfds.builder("imagenet2012").as_dataset(
            split="train", decoders={"image": tfds.decode.SkipDecoding()}
        )
        jpegs = [example["image"] for example in source.as_numpy_iterator()]
    sizes = [tuple(int(d) for d in tf.image.extract_jpeg_shape(j).numpy()[:2]) for j in jpegs]
    with tempfile.TemporaryDirectory() as workdir:
        source_bytes, png_bytes = record_bytes(workdir, "source"), record_bytes(workdir, "png")

    photo_path = os.path.join(
        os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg"
    )
    with open(photo_path, "rb") as f:
        photo = f.read()
    photo_record = len(tfrecord_frame(make_example("photo/train/0", photo, 1, 1, image_format="jpeg")))
    image = tf.io.decode_jpeg(photo, channels=3)  # the former path: shorter side to 224, centre crop, PNG
    scale = 224 / min(image.shape[:2])
    resized = tf.image.resize(image, [int(np.ceil(d * scale)) for d in image.shape[:2]], antialias=True)
    cropped = tf.cast(
        tf.clip_by_value(tf.round(tf.image.resize_with_crop_or_pad(resized, 224, 224)), 0, 255), tf.uint8
    )
    photo_png_record = len(tfrecord_frame(make_example("photo/train/0", encode_png(cropped.numpy()), 1, 1)))

    result = {
        "examples": n,
        "mock_sizes": {"min": min(sizes), "max": max(sizes), "distinct": len(set(sizes))},
        "mock_bytes_per_example": {
            "tfds_source_jpeg": round(float(np.mean([len(j) for j in jpegs])), 1),
            "record_source_encoded": round(source_bytes, 1),
            "record_png_224": round(png_bytes, 1),
        },
        "photo": {
            "file": "matplotlib sample_data/grace_hopper.jpg",
            "size": list(int(d) for d in tf.image.extract_jpeg_shape(photo).numpy()[:2]),
            "jpeg": len(photo),
            "record_source_encoded": photo_record,
            "record_png_224": photo_png_record,
        },
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
