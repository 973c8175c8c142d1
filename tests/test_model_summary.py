"""The layer table (model_summary) and `python main.py summary`."""

import os
import subprocess
import sys

from keras_alexnet.dense_eval import to_fully_convolutional
from keras_alexnet.model_summary import format_summary, layer_rows
from keras_alexnet.registry import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_rows_of_small_alexnet():
    model = build_model("alexnet", num_classes=10, input_shape=(63, 63, 3), width=0.25)
    rows = {row[0]: row for row in layer_rows(model)}
    assert rows["conv1"][1:3] == ("Conv2D", "15x15x24")
    assert rows["conv2"][1] == "TowerConv2D" and rows["conv2"][4] == "2 towers x 32@5x5/1 relu"
    assert rows["lrn1"][4] == "n=5 k=2 alpha=0.0001 beta=0.75 (paper)"
    assert rows["pool5"][2] == "1x1x64" and rows["softmax"][2] == "10"
    text = format_summary(model)
    assert f"total parameters: {model.count_params():,}" in text


def test_dense_net_rows_show_this_models_maps():
    model = build_model("vgg_a", num_classes=5, input_shape=(32, 32, 3), width=0.125)
    dense = to_fully_convolutional(model)
    rows = {row[0]: row for row in layer_rows(dense)}
    assert rows["fc6_conv"][4] == "fc6 as 512@1x1/1 relu"
    assert rows["softmax"][2] == "?x?x5" and rows["drop6"][2] == "?x?x512"


def test_cli_prints_the_table_without_tensorflow_noise():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_"))}
    result = subprocess.run(
        [sys.executable, "main.py", "summary", "--architecture", "alexnet"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "alexnet: input 224x224x3"
    assert any(line.startswith("conv1 ") and "55x55x96" in line and "34,944" in line for line in lines)
    assert any(line.startswith("pool5 ") and "6x6x256" in line for line in lines)
    assert lines[-1].startswith("total parameters: 60,965,224")


def test_cli_refuses_bad_flags_in_one_line():
    result = subprocess.run(
        [sys.executable, "main.py", "summary", "--architecture", "vgg_b", "--extra_conv"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "main.py summary: error: --pooling and --extra_conv are AlexNet options; VGG has neither"
