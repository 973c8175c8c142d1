"""PaperSGD against a NumPy transcription of AlexNet §5's update rule."""

import numpy as np
import pytest

import keras

from keras_alexnet.training.optimizer import PaperSGD


def numpy_rule(w, grads, lr, momentum, decay):
    """v ← μ·v − λ·ε·w − ε·g;  w ← w + v  (AlexNet §5), step by step."""
    v = np.zeros_like(w)
    for g in grads:
        v = momentum * v - decay * lr * w - lr * g
        w = w + v
    return w


@pytest.mark.parametrize("decay_biases", [True, False])
def test_matches_numpy_rule_over_steps(decay_biases):
    rng = np.random.default_rng(0)
    kernel0 = rng.normal(size=(3, 4)).astype("float32")
    bias0 = rng.normal(size=(4,)).astype("float32")
    grads = [(rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32"))
             for _ in range(6)]
    kernel = keras.Variable(kernel0, name="kernel")
    bias = keras.Variable(bias0, name="bias")
    opt = PaperSGD(learning_rate=0.1, momentum=0.9, decay=0.05, decay_biases=decay_biases)
    for gk, gb in grads:
        opt.apply_gradients([(gk, kernel), (gb, bias)])
    np.testing.assert_allclose(kernel.numpy(), numpy_rule(kernel0, [g[0] for g in grads], 0.1, 0.9, 0.05),
                               rtol=1e-5, atol=1e-6)
    bias_decay = 0.05 if decay_biases else 0.0
    np.testing.assert_allclose(bias.numpy(), numpy_rule(bias0, [g[1] for g in grads], 0.1, 0.9, bias_decay),
                               rtol=1e-5, atol=1e-6)


def test_keras_decoupled_decay_differs_and_l2_matches():
    """Keras' SGD(weight_decay) is not the rule; SGD on loss + 2.5e-4·Σw² is."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(5,)).astype("float32")
    grads = [rng.normal(size=(5,)).astype("float32") for _ in range(5)]
    expected = numpy_rule(w0, grads, 0.01, 0.9, 5e-4)

    def run(opt, l2=0.0):
        w = keras.Variable(w0)
        for g in grads:
            opt.apply_gradients([(g + 2 * l2 * w.numpy(), w)])
        return w.numpy()

    np.testing.assert_allclose(run(PaperSGD()), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run(keras.optimizers.SGD(0.01, momentum=0.9), l2=2.5e-4), expected,
                               rtol=1e-6, atol=1e-7)
    decoupled = run(keras.optimizers.SGD(0.01, momentum=0.9, weight_decay=5e-4))
    assert not np.allclose(decoupled, expected, rtol=1e-7, atol=1e-9)


def test_learning_rate_is_assignable_and_config_round_trips():
    opt = PaperSGD(learning_rate=0.01, decay_biases=False)
    opt.learning_rate = 0.001
    assert abs(float(opt.learning_rate) - 0.001) < 1e-9
    clone = PaperSGD.from_config(opt.get_config())
    assert clone.momentum == 0.9 and clone.decay == 5e-4 and clone.decay_biases is False
