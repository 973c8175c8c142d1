"""Export to a SavedModel in TF Serving's layout, `<base_dir>/<name>/<version>/`.

The exported signatures do the test-time preprocessing of the papers with core TensorFlow ops, so a
TF Serving server (or `tf.saved_model.load` in a process without this project) needs nothing else:

- ``serving_default(image_bytes: string[N])``: decodes JPEG/PNG bytes, rescales the shorter side to
  `resize_size` and keeps the central `resize_size` square (AlexNet §2), subtracts the training mean
  (per-pixel image, AlexNet §2, or mean RGB, VGG §2.1), takes the centre `image_size` crop or the ten
  crops of AlexNet §4.1 (four corners, centre, and their reflections, softmax averaged), and returns
  ``classes`` (int32[N,5]), ``probabilities`` (float32[N,5]) and ``class_names`` (string[N,5]).
- ``serving_preprocessed(images: float32[N,S,S,3])``: the model on already mean-subtracted crops;
  returns the same top-5 outputs plus ``all_probabilities`` (float32[N,C]).

Memory is bounded before anything is allocated, from the images' headers alone (every refusal is an
InvalidArgument naming the limit): bytes that are neither JPEG nor PNG, or truncated headers, are
refused; so is an image whose header claims more than `max_pixels` pixels or a side above `max_side`,
and a request of more than `max_batch_images` images or more than `max_batch_pixels` pixels in all
(what decoding the whole request would need, 3 bytes a pixel). The rescaled image is never
materialised: only its central square is computed (`central_square_resized`), so a thin image
(16384x1) costs `resize_size` x `resize_size` floats, not `resize_size` x 4,194,304. Peak memory per
request: at most 3 x `max_batch_pixels` bytes of decoded pixels, plus per image in flight
12 x `resize_size` x (its longer side) bytes for the resampling pass and the request's crops.

`assets.extra/keras_alexnet.json` (a folder TF Serving leaves alone) records the model name, sizes,
crops and mean kind, so `main.py evaluate` preprocesses its validation images the same way.

A version is written to a hidden temporary folder next to the versions and renamed to its number
when complete, so a server watching `<base_dir>/<name>` never loads a partial version (TF Serving
only considers folders whose names are integers). The temporary folder is named after the exporting
process; one whose process is gone (a killed export) is removed by the next export of that model.
"""

import json
import os
import re
import shutil
import uuid

import numpy as np

from pipelines import image_codec

SIGNATURE_BYTES = "serving_default"
SIGNATURE_PREPROCESSED = "serving_preprocessed"
BYTES_INPUT = "image_bytes"
PREPROCESSED_INPUT = "images"
TOP_K = 5
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 16_384
DEFAULT_MAX_BATCH_IMAGES = 256
DEFAULT_MAX_BATCH_PIXELS = 200_000_000
CROPS = ("center", "ten_crop")

DESCRIPTION_FILE = os.path.join("assets.extra", "keras_alexnet.json")
_VERSION_RE = re.compile(r"^\d+$")
_TMP_PREFIX = ".tmp-export-"


def list_versions(model_dir: str) -> list:
    """The complete versions in `<base_dir>/<name>` (integer folder names), sorted ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if _VERSION_RE.match(n))


def latest_version_dir(model_dir: str):
    """The folder of the newest version in `model_dir`, or None when there is none."""
    versions = list_versions(model_dir)
    return os.path.join(model_dir, str(versions[-1])) if versions else None


def _as_mean(mean, resize_size: int):
    """The mean as float32: shape (3,) for mean RGB, or (resize_size, resize_size, 3) for a mean image."""
    import tensorflow as tf

    mean = np.asarray(0.0 if mean is None else mean, dtype=np.float32)
    if mean.ndim == 0:
        return np.full((3,), mean, np.float32)
    if mean.shape == (3,):
        return mean
    if mean.ndim != 3 or mean.shape[-1] != 3:
        raise ValueError(f"mean must be an RGB triple or an HxWx3 image, got shape {mean.shape}")
    if mean.shape[:2] != (resize_size, resize_size):
        mean = tf.image.resize(mean, (resize_size, resize_size), method="bilinear").numpy()
    return mean.astype(np.float32)


def _image_shape(data, max_pixels: int, max_side: int):
    """Height and width read from a JPEG or PNG header, refused when too large; no pixel is decoded."""
    import tensorflow as tf

    is_jpeg = tf.io.is_jpeg(data)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), image_codec.PNG_MAGIC)
    known = tf.debugging.Assert(
        tf.logical_or(is_jpeg, is_png), ["image bytes are neither JPEG nor PNG (could not decode)"]
    )

    def png_shape():
        long_enough = tf.debugging.Assert(
            tf.strings.length(data) >= 24, ["PNG bytes are truncated before the IHDR header"]
        )
        with tf.control_dependencies([long_enough]):
            # IHDR: 8-byte signature, chunk length and type (8 bytes), then big-endian width, height.
            header = tf.strings.substr(data, 16, 8)
        raw = tf.cast(tf.io.decode_raw(header, tf.uint8), tf.int64)
        big_endian = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
        return tf.stack([tf.reduce_sum(raw[4:] * big_endian), tf.reduce_sum(raw[:4] * big_endian)])

    def jpeg_shape():
        return tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)

    with tf.control_dependencies([known]):
        shape = tf.cond(is_jpeg, jpeg_shape, png_shape)
    height, width = shape[0], shape[1]
    side_ok = tf.debugging.Assert(
        tf.reduce_all([height > 0, width > 0, height <= max_side, width <= max_side]),
        ["image header claims a size outside 1..max_side pixels a side (height, width, max_side):",
         height, width, max_side],
    )
    with tf.control_dependencies([side_ok]):
        # Both sides are at most max_side here, so the product cannot overflow int64.
        pixels_ok = tf.debugging.Assert(
            height * width <= max_pixels,
            ["image header claims more pixels than max_pixels (height, width, max_pixels):",
             height, width, max_pixels],
        )
    with tf.control_dependencies([side_ok, pixels_ok]):
        return tf.identity(shape)


def central_square_resized(image, size):
    """AlexNet §2's frame, the central `size` x `size` square of the image rescaled to shorter side `size`,
    computed without the rescaled image: `ScaleAndTranslate` (what `tf.image.resize(bilinear,
    antialias=True)` runs) evaluates only the square's pixels. Equals `center_square(resize_shorter_side(
    image, size))` of pipelines/eval_crops.py up to float rounding. `image`: [H, W, C], any dtype.
    Returns float32 [size, size, C]."""
    import tensorflow as tf

    from pipelines import eval_crops

    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    new_height, new_width = eval_crops.shorter_side_shape(height, width, size)
    scale = tf.cast(tf.stack([new_height, new_width]), tf.float32) / tf.cast(tf.stack([height, width]), tf.float32)
    offset = tf.cast(tf.stack([(new_height - size) // 2, (new_width - size) // 2]), tf.float32)
    square = tf.raw_ops.ScaleAndTranslate(
        images=image[tf.newaxis], size=tf.constant([size, size]), scale=scale, translation=-offset,
        kernel_type="triangle", antialias=True,
    )
    return square[0]


def make_preprocess(*, mean, image_size: int, resize_size: int, crops: str = "center",
                    max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE):
    """A function string -> float32[K, image_size, image_size, 3] (K = 1 or 10) for one encoded image."""
    import tensorflow as tf

    from pipelines import eval_crops

    if crops not in CROPS:
        raise ValueError(f"crops must be one of {CROPS}, got {crops!r}")
    if resize_size < image_size:
        raise ValueError(f"resize_size ({resize_size}) is smaller than image_size ({image_size})")
    mean_value = tf.constant(_as_mean(mean, resize_size))

    def preprocess(data):
        shape = _image_shape(data, max_pixels, max_side)
        with tf.control_dependencies([shape]):
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        # 0..255 until mean subtraction; AlexNet §2: shorter side to resize_size, central square.
        image = central_square_resized(image, resize_size)
        image = eval_crops.subtract_mean(tf.reshape(image, [resize_size, resize_size, 3]), mean_value)
        if crops == "ten_crop":
            return eval_crops.ten_crop(image, image_size)
        return eval_crops.center_crop(image, image_size)[tf.newaxis]

    return preprocess


def _check_batch(image_bytes, max_pixels, max_side, max_batch_images, max_batch_pixels):
    """Asserts the request's limits from its images' headers (nothing decoded); an op to depend on."""
    import tensorflow as tf

    count = tf.size(image_bytes, out_type=tf.int64)
    count_ok = tf.debugging.Assert(
        count <= max_batch_images,
        ["request holds more images than max_batch_images (images, max_batch_images):", count, max_batch_images],
    )
    with tf.control_dependencies([count_ok]):
        shapes = tf.map_fn(lambda data: _image_shape(data, max_pixels, max_side), image_bytes,
                           fn_output_signature=tf.TensorSpec([2], tf.int64))
    # Each image is at most max_pixels, and there are at most max_batch_images: no int64 overflow.
    total = tf.reduce_sum(shapes[:, 0] * shapes[:, 1])
    return tf.debugging.Assert(
        total <= max_batch_pixels,
        ["request's images hold more pixels in all than max_batch_pixels (pixels, max_batch_pixels):",
         total, max_batch_pixels],
    )


def _top_k_outputs(probabilities, class_names):
    import tensorflow as tf

    k = min(TOP_K, len(class_names))
    top = tf.math.top_k(probabilities, k=k)
    return {
        "classes": top.indices,
        "probabilities": top.values,
        "class_names": tf.gather(tf.constant(class_names), top.indices),
    }


def make_bytes_function(model, *, class_names, mean, image_size, resize_size, crops="center",
                        max_pixels=DEFAULT_MAX_PIXELS, max_side=DEFAULT_MAX_SIDE,
                        max_batch_images=DEFAULT_MAX_BATCH_IMAGES, max_batch_pixels=DEFAULT_MAX_BATCH_PIXELS):
    """The `serving_default` computation: string[N] of JPEG/PNG bytes -> top-5 dict (see module doc).

    `main.py predict` calls it on a checkpoint so local and served predictions are the same code.
    """
    import tensorflow as tf

    from keras_alexnet.evaluation.protocols import crop_probabilities

    num_crops = 10 if crops == "ten_crop" else 1
    preprocess = make_preprocess(
        mean=mean, image_size=image_size, resize_size=resize_size, crops=crops,
        max_pixels=max_pixels, max_side=max_side,
    )
    crop_spec = tf.TensorSpec([num_crops, image_size, image_size, 3], tf.float32)
    class_names = [str(c) for c in class_names]

    def from_bytes(image_bytes):
        limits = _check_batch(image_bytes, max_pixels, max_side, max_batch_images, max_batch_pixels)
        with tf.control_dependencies([limits]):
            batch = tf.map_fn(preprocess, image_bytes, fn_output_signature=crop_spec)
        probabilities = crop_probabilities(lambda crops: model(crops, training=False), batch)  # AlexNet §4.1
        return _top_k_outputs(probabilities, class_names)

    return from_bytes


def _build_archive(model, *, class_names, image_size, **preprocess_options):
    import keras
    import tensorflow as tf

    from_bytes = make_bytes_function(model, class_names=class_names, image_size=image_size,
                                     **preprocess_options)

    def from_preprocessed(images):
        probabilities = tf.cast(model(images, training=False), tf.float32)
        outputs = _top_k_outputs(probabilities, class_names)
        outputs["all_probabilities"] = probabilities
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE_BYTES, from_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
    )
    archive.add_endpoint(
        SIGNATURE_PREPROCESSED, from_preprocessed,
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32,
                                       name=PREPROCESSED_INPUT)],
    )
    return archive


def read_description(version_dir: str) -> dict:
    """What `export_saved_model` recorded about a version (empty for SavedModels made elsewhere)."""
    path = os.path.join(version_dir, DESCRIPTION_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_description(version_dir: str, description: dict) -> None:
    os.makedirs(os.path.dirname(os.path.join(version_dir, DESCRIPTION_FILE)), exist_ok=True)
    with open(os.path.join(version_dir, DESCRIPTION_FILE), "w", encoding="utf-8") as f:
        json.dump(description, f, indent=1)


def remove_stale_temporaries(model_dir: str) -> list:
    """Removes the hidden `.tmp-export-<pid>-...` folders of exports whose process no longer runs (or
    without a pid); returns their paths. Exports running beside this one keep theirs."""
    removed = []
    for name in os.listdir(model_dir):
        if not name.startswith(_TMP_PREFIX):
            continue
        pid = name[len(_TMP_PREFIX):].split("-")[0]
        if pid.isdigit() and _running(int(pid)):
            continue
        shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
        removed.append(os.path.join(model_dir, name))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _publish(tmp_dir: str, model_dir: str, version=None) -> str:
    """Renames the finished `tmp_dir` to the next free integer version (or `version`) in `model_dir`."""
    while True:
        number = version if version is not None else (list_versions(model_dir) or [0])[-1] + 1
        target = os.path.join(model_dir, str(number))
        if os.path.exists(target):
            if version is not None:
                raise FileExistsError(f"version {version} already exists in {model_dir}")
            continue  # another exporter took it between listing and here: take the next one
        try:
            # rename(2) refuses to replace a non-empty folder, so a race is detected, not overwritten.
            os.rename(tmp_dir, target)
        except OSError:
            if version is not None or not os.path.exists(target):
                raise
            continue
        return target


def export_saved_model(model, base_dir: str, name: str, *, class_names=None, mean=None,
                       image_size: int = None, resize_size: int = 256, crops: str = "center",
                       max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE,
                       max_batch_images: int = DEFAULT_MAX_BATCH_IMAGES,
                       max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS, version: int = None) -> str:
    """Exports `model` (softmax outputs) as a new version of `<base_dir>/<name>`; returns its folder.

    `class_names`: one string per class (default: the class ids). `mean`: the training mean on the
    0..255 scale, a per-pixel image (AlexNet §2; resized to `resize_size` if its size differs) or an
    RGB triple (VGG §2.1). `image_size`: the crop fed to the net (default: the model's input size).
    `crops`: "center" or "ten_crop" (AlexNet §4.1) for the bytes signature. `version`: a fixed
    version number instead of the next one (refused if it exists).
    """
    num_classes = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
    if image_size is None:
        image_size = int(model.inputs[0].shape[1])
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} classes")
    archive = _build_archive(
        model, class_names=class_names, mean=mean, image_size=image_size, resize_size=resize_size,
        crops=crops, max_pixels=max_pixels, max_side=max_side, max_batch_images=max_batch_images,
        max_batch_pixels=max_batch_pixels,
    )
    model_dir = os.path.join(base_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    remove_stale_temporaries(model_dir)
    tmp_dir = os.path.join(model_dir, f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
    try:
        archive.write_out(tmp_dir, verbose=False)
        _write_description(tmp_dir, {
            "model": model.name, "num_classes": len(class_names), "image_size": image_size,
            "resize_size": resize_size, "crops": crops, "max_pixels": max_pixels, "max_side": max_side,
            "max_batch_images": max_batch_images, "max_batch_pixels": max_batch_pixels,
            "mean": "none" if mean is None else ("rgb" if np.ndim(mean) <= 1 else "image"),
        })
        return _publish(tmp_dir, model_dir, version)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
