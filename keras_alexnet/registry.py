"""Models by name, with keyword options: the one entry point the CLI and the training code use.

    build_model("alexnet", num_classes=10, input_shape=(67, 67, 3), width=0.25)

Names (`MODEL_NAMES`): ``alexnet`` (AlexNet §3.5, two towers), ``alexnet_1tower`` (the one-GPU net of
AlexNet §3.2), ``vgg_a``, ``vgg_a_lrn``, ``vgg_b``, ``vgg_c``, ``vgg_d``, ``vgg_e`` (VGG Table 1).

Options (all keyword, all optional):
- both families: ``width`` (float multiplier of every conv/FC width, default 1.0), ``lrn`` (bool; default
  True for AlexNet and vgg_a_lrn, False for the other VGG nets), ``lrn_convention`` ("paper" or
  "cuda_convnet"), ``init`` ("paper", "caffe", "glorot"), ``dropout`` (0.5), ``classifier_activation``
  ("softmax" or None for float32 logits), ``tower_devices`` ("auto", the default: GPU:0/GPU:1 when two GPUs
  are visible; None: no placement; or two device strings; only the two-tower AlexNet places anything, the
  other nets accept None/"auto" and ignore it);
- AlexNet only: ``pooling`` ("overlapping" 3x3/2, "non_overlapping" 2x2/2) and ``extra_conv`` (bool).

An unknown name, option or option value raises `keras_alexnet.errors.FlagError` in one line.
"""

from keras_alexnet.errors import FlagError

MODEL_NAMES = ("alexnet", "alexnet_1tower", "vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c", "vgg_d", "vgg_e")

_COMMON_OPTIONS = ("width", "lrn", "lrn_convention", "init", "dropout", "classifier_activation", "tower_devices")
_ALEXNET_OPTIONS = _COMMON_OPTIONS + ("pooling", "extra_conv")


def model_family(name: str) -> str:
    """"alexnet" or "vgg" for a model name; FlagError for an unknown name."""
    _check_name(name)
    return "alexnet" if name.startswith("alexnet") else "vgg"


def _check_name(name):
    if name not in MODEL_NAMES:
        raise FlagError(f"unknown model '{name}' (choose from: {', '.join(MODEL_NAMES)})")


def build_model(name: str, num_classes: int = 1000, input_shape=(224, 224, 3), **options):
    """The model ``name`` as a Keras functional model, softmax probabilities out (see the module docstring).

    [AlexNet §3, VGG §2]
    """
    family = model_family(name)
    allowed = _ALEXNET_OPTIONS if family == "alexnet" else _COMMON_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FlagError(f"model '{name}' has no option '{unknown[0]}' (options: {', '.join(allowed)})")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise FlagError(f"num_classes must be a positive integer, got {num_classes!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise FlagError(f"input_shape must be (height, width, channels), got {input_shape}")
    _check_choice(options, "init", ("paper", "caffe", "glorot"))
    _check_choice(options, "lrn_convention", ("paper", "cuda_convnet"))
    _check_choice(options, "pooling", ("overlapping", "non_overlapping"))
    _check_choice(options, "classifier_activation", ("softmax", None))
    tower_devices = options.pop("tower_devices", "auto")
    if not (tower_devices is None or tower_devices == "auto"):
        if name != "alexnet":
            raise FlagError(f"tower_devices: model '{name}' has no towers (only 'alexnet' does); use None or 'auto'")
        if isinstance(tower_devices, str) or len(list(tower_devices)) != 2:
            raise FlagError(f"tower_devices must be None, 'auto' or two device strings, got {tower_devices!r}")

    try:
        if family == "alexnet":
            from keras_alexnet.alexnet import build_alexnet

            towers = 2 if name == "alexnet" else 1
            devices = tower_devices if towers == 2 else None
            return build_alexnet(num_classes, input_shape, towers=towers, tower_devices=devices, name=name, **options)
        from keras_alexnet.vgg import build_vgg

        config = name.split("_")[1].upper()
        options.setdefault("lrn", name == "vgg_a_lrn")
        return build_vgg(config, num_classes, input_shape, name=name, **options)
    except ValueError as error:
        raise FlagError(f"model '{name}': {error}") from error


def _check_choice(options, key, choices):
    if key in options and options[key] not in choices:
        shown = ", ".join("None" if c is None else str(c) for c in choices)
        raise FlagError(f"{key} must be one of {shown}, got {options[key]!r}")
