"""Caffe's bvlc_alexnet (and CaffeNet) weights loaded into this project's ``alexnet`` (AlexNet §3.5 as Caffe
trained it), from the files of the Caffe model zoo read by `keras_alexnet.caffemodel`.

Where Caffe's net differs from this project's reading of the paper, the model is built with the options
that say so (`net_options`, recorded in the run as its ModelConfig), not changed:

- 227x227 inputs and no padding in conv1 (``conv1_padding=0``): the same 55x55 conv1 maps as the
  paper's 224 with 2 pixels of padding;
- Caffe's LRN (``lrn_convention="caffe"``: α/n with k=1, n=5);
- LRN before pooling in bvlc_alexnet (the paper's order), after pooling in CaffeNet
  (``lrn_position="after_pool"``), read from the order of the LRN and Pooling layers in the file;
- ``group: 2`` in conv2, conv4, conv5 are the two towers: Caffe's grouped kernel (out, in/2, kh, kw) has
  tower 0's kernels first, which is `TowerConv2D.set_grouped_weights`'s layout once transposed.

Layouts: Caffe's kernels are (out, in, kh, kw), Keras' (kh, kw, in, out); Caffe flattens pool5 as
(c, h, w) before fc6, Keras as (h, w, c), so fc6's input axis is reordered (`nchw_to_nhwc_rows`);
InnerProduct weights are (out, in), Dense kernels (in, out). Caffe's input is BGR: conv1's input channels
are reversed so the model takes RGB, and the mean (Caffe's ``ilsvrc_2012_mean.binaryproto``, a 1x3x256x256
BGR image, or the mean colour 104/117/123 BGR) becomes an RGB mean image or colour on the 0..255 scale.
"""

import numpy as np

from keras_alexnet.errors import UserError
from keras_alexnet.weight_import import nchw_to_nhwc_rows

# Caffe's ImageNet mean colour (BGR), what Caffe's examples subtract without the mean file.
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
IMAGE_SIZE, TEST_SCALE = 227, 256  # bvlc_alexnet's crop of Caffe's 256x256 frame
TARGETS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
_WEIGHTED_TYPES = ("Convolution", "InnerProduct")


def weighted_layers(layers) -> list:
    """The Convolution and InnerProduct layers with weights, in file order."""
    return [layer for layer in layers if layer.type in _WEIGHTED_TYPES and layer.blobs]


def net_options(layers) -> dict:
    """The ``alexnet`` build options that make it Caffe's net, with the LRN position read from the layer
    order (bvlc_alexnet: LRN before Pooling; CaffeNet: Pooling before LRN; none: no LRN)."""
    kinds = [layer.type for layer in layers]
    options = dict(conv1_padding=0, lrn_convention="caffe", lrn=("LRN" in kinds))
    if "LRN" in kinds and "Pooling" in kinds:
        options["lrn_position"] = "before_pool" if kinds.index("LRN") < kinds.index("Pooling") else "after_pool"
    return options


def _squeeze(blob, ndim):
    """A legacy 4-d blob (num, channels, height, width) with its leading 1s dropped down to `ndim` axes."""
    while blob.ndim > ndim and blob.shape[0] == 1:
        blob = blob[0]
    return blob


def _caffe_shape(layer):
    """The Caffe-layout (weight, bias) shapes a Keras layer of this project's AlexNet needs."""
    from keras_alexnet.towers import TowerConv2D

    if isinstance(layer, TowerConv2D):
        kernel = layer.grouped_kernel().shape
    else:
        kernel = layer.kernel.shape
    if len(kernel) == 4:
        return (kernel[3], kernel[2], kernel[0], kernel[1]), (kernel[3],)
    return (kernel[1], kernel[0]), (kernel[1],)


def load_alexnet(target, layers, path: str) -> list:
    """Loads Caffe's layers into ``target`` (built with `net_options`); returns the loaded layer names.

    A file whose weighted layers do not fit is refused in one line naming the first that does not (the
    Caffe layer, its shape and the shape this net needs)."""
    from keras_alexnet.towers import TowerConv2D

    sources = weighted_layers(layers)
    for source, name in zip(sources, TARGETS):
        layer = target.get_layer(name)
        weight_shape, bias_shape = _caffe_shape(layer)
        weight = _squeeze(source.blobs[0], len(weight_shape))
        bias = _squeeze(source.blobs[1], 1) if len(source.blobs) > 1 else None
        if weight.shape != weight_shape or bias is None or bias.shape != bias_shape:
            got = f"{tuple(weight.shape)}" + (f" + bias {tuple(bias.shape)}" if bias is not None else " (no bias)")
            raise UserError(f"{path}: layer {source.name} ({source.type}) has weights {got} but {target.name}'s "
                            f"{name} needs {weight_shape} + bias {bias_shape} (not Caffe's bvlc_alexnet/CaffeNet)")
    if len(sources) != len(TARGETS):
        raise UserError(f"{path}: {len(sources)} Convolution/InnerProduct layers with weights, but "
                        f"{target.name} has {len(TARGETS)} (conv1-conv5, fc6-fc8)")
    rows, cols, channels = target.get_layer("flatten").input.shape[1:]
    for source, name in zip(sources, TARGETS):
        layer = target.get_layer(name)
        weight_shape, _ = _caffe_shape(layer)
        weight = _squeeze(source.blobs[0], len(weight_shape))
        bias = _squeeze(source.blobs[1], 1)
        if name == "conv1":
            weight = weight[:, ::-1]  # BGR -> RGB input channels
        if name == "fc6":
            weight = nchw_to_nhwc_rows(weight, rows, cols, channels)
        kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T
        if isinstance(layer, TowerConv2D):
            layer.set_grouped_weights(np.ascontiguousarray(kernel), bias)
        else:
            layer.set_weights([np.ascontiguousarray(kernel), bias])
    return list(TARGETS)


def mean_image(path: str) -> np.ndarray:
    """Caffe's mean ``.binaryproto`` (1x3xHxW BGR) as an (H, W, 3) RGB float32 image (0..255 scale)."""
    from keras_alexnet.caffemodel import read_blob

    blob = read_blob(path)
    blob = _squeeze(blob, 3)
    if blob.ndim != 3 or blob.shape[0] != 3:
        raise UserError(f"{path}: a mean of shape {tuple(blob.shape)}, expected 1x3xHxW (BGR)")
    return np.ascontiguousarray(blob[::-1].transpose(1, 2, 0), dtype=np.float32)


def mean_rgb() -> np.ndarray:
    """Caffe's mean colour as RGB, float32 (0..255 scale)."""
    return np.array(CAFFE_MEAN_BGR[::-1], np.float32)


def read_synset_words(path: str, num_classes: int) -> list:
    """Caffe's ``synset_words.txt`` ("n01440764 tench, Tinca tinca" per line, in label order) as the class
    names (the words after the synset); UserError naming the file for a wrong count or format."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    names = []
    for number, line in enumerate(lines, 1):
        synset, _, words = line.partition(" ")
        if not (synset.startswith("n") and synset[1:].isdigit()):
            raise UserError(f"{path}: line {number} is not 'nXXXXXXXX words' ({line[:40]!r})")
        names.append(words.strip() or synset)
    if len(names) != num_classes:
        raise UserError(f"{path}: {len(names)} classes, expected {num_classes}")
    return names
