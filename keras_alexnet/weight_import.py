"""Pretrained VGG weights users already have, loaded into this project's models (VGG §2, configurations D and E).

Two sources:

- Keras' own ``keras.applications.VGG16`` / ``VGG19`` (weights in Keras' HDF5 files): configurations D and
  E have the same layers in the same order and the same NHWC flatten before the first FC layer, so
  `from_keras_applications` copies them one to one (``block1_conv1`` -> ``conv1_1``, ``fc1`` -> ``fc6``,
  ``fc2`` -> ``fc7``, ``predictions`` -> ``fc8``).
- torchvision's ``vgg11/13/16/19`` state dicts (``features.N.weight``, ``classifier.0/3/6.weight``):
  `from_torchvision_state_dict` transposes the conv kernels from (out, in, kh, kw) to Keras'
  (kh, kw, in, out), and reorders fc6's input axis, which torchvision flattens from NCHW (c, h, w) and
  Keras from NHWC (h, w, c). Batch-norm variants (``vgg16_bn``) are refused: the paper has no batch norm.

Nothing here downloads anything; the tests transfer from randomly initialized reference models.
Images must be preprocessed as the source expects (Keras' VGG16: BGR, ImageNet mean subtracted; torchvision:
RGB in 0..1 normalized by the ImageNet mean/std), which is the input pipeline's business.
"""

import pickle

import numpy as np

import keras

from keras_alexnet.errors import UserError

_KERAS_FC = (("fc1", "fc6"), ("fc2", "fc7"), ("predictions", "fc8"))
_TORCH_FC = ((0, "fc6"), (3, "fc7"), (6, "fc8"))


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _assign(layer, weights, source_name):
    want = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(np.shape(w)) for w in weights]
    if want != got:
        raise UserError(f"{source_name} has shapes {got} but layer {layer.name} has {want}")
    layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])


def from_keras_applications(target: keras.Model, source: keras.Model, include_classifier: bool = True) -> list:
    """Copies a ``keras.applications`` VGG16/VGG19 into configuration D/E (``target``). [VGG §2.1]

    The source may be built with or without its top; ``include_classifier=False`` leaves fc8 as it is (for
    a different number of classes). Returns the names of the target layers that were loaded.
    """
    sources, targets = _conv_layers(source), _conv_layers(target)
    if len(sources) != len(targets):
        raise UserError(
            f"{source.name} has {len(sources)} conv layers but {target.name} has {len(targets)} "
            "(VGG16 loads into vgg_d, VGG19 into vgg_e)"
        )
    loaded = []
    for src, dst in zip(sources, targets):
        _assign(dst, src.get_weights(), src.name)
        loaded.append(dst.name)
    source_names = {layer.name for layer in source.layers}
    for src_name, dst_name in _KERAS_FC:
        if src_name not in source_names or (dst_name == "fc8" and not include_classifier):
            continue
        _assign(target.get_layer(dst_name), source.get_layer(src_name).get_weights(), src_name)
        loaded.append(dst_name)
    return loaded


def from_torchvision_state_dict(target: keras.Model, state_dict, include_classifier: bool = True) -> list:
    """Loads a torchvision VGG state dict (tensors or arrays) into the matching configuration. [VGG §2.1]

    ``features.N`` conv layers go, in index order, to the target's conv layers; ``classifier.0/3/6`` to
    fc6/fc7/fc8 (fc8 skipped with ``include_classifier=False``). fc6 is converted from torchvision's NCHW
    flatten order using the target's pool5 map size, so the target must be built at the source's
    training size (224 for torchvision's models, whose adaptive pooling then is the identity).
    Returns the names of the target layers that were loaded.
    """
    arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
    if any("running_mean" in key for key in arrays):
        raise UserError("the state dict is a batch-norm VGG (vgg*_bn); the paper's VGG has no batch norm")
    indices = sorted({int(key.split(".")[1]) for key in arrays if key.startswith("features.") and key.endswith(".weight")})
    targets = _conv_layers(target)
    if len(indices) != len(targets):
        raise UserError(f"the state dict has {len(indices)} conv layers but {target.name} has {len(targets)}")
    loaded = []
    for index, layer in zip(indices, targets):
        kernel = arrays[f"features.{index}.weight"].transpose(2, 3, 1, 0)
        _assign(layer, [kernel, arrays[f"features.{index}.bias"]], f"features.{index}")
        loaded.append(layer.name)

    rows, cols, channels = target.get_layer("flatten").input.shape[1:]
    for index, name in _TORCH_FC:
        if name == "fc8" and not include_classifier:
            continue
        weight = arrays[f"classifier.{index}.weight"]  # (out, in)
        if name == "fc6":
            if weight.shape[1] != rows * cols * channels:
                raise UserError(
                    f"classifier.0 takes {weight.shape[1]} inputs but {target.name}'s pool5 gives "
                    f"{rows}x{cols}x{channels}; build the model at the source's input size"
                )
            weight = weight.reshape(-1, channels, rows, cols).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
        _assign(target.get_layer(name), [weight.T, arrays[f"classifier.{index}.bias"]], f"classifier.{index}")
        loaded.append(name)
    return loaded


def load_torchvision_file(target: keras.Model, path: str, include_classifier: bool = True) -> list:
    """`from_torchvision_state_dict` for a ``.pth`` file (needs PyTorch installed). [VGG §2.1]"""
    try:
        import torch
    except ImportError as error:
        raise UserError(f"{path}: reading a torchvision .pth file needs PyTorch (pip install torch)") from error
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"{path}: not a readable PyTorch state dict ({str(error).splitlines()[0]})") from error
    return from_torchvision_state_dict(target, state_dict, include_classifier)


def keras_applications_source(config: str, weights_path: str, include_top: bool = True) -> keras.Model:
    """``keras.applications.VGG16`` (config "D") or ``VGG19`` ("E") with the user's weight file. [VGG §2.1]"""
    builders = {"D": keras.applications.VGG16, "E": keras.applications.VGG19}
    if config not in builders:
        raise UserError(f"keras.applications has VGG weights for configurations D and E only, not {config}")
    try:
        return builders[config](weights=weights_path, include_top=include_top, classifier_activation=None)
    except (OSError, ValueError) as error:
        raise UserError(f"{weights_path}: cannot load it into {builders[config].__name__} ({str(error).splitlines()[0]})") from error


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)
