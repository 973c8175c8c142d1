"""`keras_alexnet.memory_fit`: the parameter and layer-output counts it computes from the architecture tables
equal those of the models `registry.build_model` builds (Keras' `count_params`, the layers' output shapes),
and a run whose estimate exceeds the machine's memory is refused in one line with the estimate."""

import numpy as np
import pytest

from keras_alexnet import memory_fit
from keras_alexnet.errors import FlagError
from keras_alexnet.registry import MODEL_NAMES, build_model, spec
from keras_alexnet.training.config import config_from_values

COUNTED = ("Conv2D", "TowerConv2D", "MaxPooling2D", "Dense")  # the layer outputs the estimate counts


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_counts_equal_the_built_models(name):
    cases = [(67, 0.125, {})]
    if "extra_conv" in spec(name).options:
        cases.append((96, 0.25, {"extra_conv": True, "pooling": "non_overlapping"}))
        cases.append((91, 0.25, {"conv1_padding": 0}))  # Caffe's AlexNet (227 at full size)
    for size, width, options in cases:
        model = build_model(name, num_classes=7, input_shape=(size, size, 3), width=width, **options)
        outputs = size * size * 3 + sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers
                                        if type(layer).__name__ in COUNTED)
        found = memory_fit.estimate(name, size, width, 7, **options)
        assert (found.parameters, found.activations_per_image) == (model.count_params(), outputs)


def test_the_paper_nets_fit_and_absurd_sizes_are_refused():
    alexnet = memory_fit.estimate("alexnet", 224, 1.0, 1000)
    assert alexnet.parameters == 60_965_224  # AlexNet §3.5 (the module docstring of alexnet.py)
    assert memory_fit.estimate("vgg_d", 224, 1.0, 1000).parameters == 138_357_544  # VGG Table 2
    config = config_from_values({"data_dir": "d", "width": 1.0, "batch_size": 128,
                                 "num_classes": 1000}).resolve()
    expected = alexnet.parameters * 12 + alexnet.activations_per_image * 128 * 4
    assert memory_fit.Estimate(alexnet.parameters, alexnet.activations_per_image).training_bytes(128) == expected
    memory_fit.check_training_fits(config, memory_bytes=expected)  # just fits
    with pytest.raises(FlagError) as refused:
        memory_fit.check_training_fits(config, memory_bytes=expected - 1)
    message = str(refused.value)
    assert message.startswith("--width=1 --image_size=224 --batch_size=128: training alexnet needs at least ")
    assert f"({alexnet.parameters:,} parameters x 12 bytes" in message
    assert "\n" not in message
    huge = config_from_values({"data_dir": "d", "width": 1e6}).resolve()
    with pytest.raises(FlagError, match="more than this machine's"):
        memory_fit.check_training_fits(huge)
    assert memory_fit.total_memory_bytes() > 2**28
