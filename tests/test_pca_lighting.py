"""AlexNet §4.1's PCA lighting at the scale the authors used, on real colour photos.

`prepare` + `stats` over real photos give the RGB covariance (0..255 scale); the training pipeline with
α ~ N(0, 0.1) must then move images along P1 by about 0.1·sqrt(λ1) levels (≈10 on natural photos), not
0.1·λ1 (hundreds). The reference is NumPy on the decoded stored images, independent of `pipelines.stats`.
"""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import input_pipeline, prepare, records, stats
from pipelines.input_config import InputConfig
from pipelines.sources import load
from tests.image_fixtures import read_split
from tests.real_photos import write_class_folder

STORED, CROP = 64, 56


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_class_folder(str(root / "in"))
    out = str(root / "data")
    prepare.prepare(load.from_paths(str(root / "in")),
                    prepare.PrepareConfig(data_dir=out, image_size=STORED, num_workers=1))
    return out, stats.run(out)


def _numpy_pca(data_dir):
    """Eigen-decomposition of the population RGB covariance of the stored images, in NumPy."""
    pixels = np.concatenate([tf.io.decode_image(r[records.ENCODED], channels=3).numpy().reshape(-1, 3)
                             for r in read_split(data_dir, "train")]).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
    return values[::-1], vectors[:, ::-1]


def test_real_photo_statistics(photos):
    data_dir, result = photos
    values, vectors = _numpy_pca(data_dir)
    np.testing.assert_allclose(result["eigenvalues"], values, rtol=1e-6)
    np.testing.assert_allclose(np.abs(result["eigenvectors"].T @ vectors), np.eye(3), atol=1e-6)
    # Natural photos: most colour variance lies along the brightness axis, thousands of squared levels.
    assert 2_000 < values[0] < 12_000 and values[0] > 3 * values[1]


def _batches(data_dir, pca_jitter_std, passes):
    config = InputConfig(data_dir=data_dir, image_size=CROP, resize_size=STORED, mean="none", batch_size=5,
                         pca_jitter_std=pca_jitter_std, deterministic=True, seed=7, shuffle_buffer=8)
    dataset = input_pipeline.build_train_dataset(config)
    return np.concatenate([images.numpy() for _ in range(passes) for images, _ in dataset])


def test_training_pipeline_shift_is_alpha_times_stdev(photos):
    data_dir, result = photos
    values, vectors = _numpy_pca(data_dir)
    plain = _batches(data_dir, 0.0, passes=24)
    jittered = _batches(data_dir, 0.1, passes=24)
    assert plain.shape == jittered.shape == (120, CROP, CROP, 3)
    shift = jittered - plain
    # One colour shift per image, the same at every pixel (same crops and flips: jitter has its own seed).
    per_image = shift.mean(axis=(1, 2))
    np.testing.assert_allclose(shift, np.broadcast_to(per_image[:, None, None, :], shift.shape), atol=1e-3)
    # Along axis i the shift is α_i·sqrt(λ_i) with α_i ~ N(0, 0.1): divided by sqrt(λ_i), std 0.1.
    alphas = per_image @ vectors / np.sqrt(values)
    assert np.all(np.abs(alphas.mean(axis=0)) < 0.03)
    np.testing.assert_allclose(alphas.std(axis=0), 0.1, rtol=0.2)
    along_p1 = per_image @ vectors[:, 0]
    # About ten grey levels on natural photos (0.1·sqrt(λ1)), nowhere near 0.1·λ1.
    print(f"λ1 = {values[0]:.0f}, 0.1·sqrt(λ1) = {0.1 * np.sqrt(values[0]):.2f}, "
          f"measured std along P1 = {along_p1.std():.2f}, max |shift| = {np.abs(per_image).max():.1f}")
    np.testing.assert_allclose(along_p1.std(), 0.1 * np.sqrt(values[0]), rtol=0.2)
    assert 4 < along_p1.std() < 12 and np.abs(per_image).max() < 60
