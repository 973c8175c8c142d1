"""Serving memory bombs: thin images, oversized requests; the rescaled frame is never materialised."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_alexnet import export
from pipelines import eval_crops

SIZE, RESIZE = 16, 256


@pytest.fixture(scope="module")
def serve():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(6, activation="softmax")(x))
    return tf.function(export.make_bytes_function(
        model, class_names=list("abcdef"), mean=None, image_size=SIZE, resize_size=RESIZE,
        max_batch_images=8, max_batch_pixels=100_000))


def _png(height, width, value=200):
    return tf.io.encode_png(np.full((height, width, 3), value, np.uint8)).numpy()


@pytest.mark.parametrize("height, width, size", [(40, 56, 20), (33, 17, 64), (300, 401, 256), (1, 50, 8), (7, 3, 5)])
def test_central_square_equals_rescale_then_crop(height, width, size):
    """AlexNet §2's frame computed directly equals the rescaled image's central square (eval_crops)."""
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = eval_crops.center_square(eval_crops.resize_shorter_side(image, size)).numpy()
    got = export.central_square_resized(tf.constant(image), size).numpy()
    assert got.shape == (size, size, 3)
    np.testing.assert_allclose(got, expected, atol=0.01)


@pytest.mark.parametrize("height, width", [(1, 16_384), (16_384, 1)])
def test_thin_image_is_served_without_a_giant_tensor(serve, height, width):
    """A 16384x1 PNG (a 130-byte file) asked for a [1, 256, 4194304, 3] tensor before (12.9 GB)."""
    data = _png(height, width)
    assert len(data) < 200
    out = serve(tf.constant([data] * 4))
    assert out["classes"].shape == (4, 5)


def test_request_with_too_many_images_is_refused(serve):
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_images"):
        serve(tf.constant([_png(2, 2)] * 9))


def test_request_with_too_many_pixels_is_refused_from_headers(serve):
    """Each image is under max_pixels, the request is not: refused before any decoding."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_pixels"):
        serve(tf.constant([_png(200, 200), _png(200, 200), _png(200, 200)]))
    assert serve(tf.constant([_png(200, 200), _png(200, 200)]))["classes"].shape == (2, 5)
