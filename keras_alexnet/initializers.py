"""Weight initialization schemes by name (AlexNet §5, VGG §3.1).

``init_for(scheme, family, layer_name)`` returns the (kernel, bias) Keras initializers for one layer.

AlexNet (`family="alexnet"`):
- ``"paper"`` (AlexNet §5): every weight from N(0, 0.01²) (standard deviation 0.01); biases 1 in conv2,
  conv4, conv5, fc6 and fc7 (so their ReLUs start with positive inputs), 0 in the other layers.
- ``"caffe"``: the BVLC Caffe reference model's reading: std 0.01, except fc6/fc7 std 0.005; biases 0.1
  where the paper has 1, 0 elsewhere.
- ``"glorot"``: Glorot-uniform weights, zero biases.

VGG (`family="vgg"`):
- ``"paper"`` (VGG §3.1): weights from a zero-mean normal, biases 0. The text says "variance 10^-2"; this
  uses standard deviation 0.01 (variance 1e-4), the value of AlexNet §5 and of common Caffe recipes for
  VGG (an interpretation: the authors' training configuration was not published). Read literally (std 0.1), every 3x3x512 layer would multiply the activation variance by
  about 4608 * 0.01 / 2 = 23, and net A's logits would start around 10^6: it could not be trained.
- ``"caffe"``: the same (Caffe's gaussian std 0.01, zero bias).
- ``"glorot"`` (VGG §3.1, the note after submission): Glorot-uniform weights, zero biases; works without
  pre-training. The deeper nets were otherwise warm-started from net A (see `keras_alexnet.vgg.warm_start`).

The extra AlexNet layer ``conv6`` (the sixth convolutional layer of AlexNet §6) is initialized like conv5.
"""

import keras

from keras_alexnet.registry import INITS

# AlexNet §5: "We initialized the neuron biases in the second, fourth, and fifth convolutional layers,
# as well as in the fully-connected hidden layers, with the constant 1."
_ALEXNET_ONE_BIAS = ("conv2", "conv4", "conv5", "conv6", "fc6", "fc7")


def init_for(scheme: str, family: str, layer_name: str):
    """(kernel_initializer, bias_initializer) for ``layer_name`` under ``scheme``. [AlexNet §5, VGG §3.1]"""
    if scheme not in INITS:
        raise ValueError(f"unknown init scheme {scheme!r} (choose from: {', '.join(INITS)})")
    if family not in ("alexnet", "vgg"):
        raise ValueError(f"unknown model family {family!r}")
    if scheme == "glorot":
        return keras.initializers.GlorotUniform(), keras.initializers.Zeros()
    if family == "vgg":
        return keras.initializers.RandomNormal(0.0, 0.01), keras.initializers.Zeros()
    one_bias = layer_name in _ALEXNET_ONE_BIAS
    if scheme == "paper":
        bias = keras.initializers.Constant(1.0) if one_bias else keras.initializers.Zeros()
        return keras.initializers.RandomNormal(0.0, 0.01), bias
    stddev = 0.005 if layer_name in ("fc6", "fc7") else 0.01
    bias = keras.initializers.Constant(0.1) if one_bias else keras.initializers.Zeros()
    return keras.initializers.RandomNormal(0.0, stddev), bias
