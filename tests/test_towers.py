"""Split-channel tower convolution (AlexNet §3.2): equals a grouped/dense reference; device placement."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras
import tensorflow as tf

from keras_alexnet.towers import TowerConv2D, resolve_tower_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def layer_and_input():
    layer = TowerConv2D(8, 3, padding="same", groups=2, activation="relu", bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 6)).astype("float32")
    layer(x)
    return layer, x


def test_equals_block_diagonal_dense_convolution(layer_and_input):
    # The reference: one ordinary convolution over all 6 inputs whose kernel is zero between towers.
    layer, x = layer_and_input
    kernel = np.zeros((3, 3, 6, 8), np.float32)
    bias = np.zeros(8, np.float32)
    for i, tower in enumerate(layer.towers):
        kernel[:, :, 3 * i : 3 * i + 3, 4 * i : 4 * i + 4] = tower.kernel.numpy()
        bias[4 * i : 4 * i + 4] = tower.bias.numpy()
    want = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
    np.testing.assert_allclose(layer(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_equals_keras_grouped_convolution(layer_and_input):
    layer, x = layer_and_input
    grouped = keras.layers.Conv2D(8, 3, padding="same", groups=2, activation="relu")
    grouped(x)
    grouped.set_weights([layer.grouped_kernel().numpy(), np.concatenate([t.bias.numpy() for t in layer.towers])])
    np.testing.assert_allclose(layer(x).numpy(), grouped(x).numpy(), rtol=1e-5, atol=1e-5)
    # And back: a grouped kernel loads into the towers.
    other = TowerConv2D(8, 3, padding="same", groups=2, activation="relu")
    other(x)
    other.set_grouped_weights(*grouped.get_weights())
    np.testing.assert_allclose(other(x).numpy(), grouped(x).numpy(), rtol=1e-5, atol=1e-5)


def test_strided_valid_and_config_round_trip():
    layer = TowerConv2D(4, 5, strides=2, padding="valid", groups=2, tower_devices=["/CPU:0", "/CPU:0"], name="c")
    out = layer(np.ones((1, 11, 11, 4), np.float32))
    assert out.shape == (1, 4, 4, 4) and layer.compute_output_shape((1, 11, 11, 4)) == (1, 4, 4, 4)
    clone = TowerConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_bad_settings():
    with pytest.raises(ValueError, match="equal towers"):
        TowerConv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="2 device"):
        TowerConv2D(4, 3, tower_devices=["/CPU:0"])
    with pytest.raises(ValueError, match="cannot be split"):
        TowerConv2D(4, 3)(np.ones((1, 5, 5, 3), np.float32))
    assert resolve_tower_devices(None) is None
    # No GPUs here: "auto" means no placement.
    if len(tf.config.list_logical_devices("GPU")) < 2:
        assert resolve_tower_devices("auto") is None
    assert resolve_tower_devices(["/GPU:0", "/GPU:1"]) == ["/GPU:0", "/GPU:1"]


PLACEMENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_alexnet.registry import build_model

    model = build_model("alexnet", num_classes=4, input_shape=(63, 63, 3), width=0.0625,
                        tower_devices=["/CPU:0", "/CPU:1"])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    x = tf.random.normal([2, 63, 63, 3])
    y = tf.constant([0, 3])
    graph = train_step.get_concrete_function(x, y).graph
    loss = float(train_step(x, y))
    convs = [(op.name, op.device) for op in graph.get_operations() if op.type == "Conv2D"]

    # "auto" with two (pretend) GPUs places the towers, except inside a multi-replica strategy.
    from keras_alexnet import towers
    real_list = tf.config.list_logical_devices
    tf.config.list_logical_devices = lambda kind=None: ["gpu0", "gpu1"] if kind == "GPU" else real_list(kind)
    strategy = tf.distribute.MirroredStrategy(["/CPU:0", "/CPU:1"])
    auto_outside = towers.resolve_tower_devices("auto")
    auto_in_replica = strategy.experimental_local_results(
        strategy.run(lambda: tf.constant(towers.resolve_tower_devices("auto") is None)))
    tf.config.list_logical_devices = real_list
    print(json.dumps({"convs": convs, "loss": loss, "auto_outside": auto_outside,
                      "auto_in_replica": [bool(v) for v in auto_in_replica],
                      "devices": [d.name for d in tf.config.list_logical_devices("CPU")]}))
    """
)


def test_towers_placed_on_two_logical_devices():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", PLACEMENT_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["devices"]) == 2 and np.isfinite(report["loss"])
    assert report["auto_outside"] == ["/GPU:0", "/GPU:1"] and report["auto_in_replica"] == [True, True]
    # Op names carry Keras' uniquified scopes, e.g. "alexnet_1/conv2_1/tower_0_1/convolution".
    towers = {}
    for name, device in report["convs"]:
        match = re.search(r"/(conv[245])(?:_\d+)?/tower_(\d)(?:_\d+)?/", name)
        if match:
            towers[(match.group(1), int(match.group(2)))] = device
    assert set(towers) == {(layer, i) for layer in ("conv2", "conv4", "conv5") for i in (0, 1)}, report["convs"]
    for (layer, i), device in towers.items():
        assert device.endswith(f"CPU:{i}"), (layer, i, device)
    # conv1 and conv3 connect to all maps and carry no tower placement.
    others = [device for name, device in report["convs"] if re.search(r"/conv[13](?:_\d+)?/", name)]
    assert others and all(device == "" for device in others)
