"""The callbacks with plain `model.fit` on a tiny stand-in model; TensorBoard event tags; 10-crop maths."""

import csv
import glob
import io
import os

import numpy as np
import pytest
import keras
import tensorflow as tf

from callbacks.augmented_inputs import AugmentedInputs
from callbacks.conv1_images import Conv1Images
from keras_alexnet.figures import kernel_grid, towers_side_by_side
from callbacks.csv_log import MetricsCSV
from callbacks.nan_guard import NanGuard, NonFiniteLoss
from callbacks.lr_schedules import PlateauDecay
from callbacks.summaries import HParams, ScalarSummaries, write_final_errors
from callbacks.ten_crop import TenCropEvaluation, evaluate_ten_crop
from callbacks.throughput import Progress, Throughput
from keras_alexnet.metrics import error_metrics
from keras_alexnet.training.optimizer import PaperSGD

CLASSES = 6


def tiny_model(size=12):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(CLASSES, name="fc8")(x)
    outputs = keras.layers.Activation("softmax", name="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def data(n=32, size=12, crops=None, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n).astype("int32")
    shape = (n, crops, size, size, 3) if crops else (n, size, size, 3)
    images = rng.normal(size=shape).astype("float32")
    images += labels.reshape((-1,) + (1,) * (len(shape) - 1)) * 0.5
    return images, labels


def events_in(directory):
    """(run, tag, step, value) of every summary under `directory`; value: the scalar, or the tensor."""
    found = []
    for path in glob.glob(os.path.join(directory, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                found.append((os.path.relpath(os.path.dirname(path), directory), value.tag, event.step, tensor))
    return found


def tags_in(directory):
    return {(run, tag) for run, tag, _, _ in events_in(directory)}


def test_all_callbacks_with_model_fit(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy",
                  metrics=error_metrics())
    x, y = data()
    val = data(16, seed=1)
    crops = tf.data.Dataset.from_tensor_slices(data(10, crops=10, seed=2)).batch(4)
    log_dir = str(tmp_path / "logs")
    printed, shown = [], io.StringIO()
    throughput = Throughput(global_batch_size=8)
    ten_crop = TenCropEvaluation(crops, every_n_epochs=2, printer=printed.append, examples=10, stream=shown,
                                 interactive=False)
    plateau = PlateauDecay(patience=1, max_reductions=3, printer=printed.append)
    inputs = np.random.default_rng(0).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    callbacks = [NanGuard(), throughput, plateau, ten_crop,
                 Progress(4, 3, throughput, printed.append, stream=shown, interactive=False, validation_steps=1),
                 MetricsCSV(str(tmp_path / "metrics.csv")), ScalarSummaries(log_dir, "trial", update_freq=2),
                 Conv1Images(log_dir, "trial"), AugmentedInputs(inputs, log_dir, "trial"),
                 HParams(log_dir, {"lr": 0.05, "model": "x", "jitter": None}, trial="trial")]
    history = model.fit(x, y, batch_size=8, epochs=3, validation_data=val, callbacks=callbacks, verbose=0)
    assert {"top1_error", "top5_error", "val_top1_error", "images_per_sec", "learning_rate"} <= set(history.history)
    assert ten_crop.final is not None and 0.0 <= ten_crop.final["ten_crop_top1_error"] <= 1.0
    assert any(line.startswith("epoch 3/3") for line in printed)
    progress = shown.getvalue().splitlines()
    assert progress[0].startswith("Epoch 1/3 | 0/4 steps [>...") and "ETA --" in progress[0]
    assert any(line.startswith("  validation (centre crop)") for line in progress)
    assert any(line.startswith("  validation (10 crops)") for line in progress)

    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["ten_crop_top1_error"] != "" and rows[0]["ten_crop_top1_error"] == ""

    write_final_errors(log_dir, "trial", "test_10crop", 3, {"top1_error": 0.5, "top5_error": 0.25, "count": 10})
    tags = tags_in(log_dir)
    for expected in [("trial/train", "epoch/loss"), ("trial/train", "epoch/top1_error"),
                     ("trial/train", "epoch/top5_error"), ("trial/train", "training/learning_rate"),
                     ("trial/train", "training/images_per_sec"), ("trial/train", "training/running_loss"),
                     ("trial/validation", "epoch/loss"), ("trial/validation", "epoch/top1_error"),
                     ("trial/validation", "epoch/top5_error"), ("trial/validation_10crop", "epoch/top1_error"),
                     ("trial/validation_10crop", "epoch/top5_error"), ("trial/test_10crop", "epoch/top1_error"),
                     ("trial", "weights/conv1_kernels"), ("trial/train", "training_inputs/augmented"),
                     ("trial", "_hparams_/experiment"), ("trial", "_hparams_/session_start_info"),
                     ("trial", "_hparams_/session_end_info")]:
        assert expected in tags, (expected, sorted(tags))
    assert not any(run == "." for run, _ in tags)  # nothing at the root of logs/
    assert not any(tag.endswith("images_per_sec") and run != "trial/train" for run, tag in tags)
    # the learning rate at every one of the 12 steps, 4 a epoch
    steps = sorted(step for run, tag, step, _ in events_in(log_dir) if tag == "training/learning_rate")
    assert steps == list(range(1, 13))
    kernels = [v for run, tag, _, v in events_in(log_dir) if tag == "weights/conv1_kernels"]
    assert len(kernels) == 4 and int(kernels[0][0]) >= 600  # step 0 and three epochs; width, height, PNG


def test_dropped_records_only_when_there_are_some(tmp_path):
    model = tiny_model()
    model.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy")
    summaries = ScalarSummaries(str(tmp_path), "t")
    summaries.set_model(model)
    summaries.on_epoch_end(0, {"loss": 1.0, "dropped_records": 0})
    summaries.on_epoch_end(1, {"loss": 1.0, "dropped_records": 3})
    summaries.on_train_end()
    dropped = [(step, float(v)) for _, tag, step, v in events_in(str(tmp_path)) if tag == "epoch/dropped_records"]
    assert dropped == [(2, 3.0)]


def test_throughput_leaves_the_first_step_out_and_gives_each_steps_learning_rate():
    model = tiny_model()
    model.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy")
    throughput = Throughput(global_batch_size=8)
    throughput.set_model(model)
    throughput.on_epoch_begin(0)
    clock = iter([100.0, 101.0, 101.5])  # the first step ends at 100 s (tracing), then two of 0.5 s
    throughput.rate.clock = lambda: next(clock)
    logs = [{}, {}, {}]
    for step in range(3):
        model.optimizer.learning_rate = 0.1 * (step + 1)
        throughput.on_train_batch_end(step, logs[step])
    assert "images_per_sec" not in logs[0]
    assert logs[1]["images_per_sec"] == pytest.approx(8 / 1.0) and logs[2]["images_per_sec"] == pytest.approx(16 / 1.5)
    assert [round(log["learning_rate"], 6) for log in logs] == [0.1, 0.2, 0.3]


def test_nan_guard_stops_model_fit_with_one_clear_line():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(1e30), loss="sparse_categorical_crossentropy")
    x, y = data(64)
    with pytest.raises(NonFiniteLoss, match=r"^loss became (nan|inf) at epoch 1, step \d+; training stopped$"):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[NanGuard()], verbose=0, shuffle=False)


def test_ten_crop_averages_softmax_over_crops():
    model = tiny_model()
    images, labels = data(6, crops=10, seed=3)
    result = evaluate_ten_crop(model, tf.data.Dataset.from_tensor_slices((images, labels)).batch(4))
    probs = model.predict(images.reshape((-1, 12, 12, 3)), verbose=0).reshape(6, 10, CLASSES).mean(1)
    top1 = np.mean(np.argmax(probs, 1) != labels)
    top5 = np.mean([label not in np.argsort(-p)[:5] for p, label in zip(probs, labels)])
    assert result["count"] == 6
    assert result["top1_error"] == pytest.approx(top1) and result["top5_error"] == pytest.approx(top5)


def test_kernel_grid_towers_side_by_side():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(11, 11, 3, 48)), rng.normal(size=(11, 11, 3, 48))
    grid = kernel_grid(a)
    assert grid.shape == (7 * 12 - 1, 7 * 12 - 1, 3) and grid.min() >= 0 and grid.max() <= 1
    both = towers_side_by_side([a, b], gap=3)
    assert both.shape == (grid.shape[0], 2 * grid.shape[1] + 3, 3)
    np.testing.assert_allclose(both[:, grid.shape[1] + 3:], kernel_grid(b))
