"""Fuzzing the two places untrusted bytes enter: the serving signature and the record parser.

- `export.make_bytes_function` (the `serving_default` computation, AlexNet §2 / §4.1 preprocessing) on a
  tiny model: arbitrary bytes, and real PNG/JPEG files whose headers claim tiny, zero or huge sizes,
  give each image a top-5 result or its `status` (or the request an `InvalidArgumentError` naming a
  request limit), never another error (no OOM, no crash).
- `record_parser.decode_records` (evaluation's parse and decode) on `tf.train.Example`s with or without
  the image (any bytes), the label (any int64) and other keys, and on malformed records (not an
  Example, an image or label of another type or count): a checked (image, 0-based label), the record
  dropped, counted and named, or the one-line `UserError` naming the record (`record_parser.user_errors`).

Bounded with hypothesis' `max_examples` (no deadline: the first call traces the function), well under
a minute in all.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_alexnet import export
from keras_alexnet.errors import UserError
from pipelines import record_parser, records
from tests.test_export import NAMES, RESIZE, SIZE, tiny_model

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NUM_CLASSES = 7


@pytest.fixture(scope="module")
def serve():
    """`serving_default` on a tiny model, traced once for a batch of any size, with small limits so
    that headers claiming more are refused, not decoded."""
    function = export.make_bytes_function(tiny_model(), class_names=NAMES, mean=None, image_size=SIZE,
                                          resize_size=RESIZE, max_pixels=1_000_000, max_side=4096,
                                          max_batch_images=8, max_batch_pixels=4_000_000)
    return tf.function(function, input_signature=[tf.TensorSpec([None], tf.string)])


def _png(height, width):
    return tf.io.encode_png(np.full((height, width, 3), 128, np.uint8)).numpy()


def _jpeg(height, width):
    return tf.io.encode_jpeg(np.full((height, width, 3), 128, np.uint8)).numpy()


def _with_png_size(data, height, width):
    return data[:16] + int(width).to_bytes(4, "big") + int(height).to_bytes(4, "big") + data[24:]


def _with_jpeg_size(data, height, width):
    sof = data.index(b"\xff\xc0")  # baseline SOF0: marker, length (2), precision (1), height, width
    return data[:sof + 5] + int(height).to_bytes(2, "big") + int(width).to_bytes(2, "big") + data[sof + 9:]


def _sizes():
    side = st.one_of(st.integers(0, 4), st.integers(1, 70), st.integers(4000, 70_000), st.integers(0, 2**32 - 1))
    return st.tuples(side, side)


def _image_bytes():
    """Arbitrary bytes, and PNG/JPEG files with their header's size replaced, cut or bit-flipped."""
    png = st.builds(lambda s: _with_png_size(_png(3, 5), *s), st.tuples(st.integers(0, 2**32 - 1),
                                                                       st.integers(0, 2**32 - 1)))
    jpeg = st.builds(lambda s: _with_jpeg_size(_jpeg(3, 5), min(s[0], 65535), min(s[1], 65535)), _sizes())
    real = st.builds(lambda h, w, kind: (_png if kind else _jpeg)(h, w), st.integers(1, 48), st.integers(1, 48),
                     st.booleans())
    cut = st.builds(lambda data, n: data[:n], st.one_of(real, png, jpeg), st.integers(0, 200))
    flipped = st.builds(lambda data, i, bit: data[:i % len(data)] + bytes([data[i % len(data)] ^ (1 << bit)])
                        + data[i % len(data) + 1:], real, st.integers(0, 10_000), st.integers(0, 7))
    return st.one_of(st.binary(max_size=300), png, jpeg, real, cut, flipped)


@FUZZ
@given(batch=st.lists(_image_bytes(), min_size=1, max_size=3))
def test_serving_signature_answers_or_refuses_with_invalid_argument(serve, batch):
    try:
        out = serve(tf.constant(batch))
    except tf.errors.InvalidArgumentError:
        return
    probabilities, classes = out["probabilities"].numpy(), out["classes"].numpy()
    assert probabilities.shape == (len(batch), 5) and np.all(np.isfinite(probabilities))
    ok = out["status"].numpy() == b"ok"
    assert np.all((classes[ok] >= 0) & (classes[ok] < len(NAMES)))
    assert np.all(classes[~ok] == -1) and np.all(probabilities[~ok] == 0)


@pytest.fixture(scope="module")
def read():
    """One serialized record through `decode_records` as record 3 of "shard-0" (labels 1-based):
    ([{label, channels}] per element out, the dropped count)."""
    spec = record_parser.RecordSpec(label_offset=1, num_classes=NUM_CLASSES)

    def decode_image(encoded):
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    counter = record_parser.DropCounter()

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def elements(serialized):  # (how many, last label, last image's channels), traced once
        element = {"record": serialized, "shard": tf.constant("shard-0"), "index": tf.constant(3, tf.int64)}
        dataset = record_parser.decode_records(tf.data.Dataset.from_tensors(element), spec, counter, decode_image)
        return dataset.reduce((0, -1, 0), lambda state, e: (state[0] + 1, e["label"], tf.shape(e["image"])[-1]))

    def read_one(serialized):
        counter.reset()
        with record_parser.user_errors():
            count, label, channels = (int(value) for value in elements(tf.constant(serialized)))
        return [{"label": label, "channels": channels}] * count, counter.count()

    return read_one


def _example(features: dict) -> bytes:
    feature = {}
    for key, value in features.items():
        if isinstance(value, bytes):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, list):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _examples():
    """`tf.train.Example`s holding any subset of the image (any bytes), the label (any int64) and other
    keys (any type)."""
    other = st.one_of(st.binary(max_size=40), st.lists(st.integers(-2**63, 2**63 - 1), max_size=3),
                      st.floats(allow_nan=True, width=32))
    features = st.fixed_dictionaries({}, optional={
        records.ENCODED: st.binary(max_size=40),
        records.LABEL: st.lists(st.one_of(st.integers(-3, NUM_CLASSES + 3), st.integers(-2**63, 2**63 - 1)),
                                min_size=1, max_size=1),
        records.FILENAME: other, "image/other": other})
    return st.builds(_example, features)


def _check_read(read, serialized):
    """The record's outcome: "kept" (a decoded image and a label in range), "dropped" (counted once)
    or "refused" (the one-line error naming the record)."""
    try:
        elements, dropped = read(serialized)
    except UserError as error:
        assert str(error).startswith("shard-0: record 3: ") and "\n" not in str(error), str(error)
        return "refused"
    if dropped:
        assert (elements, dropped) == ([], 1)
        return "dropped"
    (element,) = elements
    assert element["channels"] == 3 and 0 <= element["label"] < NUM_CLASSES
    return "kept"


@FUZZ
@given(serialized=_examples())
def test_record_reading_keeps_drops_or_refuses_each_record(read, serialized):
    _check_read(read, serialized)


# Found by fuzzing: records that are not Examples, or whose image or label has another type or count,
# fail inside `tf.io.parse_single_example` with a message that names no record ("Could not parse example
# input", "Data types don't match", or a UnicodeDecodeError when TensorFlow quotes non-UTF-8 bytes):
# they are dropped, counted and named like an undecodable image.
@pytest.mark.parametrize("serialized", [
    b"\x00", b"\x80", b"\x0a\xff",
    _example({records.ENCODED: b"x", records.LABEL: b""}),
    _example({records.ENCODED: b"x", records.LABEL: [1, 2]}),
    _example({records.ENCODED: [5], records.LABEL: [1]}),
], ids=["tag0", "truncated-varint", "bad-length", "label-bytes", "two-labels", "image-ints"])  # map order varies
def test_malformed_records_are_dropped_counted_and_named(read, serialized, capfd):
    assert _check_read(read, serialized) == "dropped"
    assert "shard-0: record 3: image does not decode (or the record does not parse), record dropped" in \
        capfd.readouterr().err


def test_a_label_out_of_range_is_refused_in_one_line(read):
    good = _png(4, 6)
    assert _check_read(read, _example({records.ENCODED: good, records.LABEL: [NUM_CLASSES]})) == "kept"
    with pytest.raises(UserError, match=r"^shard-0: record 3: label 7 outside \[0, 7\) \(stored 1-based\)$"):
        read(_example({records.ENCODED: good, records.LABEL: [NUM_CLASSES + 1]}))
