"""pipelines/image_codec.py: every input becomes an RGB JPEG under the AlexNet §2 / VGG §3.1 policies,
checked against Pillow's decoding and NumPy formulas."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pipelines import image_codec
from tests.image_fixtures import image_bytes, pixels


def _pil_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int32)


@pytest.mark.parametrize("kind", ["rgb_jpeg", "cmyk_jpeg", "grey_jpeg", "png_as_jpeg", "grey_png", "gif", "bmp"])
def test_decode_rgb_matches_pillow(kind):
    data = image_bytes(kind, seed=3)
    ours = image_codec.decode_rgb(data).astype(np.int32)
    assert ours.shape == (40, 56, 3) and ours.dtype == np.int32
    # libjpeg versions may round IDCT differently by a level or two; GIF/PNG/BMP are exact.
    assert np.abs(ours - _pil_rgb(data)).mean() < 1.5


def test_cmyk_jpeg_decodes_to_rgb_colours():
    data = image_bytes("cmyk_jpeg", seed=5)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    ours = image_codec.decode_rgb(data).astype(np.int32)
    assert np.abs(ours - pixels(5).astype(np.int32)).mean() < 3.0  # the original colours, not inverted
    assert image_codec._is_cmyk_jpeg(data)


def test_greyscale_replicated_to_three_equal_channels():
    out = image_codec.decode_rgb(image_bytes("grey_png", seed=1))
    assert out.shape[-1] == 3
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_rgba_composited_over_white():
    data = image_bytes("rgba_png", seed=2)
    rgba = np.asarray(Image.open(io.BytesIO(data))).astype(np.float64)
    expected = np.round(rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255))
    np.testing.assert_allclose(image_codec.decode_rgb(data), expected, atol=1)
    assert (image_codec.decode_rgb(data)[:, 0] == 255).all()  # alpha 0 column is white


@pytest.mark.parametrize("kind", ["truncated_jpeg", "empty"])
def test_undecodable_raises_decode_error(kind):
    with pytest.raises(image_codec.DecodeError):
        image_codec.convert(image_bytes(kind), "alexnet", 32)


def test_garbage_raises_decode_error():
    with pytest.raises(image_codec.DecodeError, match="Unknown image file format"):
        image_codec.decode_rgb(b"not an image at all")


def test_policy_shapes():
    assert image_codec.target_shape(300, 400, "alexnet", 256) == ((256, 341), True)
    assert image_codec.target_shape(400, 300, "vgg", 512) == ((683, 512), False)
    assert image_codec.target_shape(300, 400, "none", 0) == ((300, 400), False)
    image = pixels(0, 300, 400)
    assert image_codec.apply_policy(image, "alexnet", 256).shape == (256, 256, 3)
    assert image_codec.apply_policy(image, "vgg", 512).shape == (512, 683, 3)
    assert image_codec.apply_policy(image, "none", 0) is image


def test_alexnet_policy_is_rescale_then_central_crop():
    """AlexNet §2: shorter side to 256, then the central 256x256 patch (here 32 for speed)."""
    image = pixels(4, 48, 80)
    rescaled = tf.image.resize(image, (32, 53), antialias=True).numpy()
    left = (53 - 32) // 2
    expected = np.clip(np.round(rescaled[:, left : left + 32]), 0, 255)
    np.testing.assert_array_equal(image_codec.apply_policy(image, "alexnet", 32), expected)


def test_convert_keeps_plain_rgb_jpeg_bytes_and_reencodes_the_rest():
    rgb = image_bytes("rgb_jpeg", seed=1)
    assert image_codec.convert(rgb, "none", 0) == (rgb, 40, 56)
    for kind in ("cmyk_jpeg", "grey_jpeg", "png_as_jpeg", "rgba_png"):
        data, height, width = image_codec.convert(image_bytes(kind, seed=1), "none", 0)
        assert data[:3] == image_codec.JPEG_MAGIC and not image_codec._is_cmyk_jpeg(data)
        assert tf.io.decode_jpeg(data).shape == (height, width, 3) == (40, 56, 3)
    data, height, width = image_codec.convert(rgb, "alexnet", 32)
    assert (height, width) == (32, 32) and tf.io.decode_jpeg(data).shape == (32, 32, 3)


def test_convert_pixels_batch_equals_one_by_one():
    grey = np.stack([pixels(i, 28, 28)[..., 0] for i in range(4)])
    batch = image_codec.convert_pixels(grey, "alexnet", 72)
    for image, (data, height, width) in zip(grey, batch):
        assert (height, width) == (72, 72)
        decoded = tf.io.decode_jpeg(data).numpy().astype(int)
        expected = image_codec.apply_policy(image_codec.to_rgb(image), "alexnet", 72).astype(int)
        assert np.abs(decoded - expected).mean() < 2.0
