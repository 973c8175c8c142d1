"""Weight import into VGG D/E (VGG §2.1): from keras.applications and from torchvision-style state dicts.

Transfers from randomly initialized reference models and compares outputs; nothing is downloaded.
"""

import numpy as np
import pytest
from PIL import Image

import keras

from keras_alexnet.errors import UserError
from keras_alexnet.registry import build_model
from keras_alexnet.vgg import CONFIGS
from keras_alexnet.weight_import import (TORCHVISION_MEAN, TORCHVISION_STD, from_keras_applications,
                                         from_torchvision_state_dict)
from tests.real_photos import PHOTOS, photo


def photo_batch(size=224, names=PHOTOS[:3]):
    """Real photos, shorter side to `size` and centre-cropped (VGG §3.2's single scale), float32 0..255 RGB."""
    crops = []
    for name in names:
        image = Image.fromarray(photo(name))
        scale = size / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                             Image.BILINEAR)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        crops.append(np.asarray(image.crop((left, top, left + size, top + size)), np.float32))
    return np.stack(crops)


def sharpen(layer, factor=40.0):
    """Scales a random classifier layer so the 1000-way softmax is peaked (random init gives nearly uniform
    probabilities around 0.001, where a 1e-4 tolerance would say little)."""
    layer.set_weights([w * factor for w in layer.get_weights()])


def assert_same_predictions(got, want):
    """Top-5 class ids equal, probabilities within 1e-4 (float32 rounding)."""
    np.testing.assert_array_equal(np.argsort(-got, axis=1)[:, :5], np.argsort(-want, axis=1)[:, :5])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("application, architecture", [("VGG16", "vgg_d"), ("VGG19", "vgg_e")])
def test_from_keras_applications_full_size_on_real_photos(application, architecture):
    """The imported model on this project's preprocessing (RGB minus the recorded mean RGB) predicts what
    keras.applications predicts on its own preprocess_input (BGR minus the BGR ImageNet mean)."""
    module = {"VGG16": keras.applications.vgg16, "VGG19": keras.applications.vgg19}[application]
    keras.utils.set_random_seed(0)
    source = getattr(keras.applications, application)(weights=None)
    sharpen(source.get_layer("predictions"))
    target = build_model(architecture)
    try:
        result = from_keras_applications(target, source)
        assert result.loaded[0] == "conv1_1" and result.loaded[-3:] == ["fc6", "fc7", "fc8"]
        np.testing.assert_allclose(result.mean_rgb, [123.68, 116.779, 103.939], rtol=1e-6)
        photos = photo_batch()
        want = keras.ops.convert_to_numpy(source(module.preprocess_input(photos.copy())))
        assert want.max() > 0.05  # a peaked output: the tolerance means something
        got = keras.ops.convert_to_numpy(target(photos - result.mean_rgb))
        assert_same_predictions(got, want)
        # Without the channel reordering (what the import did before) the outputs differ.
        unordered = keras.ops.convert_to_numpy(target((photos - result.mean_rgb)[..., ::-1]))
        assert np.abs(unordered - want).max() > 1e-3
    finally:
        del source, target
        keras.backend.clear_session()


def test_keras_applications_mismatch_is_one_line():
    source = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    target = build_model("vgg_d", num_classes=10, input_shape=(32, 32, 3))
    with pytest.raises(UserError, match="VGG16 loads into vgg_d"):
        from_keras_applications(target, source)
    no_top = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert "fc6" not in from_keras_applications(target, no_top).loaded


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


def torch_predict(torch, source, photos, softmax=True):
    """torchvision's preprocessing (RGB in 0..1, normalised by its mean/std), NCHW, then the model."""
    mean, std = np.array(TORCHVISION_MEAN, np.float32), np.array(TORCHVISION_STD, np.float32)
    x = ((photos / 255.0 - mean) / std).astype(np.float32).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        out = source(torch.from_numpy(x))
        return (torch.softmax(out, dim=1) if softmax else out).numpy()


@pytest.mark.parametrize("config", ["D", "C", "A"])
def test_from_torchvision_state_dict(config):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
    torch.manual_seed(0)
    width, size = 0.125, 96  # pool5 is 3x3: the NCHW -> NHWC flatten order of fc6 matters
    source = torch_vgg(torch, config, width, num_classes=5, pool_side=3)
    target = build_model(f"vgg_{config.lower()}", num_classes=5, input_shape=(size, size, 3), width=width,
                         classifier_activation=None)
    result = from_torchvision_state_dict(target, source.state_dict())
    assert result.loaded[-3:] == ["fc6", "fc7", "fc8"]
    np.testing.assert_allclose(result.mean_rgb, 255 * np.array(TORCHVISION_MEAN), rtol=1e-6)
    photos = photo_batch(size)
    want = torch_predict(torch, source, photos, softmax=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target(photos - result.mean_rgb)), want, rtol=1e-4, atol=1e-4)


def test_from_torchvision_full_size_vgg16_on_real_photos():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
    torch.manual_seed(0)
    source = torch_vgg(torch, "D", 1.0, num_classes=1000, pool_side=7)
    for module in source.modules():  # torchvision's VGG initialisation (PyTorch's default fades with depth)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, 0, 0.01)
            torch.nn.init.zeros_(module.bias)
    with torch.no_grad():
        source.classifier[6].weight.mul_(40.0)  # a peaked softmax, as `sharpen`
    target = build_model("vgg_d")
    try:
        result = from_torchvision_state_dict(target, source.state_dict())
        photos = photo_batch()
        want = torch_predict(torch, source, photos)
        assert want.max() > 0.05
        assert_same_predictions(keras.ops.convert_to_numpy(target(photos - result.mean_rgb)), want)
    finally:
        del source, target
        keras.backend.clear_session()


def test_torchvision_refusals():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
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
    assert "fc8" not in from_torchvision_state_dict(ten_classes, source.state_dict(), include_classifier=False).loaded
    with pytest.raises(UserError, match="no classifier.6.weight"):
        from_torchvision_state_dict(ten_classes, {k: v for k, v in source.state_dict().items() if k != "classifier.6.weight"})
    with pytest.raises(UserError, match="not a state dict"):
        from_torchvision_state_dict(ten_classes, source)


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

    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
    model = torch_vgg(torch, "A", 0.125, num_classes=5, pool_side=3)
    torch.save(model.state_dict(), tmp_path / "vgg11.pth")
    target = build_model("vgg_a", num_classes=5, input_shape=(96, 96, 3), width=0.125)
    assert load_torchvision_file(target, str(tmp_path / "vgg11.pth")).loaded[-1] == "fc8"
    np.testing.assert_allclose(target.get_layer("fc7").kernel.numpy(),
                               model.classifier[3].weight.detach().numpy().T)
    (tmp_path / "broken.pth").write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="broken.pth"):
        load_torchvision_file(target, str(tmp_path / "broken.pth"))
