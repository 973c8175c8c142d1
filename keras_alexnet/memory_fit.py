"""Whether a training run can fit in this machine's memory, estimated from its settings before anything is built.

Training keeps, per parameter, its float32 weight, its gradient and its momentum velocity (the update rule
of AlexNet §5): 3 x 4 bytes; and, for one batch, the output of every layer, kept for the backward pass:
4 bytes per value. `training_bytes` adds the two up from the architectures' own tables (`alexnet._CONVS`,
`alexnet_torchvision.CONVS`, `vgg.CONFIGS`), counting conv, pooling and fully-connected outputs only (LRN outputs, gradient buffers and
TensorFlow's workspace come on top), so it is a lower bound: a run it refuses cannot fit, whatever else
the machine does. Importing the tables imports Keras, so this runs once TensorFlow is loaded, before the
model or the input pipeline is built (where a run too large for the machine would end in a
`ResourceExhaustedError` or the kernel's out-of-memory killer).
"""

import dataclasses
import os

from keras_alexnet.errors import FlagError

BYTES_PER_VALUE = 4  # float32
COPIES_PER_PARAMETER = 3  # weight, gradient, momentum [AlexNet §5]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Parameters of the model and layer output values of one image (conv, pooling, FC; the input image)."""

    parameters: int
    activations_per_image: int

    def training_bytes(self, batch_size: int) -> int:
        return (self.parameters * COPIES_PER_PARAMETER * BYTES_PER_VALUE
                + self.activations_per_image * batch_size * BYTES_PER_VALUE)


def _alexnet(spec, image_size, width, num_classes, pooling, extra_conv, conv1_padding) -> Estimate:
    from keras_alexnet import alexnet

    sizes = alexnet.feature_map_sizes(image_size, pooling, conv1_padding)
    multiple = 2 if spec.towers == 2 else 1
    channels, parameters, activations = 3, 0, image_size * image_size * 3
    for name, filters, kernel, _, _, towered in alexnet._CONVS:
        filters = alexnet.scaled(alexnet._ONE_TOWER_FILTERS[name] if spec.towers == 1 else filters, width,
                                 multiple)
        groups = 2 if towered and spec.towers == 2 else 1
        parameters += kernel * kernel * (channels // groups) * filters + filters
        activations += sizes[name] ** 2 * filters
        pooled = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}.get(name)
        if pooled:
            activations += sizes[pooled] ** 2 * filters
        channels = filters
    if extra_conv:
        filters = alexnet.scaled(256, width, multiple)
        parameters += 9 * channels * filters + filters
        activations += sizes["pool5"] ** 2 * filters
        channels = filters
    return _classifier(sizes["pool5"] ** 2 * channels, alexnet.scaled(alexnet._FC_UNITS, width), num_classes,
                       parameters, activations)


def _alexnet_torchvision(image_size, width, num_classes) -> Estimate:
    from keras_alexnet import alexnet, alexnet_torchvision as table

    sizes = alexnet.feature_map_sizes(image_size)  # the same strides and padding as the paper's net
    channels, parameters, activations = 3, 0, image_size * image_size * 3
    for name, filters, kernel, _ in table.CONVS:
        filters = alexnet.scaled(filters, width)
        parameters += kernel * kernel * channels * filters + filters
        activations += sizes[name] ** 2 * filters
        if name in table.POOLED:
            activations += sizes[{"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}[name]] ** 2 * filters
        channels = filters
    return _classifier(table.POOL_SIDE ** 2 * channels, alexnet.scaled(table.FC_UNITS, width), num_classes,
                       parameters, activations)


def _vgg(spec, image_size, width, num_classes) -> Estimate:
    from keras_alexnet import vgg

    side, channels, parameters, activations = image_size, 3, 0, image_size * image_size * 3
    for entry in vgg.CONFIGS[spec.vgg_config]:
        if entry == vgg.M:
            side //= 2
            activations += side * side * channels
            continue
        filters, kernel = entry
        filters = vgg.scaled(filters, width)
        parameters += kernel * kernel * channels * filters + filters
        activations += side * side * filters
        channels = filters
    return _classifier(side * side * channels, vgg.scaled(vgg._FC_UNITS, width), num_classes, parameters,
                       activations)


def _classifier(flat, hidden, num_classes, parameters, activations) -> Estimate:
    """fc6, fc7 (`hidden` units) and fc8 after the flattened `flat` features."""
    parameters += flat * hidden + hidden + hidden * hidden + hidden + hidden * num_classes + num_classes
    return Estimate(parameters, activations + 2 * hidden + num_classes)


def estimate(architecture: str, image_size: int, width: float, num_classes: int, pooling: str = "overlapping",
             extra_conv: bool = False, conv1_padding: int = 2) -> Estimate:
    """The parameters and per-image layer outputs of `architecture` as `registry.build_model` builds it."""
    from keras_alexnet.registry import spec as spec_of

    spec = spec_of(architecture)
    if spec.builder == "alexnet_torchvision":
        return _alexnet_torchvision(image_size, width, num_classes)
    if spec.family == "alexnet":
        return _alexnet(spec, image_size, width, num_classes, pooling, extra_conv, conv1_padding)
    return _vgg(spec, image_size, width, num_classes)


def total_memory_bytes() -> int:
    """The machine's physical memory (os.sysconf)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gb(count: int) -> str:
    return f"{count / 2**30:,.1f} GB"


def check_training_fits(config, memory_bytes: int = None) -> None:
    """FlagError naming the sizes when training `config` (a resolved `TrainConfig`) needs more than the
    machine's memory (`memory_bytes`, default: `total_memory_bytes()`), with the estimate. Classes not
    given (--num_classes) count as 1, the data not being read yet: a lower bound still."""
    memory_bytes = memory_bytes or total_memory_bytes()
    model, data = config.model, config.data
    found = estimate(model.architecture, data.image_size, model.width, data.num_classes or 1, model.pooling,
                     model.extra_conv, model.conv1_padding)
    needed = found.training_bytes(data.batch_size)
    if needed <= memory_bytes:
        return
    raise FlagError(
        f"--width={model.width:g} --image_size={data.image_size} --batch_size={data.batch_size}: training "
        f"{model.architecture} needs at least {_gb(needed)} ({found.parameters:,} parameters x "
        f"{COPIES_PER_PARAMETER * BYTES_PER_VALUE} bytes for weights, gradients and momentum + "
        f"{found.activations_per_image:,} layer outputs per image x {data.batch_size} images x {BYTES_PER_VALUE} "
        f"bytes), more than this machine's {_gb(memory_bytes)} of memory")
