"""torchvision's ``alexnet`` (Krizhevsky 2014's one-tower net) as ``alexnet_torchvision``: its state dict
loaded with torchvision's normalisation folded into conv1 gives the probabilities of a NumPy transcription
of torchvision's forward on torchvision's preprocessing (resize 256, centre crop 224, /255, normalise),
on real photos. The state dict has torchvision's keys and real shapes, random values; PyTorch itself (an
optional reference) is used only when installed."""

import os

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import keras

from keras_alexnet import runs
from keras_alexnet.alexnet_torchvision import AdaptiveAveragePooling2D
from keras_alexnet.cli import import_weights
from keras_alexnet.errors import UserError
from keras_alexnet.registry import build_model
from keras_alexnet.weight_import import TORCHVISION_MEAN, TORCHVISION_STD, from_torchvision_state_dict
from tests.real_photos import PHOTOS, square_frame

# torchvision.models.AlexNet: features.N conv (out, in, kernel, stride, padding), classifier.N Linear.
FEATURES = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1), 8: (256, 384, 3, 1, 1),
            10: (256, 256, 3, 1, 1)}
POOLED_AFTER = (0, 3, 10)
CLASSIFIER = {1: (4096, 256 * 6 * 6), 4: (4096, 4096), 6: (1000, 4096)}


def state_dict(seed=0, fc8_scale=2.0):
    """torchvision's alexnet state dict keys and shapes, He-normal weights (fc8 scaled: a peaked softmax)."""
    rng = np.random.default_rng(seed)
    values = {}
    for index, (out, cin, kernel, _, _) in FEATURES.items():
        values[f"features.{index}.weight"] = rng.standard_normal((out, cin, kernel, kernel), np.float32) * np.float32(
            np.sqrt(2.0 / (cin * kernel * kernel)))
        values[f"features.{index}.bias"] = rng.normal(0, 0.01, out).astype(np.float32)
    for index, (out, cin) in CLASSIFIER.items():
        scale = np.sqrt(2.0 / cin) * (fc8_scale if index == 6 else 1.0)
        values[f"classifier.{index}.weight"] = rng.standard_normal((out, cin), np.float32) * np.float32(scale)
        values[f"classifier.{index}.bias"] = rng.normal(0, 0.01, out).astype(np.float32)
    return values


def adaptive_avg_pool(x, out=6):
    """PyTorch's AdaptiveAvgPool2d on (C, H, W): cell (i, j) averages rows floor(i·H/out) .. ceil((i+1)·H/out)
    - 1 and the same columns (aten/src/ATen/native/AdaptiveAveragePooling.cpp's start_index/end_index)."""
    _, height, width = x.shape
    result = np.zeros((x.shape[0], out, out))
    for i in range(out):
        r0, r1 = (i * height) // out, -(-((i + 1) * height) // out)
        for j in range(out):
            c0, c1 = (j * width) // out, -(-((j + 1) * width) // out)
            result[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return result


def torchvision_forward(values, image):
    """torchvision's AlexNet.forward (eval mode) in float64 NumPy on one normalised (3, H, W) image; softmax."""
    x = image.astype(np.float64)
    for index, (_, _, kernel, stride, padding) in FEATURES.items():
        weight, bias = values[f"features.{index}.weight"].astype(np.float64), values[f"features.{index}.bias"]
        padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
        windows = sliding_window_view(padded, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]
        x = np.maximum(np.einsum("chwij,ocij->ohw", windows, weight, optimize=True) + bias[:, None, None], 0)
        if index in POOLED_AFTER:  # MaxPool2d(kernel_size=3, stride=2), floor mode
            x = sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))
    x = adaptive_avg_pool(x).reshape(-1)  # torch.flatten(x, 1): (c, h, w) order
    for index in (1, 4, 6):  # Dropout (identity in eval) comes before classifier.1 and .4
        x = values[f"classifier.{index}.weight"].astype(np.float64) @ x + values[f"classifier.{index}.bias"]
        if index != 6:
            x = np.maximum(x, 0)
    e = np.exp(x - x.max())
    return e / e.sum()


def framed(size=256):
    """The photos as size x size frames (central square resized), uint8 RGB: torchvision's Resize(256) keeps
    them as they are, and so does this project's framing."""
    frames = []
    for name in PHOTOS:
        frames.append(np.asarray(square_frame(name, size)))
    return np.stack(frames)


def torchvision_preprocess(frame, crop):
    """CenterCrop(crop), ToTensor (/255), Normalize(mean, std): (3, crop, crop)."""
    offset = int(round((frame.shape[0] - crop) / 2.0))
    x = frame[offset:offset + crop, offset:offset + crop] / 255.0
    return ((x - np.array(TORCHVISION_MEAN)) / np.array(TORCHVISION_STD)).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def source():
    return state_dict()


@pytest.mark.parametrize("side", [224, 163])
def test_state_dict_gives_torchvision_probabilities(source, side):
    """At 224 (the adaptive pooling is the identity), through this project's preprocessing of the 256
    frame; at 163 (pool5 4x4 -> 6x6 overlapping bins) on the crops directly."""
    frames = framed(256 if side == 224 else side + 32)
    want = np.stack([torchvision_forward(source, torchvision_preprocess(f, side)) for f in frames])
    assert (want.max(axis=1) > 0.3).sum() >= 4 and len(set(want.argmax(axis=1))) >= 2
    model = build_model("alexnet_torchvision", input_shape=(side, side, 3))
    result = from_torchvision_state_dict(model, source)
    assert result.loaded == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert model.count_params() == 61_100_840  # torchvision's alexnet
    offset = (frames.shape[1] - side) // 2
    if side == 224:
        import tensorflow as tf

        from keras_alexnet import export

        preprocess = export.make_preprocess(mean=result.mean_rgb, image_size=224, resize_size=256)
        crops = tf.concat([preprocess(tf.io.encode_png(f)) for f in frames], axis=0)
    else:
        crops = frames[:, offset:offset + side, offset:offset + side].astype(np.float32) - result.mean_rgb
    got = keras.ops.convert_to_numpy(model(crops))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    keras.backend.clear_session()


@pytest.mark.parametrize("side", [13, 6, 5, 4])
def test_adaptive_average_pooling_is_torchvisions(side):
    x = np.random.default_rng(side).normal(size=(2, side, side + 3, 4)).astype(np.float32)
    got = keras.ops.convert_to_numpy(AdaptiveAveragePooling2D(6)(x))
    want = np.stack([adaptive_avg_pool(image.transpose(2, 0, 1)).transpose(1, 2, 0) for image in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_layers_in_torchvisions_order():
    model = build_model("alexnet_torchvision", num_classes=10, input_shape=(67, 67, 3), width=0.125)
    names = [layer.name for layer in model.layers]
    assert names[names.index("avgpool"):] == ["avgpool", "flatten", "drop6", "fc6", "drop7", "fc7", "fc8", "softmax"]
    assert [n for n in names if n.startswith(("conv", "pool"))] == [
        "conv1_pad", "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
    assert not any(n.startswith("lrn") for n in names)


def test_state_dict_of_another_architecture_is_one_line():
    """A VGG11 state dict (torchvision's keys, a small width) given as torchvision's alexnet."""
    vgg = {}
    for index in (0, 3, 6, 8, 11, 13, 16, 18):
        vgg[f"features.{index}.weight"] = np.zeros((8, 3 if index == 0 else 8, 3, 3), np.float32)
        vgg[f"features.{index}.bias"] = np.zeros(8, np.float32)
    for index, shape in ((0, (16, 8 * 49)), (3, (16, 16)), (6, (1000, 16))):
        vgg[f"classifier.{index}.weight"] = np.zeros(shape, np.float32)
        vgg[f"classifier.{index}.bias"] = np.zeros(shape[0], np.float32)
    model = build_model("alexnet_torchvision", num_classes=1000, input_shape=(67, 67, 3), width=0.125)
    with pytest.raises(UserError) as error:
        from_torchvision_state_dict(model, vgg)
    assert str(error.value) == "the state dict has 8 conv layers but alexnet_torchvision has 5"


def test_pth_file_through_import_weights(tmp_path, source):
    """The .pth file torch.save writes, through the command's function (needs PyTorch to read it)."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch)")
    path = str(tmp_path / "alexnet.pth")
    torch.save({key: torch.from_numpy(value) for key, value in source.items()}, path)
    record = import_weights.import_run(path, "alexnet_torchvision", str(tmp_path / "run"))
    assert (record.architecture, record.image_size, record.test_scale, record.mean) == ("alexnet_torchvision", 224, 256, "rgb")
    assert runs.model_config_of(record)["architecture"] == "alexnet_torchvision"
    vgg = str(tmp_path / "vgg.pth")
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, vgg)
    with pytest.raises(UserError, match="vgg.pth: the state dict has 1 conv layers but alexnet_torchvision has 5"):
        import_weights.import_run(vgg, "alexnet_torchvision", str(tmp_path / "vgg_run"))
    assert not os.path.exists(tmp_path / "vgg_run" / runs.RUN_FILE)


def test_numpy_transcription_and_import_match_a_pytorch_module(source):
    """The reference itself checked against PyTorch (optional): a module with torchvision's AlexNet layers and
    state-dict keys, in eval mode, on torchvision's preprocessing; the imported model within 1e-5 of it."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
    nn = torch.nn
    features = []
    for index in range(13):
        if index in FEATURES:
            out, cin, kernel, stride, padding = FEATURES[index]
            features.append(nn.Conv2d(cin, out, kernel, stride, padding))
        elif index - 2 in POOLED_AFTER:
            features.append(nn.MaxPool2d(3, 2))
        else:
            features.append(nn.ReLU())
    net = nn.Module()
    net.features = nn.Sequential(*features)
    net.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    net.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
                                   nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))
    net.load_state_dict({key: torch.from_numpy(value) for key, value in source.items()})
    net.eval()
    frames = framed(256)
    batch = torch.from_numpy(np.stack([torchvision_preprocess(f, 224) for f in frames]).astype(np.float32))
    with torch.no_grad():
        x = net.avgpool(net.features(batch))
        want = torch.softmax(net.classifier(torch.flatten(x, 1)), dim=1).numpy()
    numpy_reference = np.stack([torchvision_forward(source, torchvision_preprocess(f, 224)) for f in frames])
    np.testing.assert_allclose(numpy_reference, want, atol=1e-5)
    model = build_model("alexnet_torchvision", input_shape=(224, 224, 3))
    mean = from_torchvision_state_dict(model, source).mean_rgb
    crops = frames[:, 16:240, 16:240].astype(np.float32) - mean
    np.testing.assert_allclose(model.predict(crops, verbose=0), want, atol=1e-5)
