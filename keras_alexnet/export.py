"""Export to a SavedModel in TF Serving's layout, `<base_dir>/<name>/<version>/`.

The exported signatures do the test-time preprocessing of the papers with core TensorFlow ops, so a
TF Serving server (or `tf.saved_model.load` in a process without this project) needs nothing else:

- ``serving_default(image_bytes: string[N])``: decodes JPEG/PNG bytes, rescales the shorter side to
  `resize_size` and keeps the central `resize_size` square (AlexNet §2), subtracts the training mean
  (per-pixel image, AlexNet §2, or mean RGB, VGG §2.1), takes the centre `image_size` crop or the ten
  crops of AlexNet §4.1 (four corners, centre, and their reflections, softmax averaged), and returns
  ``classes`` (int32[N,5]), ``probabilities`` (float32[N,5]), ``class_names`` (string[N,5]) and
  ``status`` (string[N]): "ok", or why that image was not classified, its row then holding class -1,
  probability 0 and name "". One bad image costs only its own row; an empty request gets empty outputs.
- ``serving_preprocessed(images: float32[N,S,S,3])``: the model on already mean-subtracted crops;
  returns the same top-5 outputs plus ``all_probabilities`` (float32[N,C]).

Memory is bounded before anything is allocated, from the images' headers alone. An image is not
decoded (its `status` says why) when its bytes are neither JPEG nor PNG, its header is truncated or
malformed, its header claims more than `max_pixels` pixels or a side above `max_side`, or the file
holds fewer bytes than any complete JPEG or PNG of the size its header claims (a JPEG decoder fills
missing data with grey, so a 600-byte JPEG claiming 40 Mpx would otherwise cost 120 MB); an image
whose data fails to decode (corrupt) gets its status too. A request of more than `max_batch_images`
images, or whose decodable images hold more than `max_batch_pixels` pixels in all (what decoding
them would need, 3 bytes a pixel), is refused whole (InvalidArgument naming the limit). The
rescaled image is never materialised: only its central square is computed (`central_square_resized`),
so a thin image (16384x1) costs `resize_size` x `resize_size` floats, not `resize_size` x 4,194,304.
Peak memory per request: at most 3 x `max_batch_pixels` bytes of decoded pixels, plus per image in
flight 12 x `resize_size` x (its longer side) bytes for the resampling pass and the request's crops.

`assets.extra/keras_alexnet.json` (a folder TF Serving leaves alone) records the model name, sizes,
crops and mean kind, so `main.py evaluate` preprocesses its validation images the same way.

A version is written to a hidden temporary folder next to the versions and renamed to its number
when complete, so a server watching `<base_dir>/<name>` never loads a partial version (TF Serving
only considers folders whose names are integers). The temporary folder is named after the exporting
process; one whose process is gone (a killed export) is removed by the next export of that model.
`saved_model_dir` finds the SavedModel a path designates (a version, or a model folder's newest).

A run trained on inputs times `--input_scale` is exported taking unscaled inputs: `fold_input_scale`
multiplies conv1's kernels by the scale (fine-tuning uses it to rescale a source the same way).
"""

import json
import os
import re
import shutil
import uuid

import numpy as np

from keras_alexnet import scratch
from keras_alexnet.serving_client import STATUS_OK
from pipelines import image_codec

SIGNATURE_BYTES = "serving_default"
SIGNATURE_PREPROCESSED = "serving_preprocessed"
BYTES_INPUT = "image_bytes"
PREPROCESSED_INPUT = "images"
TOP_K = 5
STATUS_OUTPUT = "status"
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 16_384
DEFAULT_MAX_BATCH_IMAGES = 256
DEFAULT_MAX_BATCH_PIXELS = 200_000_000

DESCRIPTION_FILE = os.path.join("assets.extra", "keras_alexnet.json")
SAVED_MODEL_FILE = "saved_model.pb"  # TensorFlow's: it marks a SavedModel folder
BASE_DIR = "saved_models"  # the default TF Serving base folder: versions go to BASE_DIR/NAME/N
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


def saved_model_dir(path: str):
    """The SavedModel folder `path` designates (itself or its newest version), or None if it is not one."""
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    latest = latest_version_dir(path) if os.path.isdir(path) else None
    if latest and os.path.isfile(os.path.join(latest, SAVED_MODEL_FILE)):
        return latest
    return None


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


def _read_bytes(data, start, count: int):
    """`count` bytes of the scalar string `data` from byte `start`, as int64[count]; zeros past its end
    (never an error, whatever `data` holds)."""
    import tensorflow as tf

    start = tf.minimum(tf.cast(start, tf.int32), tf.strings.length(data))
    padded = tf.strings.join([tf.strings.substr(data, start, count), tf.constant(bytes(count))])
    raw = tf.io.decode_raw(tf.strings.substr(padded, 0, count), tf.uint8)
    return tf.reshape(tf.cast(raw, tf.int64), [count])


def _big_endian(raw):
    """The unsigned big-endian integer held in int64 bytes `raw` (a static length)."""
    import tensorflow as tf

    count = raw.shape[0]
    return tf.reduce_sum(raw * tf.constant([256 ** (count - 1 - i) for i in range(count)], tf.int64))


def _int64(value):
    import tensorflow as tf

    return tf.constant(value, tf.int64)


def _png_frame(data):
    """(height, width, least bytes, problem) from a PNG's IHDR chunk; `problem` is "" when it was read.

    The least bytes a complete PNG of that size holds: its scanlines (a filter byte, then `width` x
    channels x bit depth bits each) deflated at deflate's best ratio, 1032:1 (a 258-byte match in 2 bits).
    """
    import tensorflow as tf

    # IHDR: 8-byte signature, chunk length and type (8 bytes), then width, height, bit depth, colour type.
    ihdr = _read_bytes(data, 16, 10)
    width, height = _big_endian(ihdr[0:4]), _big_endian(ihdr[4:8])
    channels = tf.gather(tf.constant([1, 1, 3, 1, 2, 1, 4], tf.int64), tf.minimum(ihdr[9], 6))
    row = 1 + (tf.minimum(width, 1 << 24) * channels * ihdr[8] + 7) // 8
    least = tf.minimum(height, 1 << 24) * row // 1032
    problem = tf.where(tf.strings.length(data) < 26, "PNG bytes are truncated before the end of the IHDR header", "")
    return height, width, least, problem


_JPEG_SOF_HUFFMAN = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7)
_JPEG_SOF_ARITHMETIC = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_JPEG_MAX_SEGMENTS = 1024  # marker segments before the frame header (a camera JPEG has about 10)


def _jpeg_frame(data):
    """(height, width, least bytes, problem) from a JPEG's frame header (SOFn), found by walking the
    marker segments before it (ITU T.81 B.1); `problem` is "" when it was read. No pixel is decoded.

    The least bytes a complete Huffman-coded JPEG of that size holds: every 8x8 block of a component at
    full resolution codes its DC coefficient with a Huffman code of at least one bit (T.81 F.1.2.1,
    G.1.2.1), baseline and progressive alike. libjpeg fills missing data with grey instead of refusing
    it, so without this bound a 600-byte file claiming 40 Mpx decodes to 120 MB. Arithmetic-coded
    frames have no such bound (least 0): only `max_pixels` limits them.
    """
    import tensorflow as tf

    length = tf.cast(tf.strings.length(data), tf.int64)
    walking, found, malformed, truncated = 0, 1, 2, 3

    def step(position, segments, state, height, width, _):
        head = _read_bytes(data, position, 9)  # FF, marker, segment length (2); SOF: precision, height, width
        marker = head[1]
        is_frame = tf.reduce_any(tf.equal(marker, _JPEG_SOF_HUFFMAN + _JPEG_SOF_ARITHMETIC))
        fill = tf.equal(marker, 0xFF)
        standalone = tf.equal(marker, 0x01) | ((marker >= 0xD0) & (marker <= 0xD8))  # TEM, RSTn, SOI
        segment = _big_endian(head[2:4])
        needed = tf.where(is_frame, _int64(9), tf.where(fill | standalone, _int64(2), _int64(4)))
        bad = (tf.not_equal(head[0], 0xFF) | tf.equal(marker, 0) | tf.equal(marker, 0xD9)  # EOI
               | tf.equal(marker, 0xDA)  # scan data before any frame header
               | (~is_frame & ~fill & ~standalone & (segment < 2)) | (segments >= _JPEG_MAX_SEGMENTS))
        state = tf.where(position + needed > length, truncated,
                         tf.where(bad, malformed, tf.where(is_frame, found, walking)))
        position += tf.where(fill, _int64(1), tf.where(standalone, _int64(2), 2 + segment))
        huffman = tf.reduce_any(tf.equal(marker, _JPEG_SOF_HUFFMAN))
        return (position, segments + 1, state, tf.where(is_frame, _big_endian(head[5:7]), height),
                tf.where(is_frame, _big_endian(head[7:9]), width), huffman)

    zero = _int64(0)
    _, _, state, height, width, huffman = tf.while_loop(
        lambda position, segments, state, *_: tf.equal(state, walking), step,
        (_int64(2), tf.constant(0), tf.constant(walking), zero, zero, tf.constant(False)))  # after SOI
    blocks = ((height + 7) // 8) * ((width + 7) // 8)
    least = tf.where(huffman, (blocks + 7) // 8, zero)
    problem = tf.gather(tf.constant(["", "", "JPEG header is malformed: no frame header (SOF) where a marker should be",
                                     "JPEG bytes are truncated before the end of the frame header (SOF)"]), state)
    return height, width, least, problem


def _header_problem(data, max_pixels: int, max_side: int):
    """(height and width int64[2], problem) read from a JPEG or PNG header; `problem` is "" for an image
    that may be decoded, else why it is refused: not JPEG nor PNG, a truncated or malformed header, a
    size over the limits, or fewer bytes than any complete image of the size its header claims."""
    import tensorflow as tf

    is_jpeg = tf.io.is_jpeg(data)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), image_codec.PNG_MAGIC)
    height, width, least, problem = tf.cond(is_jpeg, lambda: _jpeg_frame(data), lambda: _png_frame(data))
    kind = tf.where(is_jpeg, "JPEG", "PNG")
    size = tf.strings.join([tf.strings.as_string(height), "x", tf.strings.as_string(width)])
    claims = tf.strings.join(["image header claims ", size, " pixels"])
    side_ok = (height > 0) & (width > 0) & (height <= max_side) & (width <= max_side)
    pixels = tf.where(side_ok, height * width, 0)  # both sides at most max_side: no int64 overflow
    length = tf.cast(tf.strings.length(data), tf.int64)
    checks = [
        (~(is_jpeg | is_png), tf.constant("image bytes are neither JPEG nor PNG")),
        (tf.not_equal(problem, ""), problem),
        (~side_ok, tf.strings.join([claims, f", a side outside 1..{max_side} (max_side)"])),
        (pixels > max_pixels, tf.strings.join([claims, f", more than max_pixels={max_pixels}"])),
        (length < least, tf.strings.join([
            claims, " but the file holds ", tf.strings.as_string(length), " bytes, fewer than any complete ",
            kind, " of that size (", tf.strings.as_string(least), ")"])),
    ]
    reason = tf.constant("")
    for failed, message in reversed(checks):  # the first failed check names the problem
        reason = tf.where(failed, message, reason)
    return tf.stack([height, width]), reason


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


def _serving_protocol(crops: str):
    """The protocol of `pipelines.eval_protocols` named `crops`, one the serving signature can run
    (`eval_protocols.servable()`: views inside the central square); ValueError otherwise."""
    from pipelines import eval_protocols

    if crops not in eval_protocols.servable():
        raise ValueError(f"crops must be one of {tuple(eval_protocols.servable())}, got {crops!r}")
    return eval_protocols.PROTOCOLS[crops]


def make_preprocess(*, mean, image_size: int, resize_size: int, crops: str = "center"):
    """A function string -> float32[K, image_size, image_size, 3] (K: the views of the protocol `crops`,
    1 for "center", 10 for "ten_crop") for one encoded image whose header passed `_header_problem`."""
    import tensorflow as tf

    from pipelines import eval_crops

    protocol = _serving_protocol(crops)
    if resize_size < image_size:
        raise ValueError(f"resize_size ({resize_size}) is smaller than image_size ({image_size})")
    mean_value = tf.constant(_as_mean(mean, resize_size))

    def preprocess(data):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        # 0..255 until mean subtraction; AlexNet §2: shorter side to resize_size, central square.
        image = central_square_resized(image, resize_size)
        image = eval_crops.subtract_mean(tf.reshape(image, [resize_size, resize_size, 3]), mean_value)
        views = eval_crops.protocol_views(protocol, image, image_size)
        return views[tf.newaxis] if protocol.views == 1 else views

    return preprocess


def _checked_headers(image_bytes, max_pixels, max_side, max_batch_images, max_batch_pixels):
    """Each image's problem ("" when it may be decoded), from the headers alone (nothing decoded); the
    request's own limits are asserted (InvalidArgument): its image count, and its decodable images'
    pixels in all."""
    import tensorflow as tf

    count = tf.size(image_bytes, out_type=tf.int64)
    count_ok = tf.debugging.Assert(
        count <= max_batch_images,
        ["request holds more images than max_batch_images (images, max_batch_images):", count, max_batch_images],
    )
    with tf.control_dependencies([count_ok]):
        shapes, problems = tf.map_fn(
            lambda data: _header_problem(data, max_pixels, max_side), image_bytes,
            fn_output_signature=(tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.string)))
    # Each decodable image is at most max_pixels, and there are at most max_batch_images: no overflow.
    total = tf.reduce_sum(tf.where(tf.equal(problems, ""), shapes[:, 0] * shapes[:, 1], 0))
    pixels_ok = tf.debugging.Assert(
        total <= max_batch_pixels,
        ["request's images hold more pixels in all than max_batch_pixels (pixels, max_batch_pixels):",
         total, max_batch_pixels],
    )
    with tf.control_dependencies([pixels_ok]):
        return tf.identity(problems)


def _decode_each(image_bytes, decodable, preprocess, crop_spec):
    """(indices int32[G], crops float32[G, K, S, S, 3]) of the images that are `decodable` and decode:
    one image at a time (one image's pixels in flight), an image whose data fails to decode (corrupt
    PNG data, for instance) left out instead of failing the request."""
    import tensorflow as tf

    indices = tf.range(tf.size(image_bytes))
    dataset = tf.data.Dataset.from_tensor_slices((indices, image_bytes))
    dataset = dataset.filter(lambda index, data: tf.gather(decodable, index))
    dataset = dataset.map(lambda index, data: (index, preprocess(data))).ignore_errors()
    empty = (tf.zeros([0], tf.int32), tf.zeros([0] + crop_spec.shape.as_list(), tf.float32))
    return dataset.batch(64).reduce(
        empty, lambda got, batch: (tf.concat([got[0], batch[0]], 0), tf.concat([got[1], batch[1]], 0)))


def _top_k_outputs(probabilities, class_names):
    import tensorflow as tf

    k = min(TOP_K, len(class_names))
    top = tf.math.top_k(probabilities, k=k)
    return {
        "classes": top.indices,
        "probabilities": top.values,
        "class_names": tf.gather(tf.constant(class_names), top.indices),
    }


def _rows_of(count, indices, outputs):
    """The top-k `outputs` of the images at `indices`, placed in rows of a request of `count` images;
    the other rows hold class -1, probability 0 and name ""."""
    import tensorflow as tf

    placed = {}
    for name, fill in (("classes", -1), ("probabilities", 0.0), ("class_names", "")):
        values = outputs[name]
        empty = tf.fill(tf.stack([count, tf.shape(values)[1]]), tf.constant(fill, values.dtype))
        placed[name] = tf.tensor_scatter_nd_update(empty, indices[:, tf.newaxis], values)
    return placed


def make_bytes_function(model, *, class_names, mean, image_size, resize_size, crops="center",
                        max_pixels=DEFAULT_MAX_PIXELS, max_side=DEFAULT_MAX_SIDE,
                        max_batch_images=DEFAULT_MAX_BATCH_IMAGES, max_batch_pixels=DEFAULT_MAX_BATCH_PIXELS):
    """The `serving_default` computation: string[N] of JPEG/PNG bytes -> top-5 dict and `status` (see
    the module doc).

    `main.py predict` calls it on a checkpoint so local and served predictions are the same code.
    """
    import tensorflow as tf

    from pipelines.eval_crops import crop_probabilities

    num_crops = _serving_protocol(crops).views
    preprocess = make_preprocess(mean=mean, image_size=image_size, resize_size=resize_size, crops=crops)
    crop_spec = tf.TensorSpec([num_crops, image_size, image_size, 3], tf.float32)
    class_names = [str(c) for c in class_names]

    def from_bytes(image_bytes):
        count = tf.size(image_bytes)
        problems = _checked_headers(image_bytes, max_pixels, max_side, max_batch_images, max_batch_pixels)
        indices, batch = _decode_each(image_bytes, tf.equal(problems, ""), preprocess, crop_spec)
        decoded = tf.scatter_nd(indices[:, tf.newaxis], tf.ones_like(indices, tf.bool), [count])
        status = tf.where(decoded, STATUS_OK,
                          tf.where(tf.equal(problems, ""), "image data could not be decoded (corrupt)", problems))
        probabilities = tf.cond(  # the model is not called on no image (a grouped conv fails on an empty batch)
            tf.size(indices) > 0,
            lambda: crop_probabilities(lambda crops: model(crops, training=False), batch),  # AlexNet §4.1
            lambda: tf.zeros([0, len(class_names)], tf.float32))
        outputs = _rows_of(count, indices, _top_k_outputs(probabilities, class_names))
        outputs[STATUS_OUTPUT] = status
        return outputs

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
        if pid.isdigit() and scratch.running(int(pid)):
            continue
        shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
        removed.append(os.path.join(model_dir, name))
    return removed


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
    `crops`: the protocol of the bytes signature, one of `pipelines.eval_protocols.servable()`: "center"
    or "ten_crop" (AlexNet §4.1). `version`: a fixed version number instead of the next one (refused if
    it exists).
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


def fold_input_scale(model, scale):
    """Makes a model trained on inputs multiplied by `scale` take the unscaled inputs: the first
    convolution is linear in its input, so conv(s·x; W) = conv(x; s·W). Every 4-D kernel of the first
    layer holding one (both towers' kernels if it is split) is multiplied by `scale`."""
    for layer in model.layers:
        kernels = [w for w in layer.weights if len(w.shape) == 4]
        if kernels:
            for kernel in kernels:
                kernel.assign(kernel * scale)
            return layer.name
    raise ValueError("the model has no convolution kernel to fold the input scale into")
