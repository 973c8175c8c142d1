"""Test-time crops (AlexNet §4.1 ten patches, VGG §3.2 50-crop grid and rescaling) against NumPy slicing."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import eval_crops


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.float32)


def _ten_reference(image, size):
    """AlexNet §4.1 by hand: four corners + centre, then their horizontal reflections."""
    height, width = image.shape[:2]
    centre_y, centre_x = (height - size) // 2, (width - size) // 2
    patches = [
        image[:size, :size],
        image[:size, width - size :],
        image[height - size :, :size],
        image[height - size :, width - size :],
        image[centre_y : centre_y + size, centre_x : centre_x + size],
    ]
    return np.stack(patches + [p[:, ::-1] for p in patches])


@pytest.mark.parametrize("height,width,size", [(32, 32, 24), (33, 41, 20), (40, 29, 29)])
def test_ten_crop_matches_numpy(height, width, size):
    image = _image(height, width)
    crops = eval_crops.corner_and_center_crops(tf.constant(image), size).numpy()
    assert crops.shape == (10, size, size, 3)
    np.testing.assert_array_equal(crops, _ten_reference(image, size))


def test_ten_crop_batched():
    images = np.stack([_image(30, 34, seed) for seed in range(3)])
    crops = eval_crops.corner_and_center_crops(tf.constant(images), 16).numpy()
    assert crops.shape == (3, 10, 16, 16, 3)
    for i in range(3):
        np.testing.assert_array_equal(crops[i], _ten_reference(images[i], 16))


@pytest.mark.parametrize("height,width,size", [(40, 40, 24), (37, 52, 24), (24, 30, 24)])
def test_grid_crops_match_numpy(height, width, size):
    image = _image(height, width, 3)
    crops = eval_crops.grid_crops(tf.constant(image), size, grid=5, flip=True).numpy()
    assert crops.shape == (50, size, size, 3)
    # VGG §3.2: a 5x5 regular grid spanning the image, rows then columns, then the mirrors.
    ys = [int(np.floor(v + 0.5)) for v in np.linspace(0, height - size, 5)]
    xs = [int(np.floor(v + 0.5)) for v in np.linspace(0, width - size, 5)]
    expected = [image[y : y + size, x : x + size] for y in ys for x in xs]
    expected = np.stack(expected + [p[:, ::-1] for p in expected])
    np.testing.assert_array_equal(crops, expected)
    assert ys[0] == 0 and ys[-1] == height - size and xs[-1] == width - size


def test_center_crop_and_square():
    image = _image(31, 46)
    np.testing.assert_array_equal(eval_crops.center_crop(image, 20).numpy(), image[5:25, 13:33])
    np.testing.assert_array_equal(eval_crops.center_crop(image, (10, 30)).numpy(), image[10:20, 8:38])
    np.testing.assert_array_equal(eval_crops.center_square(image).numpy(), image[:, 7:38])


@pytest.mark.parametrize("height,width,expected", [(100, 200, (64, 128)), (300, 150, (128, 64)), (64, 64, (64, 64)), (33, 50, (64, 97))])
def test_resize_shorter_side_shape(height, width, expected):
    out = eval_crops.resize_shorter_side(np.full((height, width, 3), 7, np.uint8), 64)
    assert out.dtype == tf.float32
    assert tuple(out.shape[:2]) == expected
    np.testing.assert_allclose(out.numpy(), 7.0, atol=1e-4)


def test_resize_shorter_side_identity_at_size():
    image = _image(64, 80)
    np.testing.assert_array_equal(eval_crops.resize_shorter_side(image, 64).numpy(), image)


def test_subtract_mean_rgb_and_image():
    image = _image(24, 24)
    rgb = np.array([10.0, 20.0, 30.0], np.float32)
    np.testing.assert_allclose(eval_crops.subtract_mean(image, rgb).numpy(), image - rgb)
    mean_image = _image(32, 32, 5)
    np.testing.assert_allclose(eval_crops.subtract_mean(image, mean_image).numpy(), image - mean_image[4:28, 4:28])
    big = _image(32, 32, 6)
    np.testing.assert_allclose(
        eval_crops.center_crop(eval_crops.subtract_mean(big, mean_image), 24).numpy(),
        eval_crops.subtract_mean(eval_crops.center_crop(big, 24), mean_image).numpy(),
    )


def test_serving_graph_with_unknown_sizes():
    """The helpers trace on images of unknown size, as in a SavedModel signature, with static outputs."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def serve(image):
        square = eval_crops.center_square(eval_crops.resize_shorter_side(image, 32))
        square = eval_crops.subtract_mean(square, tf.fill([32, 32, 3], 1.0))
        return eval_crops.center_crop(square, 24), eval_crops.corner_and_center_crops(square, 24)

    center, ten = serve.get_concrete_function().structured_outputs
    assert center.shape.as_list() == [24, 24, 3]
    assert ten.shape.as_list() == [10, 24, 24, 3]
    image = np.random.default_rng(1).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    center, ten = serve(tf.constant(image))
    np.testing.assert_allclose(ten[4].numpy(), center.numpy())


def test_protocol_views_of_table_entries_match_numpy():
    """`protocol_views` reads positions, frame, grid and flips from a protocol entry (`eval_protocols`)."""
    from pipelines import eval_protocols as table

    image, s = _image(30, 41, seed=5), 20
    centre_flip = table.Protocol("c2", "centre and mirror", "", table.CENTER, flip=True)
    views = eval_crops.protocol_views(centre_flip, tf.constant(image), s).numpy()
    top, left = (30 - s) // 2, (41 - s) // 2
    crop = image[top:top + s, left:left + s]
    np.testing.assert_array_equal(views, np.stack([crop, crop[:, ::-1]]))

    grid = table.Protocol("g3", "3x3", "", table.GRID, grid=3)
    views = eval_crops.protocol_views(grid, tf.constant(image), s, lambda frame: frame - 1.0).numpy()
    ys, xs = [0, 5, 10], [0, 11, 21]  # 0 .. H - s and 0 .. W - s, evenly, 10.5 rounded half up
    np.testing.assert_array_equal(views, np.stack([image[y:y + s, x:x + s] - 1.0 for y in ys for x in xs]))

    square = table.PROTOCOLS["ten_crop"]
    views = eval_crops.protocol_views(square, tf.constant(image), s).numpy()
    np.testing.assert_array_equal(views, _ten_reference(image[:, 5:35], s))  # the central 30 x 30 square
    assert table.PROTOCOLS["dense"].dense and eval_crops.protocol_views(
        table.PROTOCOLS["dense"], tf.constant(image), s).shape == (30, 41, 3)
