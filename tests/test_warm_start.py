"""VGG §3.1's warm start (`train --warm_start=SOURCE`, `keras_alexnet/training/warm_start.py`) from a net A
trained on inputs x 1/64: whatever the source (run folder, checkpoint, `.keras` with the scale folded in)
and the new run's `--input_scale`, the deeper net's conv1 computes on its scaled inputs what net A's conv1
computed on its own (checked with a NumPy transcription of the 3x3 convolution)."""

import os

import numpy as np
import pytest

from keras_alexnet.training import config_from_values, train
from test_train_cli import make_fashion_dir

SOURCE_SCALE = 1 / 64
COMMON = dict(width=0.0625, image_size=32, resize_size=40, batch_size=16, pca_jitter_std=0.0, ten_crop_every=0,
              init="glorot", learning_rate=0.04, lr_schedule="linear", export=False, progress=False,
              mixed_precision=False)


@pytest.fixture(scope="module")
def net_a(tmp_path_factory):
    """(folder, data folder, run folder of a vgg_a trained 3 steps on inputs x 1/64)."""
    folder = tmp_path_factory.mktemp("warm_start")
    data_dir = make_fashion_dir(str(folder / "data"), {"train": 64, "validation": 16, "test": 16}, size=40)
    result = train(config_from_values(dict(COMMON, architecture="vgg_a", data_dir=data_dir, epochs=1,
                                           steps_per_epoch=3, input_scale=SOURCE_SCALE, runs_dir=str(folder / "runs"),
                                           run_name="a")), printer=lambda line: None)
    return folder, data_dir, result.run_dir


def conv3x3_same(images, kernel, bias):
    """A 3x3 stride-1 convolution with one pixel of zero padding (VGG §2.1), in NumPy: [N,H,W,C] -> [N,H,W,F]."""
    padded = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = images.shape[1:3]
    out = np.zeros(images.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nhwc,cf->nhwf", padded[:, dy:dy + height, dx:dx + width], kernel[dy, dx])
    return out + bias


def _conv1(model):
    kernel, bias = model.get_layer("conv1_1").get_weights()
    return kernel.astype(np.float64), bias.astype(np.float64)


def _checkpoint_conv1(run_dir):
    """conv1_1 of net A as trained (its latest checkpoint: on inputs x SOURCE_SCALE)."""
    import tensorflow as tf

    from keras_alexnet import registry

    model = registry.build_model("vgg_a", num_classes=10, input_shape=(32, 32, 3), width=COMMON["width"])
    tf.train.Checkpoint(model_variables=list(model.variables)).restore(
        tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))).expect_partial()
    return _conv1(model)


@pytest.mark.parametrize("where, target_scale", [("run folder", SOURCE_SCALE), ("checkpoint", 1.0),
                                                  ("model.keras", SOURCE_SCALE), ("model.keras", 1 / 32)])
def test_conv1_responds_as_net_a_did_on_the_scaled_inputs(net_a, where, target_scale):
    """Net A's conv1 on its inputs x 1/64 (its checkpoint's kernel) and the warm-started net D's conv1 on
    the same images x its own --input_scale give the same maps; the saved .keras of A (scale folded in)
    agrees on unscaled inputs. Net D takes one step at a learning rate of 1e-30 (below a float32 kernel's
    resolution): its saved model is the warm start itself, with its own scale folded in."""
    import tensorflow as tf

    from keras_alexnet.evaluation.models import load_keras_model

    folder, data_dir, run_dir = net_a
    path = {"run folder": run_dir, "checkpoint": tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")),
            "model.keras": os.path.join(run_dir, "model.keras")}[where]
    lines = []
    name = f"d_{where.replace(' ', '_').replace('.', '_')}_{target_scale:g}"
    result = train(config_from_values(dict(COMMON, architecture="vgg_d", data_dir=data_dir, epochs=1,
                                           steps_per_epoch=1, learning_rate=1e-30,
                                           input_scale=target_scale, warm_start=path, runs_dir=str(folder / "runs"),
                                           run_name=name)), printer=lines.append)
    warm = [line for line in lines if line.startswith("Warm start from")]
    assert len(warm) == 1 and warm[0].endswith("[VGG §3.1]"), lines
    rescale = SOURCE_SCALE / target_scale if where != "model.keras" else 1 / target_scale
    assert (f"conv1 x{rescale:g} for --input_scale" in warm[0]) == (rescale != 1.0), warm

    images = np.random.default_rng(0).normal(0.0, 60.0, (2, 12, 12, 3))  # mean-subtracted, 0..255 scale
    kernel_a, bias_a = _checkpoint_conv1(run_dir)
    expected = conv3x3_same(images * SOURCE_SCALE, kernel_a, bias_a)
    assert np.abs(expected).max() > 1e-3  # a response to compare, not zeros

    folded_a, folded_bias_a = _conv1(load_keras_model(os.path.join(run_dir, "model.keras")))
    np.testing.assert_allclose(conv3x3_same(images, folded_a, folded_bias_a), expected, rtol=1e-4, atol=1e-5)

    # Net D's saved model has its own scale folded in: the kernel it trains with is that over target_scale.
    kernel_d, bias_d = _conv1(load_keras_model(result.model_path))
    got = conv3x3_same(images * target_scale, kernel_d / target_scale, bias_d)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
