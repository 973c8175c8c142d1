"""Fuzzing the two places untrusted bytes enter (issue 13): the serving signature and the record parser.

- `export.make_bytes_function` (the `serving_default` computation, AlexNet §2 / §4.1 preprocessing) on a
  tiny model: arbitrary bytes, and real PNG/JPEG files whose headers claim tiny, zero or huge sizes,
  give a top-5 result or an `InvalidArgumentError`, never another error (no OOM, no crash).
- `record_parser.parse` on `tf.train.Example`s with or without the image (any bytes), the label (any
  int64) and other keys: a checked (image, 0-based label) or an error `record_parser.as_user_error`
  turns into the one-line `UserError`. Malformed records (not an Example, a label of another type)
  are not yet such errors: strict xfail below, so the fix turns it into a failure to remove the mark.

Bounded with hypothesis' `max_examples` (no deadline: the first call traces the function), well under
a minute in all.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_alexnet import export
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
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(batch), 5) and np.all(np.isfinite(probabilities))
    assert np.all((out["classes"].numpy() >= 0) & (out["classes"].numpy() < len(NAMES)))


@pytest.fixture(scope="module")
def parse():
    spec = record_parser.RecordSpec(label_offset=1, num_classes=NUM_CLASSES)
    return tf.function(lambda serialized: record_parser.parse(serialized, tf.constant("shard-0"),
                                                              tf.constant(3, tf.int64), spec),
                       input_signature=[tf.TensorSpec([], tf.string)])


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


def _check_parsed(parse, serialized):
    try:
        encoded, label = parse(tf.constant(serialized))
    except tf.errors.OpError as error:
        converted = record_parser.as_user_error(error)
        assert converted is not None, f"not a one-line record error: {error.message[:300]}"
        assert str(converted).startswith("shard-0: record 3: ") and "\n" not in str(converted)
        return
    assert len(encoded.numpy()) > 0 and 0 <= int(label) < NUM_CLASSES


@FUZZ
@given(serialized=_examples())
def test_record_parser_answers_or_raises_a_user_error(parse, serialized):
    _check_parsed(parse, serialized)


# Found by fuzzing: records that are not Examples, or whose image or label has another type or count,
# fail inside `tf.io.parse_single_example` ("Could not parse example input", "Data types don't match",
# or a UnicodeDecodeError when TensorFlow quotes non-UTF-8 bytes in its message), not as a record
# error naming the shard.
@pytest.mark.xfail(strict=True, reason="pipelines/record_parser.parse: malformed records are not yet record "
                   "errors (issue 13, reported to the record_parser owner)")
@pytest.mark.parametrize("serialized", [
    b"\x00", b"\x80", b"\x0a\xff",
    _example({records.ENCODED: b"x", records.LABEL: b""}),
    _example({records.ENCODED: b"x", records.LABEL: [1, 2]}),
    _example({records.ENCODED: [5], records.LABEL: [1]}),
], ids=["tag0", "truncated-varint", "bad-length", "label-bytes", "two-labels", "image-ints"])  # map order varies
def test_record_parser_on_malformed_records(parse, serialized):
    _check_parsed(parse, serialized)
