"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) as a Keras 3 functional model (AlexNet §3.5, Fig. 2).

Layer names follow the paper, and feature maps at a 224x224x3 input are:

    image 224x224x3
    conv1_pad 228x228x3 -> conv1 96@11x11/4 + ReLU 55x55x96 -> lrn1 -> pool1 3x3/2 27x27x96
    conv2 256@5x5 (2 towers of 128, each over its own 48 maps) + ReLU 27x27x256 -> lrn2 -> pool2 13x13x256
    conv3 384@3x3 over all 256 maps + ReLU 13x13x384
    conv4 384@3x3 (2 towers of 192) + ReLU, conv5 256@3x3 (2 towers of 128) + ReLU 13x13x256 -> pool5 6x6x256
    [conv6 256@3x3 + ReLU 6x6x256, only with extra_conv]
    flatten 9216 -> fc6 4096 + ReLU -> drop6 -> fc7 4096 + ReLU -> drop7 -> fc8 num_classes -> softmax

At 1000 classes the two-tower net has 60,965,224 parameters. The towered layers are
`keras_alexnet.towers.TowerConv2D` (sublayers tower_0/tower_1); conv1 is padded by 2 pixels on every side
(the paper's 224 input gives its 55x55 maps only with that padding). The softmax is a float32
``Activation`` layer named ``softmax``; with ``classifier_activation=None`` a float32 linear layer named
``logits`` takes its place. Inputs are images on the 0..255 scale with the mean already subtracted
(AlexNet §2); the model does no preprocessing.

Variants the paper measures, all options of `build_alexnet`:
- ``towers=1``: the one-GPU net of §3.2 (footnote 2): half the kernels in conv1-conv4 (48, 128, 192, 192),
  conv5 (256) and the FC layers full size, every layer connected to all maps of the one before.
- ``lrn=False``: no response normalization (§3.3: +1.4% top-1 error without it).
- ``pooling="non_overlapping"``: 2x2 stride 2 pooling instead of 3x3 stride 2 (§3.4), same map sizes.
- ``extra_conv=True``: a sixth convolutional layer over the last pooling layer (§6). The paper does not
  give its shape; here it is conv6 256@3x3, padding 1, ReLU, connected to all maps, so fc6 is unchanged.
- ``width``: multiplies every conv and FC width (not the classes), for small runs; widths stay multiples
  of the tower count.

Caffe's bvlc_alexnet (the paper's net as BVLC trained it) differs in three places, options too:
``conv1_padding=0`` (227x227 inputs, no padding: the same 55x55 conv1 maps), ``lrn_convention="caffe"``
(α/n with k=1, `keras_alexnet.lrn`) and, for CaffeNet only, ``lrn_position="after_pool"`` (pool1/pool2
before lrn1/lrn2). `keras_alexnet.caffe_import` loads its weights.
"""

import keras

from keras_alexnet.initializers import init_for
from keras_alexnet.lrn import LocalResponseNormalization
from keras_alexnet.registry import CLASSIFIER_ACTIVATIONS, LRN_POSITIONS, POOLINGS
from keras_alexnet.towers import TowerConv2D, check_tower_devices

# (name, filters of the two-tower net, kernel, stride, padding, towered) [AlexNet §3.5]
_CONVS = (
    ("conv1", 96, 11, 4, "valid", False),
    ("conv2", 256, 5, 1, "same", True),
    ("conv3", 384, 3, 1, "same", False),
    ("conv4", 384, 3, 1, "same", True),
    ("conv5", 256, 3, 1, "same", True),
)
# The one-GPU net (AlexNet §3.2, footnote 2): half the kernels except in the last conv layer.
_ONE_TOWER_FILTERS = {"conv1": 48, "conv2": 128, "conv3": 192, "conv4": 192, "conv5": 256}
_FC_UNITS = 4096
CONV1_PADDING = 2  # this project's reading of the paper's 224 input (Caffe's 227 input: 0)


def scaled(units: int, width: float, multiple: int = 1) -> int:
    """``units * width`` rounded to a multiple of ``multiple`` (at least ``multiple``)."""
    return max(multiple, int(round(units * width / multiple)) * multiple)


def feature_map_sizes(image_size: int, pooling: str = "overlapping", conv1_padding: int = CONV1_PADDING) -> dict:
    """Spatial side of each AlexNet feature map for a square input of ``image_size``. [AlexNet §3.5]

    224 gives conv1 55, pool1 27, conv2 27, pool2 13, conv3..conv5 13, pool5 6 (so does 227 with
    ``conv1_padding=0``). Raises ValueError when the input is too small for the last pooling layer to
    have an output.
    """
    window = 3 if pooling == "overlapping" else 2

    def pool(side):
        return (side - window) // 2 + 1 if side >= window else 0

    padded = image_size + 2 * conv1_padding
    conv1 = (padded - 11) // 4 + 1 if padded >= 11 else 0
    pool1 = pool(conv1)
    pool2 = pool(pool1)
    pool5 = pool(pool2)
    sizes = {"conv1": conv1, "pool1": pool1, "conv2": pool1, "pool2": pool2}
    sizes.update(conv3=pool2, conv4=pool2, conv5=pool2, pool5=pool5)
    if pool5 < 1:
        smallest = 67 - 2 * conv1_padding
        raise ValueError(f"AlexNet needs inputs of at least {smallest}x{smallest} pixels, got {image_size}")
    return sizes


def build_alexnet(
    num_classes: int = 1000,
    input_shape=(224, 224, 3),
    *,
    towers: int = 2,
    width: float = 1.0,
    tower_devices="auto",
    lrn: bool = True,
    lrn_convention: str = "paper",
    pooling: str = "overlapping",
    extra_conv: bool = False,
    conv1_padding: int = CONV1_PADDING,
    lrn_position: str = "before_pool",
    init: str = "paper",
    dropout: float = 0.5,
    activation: str = "relu",
    classifier_activation="softmax",
    name: str = "alexnet",
) -> keras.Model:
    """AlexNet or one of the paper's variants as a functional model (see the module docstring). [AlexNet §3]

    ``tower_devices``: "auto" (default: GPU:0/GPU:1 when two GPUs are visible, else no placement), None (no
    placement) or two device strings; used by the towered layers conv2, conv4, conv5 only. ``activation``:
    the hidden layers' nonlinearity, "relu" (§3.1) or "tanh" (the saturating unit §3.1 compares against).
    ``conv1_padding``, ``lrn_position`` and ``lrn_convention="caffe"``: Caffe's variants (module docstring).
    """
    if towers not in (1, 2):
        raise ValueError(f"towers must be 1 or 2, got {towers}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    check_common_options(width, dropout, classifier_activation)
    if lrn_position not in LRN_POSITIONS:
        raise ValueError(f"lrn_position must be one of {', '.join(LRN_POSITIONS)}, got {lrn_position!r}")
    if not (isinstance(conv1_padding, int) and conv1_padding >= 0):
        raise ValueError(f"conv1_padding must be a non-negative number of pixels, got {conv1_padding!r}")
    tower_devices = check_tower_devices(tower_devices, 2)
    height, image_width = input_shape[0], input_shape[1]
    for side in (height, image_width):
        if side is not None:
            feature_map_sizes(side, pooling, conv1_padding)

    multiple = 2 if towers == 2 else 1
    window = (3, 3) if pooling == "overlapping" else (2, 2)

    def conv(x, layer_name, filters, kernel, stride, padding, towered):
        kernel_init, bias_init = init_for(init, "alexnet", layer_name)
        common = dict(
            strides=stride,
            padding=padding,
            activation=activation,
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=layer_name,
        )
        if towered and towers == 2:
            return TowerConv2D(filters, kernel, groups=2, tower_devices=tower_devices, **common)(x)
        return keras.layers.Conv2D(filters, kernel, **common)(x)

    def dense(x, layer_name, units, activation):
        kernel_init, bias_init = init_for(init, "alexnet", layer_name)
        return keras.layers.Dense(
            units, activation=activation, kernel_initializer=kernel_init, bias_initializer=bias_init, name=layer_name
        )(x)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.ZeroPadding2D(conv1_padding, name="conv1_pad")(inputs) if conv1_padding else inputs
    for layer_name, filters, kernel, stride, padding, towered in _CONVS:
        if towers == 1:
            filters = _ONE_TOWER_FILTERS[layer_name]
        x = conv(x, layer_name, scaled(filters, width, multiple), kernel, stride, padding, towered)
        index = layer_name[-1]
        if layer_name in ("conv1", "conv2"):
            normalize = LocalResponseNormalization(convention=lrn_convention, name=f"lrn{index}")
            if lrn and lrn_position == "before_pool":
                x = normalize(x)
            x = keras.layers.MaxPooling2D(window, strides=2, name=f"pool{index}")(x)
            if lrn and lrn_position == "after_pool":
                x = normalize(x)
        elif layer_name == "conv5":
            x = keras.layers.MaxPooling2D(window, strides=2, name="pool5")(x)
    if extra_conv:
        x = conv(x, "conv6", scaled(256, width, multiple), 3, 1, "same", False)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense(x, "fc6", scaled(_FC_UNITS, width), activation)
    x = keras.layers.Dropout(dropout, name="drop6")(x)
    x = dense(x, "fc7", scaled(_FC_UNITS, width), activation)
    x = keras.layers.Dropout(dropout, name="drop7")(x)
    x = dense(x, "fc8", num_classes, None)
    return keras.Model(inputs, classifier_output(x, classifier_activation), name=name)


# The names of the output layers `classifier_output` makes (dense evaluation finds the classifier by them).
SOFTMAX_LAYER, LOGITS_LAYER = "softmax", "logits"
OUTPUT_LAYERS = (SOFTMAX_LAYER, LOGITS_LAYER)


def check_common_options(width, dropout, classifier_activation) -> None:
    """ValueError in one line for a value of the options every builder takes that none can build: a width
    multiplier that is not positive, a dropout rate outside [0, 1), an output `classifier_output` does not
    make (`registry.CLASSIFIER_ACTIVATIONS`)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if classifier_activation not in CLASSIFIER_ACTIVATIONS:
        shown = " or ".join(repr(choice) for choice in CLASSIFIER_ACTIVATIONS)
        raise ValueError(f"classifier_activation must be {shown}, got {classifier_activation!r}")


def classifier_output(logits, classifier_activation):
    """The float32 output layer after fc8: ``softmax`` probabilities, or ``logits`` when the activation is
    None (float32 either way, also under mixed precision)."""
    if classifier_activation == "softmax":
        return keras.layers.Activation("softmax", dtype="float32", name=SOFTMAX_LAYER)(logits)
    return keras.layers.Activation("linear", dtype="float32", name=LOGITS_LAYER)(logits)
