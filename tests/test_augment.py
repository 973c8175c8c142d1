"""Training augmentation against NumPy: PCA colour jitter (AlexNet §4.1), random crops and flips
(AlexNet §4.1), VGG §3.1 scale jitter."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment, eval_crops


def _seed(i):
    return tf.constant([i, 12345], tf.int64)


def _eigen():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return np.array([120.0, 40.0, 5.0], np.float32), q.astype(np.float32)


def test_pca_jitter_matches_formula():
    eigenvalues, eigenvectors = _eigen()
    image = np.random.default_rng(0).uniform(0, 255, (8, 9, 3)).astype(np.float32)
    alphas = np.array([0.05, -0.12, 0.3], np.float32)
    out = image + augment.pca_shift(eigenvalues, eigenvectors, alphas).numpy()
    # AlexNet §4.1 with λ read as variances (cuda-convnet2's color_stdevs): I_xy + [P1 P2 P3][α_i sqrt(λ_i)]ᵀ.
    expected = image + eigenvectors @ (alphas * np.sqrt(eigenvalues))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_pca_shift_batched_one_alpha_triple_per_image():
    eigenvalues, eigenvectors = _eigen()
    images = np.random.default_rng(1).uniform(0, 255, (4, 5, 6, 3)).astype(np.float32)
    alphas = augment.pca_alphas(0.1, _seed(7), batch_shape=(4,)).numpy()
    shifts = augment.pca_shift(eigenvalues, eigenvectors, alphas).numpy()
    assert shifts.shape == (4, 3)
    out = images + shifts[:, None, None, :]
    for i in range(4):
        np.testing.assert_allclose(out[i], images[i] + eigenvectors @ (alphas[i] * np.sqrt(eigenvalues)), rtol=1e-5, atol=1e-4)


def test_pca_shift_projects_to_alpha_times_stdev():
    """Along each principal axis the shift is α_i·sqrt(λ_i): λ_i is a variance, the shift a level."""
    eigenvalues, eigenvectors = _eigen()
    alphas = np.array([0.1, -0.1, 0.1], np.float32)
    along = eigenvectors.T @ augment.pca_shift(eigenvalues, eigenvectors, alphas).numpy()
    np.testing.assert_allclose(along, [0.1 * np.sqrt(120.0), -0.1 * np.sqrt(40.0), 0.1 * np.sqrt(5.0)], rtol=1e-5)


def test_pca_alphas_distribution_and_seeding():
    alphas = np.stack([augment.pca_alphas(0.1, _seed(i)).numpy() for i in range(400)])
    assert alphas.shape == (400, 3)
    assert abs(alphas.mean()) < 0.02 and 0.08 < alphas.std() < 0.12  # N(0, 0.1)
    np.testing.assert_array_equal(augment.pca_alphas(0.1, _seed(3)).numpy(), alphas[3])


def _windows(height, width, scale, size, center_square, seeds=200):
    return np.array(
        [[int(v) for v in augment.crop_window(height, width, scale, size, _seed(i), center_square)] for i in range(seeds)]
    )


def test_random_crop_bounds_alexnet():
    """AlexNet §4.1: 224x224 patches of the 256x256 image, every position possible, none outside."""
    w = _windows(256, 256, 256, 224, center_square=True)
    offset_y, offset_x, window, frame_y, frame_x = w.T
    assert (window == 224).all()
    assert offset_y.min() >= 0 and offset_y.max() <= 32 and offset_x.min() >= 0 and offset_x.max() <= 32
    assert offset_y.min() <= 1 and offset_y.max() >= 31  # both ends reachable
    np.testing.assert_array_equal(offset_y, frame_y)
    np.testing.assert_array_equal(offset_x, frame_x)


def test_random_crop_bounds_non_square_stays_in_central_square():
    # 300x400 stored image, rescaled to 256x341: the crop lies in the central 300x300 square.
    w = _windows(300, 400, 256, 224, center_square=True)
    offset_y, offset_x, window, frame_y, frame_x = w.T
    assert (window == int(np.floor(224 * 300 / 256 + 0.5))).all()
    assert offset_x.min() >= 50 and (offset_x + window).max() <= 350
    assert offset_y.min() >= 0 and (offset_y + window).max() <= 300
    assert frame_y.max() <= 32 and frame_x.max() <= 32


def test_center_crop_when_not_random():
    values = [int(v) for v in augment.crop_window(256, 256, 256, 224, _seed(0), True, random=False)]
    assert values == [16, 16, 224, 16, 16]


@pytest.mark.parametrize("encode", [tf.io.encode_jpeg, tf.io.encode_png])
def test_decode_window_equals_slice_of_full_decode(encode):
    y, x = np.mgrid[0:48, 0:40]
    noise = np.random.default_rng(2).normal(0, 3, (48, 40, 3))
    image = np.clip(np.stack([y * 4, x * 5, (x + y) * 3], -1) + noise, 0, 255).astype(np.uint8)
    encoded = encode(image)
    full = tf.io.decode_image(encoded, channels=3).numpy().astype(int)
    for i in range(6):

        def plan(height, width, i=i):
            return augment.crop_window(height, width, 40, 32, _seed(i), center_square=True)

        window, frame_y, frame_x = augment.decode_window(encoded, plan)
        offset_y, offset_x, side, _, _ = [int(v) for v in plan(48, 40)]
        assert side == 32 and window.shape == (32, 32, 3)
        assert (int(frame_y), int(frame_x)) == (offset_y - 4, offset_x)
        expected = full[offset_y : offset_y + 32, offset_x : offset_x + 32]
        got = window.numpy().astype(int)
        # libjpeg-turbo's cropped decode upsamples chroma at the window's right edge from the window
        # alone: that column may differ by a few levels; everything else is bit-identical.
        np.testing.assert_array_equal(got[:, :-1], expected[:, :-1])
        assert np.abs(got[:, -1] - expected[:, -1]).max() <= 4


def test_flip_coin():
    coins = [bool(augment.flip_coin(_seed(i))) for i in range(200)]
    assert 70 < sum(coins) < 130  # probability 1/2
    assert coins == [bool(augment.flip_coin(_seed(i))) for i in range(200)]  # a function of the seed


def test_scale_jitter_range():
    """VGG §3.1: S ~ U[256, 512] per image (integers, both ends), window = 224·min(H, W)/S."""
    scales = np.array([int(augment.sample_scale((256, 512), _seed(i))) for i in range(600)])
    assert scales.min() >= 256 and scales.max() <= 512
    assert scales.min() < 266 and scales.max() > 502 and len(set(scales)) > 150
    assert int(augment.sample_scale(384, _seed(0))) == 384
    for scale in (256, 300, 512):
        for i in range(20):
            offset_y, offset_x, window, frame_y, frame_x = [
                int(v) for v in augment.crop_window(400, 500, scale, 224, _seed(i), center_square=False)
            ]
            assert window == int(np.floor(224 * 400 / scale + 0.5))
            assert 0 <= offset_y <= 400 - window and 0 <= offset_x <= 500 - window
            resized_height, resized_width = round(400 * scale / 400), round(500 * scale / 400)
            assert 0 <= frame_y <= resized_height - 224 and 0 <= frame_x <= resized_width - 224


def test_scale_jitter_window_matches_rescale_then_crop():
    """The decoded window resized to 224 is the crop of the whole image rescaled to S (VGG §3.1)."""
    y, x = np.mgrid[0:300, 0:360].astype(np.float32)
    image = np.stack([y * 0.5, x * 0.4, (y + x) * 0.2], -1)  # smooth ramps
    for scale in (256, 384, 480):
        offset_y, offset_x, window, frame_y, frame_x = [
            int(v) for v in augment.crop_window(300, 360, scale, 224, _seed(scale), center_square=False)
        ]
        crop = augment.resize_window(image[offset_y : offset_y + window, offset_x : offset_x + window], 224).numpy()
        whole = eval_crops.resize_shorter_side(image, scale).numpy()
        reference = whole[frame_y : frame_y + 224, frame_x : frame_x + 224]
        # Same field of view up to the window's rounding to whole pixels (< 1 stored pixel).
        assert np.abs(crop - reference).max() < 1.0
