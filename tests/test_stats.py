"""pipelines/stats.py against NumPy on the same decoded images: mean image (AlexNet §2), mean RGB
(VGG §2.1), RGB covariance and its eigen-decomposition (AlexNet §4.1)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.errors import UserError
from pipelines import image_codec, prepare, records, stats
from pipelines.sources import load
from tests.image_fixtures import make_folder, read_split


def _decoded(data_dir):
    return [tf.io.decode_jpeg(r[records.ENCODED]).numpy() for r in read_split(data_dir, "train")]


def _numpy_rgb_stats(images):
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    make_folder(str(root / "in"), per_class=5, size=(30, 44))
    source = load.from_paths(str(root / "in"))
    out = str(root / "alexnet")
    prepare.prepare(source, prepare.PrepareConfig(data_dir=out, image_size=16, num_workers=1, validation_holdout=0,
                                                  num_shards={"train": 3}))
    return out


def test_stats_match_numpy(prepared):
    result = stats.run(prepared)
    images = _decoded(prepared)
    assert result["num_images"] == len(images) == 15
    np.testing.assert_allclose(result["mean_image"], np.mean(np.stack(images).astype(np.float64), axis=0), atol=1e-4)
    assert result["mean_image"].dtype == np.float32 and result["mean_image"].shape == (16, 16, 3)
    mean, cov = _numpy_rgb_stats(images)
    np.testing.assert_allclose(result["mean_rgb"], mean, rtol=1e-6)
    np.testing.assert_allclose(result["rgb_cov"], cov, rtol=1e-9, atol=1e-9)
    values, vectors = result["eigenvalues"], result["eigenvectors"]
    assert values.dtype == np.float64 and vectors.shape == (3, 3)
    assert values[0] >= values[1] >= values[2] >= 0
    np.testing.assert_allclose(cov @ vectors, vectors * values, atol=1e-6)  # column i pairs with value i
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[::-1], values, rtol=1e-9)


def test_load_stats_round_trip_and_missing_file(prepared, tmp_path):
    with pytest.raises(UserError, match=r"stats.npz: .*run `python main.py stats --data_dir="):
        stats.load_stats(str(tmp_path))
    saved = stats.run(prepared)
    loaded = stats.load_stats(prepared)
    assert set(records.STATS_KEYS) <= set(loaded)
    assert loaded["num_images"] == 15 and isinstance(loaded["num_images"], int)
    for key in ("mean_image", "mean_rgb", "rgb_cov", "eigenvalues", "eigenvectors"):
        np.testing.assert_array_equal(loaded[key], saved[key])
        assert loaded[key].dtype == saved[key].dtype


def test_max_images_subsamples(prepared):
    result = stats.compute(prepared, max_images=4)
    assert result["num_images"] == 4


def test_variable_sizes_give_alexnet_256_mean_image(tmp_path):
    """Policy "none": images keep their sizes; the mean image is at AlexNet's 256x256 (shorter side 256,
    central crop), the RGB moments over the stored pixels."""
    make_folder(str(tmp_path / "in"), classes=("a",), kinds=("rgb_jpeg", "cmyk_jpeg"), per_class=2, size=(30, 44))
    make_folder(str(tmp_path / "in"), classes=("b",), kinds=("png_as_jpeg", "grey_png"), per_class=2, size=(50, 40))
    out = str(tmp_path / "out")
    prepare.prepare(load.from_paths(str(tmp_path / "in")),
                    prepare.PrepareConfig(data_dir=out, image_policy="none", num_workers=1))
    result = stats.compute(out)
    images = _decoded(out)
    assert {im.shape for im in images} == {(30, 44, 3), (50, 40, 3)}
    expected = np.mean([image_codec.apply_policy(im, "alexnet", 256).astype(np.float64) for im in images], axis=0)
    assert result["mean_image"].shape == (256, 256, 3)
    np.testing.assert_allclose(result["mean_image"], expected, atol=1e-3)
    mean, cov = _numpy_rgb_stats(images)
    np.testing.assert_allclose(result["mean_rgb"], mean, rtol=1e-6)
    np.testing.assert_allclose(result["rgb_cov"], cov, rtol=1e-9)


def test_no_shards_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="no train shards"):
        stats.compute(str(tmp_path))


def test_finish_against_numpy_on_random_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1000, 3)) * np.array([1, 0.5, 0.25]) // 1
    pixels = pixels.astype(np.int64)
    shifted = pixels - 128
    result = stats.finish(np.zeros((1, 1, 3)), shifted.sum(0), shifted.T @ shifted, 1, len(pixels))
    np.testing.assert_allclose(result["rgb_cov"], np.cov(pixels.astype(float), rowvar=False, bias=True), rtol=1e-12)
    np.testing.assert_allclose(result["mean_rgb"], pixels.mean(0), rtol=1e-6)
