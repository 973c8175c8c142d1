"""torchvision's ``alexnet``: the one-tower AlexNet of Krizhevsky 2014 ("One weird trick for parallelizing
convolutional neural networks", §5) as torchvision builds it, as a Keras 3 functional model.

Layer names follow this project's AlexNet (`keras_alexnet.alexnet`), with torchvision's module indices:

    image 224x224x3
    conv1_pad 228x228x3 -> conv1 64@11x11/4 + ReLU 55x55x64 -> pool1 3x3/2 27x27x64     (features.0)
    conv2 192@5x5 pad 2 + ReLU 27x27x192 -> pool2 3x3/2 13x13x192                        (features.3)
    conv3 384@3x3, conv4 256@3x3, conv5 256@3x3, pad 1, + ReLU 13x13x256 -> pool5 6x6x256 (features.6/8/10)
    avgpool AdaptiveAvgPool2d((6, 6)) 6x6x256 (the identity at 224)
    flatten 9216 -> drop6 -> fc6 4096 + ReLU -> drop7 -> fc7 4096 + ReLU -> fc8 num_classes -> softmax
                                                      (classifier.1 / classifier.4 / classifier.6)

No LRN, every layer connected to all maps of the one before, dropout BEFORE fc6 and fc7 (the paper's
AlexNet has it after them). `AdaptiveAveragePooling2D` is torchvision's adaptive average pooling: output
cell i averages input rows floor(i·H/6) .. ceil((i+1)·H/6) − 1 (and the same for columns), so any input
of at least 63 pixels reaches fc6 as 6x6x256. Inputs are on the 0..255 scale with the mean RGB subtracted;
`keras_alexnet.weight_import` folds torchvision's normalisation into conv1.
"""

import keras
import numpy as np

from keras_alexnet.alexnet import check_common_options, classifier_output, feature_map_sizes, scaled
from keras_alexnet.initializers import init_for

# (name, filters, kernel, conv padding) of torchvision's features: conv1 stride 4, the others stride 1.
CONVS = (("conv1", 64, 11, 2), ("conv2", 192, 5, 2), ("conv3", 384, 3, 1), ("conv4", 256, 3, 1),
         ("conv5", 256, 3, 1))
POOLED = ("conv1", "conv2", "conv5")  # followed by MaxPool2d(3, 2)
POOL_SIDE = 6  # AdaptiveAvgPool2d((6, 6))
FC_UNITS = 4096


def adaptive_bins(length: int, out: int) -> np.ndarray:
    """The (out, length) averaging matrix of torchvision's adaptive average pooling along one axis: row i
    is 1/n over input indices floor(i·length/out) .. ceil((i+1)·length/out) − 1 (n of them)."""
    matrix = np.zeros((out, length), np.float32)
    for i in range(out):
        start, end = (i * length) // out, -((-(i + 1) * length) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@keras.saving.register_keras_serializable(package="keras_alexnet")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """PyTorch's ``AdaptiveAvgPool2d(output_size)`` on NHWC inputs of a known size (see `adaptive_bins`):
    out[b, i, j, c] = Σ_h Σ_w R[i, h] x[b, h, w, c] C[j, w]."""

    def __init__(self, output_size=POOL_SIDE, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(f"{self.name}: adaptive pooling needs a fixed input size, got {input_shape}")
        self.rows = adaptive_bins(height, self.output_size)
        self.cols = adaptive_bins(width, self.output_size)

    def call(self, inputs):
        rows = keras.ops.convert_to_tensor(self.rows, inputs.dtype)
        cols = keras.ops.convert_to_tensor(self.cols, inputs.dtype)
        return keras.ops.einsum("ih,bhwc,jw->bijc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(output_size=self.output_size)
        return config


def build_alexnet_torchvision(
    num_classes: int = 1000,
    input_shape=(224, 224, 3),
    *,
    width: float = 1.0,
    lrn: bool = False,
    lrn_convention: str = "paper",
    init: str = "paper",
    dropout: float = 0.5,
    activation: str = "relu",
    classifier_activation="softmax",
    name: str = "alexnet_torchvision",
) -> keras.Model:
    """torchvision's AlexNet (see the module docstring); ``width`` scales every conv/FC width. [Krizhevsky
    2014 §5] ``lrn`` must be False (the net has none; accepted so a ModelConfig's options apply)."""
    del lrn_convention  # no LRN layer to configure
    if lrn:
        raise ValueError("torchvision's AlexNet has no local response normalization (lrn=False)")
    check_common_options(width, dropout, classifier_activation)
    for side in input_shape[:2]:
        if side is not None:
            feature_map_sizes(side)  # the same strides and conv1 padding: the same smallest input

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.ZeroPadding2D(CONVS[0][3], name="conv1_pad")(inputs)
    for layer_name, filters, kernel, padding in CONVS:
        kernel_init, bias_init = init_for(init, "alexnet", layer_name)
        x = keras.layers.Conv2D(
            scaled(filters, width), kernel, strides=4 if layer_name == "conv1" else 1,
            padding="valid" if layer_name == "conv1" else "same", activation=activation,
            kernel_initializer=kernel_init, bias_initializer=bias_init, name=layer_name)(x)
        if layer_name in POOLED:
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{layer_name[-1]}")(x)
    x = AdaptiveAveragePooling2D(POOL_SIDE, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for layer_name in ("fc6", "fc7"):
        x = keras.layers.Dropout(dropout, name=f"drop{layer_name[-1]}")(x)
        kernel_init, bias_init = init_for(init, "alexnet", layer_name)
        x = keras.layers.Dense(scaled(FC_UNITS, width), activation=activation, kernel_initializer=kernel_init,
                               bias_initializer=bias_init, name=layer_name)(x)
    kernel_init, bias_init = init_for(init, "alexnet", "fc8")
    x = keras.layers.Dense(num_classes, kernel_initializer=kernel_init, bias_initializer=bias_init, name="fc8")(x)
    return keras.Model(inputs, classifier_output(x, classifier_activation), name=name)
