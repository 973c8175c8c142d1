"""The model table: one `ModelSpec` per architecture, and `build_model`, the one entry point that builds them.

    build_model("alexnet", num_classes=10, input_shape=(67, 67, 3), width=0.25)

Every module that needs a fact about an architecture (its family, smallest input, the mean it subtracts,
the paper's batch size and epoch cap, whether it has towers) reads it from `SPECS` through `spec(name)`,
in the manner of torchvision's `models/vgg.py` config table.

Architectures: ``alexnet`` (AlexNet §3.5, two towers), ``alexnet_1tower`` (the one-GPU net of AlexNet
§3.2), ``alexnet_torchvision`` (torchvision's one-tower AlexNet of Krizhevsky 2014, "One weird trick":
64-192-384-256-256 kernels, no LRN, adaptive 6x6 average pooling; `keras_alexnet.alexnet_torchvision`),
``vgg_a``, ``vgg_a_lrn``, ``vgg_b``, ``vgg_c``, ``vgg_d``, ``vgg_e`` (VGG Table 1).

Options (all keyword, all optional):
- both families: ``width`` (float multiplier of every conv/FC width, default 1.0), ``lrn`` (bool; default
  the spec's: True for AlexNet and vgg_a_lrn, False for the other VGG nets), ``lrn_convention`` ("paper",
  "cuda_convnet" or "caffe", `LRN_CONVENTIONS`), ``init`` (`INITS`), ``dropout``
  (0.5), ``activation`` ("relu", the papers'; "tanh" for AlexNet §3.1's saturating comparison),
  ``classifier_activation`` ("softmax" or None for float32 logits), ``tower_devices`` ("auto", the
  default: GPU:0/GPU:1 when two GPUs are visible; None: no placement; or two device strings; only a net
  with towers places anything, the others accept None/"auto" and ignore it);
- AlexNet only (``alexnet``, ``alexnet_1tower``): ``pooling`` (`POOLINGS`: "overlapping" 3x3/2, "non_overlapping" 2x2/2),
  ``extra_conv`` (bool), ``conv1_padding`` (pixels on each side of conv1's input: 2, this project's reading
  of the paper's 224 input; 0, Caffe's bvlc_alexnet at 227) and ``lrn_position`` (`LRN_POSITIONS`:
  "before_pool", the paper and bvlc_alexnet; "after_pool", Caffe's CaffeNet).

An unknown name, option or option value raises `keras_alexnet.errors.FlagError` (a `ValueError`) in one line.
"""

import dataclasses

from keras_alexnet.errors import FlagError

# The choices of the model options, each defined here once: the builders, the training configuration and
# the flags (`keras_alexnet.cli.flagdefs`) take them from here.
# How LRN's α is read (keras_alexnet.lrn): the printed formula, cuda-convnet's α/n, Caffe's α/n with k=1.
# [AlexNet §3.3]
LRN_CONVENTIONS = ("paper", "cuda_convnet", "caffe")
# Where AlexNet's LRN sits: after the ReLU before pooling (the paper, bvlc_alexnet), or after pooling (CaffeNet).
# [AlexNet §3.3]
LRN_POSITIONS = ("before_pool", "after_pool")
# AlexNet's max-pooling: 3x3 windows with stride 2 (overlapping), or the 2x2 stride-2 pooling it is
# compared with. [AlexNet §3.4]
POOLINGS = ("overlapping", "non_overlapping")
# Weight initialisation schemes (`keras_alexnet.initializers`): the paper's, Caffe's reading, Glorot's.
# [AlexNet §5, VGG §3.1]
INITS = ("paper", "caffe", "glorot")
# Hidden units: ReLU, or the saturating tanh AlexNet compares it with (Figure 1). [AlexNet §3.1]
ACTIVATIONS = ("relu", "tanh")
# The classifier's output: softmax probabilities (the papers'), or None for float32 logits
# (`keras_alexnet.alexnet.classifier_output`).
CLASSIFIER_ACTIVATIONS = ("softmax", None)

_COMMON_OPTIONS = ("width", "lrn", "lrn_convention", "init", "dropout", "activation", "classifier_activation",
                   "tower_devices")
_ALEXNET_OPTIONS = _COMMON_OPTIONS + ("pooling", "extra_conv", "conv1_padding", "lrn_position")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the code needs to know about one architecture.

    - family: "alexnet" or "vgg" (which paper's recipe applies);
    - towers: 2 for the two-GPU AlexNet (AlexNet §3.2), else 1;
    - vgg_config: the column of VGG Table 1 ("A".."E"), None for AlexNet;
    - lrn: whether the net normalises by default (AlexNet §3.3, VGG A-LRN);
    - min_input: the smallest square input the strides accept;
    - mean: the mean the paper subtracts, "image" (per-pixel, AlexNet §2) or "rgb" (VGG §2.1);
    - batch_size, epochs: the paper's batch (AlexNet §5: 128, VGG §3.1: 256) and epoch cap (90, 74);
    - options: the keyword options `build_model` accepts for it;
    - builder: the module that builds it ("alexnet", "alexnet_torchvision", "vgg").
    """

    name: str
    family: str
    towers: int = 1
    vgg_config: str = None
    lrn: bool = False
    min_input: int = 32
    mean: str = "rgb"
    batch_size: int = 256
    epochs: int = 74
    options: tuple = _COMMON_OPTIONS
    builder: str = "vgg"


# AlexNet's recipe: batches of 128, about 90 passes through the training set. [AlexNet §5]
_ALEXNET_RECIPE = dict(batch_size=128, epochs=90)


def _alexnet(name, towers):
    return ModelSpec(name, "alexnet", towers=towers, lrn=True, min_input=63, mean="image",
                     options=_ALEXNET_OPTIONS, builder="alexnet", **_ALEXNET_RECIPE)


# torchvision's AlexNet: trained on the mean colour (its normalisation), AlexNet's recipe otherwise.
_ALEXNET_TORCHVISION = ModelSpec("alexnet_torchvision", "alexnet", lrn=False, min_input=63, mean="rgb",
                                 builder="alexnet_torchvision", **_ALEXNET_RECIPE)


def _vgg(config, lrn=False):
    return ModelSpec(f"vgg_{config.lower()}" + ("_lrn" if lrn else ""), "vgg", vgg_config=config, lrn=lrn)


SPECS = {spec.name: spec for spec in (
    _alexnet("alexnet", 2), _alexnet("alexnet_1tower", 1), _ALEXNET_TORCHVISION,
    _vgg("A"), _vgg("A", lrn=True), _vgg("B"), _vgg("C"), _vgg("D"), _vgg("E"),
)}
MODEL_NAMES = tuple(SPECS)


def spec(name: str) -> ModelSpec:
    """The `ModelSpec` of architecture `name`; FlagError naming the choices for an unknown name."""
    if name not in SPECS:
        raise FlagError(f"unknown model '{name}' (choose from: {', '.join(MODEL_NAMES)})")
    return SPECS[name]


CLASSIFIER_LAYER = "fc8"  # the last layer of every architecture: num_classes units


def weight_layer_names(name: str, extra_conv: bool = False) -> tuple:
    """The names of the layers of `name` that hold weights, input to output, without building it (nor
    importing Keras): AlexNet's conv1-conv5 (+ conv6 with ``extra_conv``, AlexNet §6), VGG Table 1's
    conv{block}_{index}, then fc6, fc7 and the classifier fc8. [AlexNet §3.5, VGG Table 1]"""
    model_spec = spec(name)
    if model_spec.family == "alexnet":
        convs = tuple(f"conv{i}" for i in range(1, 6)) + (("conv6",) if extra_conv else ())
    else:
        from keras_alexnet.vgg_configs import conv_layer_names

        convs = tuple(conv_layer_names(model_spec.vgg_config))
    return convs + ("fc6", "fc7", CLASSIFIER_LAYER)


def build_model(name: str, num_classes: int = 1000, input_shape=(224, 224, 3), **options):
    """The model ``name`` as a Keras functional model, softmax probabilities out (see the module docstring).

    [AlexNet §3, VGG §2]
    """
    model_spec = spec(name)
    unknown = sorted(set(options) - set(model_spec.options))
    if unknown:
        raise FlagError(f"model '{name}' has no option '{unknown[0]}' (options: {', '.join(model_spec.options)})")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise FlagError(f"num_classes must be a positive integer, got {num_classes!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise FlagError(f"input_shape must be (height, width, channels), got {input_shape}")
    _check_choice(options, "init", INITS)
    _check_choice(options, "lrn_convention", LRN_CONVENTIONS)
    _check_choice(options, "lrn_position", LRN_POSITIONS)
    _check_choice(options, "pooling", POOLINGS)
    _check_choice(options, "activation", ACTIVATIONS)
    _check_choice(options, "classifier_activation", CLASSIFIER_ACTIVATIONS)
    tower_devices = options.pop("tower_devices", "auto")
    if not (tower_devices is None or tower_devices == "auto"):
        if model_spec.towers != 2:
            raise FlagError(f"tower_devices: model '{name}' has no towers (only 'alexnet' does); use None or 'auto'")
        if isinstance(tower_devices, str) or len(list(tower_devices)) != 2:
            raise FlagError(f"tower_devices must be None, 'auto' or two device strings, got {tower_devices!r}")
    if options.get("lrn") is None:
        options["lrn"] = model_spec.lrn

    try:
        if model_spec.builder == "alexnet":
            from keras_alexnet.alexnet import build_alexnet

            devices = tower_devices if model_spec.towers == 2 else None
            return build_alexnet(num_classes, input_shape, towers=model_spec.towers, tower_devices=devices,
                                 name=name, **options)
        if model_spec.builder == "alexnet_torchvision":
            from keras_alexnet.alexnet_torchvision import build_alexnet_torchvision

            return build_alexnet_torchvision(num_classes, input_shape, name=name, **options)
        from keras_alexnet.vgg import build_vgg

        return build_vgg(model_spec.vgg_config, num_classes, input_shape, name=name, **options)
    except ValueError as error:
        raise FlagError(f"model '{name}': {error}") from error


def _check_choice(options, key, choices):
    if key in options and options[key] not in choices:
        shown = ", ".join("None" if c is None else str(c) for c in choices)
        raise FlagError(f"{key} must be one of {shown}, got {options[key]!r}")
