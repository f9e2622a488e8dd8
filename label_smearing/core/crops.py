"""Crops of source-encoded images (ImageNet) to the model's input, as the TPU ResNet reference takes them.

A data artifact with image_encoding "source" keeps every image's original encoded
bytes, of any size (`label_smearing.core.schema`). The input pipeline decodes each one
and crops it to the model's square input:

- training: an Inception-style random-resized crop (`tf.image.stateless_sample_distorted_bounding_box`
  with area range (0.08, 1), aspect ratios (3/4, 4/3), at least 10% of the whole
  image covered, at most 10 attempts; when none fits it returns the whole image,
  and the centre crop is taken instead), resized to the input size, then a random
  left-right flip;
- evaluation and logit export: the centre crop of size/(size + 32) of the shorter
  side, resized to the input size.

A JPEG is decoded only inside its crop window (`tf.image.decode_and_crop_jpeg`);
other formats are decoded whole and cropped. Resizing is bicubic, as in the
reference, and the result is rounded back to uint8, the dtype the rest of the
pipeline normalises. The random numbers are stateless, keyed by the seed the
caller gives: the same seed gives the same crops and flips.
"""

from __future__ import annotations

import tensorflow as tf

CENTRE_CROP_PADDING = 32  # the reference's: the centre crop is size / (size + 32) of the shorter side
AREA_RANGE = (0.08, 1.0)  # the crop's share of the image's area (Inception; the reference's)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)  # the crop's width / height (the reference's)
MIN_OBJECT_COVERED = 0.1  # the reference's
MAX_ATTEMPTS = 10  # the reference's


def _png_height_width(image_bytes: tf.Tensor) -> tf.Tensor:
    """[height, width] from a PNG's IHDR chunk (bytes 16..23, big-endian)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(image_bytes, 16, 8), tf.uint8), tf.int32)
    width = ((raw[0] * 256 + raw[1]) * 256 + raw[2]) * 256 + raw[3]
    height = ((raw[4] * 256 + raw[5]) * 256 + raw[6]) * 256 + raw[7]
    return tf.stack([height, width])


def height_width(image_bytes: tf.Tensor, is_jpeg: tf.Tensor) -> tf.Tensor:
    """[height, width] of encoded JPEG or PNG bytes, read from the header without decoding."""
    return tf.cond(
        is_jpeg,
        lambda: tf.image.extract_jpeg_shape(image_bytes)[:2],
        lambda: _png_height_width(image_bytes),
    )


def _decode_window(image_bytes: tf.Tensor, is_jpeg: tf.Tensor, window: tf.Tensor, channels: int) -> tf.Tensor:
    """The [y, x, height, width] window of the decoded image, uint8 [h, w, channels]."""

    def other():
        image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])

    return tf.cond(
        is_jpeg, lambda: tf.image.decode_and_crop_jpeg(image_bytes, window, channels=channels), other
    )


def _resize(image: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """Bicubic resize to size x size (the reference's), rounded back to uint8."""
    resized = tf.image.resize(image[None], [size, size], method="bicubic")[0]
    return tf.ensure_shape(
        tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8), [size, size, channels]
    )


def centre_window(shape: tf.Tensor, size: int) -> tf.Tensor:
    """[y, x, h, w] of the reference's centre crop: a square of size / (size + 32) of the shorter side."""
    side = tf.cast(
        size / (size + CENTRE_CROP_PADDING) * tf.cast(tf.minimum(shape[0], shape[1]), tf.float64), tf.int32
    )
    side = tf.maximum(side, 1)  # a 1-pixel-wide image still has a crop
    return tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])


def random_window(shape: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """[y, x, h, w] of an Inception-style random crop, or the centre crop's when no attempt fits."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [1]], 0),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    whole = tf.reduce_all(tf.equal(extent[:2], shape))  # the reference's fallback: the whole image came back
    return tf.cond(
        whole,
        lambda: centre_window(shape, size),
        lambda: tf.stack([begin[0], begin[1], extent[0], extent[1]]),
    )


def train_crop(
    image_bytes: tf.Tensor, image_format: tf.Tensor, size: int, channels: int, seed: tf.Tensor
) -> tf.Tensor:
    """A random-resized crop of an encoded image, resized to size x size, randomly flipped; uint8.

    Args:
      image_bytes: the encoded image (scalar string).
      image_format: its format, "jpeg" or "png" (the record's `image_format`).
      size: the model's input height and width.
      channels: the model's input channels.
      seed: int64 [2] stateless seed: the same seed, the same crop and flip.
    """
    is_jpeg = tf.equal(image_format, "jpeg")
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = height_width(image_bytes, is_jpeg)
    image = _decode_window(image_bytes, is_jpeg, random_window(shape, size, crop_seed), channels)
    return tf.image.stateless_random_flip_left_right(_resize(image, size, channels), flip_seed)


def eval_crop(image_bytes: tf.Tensor, image_format: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """The centre crop of an encoded image (evaluation, logit export), resized to size x size; uint8."""
    is_jpeg = tf.equal(image_format, "jpeg")
    shape = height_width(image_bytes, is_jpeg)
    return _resize(_decode_window(image_bytes, is_jpeg, centre_window(shape, size), channels), size, channels)
