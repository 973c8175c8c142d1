"""VGG configurations (VGG §2, Table 1/2): parameter counts, feature maps, layer names, init, warm start."""

import numpy as np
import pytest

import keras

from keras_alexnet.vgg import CONFIGS, WARM_START_LAYERS, build_vgg, conv_layer_names, warm_start

# VGG Table 2, exact at 1000 classes.
PARAMS = {
    ("A", False): 132_863_336,
    ("A", True): 132_863_336,
    ("B", False): 133_047_848,
    ("C", False): 133_638_952,
    ("D", False): 138_357_544,
    ("E", False): 143_667_240,
}


def count_from_table(config, classes=1000):
    """Parameters written out from Table 1, independent of the builder."""
    total, channels = 0, 3
    for entry in CONFIGS[config]:
        if entry != "M":
            filters, kernel = entry
            total += kernel * kernel * channels * filters + filters
            channels = filters
    return total + (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * classes + classes)


@pytest.mark.parametrize("config, lrn", list(PARAMS))
def test_parameter_counts_and_feature_maps(config, lrn):
    model = build_vgg(config, lrn=lrn)
    try:
        assert model.count_params() == PARAMS[(config, lrn)] == count_from_table(config)
        sides = [model.get_layer(f"pool{i}").output.shape[1] for i in range(1, 6)]
        assert sides == [112, 56, 28, 14, 7]
        for name in conv_layer_names(config):
            layer = model.get_layer(name)
            assert layer.strides == (1, 1) and layer.padding == "same"
        assert model.get_layer("fc6").kernel.shape == (25088, 4096)
        assert ("lrn1" in [layer.name for layer in model.layers]) == lrn
        assert model.output.dtype == "float32" and model.layers[-1].name == "softmax"
    finally:
        del model
        keras.backend.clear_session()


def test_layer_names_and_configuration_c():
    model = build_vgg("C", num_classes=10, input_shape=(32, 32, 3), width=0.125)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["image", "conv1_1", "conv1_2", "pool1"]
    assert names[-7:] == ["flatten", "fc6", "drop6", "fc7", "drop7", "fc8", "softmax"]
    # Configuration C: the last conv of blocks 3-5 is 1x1.
    for name in ("conv3_3", "conv4_3", "conv5_3"):
        assert model.get_layer(name).kernel_size == (1, 1)
    assert model.get_layer("conv3_2").kernel_size == (3, 3)
    assert conv_layer_names("E")[-4:] == ["conv5_1", "conv5_2", "conv5_3", "conv5_4"]
    a_lrn = build_vgg("A", num_classes=10, input_shape=(32, 32, 3), width=0.125, lrn=True)
    assert [layer.name for layer in a_lrn.layers][1:4] == ["conv1_1", "lrn1", "pool1"]
    assert a_lrn.get_layer("lrn1").k == 2.0 and a_lrn.get_layer("lrn1").size == 5


def test_initializations():
    paper = build_vgg("A", num_classes=10, input_shape=(32, 32, 3), width=0.25, init="paper")
    kernel = paper.get_layer("conv3_1").kernel.numpy()
    assert kernel.std() == pytest.approx(0.01, rel=0.05)  # VGG §3.1, "10^-2" as the std (see initializers)
    assert all(np.all(layer.get_weights()[1] == 0) for layer in paper.layers if layer.get_weights())
    glorot = build_vgg("A", num_classes=10, input_shape=(32, 32, 3), width=0.25, init="glorot")
    fc7 = glorot.get_layer("fc7").kernel.numpy()
    assert np.abs(fc7).max() <= np.sqrt(6 / sum(fc7.shape))


def test_forward_and_warm_start():
    shape = dict(num_classes=6, input_shape=(64, 64, 3), width=0.125)
    net_a = build_vgg("A", **shape)
    net_d = build_vgg("D", **shape)
    before = {layer.name: layer.get_weights() for layer in net_d.layers}
    copied = warm_start(net_d, net_a)
    assert copied == list(WARM_START_LAYERS)
    for name in WARM_START_LAYERS:
        for got, want in zip(net_d.get_layer(name).get_weights(), net_a.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    for name in ("conv1_2", "conv2_2", "conv3_3", "conv5_3"):  # the rest stays random
        np.testing.assert_array_equal(net_d.get_layer(name).get_weights()[0], before[name][0])
    x = np.random.default_rng(0).normal(0, 50, size=(2, 64, 64, 3)).astype("float32")
    probs = net_d.predict(x, verbose=0)
    assert probs.shape == (2, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="fc6"):
        warm_start(build_vgg("B", num_classes=6, input_shape=(96, 96, 3), width=0.125), net_a)


def test_bad_arguments():
    with pytest.raises(ValueError, match="configuration"):
        build_vgg("F")
    with pytest.raises(ValueError, match="32x32"):
        build_vgg("A", input_shape=(16, 16, 3))
