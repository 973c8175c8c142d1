"""Every `--lr_schedule` pinned: the learning rate a run's schedule sets at chosen steps (warm-up, then linear,
cosine or constant) and epochs (AlexNet §5's division by 10 on validation plateaus, three times, then stop), as
the training run builds it from its settings, against hand-computed values and NumPy transcriptions of the
rules; the plateau state carried through a checkpoint continues the same rates. The one table
(`callbacks.lr_schedules.SCHEDULES`) is what the flag, its help and the configuration's check offer."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from callbacks.lr_schedules import SCHEDULES, PlateauDecay, WarmupDecay, make_schedule
from keras_alexnet.errors import FlagError
from keras_alexnet.training.callbacks import training_callbacks
from keras_alexnet.training.checkpointing import RunState
from keras_alexnet.training.config import config_from_values


class FakeModel:
    def __init__(self, rate):
        self.optimizer = keras.optimizers.SGD(learning_rate=rate)
        self.stop_training = False

    @property
    def rate(self):
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))


def schedule_callback(values, steps_per_epoch):
    """The learning-rate callback a run with the flat settings `values` gets, or None."""
    config = config_from_values(dict(values, data_dir="d")).resolve()
    found = training_callbacks(config, chief=False, log_dir="logs", steps_per_epoch=steps_per_epoch, replicas=1,
                               dropped=None, printer=lambda message: None, ten_crop_dataset=None,
                               export_settings=None)
    (callback,) = [c for c in found.callbacks if isinstance(c, (PlateauDecay, WarmupDecay))] or [None]
    return callback


def rates_at_steps(callback, rate, steps):
    """The rate set at the start of each of `steps` (the optimizer's iteration count), as the trainer drives it."""
    model = FakeModel(rate)
    if callback is not None:
        callback.set_model(model)
    found = []
    for step in steps:
        model.optimizer.iterations.assign(step)
        if callback is not None:
            callback.on_train_batch_begin(0)
        found.append(model.rate)
    return found


def warmup_decay_numpy(steps, base, total_steps, warmup_steps, decay):
    """Linear warm-up to `base` over `warmup_steps` (step s: base (s+1)/warmup), then `decay` over the rest."""
    steps = np.asarray(steps, dtype=np.float64)
    progress = np.clip((steps - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
    fraction = {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + np.cos(np.pi * progress)),
                "constant": np.ones_like(progress)}[decay]
    return np.where(steps < warmup_steps, base * (steps + 1) / max(warmup_steps, 1), base * fraction)


# (flat settings, steps per epoch, {step: rate}); the rates computed by hand from the closed forms.
STEPWISE = [
    ({"lr_schedule": "linear", "learning_rate": 0.04, "warmup_epochs": 0.5, "epochs": 3}, 10,
     {0: 0.008, 4: 0.04, 5: 0.04, 17: 0.04 * (1 - 12 / 25), 29: 0.04 / 25}),
    ({"lr_schedule": "cosine", "learning_rate": 0.04, "warmup_epochs": 0.5, "epochs": 3}, 10,
     {0: 0.008, 4: 0.04, 5: 0.04, 17: 0.021255810390586268, 29: 0.0001577059737104447}),
    ({"lr_schedule": "linear", "learning_rate": 0.01, "epochs": 2}, 4, {0: 0.01, 4: 0.005, 7: 0.00125}),
    # The default run's 0.3 epoch of warm-up: int(0.3 * 7) = 2 steps.
    ({"lr_schedule": "linear", "learning_rate": 0.04, "warmup_epochs": 0.3, "epochs": 2}, 7,
     {0: 0.02, 1: 0.04, 2: 0.04, 8: 0.02, 13: 0.04 / 12}),
    ({"lr_schedule": "cosine", "learning_rate": 0.04, "warmup_epochs": 0.3, "epochs": 2}, 7,
     {0: 0.02, 1: 0.04, 8: 0.02, 13: 0.02 * (1 - math.cos(math.pi / 12))}),
    ({"lr_schedule": "constant", "learning_rate": 0.04, "warmup_epochs": 0.5, "epochs": 3}, 10,
     {0: 0.008, 2: 0.024, 4: 0.04, 5: 0.04, 29: 0.04}),
    ({"lr_schedule": "constant", "learning_rate": 0.04, "epochs": 3}, 10, {0: 0.04, 15: 0.04, 29: 0.04}),
]


@pytest.mark.parametrize("values, steps_per_epoch, expected", STEPWISE,
                         ids=[f"{v['lr_schedule']}-warmup{v.get('warmup_epochs', 0)}" for v, _, _ in STEPWISE])
def test_step_wise_schedules_set_the_closed_form_rates(values, steps_per_epoch, expected):
    callback = schedule_callback(values, steps_per_epoch)
    rate, total = values["learning_rate"], values["epochs"] * steps_per_epoch
    np.testing.assert_allclose(rates_at_steps(callback, rate, list(expected)), list(expected.values()), rtol=1e-6)
    every_step = range(total)
    warmup = int(values.get("warmup_epochs", 0) * steps_per_epoch)
    np.testing.assert_allclose(rates_at_steps(callback, rate, every_step),
                               warmup_decay_numpy(every_step, rate, total, warmup, values["lr_schedule"]),
                               rtol=1e-6)


def test_a_constant_rate_without_warm_up_needs_no_callback():
    assert schedule_callback({"lr_schedule": "constant", "epochs": 3}, 10) is None
    assert schedule_callback({"lr_schedule": "linear", "epochs": 3}, 10) is not None


def plateau_numpy(errors, base, patience, min_delta, max_reductions):
    """AlexNet §5 as a loop: the rate after each epoch's validation error, and the epoch training stops at
    (None: it does not). An error below the best by more than min_delta is an improvement; `patience` epochs
    without one divide the rate by 10, or stop training once it has been divided `max_reductions` times."""
    rate, best, waited, reductions, rates = base, np.inf, 0, 0, []
    for epoch, error in enumerate(errors):
        if error < best - min_delta:
            best, waited = error, 0
        else:
            waited += 1
            if waited == patience:
                waited = 0
                if reductions == max_reductions:
                    return rates + [rate], epoch
                rate, reductions = rate / 10, reductions + 1
        rates.append(rate)
    return rates, None


# (flat settings, validation top-1 errors per epoch, the rates after each epoch, the epoch it stops at).
PLATEAU = [
    # The papers' settings: patience 2, min_delta 0.001, three reductions.
    ({"learning_rate": 0.01},
     [0.60, 0.50, 0.4995, 0.4992, 0.45, 0.45, 0.46, 0.40, 0.40, 0.40, 0.40, 0.40, 0.30],
     [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5], 11),
    ({"learning_rate": 0.02, "lr_patience": 1, "lr_min_delta": 0.0, "lr_max_reductions": 1},
     [0.5, 0.5, 0.4, 0.3, 0.3, 0.2], [0.02, 0.002, 0.002, 0.002, 0.002], 4),
    ({"learning_rate": 0.01, "lr_patience": 3, "lr_min_delta": 0.01, "lr_max_reductions": 0},
     [0.5, 0.495, 0.49, 0.485, 0.48, 0.48, 0.48, 0.1], [0.01] * 7, 6),
    ({"learning_rate": 0.01}, [0.9, 0.8, 0.7, 0.6], [0.01] * 4, None),
]


def drive_plateau(callback, errors, model, start_epoch=0):
    callback.set_model(model)
    rates = []
    for epoch, error in enumerate(errors, start=start_epoch):
        callback.on_epoch_end(epoch, {"val_top1_error": error})
        rates.append(model.rate)
        if model.stop_training:
            return rates, epoch
    return rates, None


@pytest.mark.parametrize("values, errors, expected, stop", PLATEAU)
def test_plateau_divides_by_ten_then_stops(values, errors, expected, stop):
    values = dict(values, lr_schedule="plateau")
    callback = schedule_callback(values, 10)
    settings = config_from_values(values).schedule
    assert plateau_numpy(errors, values["learning_rate"], settings.lr_patience, settings.lr_min_delta,
                         settings.lr_max_reductions) == (pytest.approx(expected, rel=1e-9), stop)
    rates, stopped = drive_plateau(callback, errors, FakeModel(values["learning_rate"]))
    assert rates == pytest.approx(expected, rel=1e-6) and stopped == stop


@pytest.mark.parametrize("values, errors, expected, stop", PLATEAU[:2])
def test_plateau_resumed_from_a_checkpoint_continues_the_same_rates(values, errors, expected, stop):
    """At every epoch end: the state stored as a checkpoint stores it, a new run's callback loading it."""
    values = dict(values, lr_schedule="plateau")
    for cut in range(1, stop):
        first, model = schedule_callback(values, 10), FakeModel(values["learning_rate"])
        before, _ = drive_plateau(first, errors[:cut], model)
        state = RunState()
        state.store_callback_states([first])
        second = schedule_callback(values, 10)
        state.load_callback_states([second])
        after, stopped = drive_plateau(second, errors[cut:], FakeModel(model.rate), start_epoch=cut)
        assert before + after == pytest.approx(expected, rel=1e-6) and stopped == stop, cut


def test_the_run_gets_the_callback_make_schedule_makes():
    for name in SCHEDULES:
        values = {"lr_schedule": name, "learning_rate": 0.04, "warmup_epochs": 0.5, "epochs": 3}
        settings = config_from_values(dict(values, data_dir="d")).resolve().schedule
        made, built = make_schedule(settings, 0.04, 10), schedule_callback(values, 10)
        assert type(made) is type(built) and vars(made).keys() == vars(built).keys()
        assert {k: v for k, v in vars(made).items() if k not in ("printer", "_model")} == {
            k: v for k, v in vars(built).items() if k not in ("printer", "_model")}, name


def test_the_table_cites_the_papers_for_their_schedule_only():
    assert {name: schedule.paper for name, schedule in SCHEDULES.items()} == {
        "plateau": "AlexNet §5, VGG §3.1", "linear": "", "cosine": "", "constant": ""}
    assert isinstance(make_schedule(config_from_values({}).schedule, 0.01, 10), PlateauDecay)  # the default


# A schedule added to the table, in a fresh interpreter (the flag is defined at import): it is a --lr_schedule
# choice with its help, the configuration accepts it, and the run gets its callback; TensorFlow is not loaded
# before the callback is made.
ADDED = r"""
import json, sys
from callbacks import lr_schedules
lr_schedules.SCHEDULES["halfway"] = lr_schedules.Schedule(
    "warm-up, then half the rate", "", lr_schedules.SCHEDULES["linear"].make, decay=lambda progress: 0.5)
from absl import flags
from keras_alexnet.cli import train
flags.FLAGS(["main.py", "--lr_schedule=halfway", "--warmup_epochs=1", "--epochs=2"])
assert "halfway: warm-up, then half the rate (in neither paper)" in flags.FLAGS["lr_schedule"].help
config = train._config("d").resolve()
assert config.schedule.lr_schedule == "halfway", config.schedule
assert "tensorflow" not in sys.modules
callback = lr_schedules.make_schedule(config.schedule, 0.04, 10)
print(type(callback).__name__, json.dumps([lr_schedules.scheduled_rate(step, 0.04, 20, 10, "halfway") for step in (0, 9, 10, 19)]))
"""


def test_a_schedule_added_to_the_table_is_a_flag_choice():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", ADDED], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    name, rates = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert name == "WarmupDecay" and json.loads(rates) == pytest.approx([0.004, 0.04, 0.02, 0.02])
    with pytest.raises(FlagError, match="--lr_schedule=halfway: choose from plateau, linear, cosine, constant"):
        config_from_values({"lr_schedule": "halfway", "data_dir": "d"}).resolve()
