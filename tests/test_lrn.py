"""LRN (AlexNet §3.3) against a NumPy transcription of the paper's formula, both α conventions."""

import numpy as np
import pytest

import keras
import tensorflow as tf

from keras_alexnet.lrn import LocalResponseNormalization, band_lrn


def lrn_reference(a, n=5, k=2.0, alpha=1e-4, beta=0.75, divide_alpha_by_n=False):
    """b^i = a^i / (k + α Σ_{j=max(0,i−n/2)}^{min(N−1,i+n/2)} (a^j)²)^β, literally, channel by channel."""
    a = np.asarray(a, dtype=np.float64)
    N = a.shape[-1]
    alpha = alpha / n if divide_alpha_by_n else alpha
    b = np.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        total = np.sum(a[..., lo : hi + 1] ** 2, axis=-1)
        b[..., i] = a[..., i] / (k + alpha * total) ** beta
    return b


@pytest.fixture
def activations():
    # Post-ReLU-like activities large enough that α·Σa² matters (as in real conv1 maps), 7 channels so
    # both edges and a full window are covered.
    rng = np.random.default_rng(0)
    return (rng.uniform(0.0, 60.0, size=(2, 3, 4, 7))).astype(np.float32)


@pytest.mark.parametrize("convention, divide", [("paper", False), ("cuda_convnet", True)])
def test_matches_numpy_at_paper_constants(activations, convention, divide):
    layer = LocalResponseNormalization(convention=convention)
    got = keras.ops.convert_to_numpy(layer(activations))
    want = lrn_reference(activations, divide_alpha_by_n=divide)
    np.testing.assert_allclose(got, want, rtol=2e-6)


@pytest.mark.parametrize("convention, divide", [("paper", False), ("cuda_convnet", True)])
def test_matches_numpy_with_large_alpha_and_edges(activations, convention, divide):
    # A large α makes the normalization strong, so a wrong window at the channel edges would show.
    layer = LocalResponseNormalization(size=5, k=1.0, alpha=0.01, beta=0.75, convention=convention)
    got = keras.ops.convert_to_numpy(layer(activations))
    want = lrn_reference(activations, n=5, k=1.0, alpha=0.01, divide_alpha_by_n=divide)
    np.testing.assert_allclose(got, want, rtol=2e-6)
    # The edge channels (0, 1, N-2, N-1) sum over fewer than n maps: check one of them independently.
    first = activations[..., 0] / (1.0 + 0.01 / (5 if divide else 1) * np.sum(activations[..., :3] ** 2, -1)) ** 0.75
    np.testing.assert_allclose(got[..., 0], first, rtol=2e-6)


def test_caffe_convention_is_alpha_over_n_with_k_1(activations):
    """Caffe's LRN layer: b = a / (k + α/n Σ a²)^β with Caffe's default k = 1."""
    layer = LocalResponseNormalization(convention="caffe")
    assert layer.k == 1.0 and layer.tf_alpha == pytest.approx(1e-4 / 5)
    want = lrn_reference(activations, k=1.0, divide_alpha_by_n=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(activations)), want, rtol=2e-6)
    assert LocalResponseNormalization(convention="paper").k == 2.0


def test_conventions_differ_by_n(activations):
    paper = LocalResponseNormalization(convention="paper")
    cuda = LocalResponseNormalization(convention="cuda_convnet", alpha=5e-4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(paper(activations)), keras.ops.convert_to_numpy(cuda(activations)), rtol=1e-6
    )
    assert paper.tf_alpha == pytest.approx(1e-4) and cuda.tf_alpha == pytest.approx(1e-4)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        LocalResponseNormalization(convention="caffe2")
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(size=4)


def test_config_round_trip():
    layer = LocalResponseNormalization(size=3, k=1.5, alpha=2e-4, beta=0.5, convention="cuda_convnet", name="lrn1")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, LocalResponseNormalization)
    assert clone.get_config() == layer.get_config()


def test_float32_is_the_core_lrn_op():
    layer = LocalResponseNormalization()
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec([None, 3, 4, 7], tf.float32)).graph
    assert [op.get_attr("T") for op in graph.get_operations() if op.type == "LRN"] == [tf.float32]


@pytest.mark.parametrize("policy, dtype, rtol", [("mixed_float16", tf.float16, 2e-3), ("mixed_bfloat16", tf.bfloat16, 1e-2)])
def test_mixed_precision_matches_numpy(activations, policy, dtype, rtol):
    # Under mixed precision the layer computes in float32 (band_lrn): only the input and output
    # roundings to the compute dtype (~2^-11 float16, ~2^-8 bfloat16) separate it from the reference.
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = LocalResponseNormalization(k=1.0, alpha=0.01)
        x = tf.cast(tf.constant(activations), dtype)
        out = layer(x)
        assert out.dtype == dtype
        rounded = np.asarray(tf.cast(x, tf.float32))
        np.testing.assert_allclose(np.asarray(tf.cast(out, tf.float32)),
                                   lrn_reference(rounded, k=1.0, alpha=0.01), rtol=rtol)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("beta", [0.75, 0.5])
def test_band_lrn_value_and_gradient_match_tf_op(activations, beta):
    # band_lrn's hand-written gradient against the gradient TF derives for its LRN op (LRNGrad), with a
    # large α so the cross-channel term of the gradient matters, edges included.
    x = tf.constant(activations)
    weights = tf.constant(np.random.default_rng(1).normal(size=activations.shape).astype(np.float32))

    def value_and_grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * weights)
        return y.numpy(), tape.gradient(loss, x).numpy()

    got_y, got_g = value_and_grad(lambda a: band_lrn(a, 2, 1.0, 0.01, beta))
    want_y, want_g = value_and_grad(lambda a: tf.nn.local_response_normalization(a, 2, 1.0, 0.01, beta))
    np.testing.assert_allclose(got_y, want_y, rtol=2e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-4, atol=1e-6 * np.abs(want_g).max())
    np.testing.assert_allclose(got_y, lrn_reference(activations, k=1.0, alpha=0.01, beta=beta), rtol=2e-6)
