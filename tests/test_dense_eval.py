"""Dense evaluation (VGG §3.2): the fully-convolutional net equals the original model and shares its weights."""

import numpy as np
import pytest

import keras

from keras_alexnet.dense_eval import to_fully_convolutional
from keras_alexnet.registry import build_model


def window_reference(model, images, fc_names=("fc6", "fc7", "fc8")):
    """Scores at every fc6 window position, computed with the original layers and a real Flatten + Dense."""
    x = images
    for layer in model.layers[1:]:
        if layer.name == "flatten":
            break
        x = layer(x)
    maps = keras.ops.convert_to_numpy(x)
    rows, cols = model.get_layer("flatten").input.shape[1:3]
    out = np.empty((maps.shape[0], maps.shape[1] - rows + 1, maps.shape[2] - cols + 1, model.output.shape[-1]))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            y = maps[:, i : i + rows, j : j + cols, :].reshape(maps.shape[0], -1)
            for name in fc_names:
                y = model.get_layer(name)(y)
            out[:, i, j] = keras.ops.convert_to_numpy(model.layers[-1](y))
    return out


@pytest.mark.parametrize(
    "name, size, big, expected_map",
    [("vgg_d", 64, 128, 3), ("alexnet", 67, 131, 3), ("vgg_a_lrn", 32, 64, 2)],
)
def test_equals_original_and_window_reference(name, size, big, expected_map):
    model = build_model(name, num_classes=7, input_shape=(size, size, 3), width=0.125, init="glorot")
    dense = to_fully_convolutional(model)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, size=(2, size, size, 3)).astype("float32")
    out = dense(x)
    assert out["score_map"].shape == (2, 1, 1, 7)
    np.testing.assert_allclose(out["scores"], model(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["score_map"][:, 0, 0], model(x), rtol=1e-5, atol=1e-6)

    big_x = rng.normal(0, 50, size=(1, big, big + 32, 3)).astype("float32")
    out = dense(big_x)
    score_map = keras.ops.convert_to_numpy(out["score_map"])
    assert score_map.shape[1] == expected_map and score_map.shape[2] > expected_map
    np.testing.assert_allclose(score_map, window_reference(model, big_x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["scores"], score_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(score_map.sum(-1), 1, atol=1e-5)


def test_full_size_vgg_fc6_becomes_7x7_and_alexnet_6x6():
    for name, window in (("vgg_a", (7, 7)), ("alexnet", (6, 6))):
        model = build_model(name, num_classes=10)
        dense = to_fully_convolutional(model)
        assert dense.get_layer("fc6_conv").window == window
        assert dense.get_layer("fc7_conv").window == (1, 1) and dense.get_layer("fc8_conv").window == (1, 1)
        # Shares, not copies: the FCN adds no parameters.
        assert dense.count_params() == model.count_params()
        del model, dense
        keras.backend.clear_session()


def test_shares_weights_and_logits():
    model = build_model("alexnet", num_classes=4, input_shape=(63, 63, 3), width=0.125, classifier_activation=None)
    dense = to_fully_convolutional(model)
    x = np.random.default_rng(1).normal(0, 50, size=(1, 63, 63, 3)).astype("float32")
    fc8 = model.get_layer("fc8")
    fc8.bias.assign(fc8.bias.numpy() + 3.0)
    np.testing.assert_allclose(dense(x)["scores"], model(x), rtol=1e-5, atol=1e-5)
    assert dense.output["scores"].dtype == "float32"


def test_refuses_non_chain_models():
    inputs = keras.Input((8,))
    a = keras.layers.Dense(2, name="a")(inputs)
    b = keras.layers.Dense(2, name="b")(inputs)
    with pytest.raises(ValueError, match="chain"):
        to_fully_convolutional(keras.Model(inputs, keras.layers.Add()([a, b])))


def test_keras_file_round_trip(tmp_path):
    model = build_model("vgg_a", num_classes=3, input_shape=(32, 32, 3), width=0.125, init="glorot")
    dense = to_fully_convolutional(model)
    dense.save(tmp_path / "dense.keras")
    reloaded = keras.saving.load_model(tmp_path / "dense.keras")
    x = np.random.default_rng(2).normal(0, 50, size=(2, 64, 80, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(dense(x)["score_map"])
    assert np.ptp(want) > 1e-3
    np.testing.assert_allclose(reloaded(x)["score_map"], want, rtol=1e-5, atol=1e-6)
