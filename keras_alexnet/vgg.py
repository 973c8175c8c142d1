"""VGG configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman, VGG §2.1-2.3, Table 1), one table, one builder.

Every entry of a configuration is a conv layer ``(filters, kernel)`` -- 3x3 stride 1 padding 1, or 1x1 in
configuration C -- followed by ReLU, or ``"M"``, a 2x2 max-pool with stride 2. Then fc6 4096 + ReLU,
dropout 0.5, fc7 4096 + ReLU, dropout 0.5, fc8 num_classes and a float32 softmax.

Layer names follow the Caffe/VGG release: ``conv{block}_{index}`` (conv1_1, conv1_2, conv2_1, ...),
``pool1`` ... ``pool5``, ``flatten``, ``fc6``, ``drop6``, ``fc7``, ``drop7``, ``fc8``, ``softmax``; A-LRN adds
``lrn1`` after conv1_1 (AlexNet's LRN parameters, VGG §2.3). At a 224x224 input the maps after pool1..pool5
are 112, 56, 28, 14 and 7 pixels wide. Exact parameter counts at 1000 classes: A and A-LRN 132,863,336,
B 133,047,848, C 133,638,952, D 138,357,544, E 143,667,240 (Table 2: 133, 133, 134, 138, 144 M).

`warm_start` implements VGG §3.1's initialization of a deeper net from a trained net A.
"""

import keras

from keras_alexnet.alexnet import check_common_options, classifier_output, scaled
from keras_alexnet.initializers import init_for
from keras_alexnet.lrn import LocalResponseNormalization
from keras_alexnet.vgg_configs import CONFIGS, M, conv_layer_names  # noqa: F401  (conv_layer_names re-exported)

_FC_UNITS = 4096

# VGG §3.1: "we initialised the first four convolutional layers and the last three fully-connected layers
# with the layers of net A". Net A's first four conv layers are conv1_1, conv2_1, conv3_1 and conv3_2; every
# deeper configuration has layers of those names and shapes.
WARM_START_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8")


def build_vgg(
    config: str,
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
    name: str = None,
) -> keras.Model:
    """VGG configuration ``config`` ("A" ... "E"); ``lrn=True`` with "A" is A-LRN. [VGG §2.1-2.3, Table 1]

    ``width`` multiplies every conv and FC width (not the classes), for small runs.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown VGG configuration {config!r} (choose from: {', '.join(CONFIGS)})")
    check_common_options(width, dropout, classifier_activation)
    for side in input_shape[:2]:
        if side is not None and side < 32:
            raise ValueError(f"VGG needs inputs of at least 32x32 pixels (five 2x2 pools), got {side}")

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    block, index = 1, 0
    for entry in CONFIGS[config]:
        if entry == M:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
            block, index = block + 1, 0
            continue
        filters, kernel = entry
        index += 1
        layer_name = f"conv{block}_{index}"
        kernel_init, bias_init = init_for(init, "vgg", layer_name)
        x = keras.layers.Conv2D(
            scaled(filters, width),
            kernel,
            padding="same",
            activation=activation,
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=layer_name,
        )(x)
        if lrn and layer_name == "conv1_1":
            x = LocalResponseNormalization(convention=lrn_convention, name="lrn1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for layer_name, units, layer_activation in (("fc6", _FC_UNITS, activation), ("fc7", _FC_UNITS, activation),
                                                ("fc8", None, None)):
        kernel_init, bias_init = init_for(init, "vgg", layer_name)
        x = keras.layers.Dense(
            num_classes if units is None else scaled(units, width),
            activation=layer_activation,
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=layer_name,
        )(x)
        if layer_name != "fc8":
            x = keras.layers.Dropout(dropout, name=f"drop{layer_name[-1]}")(x)
    default_name = "vgg_" + config.lower() + ("_lrn" if lrn else "")
    return keras.Model(inputs, classifier_output(x, classifier_activation), name=name or default_name)


def warm_start(target: keras.Model, source_a: keras.Model) -> list:
    """Copies a trained net A's first four conv layers and three FC layers into a deeper net. [VGG §3.1]

    ``target`` is a freshly built configuration B-E (same width, classes and input size as ``source_a``);
    the layers named in `WARM_START_LAYERS` get A's weights, the others keep their random initialization.
    Returns the names of the copied layers. Raises ValueError when shapes differ.
    """
    copied = []
    for layer_name in WARM_START_LAYERS:
        source_weights = source_a.get_layer(layer_name).get_weights()
        target_layer = target.get_layer(layer_name)
        target_shapes = [w.shape for w in target_layer.get_weights()]
        if [w.shape for w in source_weights] != target_shapes:
            raise ValueError(
                f"{layer_name}: net A has shapes {[w.shape for w in source_weights]}, the target has {target_shapes}"
            )
        target_layer.set_weights(source_weights)
        copied.append(layer_name)
    return copied
