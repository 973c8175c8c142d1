"""Weight import into VGG D/E (VGG §2.1): from keras.applications and from torchvision-style state dicts.

Transfers from randomly initialized reference models and compares outputs; nothing is downloaded.
"""

import numpy as np
import pytest

import keras

from keras_alexnet.errors import UserError
from keras_alexnet.registry import build_model
from keras_alexnet.vgg import CONFIGS
from keras_alexnet.weight_import import from_keras_applications, from_torchvision_state_dict


def test_from_keras_applications_vgg16_full_size():
    source = keras.applications.VGG16(weights=None, classes=10, classifier_activation=None)
    target = build_model("vgg_d", num_classes=10, classifier_activation=None)
    try:
        loaded = from_keras_applications(target, source)
        assert loaded[0] == "conv1_1" and loaded[-3:] == ["fc6", "fc7", "fc8"] and len(loaded) == 16
        x = np.random.default_rng(0).uniform(-120, 120, size=(1, 224, 224, 3)).astype("float32")
        want = keras.ops.convert_to_numpy(source(x))
        assert np.ptp(want) > 1e-3
        np.testing.assert_allclose(keras.ops.convert_to_numpy(target(x)), want, rtol=1e-4, atol=1e-4)
    finally:
        del source, target
        keras.backend.clear_session()


def test_from_keras_applications_vgg19_convolutions():
    # The FC mapping is the VGG16 test's; here the 16 conv layers of E, compared at pool5 on a small input.
    source = keras.applications.VGG19(weights=None, include_top=False, input_shape=(64, 64, 3))
    target = build_model("vgg_e", num_classes=10, input_shape=(64, 64, 3))
    loaded = from_keras_applications(target, source)
    assert len(loaded) == 16 and loaded[-1] == "conv5_4"
    features = keras.Model(target.input, target.get_layer("pool5").output)
    x = np.random.default_rng(0).uniform(-120, 120, size=(2, 64, 64, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(source(x))
    assert np.ptp(want) > 1e-3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(features(x)), want, rtol=1e-4, atol=1e-4)


def test_keras_applications_mismatch_is_one_line():
    source = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    target = build_model("vgg_d", num_classes=10, input_shape=(32, 32, 3))
    with pytest.raises(UserError, match="VGG16 loads into vgg_d"):
        from_keras_applications(target, source)
    no_top = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert "fc6" not in from_keras_applications(target, no_top)


def torch_vgg(torch, config, width, num_classes, pool_side):
    """A torchvision-style VGG (same module indices: features.N, avgpool, classifier.0/3/6)."""
    nn = torch.nn
    layers, channels = [], 3
    for entry in CONFIGS[config]:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            filters, kernel = max(1, round(entry[0] * width)), entry[1]
            layers += [nn.Conv2d(channels, filters, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
            channels = filters
    fc = max(1, round(4096 * width))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((pool_side, pool_side))
            self.classifier = nn.Sequential(
                nn.Linear(channels * pool_side * pool_side, fc), nn.ReLU(True), nn.Dropout(),
                nn.Linear(fc, fc), nn.ReLU(True), nn.Dropout(), nn.Linear(fc, num_classes),
            )

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG().eval()


@pytest.mark.parametrize("config", ["D", "C", "A"])
def test_from_torchvision_state_dict(config):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    width, size = 0.125, 96  # pool5 is 3x3: the NCHW -> NHWC flatten order of fc6 matters
    source = torch_vgg(torch, config, width, num_classes=5, pool_side=3)
    target = build_model(f"vgg_{config.lower()}", num_classes=5, input_shape=(size, size, 3), width=width,
                         classifier_activation=None)
    loaded = from_torchvision_state_dict(target, source.state_dict())
    assert loaded[-3:] == ["fc6", "fc7", "fc8"]
    x = np.random.default_rng(0).normal(0, 1, size=(2, size, size, 3)).astype("float32")
    with torch.no_grad():
        want = source(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target(x)), want, rtol=1e-4, atol=1e-5)


def test_torchvision_refusals():
    torch = pytest.importorskip("torch")
    source = torch_vgg(torch, "A", 0.125, num_classes=5, pool_side=3)
    wrong_size = build_model("vgg_a", num_classes=5, input_shape=(64, 64, 3), width=0.125)
    with pytest.raises(UserError, match="classifier.0 takes"):
        from_torchvision_state_dict(wrong_size, source.state_dict())
    with pytest.raises(UserError, match="conv layers"):
        from_torchvision_state_dict(build_model("vgg_b", num_classes=5, input_shape=(96, 96, 3), width=0.125),
                                    source.state_dict())
    state = dict(source.state_dict(), **{"features.1.running_mean": torch.zeros(8)})
    with pytest.raises(UserError, match="batch-norm"):
        from_torchvision_state_dict(wrong_size, state)
    ten_classes = build_model("vgg_a", num_classes=10, input_shape=(96, 96, 3), width=0.125)
    assert "fc8" not in from_torchvision_state_dict(ten_classes, source.state_dict(), include_classifier=False)


def test_files_users_have(tmp_path):
    # A Keras VGG16 weight file (here: written from a random model) through keras_applications_source.
    from keras_alexnet.weight_import import keras_applications_source, load_torchvision_file

    reference = keras.applications.VGG16(weights=None, include_top=False)
    reference.save_weights(tmp_path / "vgg16_notop.weights.h5")
    source = keras_applications_source("D", str(tmp_path / "vgg16_notop.weights.h5"), include_top=False)
    np.testing.assert_array_equal(source.get_layer("block5_conv3").get_weights()[0],
                                  reference.get_layer("block5_conv3").get_weights()[0])
    with pytest.raises(UserError, match="configurations D and E"):
        keras_applications_source("B", str(tmp_path / "vgg16_notop.weights.h5"))
    with pytest.raises(UserError, match="missing.h5"):
        keras_applications_source("E", str(tmp_path / "missing.h5"))

    torch = pytest.importorskip("torch")
    model = torch_vgg(torch, "A", 0.125, num_classes=5, pool_side=3)
    torch.save(model.state_dict(), tmp_path / "vgg11.pth")
    target = build_model("vgg_a", num_classes=5, input_shape=(96, 96, 3), width=0.125)
    assert load_torchvision_file(target, str(tmp_path / "vgg11.pth"))[-1] == "fc8"
    np.testing.assert_allclose(target.get_layer("fc7").kernel.numpy(),
                               model.classifier[3].weight.detach().numpy().T)
    (tmp_path / "broken.pth").write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="broken.pth"):
        load_torchvision_file(target, str(tmp_path / "broken.pth"))
