"""AlexNet (AlexNet §3.5): parameter count, feature-map sizes, variants, init, save/reload, mixed precision."""

import numpy as np
import pytest

import keras

from keras_alexnet.alexnet import build_alexnet, feature_map_sizes
from keras_alexnet.towers import TowerConv2D


def conv_params(k, cin, cout):
    return k * k * cin * cout + cout


def dense_params(cin, cout):
    return cin * cout + cout


@pytest.fixture(scope="module")
def alexnet():
    model = build_alexnet()
    yield model
    keras.backend.clear_session()


def test_parameter_count_is_the_papers(alexnet):
    # AlexNet §3.5 / Fig. 2, written out layer by layer: conv2/4/5 see only their tower's half.
    expected = (
        conv_params(11, 3, 96) + conv_params(5, 48, 256) + conv_params(3, 256, 384)
        + conv_params(3, 192, 384) + conv_params(3, 192, 256)
        + dense_params(6 * 6 * 256, 4096) + dense_params(4096, 4096) + dense_params(4096, 1000)
    )
    assert expected == 60_965_224
    assert alexnet.count_params() == 60_965_224


def test_feature_map_sizes(alexnet):
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in alexnet.layers}
    assert shapes["conv1"] == (55, 55, 96)
    assert shapes["lrn1"] == (55, 55, 96)
    assert shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256)
    assert shapes["pool2"] == (13, 13, 256)
    assert shapes["conv3"] == (13, 13, 384)
    assert shapes["conv4"] == (13, 13, 384)
    assert shapes["conv5"] == (13, 13, 256)
    assert shapes["pool5"] == (6, 6, 256)
    assert shapes["fc6"] == (4096,) and shapes["fc7"] == (4096,) and shapes["fc8"] == (1000,)
    # Fig. 2's neuron counts: 253,440 (conv1, 55x55x96 less the figure's rounding) ... 43,264 (conv5).
    assert np.prod(shapes["conv2"]) == 186_624 and np.prod(shapes["conv3"]) == 64_896
    assert np.prod(shapes["conv5"]) == 43_264
    assert feature_map_sizes(224) == {
        "conv1": 55, "pool1": 27, "conv2": 27, "pool2": 13, "conv3": 13, "conv4": 13, "conv5": 13, "pool5": 6
    }


def test_layer_names_and_output(alexnet):
    names = [layer.name for layer in alexnet.layers]
    assert names == [
        "image", "conv1_pad", "conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2", "conv3", "conv4", "conv5",
        "pool5", "flatten", "fc6", "drop6", "fc7", "drop7", "fc8", "softmax",
    ]
    assert all(isinstance(alexnet.get_layer(n), TowerConv2D) for n in ("conv2", "conv4", "conv5"))
    assert alexnet.get_layer("conv2").towers[0].kernel.shape == (5, 5, 48, 128)
    assert alexnet.get_layer("conv4").towers[1].kernel.shape == (3, 3, 192, 192)
    assert alexnet.get_layer("conv3").kernel.shape == (3, 3, 256, 384)
    assert alexnet.output.dtype == "float32"


def test_paper_initialization(alexnet):
    # AlexNet §5: N(0, 0.01) weights; biases 1 in conv2, conv4, conv5, fc6, fc7, 0 elsewhere.
    for name in ("conv1", "conv3", "fc8"):
        assert np.all(alexnet.get_layer(name).bias.numpy() == 0)
    for name in ("fc6", "fc7"):
        assert np.all(alexnet.get_layer(name).bias.numpy() == 1)
    for name in ("conv2", "conv4", "conv5"):
        for tower in alexnet.get_layer(name).towers:
            assert np.all(tower.bias.numpy() == 1)
    fc6 = alexnet.get_layer("fc6").kernel.numpy()
    assert abs(fc6.mean()) < 1e-4 and fc6.std() == pytest.approx(0.01, rel=0.01)
    t0, t1 = (t.kernel.numpy() for t in alexnet.get_layer("conv2").towers)
    assert not np.allclose(t0, t1)


def test_other_initializations():
    caffe = build_alexnet(num_classes=10, input_shape=(67, 67, 3), width=0.25, init="caffe")
    assert np.all(caffe.get_layer("fc6").bias.numpy() == pytest.approx(0.1))
    assert np.all(caffe.get_layer("conv1").bias.numpy() == 0)
    glorot = build_alexnet(num_classes=10, input_shape=(67, 67, 3), width=0.25, init="glorot")
    assert np.all(glorot.get_layer("fc6").bias.numpy() == 0)
    limit = np.sqrt(6 / sum(glorot.get_layer("fc7").kernel.shape))
    assert np.abs(glorot.get_layer("fc7").kernel.numpy()).max() <= limit


def test_one_tower_net():
    # AlexNet §3.2 footnote 2: half the kernels in conv1-conv4; conv5 and the FC layers full size.
    model = build_alexnet(towers=1)
    expected = (
        conv_params(11, 3, 48) + conv_params(5, 48, 128) + conv_params(3, 128, 192)
        + conv_params(3, 192, 192) + conv_params(3, 192, 256)
        + dense_params(9216, 4096) + dense_params(4096, 4096) + dense_params(4096, 1000)
    )
    assert model.count_params() == expected == 59_798_312
    assert not any(isinstance(layer, TowerConv2D) for layer in model.layers)
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)


def test_variants_small():
    # 63x63 gives odd maps (15, 7, 3, 1) like 224's (55, 27, 13, 6), so both poolings give equal sizes.
    base = dict(num_classes=10, input_shape=(63, 63, 3), width=0.25)
    no_lrn = build_alexnet(lrn=False, **base)
    assert "lrn1" not in [layer.name for layer in no_lrn.layers]
    non_overlapping = build_alexnet(pooling="non_overlapping", **base)
    assert non_overlapping.get_layer("pool1").pool_size == (2, 2)
    overlapping = build_alexnet(**base)
    for name in ("pool1", "pool2", "pool5"):  # §3.4: "produces output of equivalent dimensions"
        assert non_overlapping.get_layer(name).output.shape == overlapping.get_layer(name).output.shape
    extra = build_alexnet(extra_conv=True, **base)
    assert extra.get_layer("conv6").output.shape == extra.get_layer("pool5").output.shape
    assert extra.count_params() == overlapping.count_params() + conv_params(3, 64, 64)
    assert overlapping.get_layer("conv1").filters == 24 and overlapping.get_layer("fc6").units == 1024
    assert overlapping.get_layer("fc8").units == 10
    logits = build_alexnet(classifier_activation=None, **base)
    assert logits.layers[-1].name == "logits" and logits.output.dtype == "float32"


def test_small_input_refused():
    with pytest.raises(ValueError, match="at least 63"):
        build_alexnet(input_shape=(60, 60, 3))
    feature_map_sizes(63)


def test_forward_probabilities_and_keras_reload(tmp_path):
    model = build_alexnet(num_classes=7, input_shape=(67, 67, 3), width=0.125)
    x = np.random.default_rng(0).normal(0, 50, size=(2, 67, 67, 3)).astype("float32")
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    path = tmp_path / "alexnet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-6)
    assert reloaded.get_layer("conv2").get_config() == model.get_layer("conv2").get_config()
    weights = tmp_path / "alexnet.weights.h5"
    model.save_weights(weights)
    fresh = build_alexnet(num_classes=7, input_shape=(67, 67, 3), width=0.125)
    fresh.load_weights(weights)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-6)


def test_mixed_precision_builds_and_trains():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_alexnet(num_classes=5, input_shape=(67, 67, 3), width=0.125)
        assert model.get_layer("conv2").towers[0].compute_dtype == "float16"
        assert model.output.dtype == "float32"
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).normal(0, 50, size=(4, 67, 67, 3)).astype("float32")
        history = model.fit(x, np.arange(4) % 5, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


EXPORT_CHECK = """
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
x = np.load(sys.argv[2])
outputs = serve(tf.constant(x))
(probs,) = outputs.values()

graph_def = serve.graph.as_graph_def()
op_types = {node.op for node in graph_def.node}
for function in graph_def.library.function:
    op_types.update(node.op for node in function.node_def)
# A node may call a library function by name; every other op type must be one TF itself registers.
functions = {function.signature.name for function in graph_def.library.function}
unknown = sorted(op for op in op_types if op_def_registry.get(op) is None and op not in functions)
print(json.dumps({"probs": np.asarray(probs).tolist(), "ops": sorted(op_types), "unknown": unknown,
                  "project_importable": any("keras_alexnet" in m for m in sys.modules)}))
"""


def test_exports_savedmodel_with_core_ops_only(tmp_path):
    import json
    import subprocess
    import sys

    model = build_alexnet(num_classes=6, input_shape=(63, 63, 3), width=0.125, init="glorot")
    x = np.random.default_rng(3).normal(0, 50, size=(2, 63, 63, 3)).astype("float32")
    want = model.predict(x, verbose=0)
    export_dir = tmp_path / "alexnet_savedmodel"
    model.export(str(export_dir), format="tf_saved_model", verbose=False)
    np.save(tmp_path / "x.npy", x)
    # A fresh interpreter in isolated mode (-I: no PYTHONPATH, no script dir) run from an empty folder: the
    # SavedModel must load without any project code.
    result = subprocess.run(
        [sys.executable, "-I", "-c", EXPORT_CHECK, str(export_dir), str(tmp_path / "x.npy")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["unknown"] == [] and not report["project_importable"]
    assert "LRN" in report["ops"] and "Conv2D" in report["ops"]
    np.testing.assert_allclose(np.array(report["probs"]), want, rtol=1e-5, atol=1e-6)


def test_caffe_options_227_input_lrn_convention_and_position():
    """Caffe's bvlc_alexnet: 227 inputs with no conv1 padding give the paper's maps; Caffe's LRN is
    b = a / (1 + α/n Σ a²)^β (a NumPy transcription); CaffeNet's LRN follows the pooling."""
    assert feature_map_sizes(227, conv1_padding=0) == feature_map_sizes(224)
    model = build_alexnet(10, (227, 227, 3), width=0.125, conv1_padding=0, lrn_convention="caffe",
                          lrn_position="after_pool")
    names = [layer.name for layer in model.layers]
    assert "conv1_pad" not in names and names.index("pool1") < names.index("lrn1") < names.index("conv2")
    assert names.index("pool2") < names.index("lrn2") and model.get_layer("conv1").output.shape[1:3] == (55, 55)
    lrn = model.get_layer("lrn1")
    a = np.random.default_rng(0).uniform(0, 300, (2, 3, 3, 12)).astype(np.float32)
    padded = np.pad(a.astype(np.float64) ** 2, ((0, 0), (0, 0), (0, 0), (2, 2)))
    window = sum(padded[..., i:i + 12] for i in range(5))
    want = a / (1.0 + 1e-4 / 5 * window) ** 0.75
    np.testing.assert_allclose(keras.ops.convert_to_numpy(lrn(a)), want, rtol=1e-5)
    default = [layer.name for layer in build_alexnet(10, (67, 67, 3), width=0.125).layers]
    assert default.index("lrn1") < default.index("pool1")
