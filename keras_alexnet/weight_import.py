"""Pretrained weights users already have, loaded into this project's models (VGG §2, configurations D and E;
torchvision's AlexNet, ``alexnet_torchvision``; Caffe's AlexNet is `keras_alexnet.caffe_import`).

Two sources:

- Keras' own ``keras.applications.VGG16`` / ``VGG19`` (weights in Keras' HDF5 files): configurations D and
  E have the same layers in the same order and the same NHWC flatten before the first FC layer, so
  `from_keras_applications` copies them one to one (``block1_conv1`` -> ``conv1_1``, ``fc1`` -> ``fc6``,
  ``fc2`` -> ``fc7``, ``predictions`` -> ``fc8``).
- torchvision's ``vgg11/13/16/19`` and ``alexnet`` state dicts (``features.N.weight``, and
  ``classifier.0/3/6.weight`` for VGG, ``classifier.1/4/6.weight`` for AlexNet, whose dropout comes
  first): `from_torchvision_state_dict` transposes the conv kernels from (out, in, kh, kw) to Keras'
  (kh, kw, in, out), and reorders fc6's input axis, which torchvision flattens from NCHW (c, h, w) and
  Keras from NHWC (h, w, c) (`nchw_to_nhwc_rows`). Batch-norm variants (``vgg16_bn``) are refused: the
  paper has no batch norm.

The input each source was trained on is made this project's input (VGG §2.1: RGB on the 0..255 scale
minus the mean RGB of the training set) by rewriting conv1_1, so that the imported model on the
project's own preprocessing gives the source's outputs on the source's preprocessing:

- keras.applications (the authors' Caffe models, ``preprocess_input`` mode "caffe"): BGR minus the BGR
  ImageNet mean (103.939, 116.779, 123.68). conv1_1's input channels are reversed (BGR -> RGB) and the
  mean is recorded as RGB (123.68, 116.779, 103.939).
- torchvision: RGB in 0..1 normalised per channel, (x/255 - m)/s with m = (0.485, 0.456, 0.406),
  s = (0.229, 0.224, 0.225). With the project subtracting the mean RGB 255·m, torchvision's input is
  (x - 255·m)/(255·s): the first conv kernel is divided by 255·s per input channel
  (`fold_torchvision_normalization`, for VGG and AlexNet alike). Its bias needs no change,
  because the mean is subtracted before the convolution, and the zero padding is the same on both sides
  (zero after normalisation = the mean colour on the 0..255 scale).

Each import returns an `ImportResult` with the layers loaded and the mean (RGB, 0..255 scale) to record
for the run (`mean="rgb"`). Nothing here downloads anything; the tests transfer from randomly
initialized reference models.
"""

import dataclasses
import pickle
from typing import Optional

import numpy as np

import keras

from keras_alexnet.errors import UserError

_KERAS_FC = (("fc1", "fc6"), ("fc2", "fc7"), ("predictions", "fc8"))
_TORCH_FC = ("fc6", "fc7", "fc8")  # the classifier's Linear layers in index order

# keras.applications.vgg16/vgg19 preprocess_input ("caffe" mode): BGR minus this BGR mean.
KERAS_APPLICATIONS_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's ImageNet normalisation of RGB in 0..1.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class ImportResult:
    """What an import loaded and the input the weights expect on this project's preprocessing.

    `loaded`: the target layers that were loaded, in order; `mean_rgb`: float32 (3,), the mean RGB on the
    0..255 scale to subtract (VGG §2.1's mean colour, here the one the weights were trained with);
    `class_names`: the source's class names when the source carries them (None otherwise)."""

    loaded: list
    mean_rgb: np.ndarray
    class_names: Optional[list] = None


def nchw_to_nhwc_rows(weight, rows, cols, channels):
    """An (out, c·h·w) weight over an NCHW flatten (Caffe, PyTorch) as (out, h·w·c) over an NHWC flatten."""
    return weight.reshape(-1, channels, rows, cols).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def fold_torchvision_normalization(kernel):
    """A first conv kernel (kh, kw, 3, out) for torchvision's (x/255 - mean)/std made one for x - 255·mean:
    divided by 255·std per input channel (the bias is unchanged; zero padding is the mean either way)."""
    return kernel / (255.0 * np.array(TORCHVISION_STD, np.float32))[None, None, :, None]


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _assign(layer, weights, source_name):
    want = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(np.shape(w)) for w in weights]
    if want != got:
        raise UserError(f"{source_name} has shapes {got} but layer {layer.name} has {want}")
    layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])


def from_keras_applications(target: keras.Model, source: keras.Model, include_classifier: bool = True) -> ImportResult:
    """Copies a ``keras.applications`` VGG16/VGG19 into configuration D/E (``target``). [VGG §2.1]

    conv1_1's input channels are reversed (the source takes BGR) and the result's `mean_rgb` is the
    ImageNet mean the source subtracts, in RGB order: the target on RGB minus `mean_rgb` gives the
    source's output on its own ``preprocess_input``. The source may be built with or without its top;
    ``include_classifier=False`` leaves fc8 as it is (for a different number of classes).
    """
    sources, targets = _conv_layers(source), _conv_layers(target)
    if len(sources) != len(targets):
        raise UserError(
            f"{source.name} has {len(sources)} conv layers but {target.name} has {len(targets)} "
            "(VGG16 loads into vgg_d, VGG19 into vgg_e)"
        )
    loaded = []
    for index, (src, dst) in enumerate(zip(sources, targets)):
        weights = src.get_weights()
        if index == 0:
            _check_rgb_input(weights[0], src.name)
            weights = [weights[0][:, :, ::-1, :], weights[1]]  # BGR -> RGB input channels
        _assign(dst, weights, src.name)
        loaded.append(dst.name)
    source_names = {layer.name for layer in source.layers}
    for src_name, dst_name in _KERAS_FC:
        if src_name not in source_names or (dst_name == "fc8" and not include_classifier):
            continue
        _assign(target.get_layer(dst_name), source.get_layer(src_name).get_weights(), src_name)
        loaded.append(dst_name)
    mean_rgb = np.array(KERAS_APPLICATIONS_MEAN_BGR[::-1], np.float32)
    return ImportResult(loaded, mean_rgb)


def from_torchvision_state_dict(target: keras.Model, state_dict, include_classifier: bool = True) -> ImportResult:
    """Loads a torchvision VGG or AlexNet state dict (tensors or arrays) into the matching model (a VGG
    configuration, or ``alexnet_torchvision``). [VGG §2.1]

    torchvision's input normalisation is folded into conv1_1 (kernel / (255·std) per input channel), and
    the result's `mean_rgb` is 255·mean: the target on 0..255 RGB minus `mean_rgb` gives torchvision's
    output on (x/255 - mean)/std.

    ``features.N`` conv layers go, in index order, to the target's conv layers; the classifier's three
    Linear layers (``classifier.0/3/6`` in VGG, ``1/4/6`` in AlexNet), in index order, to fc6/fc7/fc8
    (fc8 skipped with ``include_classifier=False``). fc6 is converted from torchvision's NCHW flatten
    order using the map size before the target's flatten: for VGG the target must be built at the
    source's training size (224, where torchvision's adaptive pooling is the identity); AlexNet's
    adaptive pooling is a layer of ``alexnet_torchvision``, so any input size works.
    """
    if not hasattr(state_dict, "items"):
        raise UserError(f"not a state dict but a {type(state_dict).__name__} (save model.state_dict())")
    arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
    if any("running_mean" in key for key in arrays):
        raise UserError("the state dict is a batch-norm VGG (vgg*_bn); the paper's VGG has no batch norm")
    indices = sorted({int(key.split(".")[1]) for key in arrays
                      if key.startswith("features.") and key.endswith(".weight") and key.split(".")[1].isdigit()})
    targets = _conv_layers(target)
    if len(indices) != len(targets):
        raise UserError(f"the state dict has {len(indices)} conv layers but {target.name} has {len(targets)}")
    loaded = []
    for index, layer in zip(indices, targets):
        kernel = _entry(arrays, f"features.{index}.weight", ndim=4).transpose(2, 3, 1, 0)
        if not loaded:
            _check_rgb_input(kernel, f"features.{index}")
            kernel = fold_torchvision_normalization(kernel)
        _assign(layer, [kernel, _entry(arrays, f"features.{index}.bias", ndim=1)], f"features.{index}")
        loaded.append(layer.name)

    rows, cols, channels = target.get_layer("flatten").input.shape[1:]
    fc_indices = sorted({int(key.split(".")[1]) for key in arrays if key.startswith("classifier.")
                         and key.endswith((".weight", ".bias")) and key.split(".")[1].isdigit()})
    if len(fc_indices) != len(_TORCH_FC):
        raise UserError(f"the state dict has {len(fc_indices)} classifier layers (classifier.N.weight), "
                        f"expected {len(_TORCH_FC)} (not a torchvision VGG/AlexNet state dict)")
    for index, name in zip(fc_indices, _TORCH_FC):
        if name == "fc8" and not include_classifier:
            continue
        weight = _entry(arrays, f"classifier.{index}.weight", ndim=2)  # (out, in)
        if name == "fc6":
            if weight.shape[1] != rows * cols * channels:
                raise UserError(
                    f"classifier.{index} takes {weight.shape[1]} inputs but {target.name}'s last pooling gives "
                    f"{rows}x{cols}x{channels}; build the model at the source's input size"
                )
            weight = nchw_to_nhwc_rows(weight, rows, cols, channels)
        _assign(target.get_layer(name), [weight.T, _entry(arrays, f"classifier.{index}.bias", ndim=1)], f"classifier.{index}")
        loaded.append(name)
    return ImportResult(loaded, (255.0 * np.array(TORCHVISION_MEAN, np.float64)).astype(np.float32))


def read_torchvision_file(path: str):
    """The state dict in a ``.pth`` file (needs PyTorch installed); UserError naming the file otherwise."""
    try:
        import torch
    except ImportError as error:
        raise UserError(f"{path}: reading a torchvision .pth file needs PyTorch (pip install torch)") from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"{path}: not a readable PyTorch state dict ({str(error).splitlines()[0]})") from error


def load_torchvision_file(target: keras.Model, path: str, include_classifier: bool = True) -> ImportResult:
    """`from_torchvision_state_dict` for a ``.pth`` file (needs PyTorch installed). [VGG §2.1]"""
    state_dict = read_torchvision_file(path)
    try:
        return from_torchvision_state_dict(target, state_dict, include_classifier)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None


def keras_applications_source(config: str, weights_path: str, include_top: bool = True) -> keras.Model:
    """``keras.applications.VGG16`` (config "D") or ``VGG19`` ("E") with the user's weight file. [VGG §2.1]"""
    builders = {"D": keras.applications.VGG16, "E": keras.applications.VGG19}
    if config not in builders:
        raise UserError(f"keras.applications has VGG weights for configurations D and E only, not {config}")
    try:
        return builders[config](weights=weights_path, include_top=include_top, classifier_activation=None)
    except (OSError, ValueError) as error:
        raise UserError(f"{weights_path}: cannot load it into {builders[config].__name__} ({str(error).splitlines()[0]})") from error


def _entry(arrays, key, ndim):
    if key not in arrays:
        raise UserError(f"the state dict has no {key} (not a torchvision VGG/AlexNet state dict)")
    if arrays[key].ndim != ndim:
        raise UserError(f"{key} has shape {arrays[key].shape}, expected {ndim} dimensions")
    return arrays[key]


def _check_rgb_input(kernel, source_name):
    if np.shape(kernel)[2] != 3:
        raise UserError(f"{source_name} takes {np.shape(kernel)[2]} input channels, not 3 (RGB/BGR)")


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)
