"""Several training steps per call of the compiled step (`Trainer(steps_per_call=N)`, `--steps_per_call`):
the same weights as one step per call, epochs and step checkpoints ending where they do with N = 1, an
interrupted run resuming to the same weights, the scheduled learning rate set once per call."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from callbacks.lr_schedules import WarmupDecay, scheduled_rate
from callbacks.throughput import Throughput
from keras_alexnet.errors import FlagError
from keras_alexnet.training.config import TrainConfig, config_from_values
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer

CLASSES = 4
BATCH = 8


def tiny_model(dropout=0.0):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Flatten()(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop7")(x)
    x = keras.layers.Dense(CLASSES, name="fc8")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(x))


def train_fn(input_context, epoch):
    rng = np.random.default_rng(epoch)
    labels = rng.integers(0, CLASSES, 80).astype("int32")
    images = rng.normal(size=(80, 8, 8, 3)).astype("float32") + labels[:, None, None, None] * 0.3
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH, drop_remainder=True)


def make_trainer(steps_per_call, steps_per_epoch=4, epochs=2, dropout=0.0, **options):
    return Trainer(tf.distribute.get_strategy(), lambda: tiny_model(dropout), lambda: PaperSGD(0.05), train_fn,
                   steps_per_epoch=steps_per_epoch, epochs=epochs, global_batch_size=BATCH,
                   steps_per_call=steps_per_call, printer=lambda m: None, **options)


class Recorder(keras.callbacks.Callback):
    """The batch indices and logs the callbacks see, and the learning rate at each batch end."""

    def __init__(self):
        super().__init__()
        self.begins, self.ends, self.rates, self.epochs = [], [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.begins.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(batch)
        self.rates.append((int(self.model.optimizer.iterations.numpy()),
                           float(self.model.optimizer.learning_rate.numpy())))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_four_steps_per_call_give_the_weights_of_one(dropout):
    one, four = make_trainer(1, dropout=dropout), make_trainer(4, dropout=dropout)
    logs_one, logs_four = one.fit().history, four.fit().history
    assert int(one.optimizer.iterations.numpy()) == int(four.optimizer.iterations.numpy()) == 8
    for a, b in zip(one.model.get_weights(), four.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "top1_error", "top5_error"):
        np.testing.assert_allclose(logs_one[key], logs_four[key], rtol=1e-5)
    # Not the same weights as the initial ones: the test can fail.
    assert not np.allclose(tiny_model(dropout).get_weights()[0], four.model.get_weights()[0])


def test_the_last_call_of_an_epoch_runs_the_remaining_steps():
    trainer = make_trainer(4, steps_per_epoch=7, epochs=2)
    recorder = Recorder()
    history = trainer.fit([Throughput(BATCH), recorder]).history
    assert recorder.begins == [0, 4, 0, 4]
    assert recorder.ends == [3, 6, 3, 6]
    assert [iterations for iterations, _ in recorder.rates] == [4, 7, 11, 14]
    assert int(trainer.optimizer.iterations.numpy()) == 14
    reference = make_trainer(1, steps_per_epoch=7, epochs=2)
    reference_history = reference.fit().history
    np.testing.assert_allclose(history["loss"], reference_history["loss"], rtol=1e-5)
    assert all("images_per_sec" in logs for logs in recorder.epochs)


def test_calls_stop_at_step_checkpoints(tmp_path):
    trainer = make_trainer(4, steps_per_epoch=8, epochs=1, checkpoint_dir=str(tmp_path), checkpoint_every_steps=3)
    recorder = Recorder()
    trainer.fit([recorder])
    assert [iterations for iterations, _ in recorder.rates] == [3, 6, 8]
    saved = sorted(int(path.rsplit("-", 1)[1]) for path in trainer.checkpointer.manager.checkpoints)
    assert saved == [3, 6, 8]


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    import threading

    stop = threading.Event()

    class StopAfterSecondCall(keras.callbacks.Callback):
        calls = 0

        def on_train_batch_end(self, batch, logs=None):
            self.calls += 1
            if self.calls == 2:
                stop.set()

    first = make_trainer(3, steps_per_epoch=5, epochs=3, dropout=0.5, checkpoint_dir=str(tmp_path),
                         stop_event=stop)
    first.fit([StopAfterSecondCall()])
    assert first.interrupted_at is not None and int(first.optimizer.iterations.numpy()) == 5
    resumed = make_trainer(3, steps_per_epoch=5, epochs=3, dropout=0.5, checkpoint_dir=str(tmp_path))
    assert resumed.resumed_from == first.interrupted_at
    recorder = Recorder()
    resumed.fit([recorder])
    assert recorder.begins[:2] == [0, 3]  # the second epoch, from its start
    assert int(resumed.optimizer.iterations.numpy()) == 15
    uninterrupted = make_trainer(1, steps_per_epoch=5, epochs=3, dropout=0.5)
    uninterrupted.fit()
    for a, b in zip(uninterrupted.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_scheduled_rate_is_set_once_per_call():
    trainer = make_trainer(4, steps_per_epoch=8, epochs=1)
    recorder = Recorder()
    trainer.fit([WarmupDecay(0.05, 8, warmup_steps=2, decay="linear"), recorder])
    # The rate of each call's first step (iterations 0 and 4), held for the call.
    expected = [scheduled_rate(0, 0.05, 8, 2), scheduled_rate(4, 0.05, 8, 2)]
    np.testing.assert_allclose([rate for _, rate in recorder.rates], expected, rtol=1e-6)
    assert expected[0] != expected[1]


def test_config_and_flag_values():
    assert TrainConfig().steps_per_call == 1
    assert config_from_values({"steps_per_call": 8}).steps_per_call == 8
    config = config_from_values({"steps_per_call": 0, "data_dir": "x", "batch_size": 8})
    with pytest.raises(FlagError, match="--steps_per_call=0: must be >= 1"):
        config.validate()
    with pytest.raises(ValueError, match="steps_per_call=0"):
        make_trainer(0)


def test_cli_flag_runs_mirrored_and_may_change_on_resume(tmp_path):
    import json

    from test_train_cli import main_py, make_fashion_dir

    refused = main_py(["--data_dir=.", "--steps_per_call=0"], cwd=tmp_path, timeout=120)
    assert refused.returncode == 2 and "--steps_per_call=0: must be >= 1" in refused.stderr, refused.stderr
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 64, "test": 64})
    common = [f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
              "--steps_per_epoch=6", "--batch_size=32", "--pca_jitter_std=0", "--ten_crop_every=0", "--noexport",
              "--noprogress", "--run_name=calls", "--strategy=mirrored", "--logical_cpus=2"]
    first = main_py(common + ["--epochs=1", "--steps_per_call=4"], cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "epoch 1/1 |" in first.stdout
    again = main_py(common + ["--epochs=2", "--steps_per_call=2"], cwd=tmp_path)  # a finished run trains on
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Resuming from" in again.stdout and "epoch 2/2 |" in again.stdout
    with open(tmp_path / "runs" / "calls" / "run.json") as f:
        record = json.load(f)
    assert record["config"]["steps_per_call"] == 2
    assert record["resumes"][-1]["changed"] == {"schedule.epochs": [1, 2], "steps_per_call": [4, 2]}


def test_a_constant_schedule_warms_up_when_asked():
    """--lr_schedule=constant --warmup_epochs=N: the rate rises linearly over the warm-up steps, then stays
    at the base rate (it used to stay at the base rate from the first step); no warm-up: no schedule
    callback at all."""
    from keras_alexnet.training.callbacks import training_callbacks

    def schedules(warmup_epochs):
        config = config_from_values({"data_dir": "d", "lr_schedule": "constant", "warmup_epochs": warmup_epochs,
                                     "learning_rate": 0.04, "epochs": 3}).resolve()
        found = training_callbacks(config, chief=False, log_dir="logs", steps_per_epoch=10, replicas=1,
                                   dropped=None, printer=print, ten_crop_dataset=None, export_settings=None)
        return [c for c in found.callbacks if isinstance(c, WarmupDecay)]

    assert schedules(0) == []
    (warm,) = schedules(0.5)
    assert (warm.warmup_steps, warm.decay, warm.total_steps) == (5, "constant", 30)
    rates = [scheduled_rate(step, 0.04, 30, 5, "constant") for step in range(30)]
    np.testing.assert_allclose(rates, [0.04 * (s + 1) / 5 for s in range(5)] + [0.04] * 25)
