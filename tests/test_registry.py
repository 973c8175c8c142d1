"""The model registry: names, families, options, one-line FlagErrors."""

import pytest

from keras_alexnet.errors import FlagError
from keras_alexnet.registry import MODEL_NAMES, SPECS, build_model, spec, weight_layer_names

SMALL = dict(num_classes=5, input_shape=(64, 64, 3))


def test_names_and_families():
    assert MODEL_NAMES == ("alexnet", "alexnet_1tower", "alexnet_torchvision", "vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c",
                           "vgg_d", "vgg_e")
    assert [spec(name).family for name in MODEL_NAMES] == ["alexnet"] * 3 + ["vgg"] * 6
    assert [SPECS[name].towers for name in MODEL_NAMES] == [2] + [1] * 8
    assert [spec(name).mean for name in MODEL_NAMES] == ["image"] * 2 + ["rgb"] * 7
    assert [(spec(name).batch_size, spec(name).epochs) for name in ("alexnet", "vgg_e")] == [(128, 90), (256, 74)]


def test_tanh_activation_reaches_hidden_layers():
    for name in ("alexnet", "vgg_a"):
        model = build_model(name, width=0.0625, activation="tanh", **SMALL)
        first_conv = "conv1" if name == "alexnet" else "conv1_1"
        assert model.get_layer(first_conv).activation.__name__ == "tanh"
        assert model.get_layer("fc7").activation.__name__ == "tanh"
        assert model.get_layer("fc8").activation.__name__ == "linear"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_name_builds_small(name):
    model = build_model(name, width=0.0625, **SMALL)
    assert model.name == name
    assert model.output.shape == (None, 5) and model.layers[-1].name == "softmax"
    layer_names = [layer.name for layer in model.layers]
    assert ("lrn1" in layer_names) == (name in ("alexnet", "alexnet_1tower", "vgg_a_lrn"))
    assert {"fc6", "drop6", "fc7", "drop7", "fc8"} <= set(layer_names)
    # the names the command line checks --freeze_through against, without building the model
    assert weight_layer_names(name) == tuple(layer.name for layer in model.layers if layer.weights)
    if "extra_conv" in spec(name).options:
        extra = build_model(name, width=0.0625, extra_conv=True, **SMALL)
        assert weight_layer_names(name, extra_conv=True) == tuple(layer.name for layer in extra.layers if layer.weights)


def test_tower_placement_defaults_to_auto():
    assert build_model("alexnet", width=0.0625, **SMALL).get_layer("conv2").tower_devices == "auto"
    placed = build_model("alexnet", width=0.0625, tower_devices=["/CPU:0", "/CPU:0"], **SMALL)
    assert placed.get_layer("conv5").tower_devices == ["/CPU:0", "/CPU:0"]
    assert build_model("alexnet", width=0.0625, tower_devices=None, **SMALL).get_layer("conv4").tower_devices is None


def test_options_reach_the_builders():
    model = build_model(
        "alexnet", width=0.25, lrn=False, pooling="non_overlapping", extra_conv=True, init="glorot",
        dropout=0.3, classifier_activation=None, tower_devices="auto", **SMALL
    )
    names = [layer.name for layer in model.layers]
    assert "lrn1" not in names and "conv6" in names and names[-1] == "logits"
    assert model.get_layer("drop6").rate == 0.3 and model.get_layer("pool1").pool_size == (2, 2)
    vgg = build_model("vgg_b", width=0.125, lrn=True, lrn_convention="cuda_convnet", **SMALL)
    assert vgg.get_layer("lrn1").convention == "cuda_convnet"
    assert "lrn1" not in [layer.name for layer in build_model("vgg_a_lrn", lrn=False, width=0.0625, **SMALL).layers]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: build_model("alexnet2"), "unknown model 'alexnet2' (choose from: alexnet, alexnet_1tower, "
                                          "alexnet_torchvision, vgg_a"),
        (lambda: spec("resnet"), "unknown model 'resnet'"),
        (lambda: build_model("alexnet", activation="sigmoid"), "activation must be one of relu, tanh"),
        (lambda: build_model("vgg_d", pooling="overlapping"), "model 'vgg_d' has no option 'pooling'"),
        (lambda: build_model("alexnet", colour=True), "model 'alexnet' has no option 'colour'"),
        (lambda: build_model("alexnet", init="he"), "init must be one of paper, caffe, glorot"),
        (lambda: build_model("alexnet", lrn_convention="bvlc"), "lrn_convention must be one of paper, cuda_convnet, caffe"),
        (lambda: build_model("alexnet", lrn_position="after_relu"), "lrn_position must be one of before_pool, after_pool"),
        (lambda: build_model("alexnet", conv1_padding=-1), "conv1_padding must be a non-negative"),
        (lambda: build_model("alexnet", input_shape=(66, 66, 3), conv1_padding=0), "at least 67x67"),
        (lambda: build_model("alexnet_torchvision", lrn=True), "has no local response normalization"),
        (lambda: build_model("alexnet_torchvision", pooling="overlapping"), "has no option 'pooling'"),
        (lambda: build_model("alexnet", pooling="avg"), "pooling must be one of"),
        (lambda: build_model("alexnet", classifier_activation="sigmoid"), "classifier_activation must be one of"),
        (lambda: build_model("vgg_a", tower_devices=["/GPU:0", "/GPU:1"]), "has no towers"),
        (lambda: build_model("alexnet", tower_devices=["/GPU:0"]), "two device strings"),
        (lambda: build_model("alexnet", num_classes=0), "num_classes must be a positive integer"),
        (lambda: build_model("alexnet", input_shape=(32, 32, 3)), "at least 63x63"),
        (lambda: build_model("alexnet", width=0), "width must be positive"),
        (lambda: build_model("vgg_a", dropout=1.0), "dropout must be in"),
    ],
)
def test_one_line_flag_errors(call, message):
    with pytest.raises(FlagError) as caught:
        call()
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_a_run_recorded_before_the_caffe_options_resumes():
    """A run.json written before ModelConfig had conv1_padding / lrn_position resumes with their defaults;
    a changed value is still refused."""
    import dataclasses

    from keras_alexnet import runs
    from keras_alexnet.training.config import TrainConfig
    from keras_alexnet.training.run import check_resume
    from pipelines.input_config import InputConfig

    config = TrainConfig(data=InputConfig(data_dir="data", batch_size=0, mean="auto")).resolve()
    recorded = runs.absolute_paths(config.to_dict())  # as train records it
    for key in ("conv1_padding", "lrn_position"):
        del recorded["model"][key]
    record = runs.RunRecord("alexnet", 10, [], 224, 256, "image", config=recorded)
    assert check_resume(config, record) == {}
    caffe = dataclasses.replace(config, model=dataclasses.replace(config.model, conv1_padding=0))
    with pytest.raises(FlagError, match="--conv1_padding=0"):
        check_resume(caffe, record)
