"""The learning-rate schedules, all here: `SCHEDULES` (the `--lr_schedule` choices, what each does and the paper
section defining it), `make_schedule` (a run's schedule callback from its settings) and the two Keras callbacks
that set the rate.

- plateau, AlexNet §5: "divide the learning rate by 10 when the validation error rate stopped improving with the
  current learning rate ... reduced three times prior to termination"; VGG §3.1 does the same with validation
  accuracy. It acts at epoch ends (`PlateauDecay`); its state (best value, epochs waited, reductions made) is
  exposed through `get_state`/`set_state`, saved in the run's checkpoints, so a resumed run continues the same
  schedule.
- linear, cosine, constant (not the papers'): a run of a few epochs (the CPU default preset) has no plateau to
  wait for, so it warms up linearly over the first steps, then decays to zero by the last one, or holds the rate
  (`WarmupDecay`). The rate is a function of the optimizer's iteration count only, so a resumed run continues
  the same curve.

Importing this module does not load TensorFlow: the command line reads `SCHEDULES` (the flag's choices and help)
and the configuration validates against it before TensorFlow starts. The callbacks subclass
`keras.callbacks.Callback`, which loads it, so `PlateauDecay` and `WarmupDecay` are made on first use: each is
its rule below (`_PlateauRule`, `_WarmupRule`) on a Keras callback, keeping the rule's name.
"""

import dataclasses
import functools
import math
from typing import Callable, Optional

from keras_alexnet import metric_names


class _PlateauRule:
    """`PlateauDecay`: watches `monitor` (lower is better) at each epoch end.

    After `patience` epochs without an improvement larger than `min_delta`, the learning rate is
    multiplied by `factor`; once `max_reductions` reductions have been made, the next plateau stops
    training (`model.stop_training = True`). `max_reductions=0` stops at the first plateau.
    """

    def __init__(self, monitor=metric_names.VAL_TOP1_ERROR, factor=0.1, patience=1, min_delta=0.0,
                 max_reductions=3, printer=print):
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.min_delta = min_delta
        self.max_reductions = max_reductions
        self.printer = printer
        self.best = math.inf
        self.wait = 0
        self.reductions = 0
        self.stopped = False

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "reductions": self.reductions,
                "stopped": self.stopped}

    def set_state(self, state: dict) -> None:
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.reductions = int(state["reductions"])
        self.stopped = bool(state.get("stopped", False))

    def _lr(self) -> float:
        import keras

        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"PlateauDecay monitors '{self.monitor}' but the epoch logs hold "
                           f"{sorted(logs)}; is validation data given?")
        value = float(value)
        if value < self.best - self.min_delta:
            self.best = value
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.wait = 0
                if self.reductions >= self.max_reductions:
                    self.stopped = True
                    self.model.stop_training = True
                    self.printer(f"Epoch {epoch + 1}: {self.monitor} stopped improving after "
                                 f"{self.reductions} learning-rate reductions; stopping. [AlexNet §5]")
                else:
                    old = self._lr()
                    new = old * self.factor
                    self.model.optimizer.learning_rate = new
                    self.reductions += 1
                    self.printer(f"Epoch {epoch + 1}: {self.monitor} stopped improving "
                                 f"(best {self.best:.4f}); learning rate {old:.3g} -> {new:.3g} "
                                 f"(reduction {self.reductions}/{self.max_reductions}). [AlexNet §5]")


def scheduled_rate(step, base, total_steps, warmup_steps=0, decay="linear"):
    """The learning rate for 0-based `step` of `total_steps`: `base` (step + 1) / warmup_steps over the
    warm-up, then `base` times the `decay` schedule's fraction of the progress through the steps after it."""
    if warmup_steps and step < warmup_steps:
        return base * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return base * SCHEDULES[decay].decay(progress)


class _WarmupRule:
    """`WarmupDecay`: sets `scheduled_rate` from the optimizer's iteration count before each batch."""

    def __init__(self, base_rate, total_steps, warmup_steps=0, decay="linear"):
        super().__init__()
        step_wise = [name for name, schedule in SCHEDULES.items() if schedule.decay is not None]
        if decay not in step_wise:
            raise ValueError(f"decay must be one of {step_wise}, got {decay!r}")
        self.base_rate = base_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay = decay

    def on_train_batch_begin(self, batch, logs=None):
        import keras

        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = scheduled_rate(
            step, self.base_rate, self.total_steps, self.warmup_steps, self.decay)


_RULES = {"PlateauDecay": _PlateauRule, "WarmupDecay": _WarmupRule}


@functools.cache
def _keras_callback(name):
    import keras

    rule = _RULES[name]
    return type(name, (rule, keras.callbacks.Callback),
                {"__module__": __name__, "__qualname__": name, "__doc__": rule.__doc__})


def __getattr__(name):
    """`PlateauDecay` and `WarmupDecay`, made on first use (see the module docstring)."""
    if name in _RULES:
        return _keras_callback(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _plateau(settings, learning_rate, steps_per_epoch, printer):
    """Division by 10 of the rate on the validation top-1 error: `PlateauDecay`'s defaults (the papers')."""
    return _keras_callback("PlateauDecay")(patience=settings.lr_patience, min_delta=settings.lr_min_delta,
                                           max_reductions=settings.lr_max_reductions, printer=printer)


def _warmup_decay(settings, learning_rate, steps_per_epoch, printer):
    return _keras_callback("WarmupDecay")(learning_rate, settings.epochs * steps_per_epoch,
                                          int(settings.warmup_epochs * steps_per_epoch), settings.lr_schedule)


def _warmup_only(settings, learning_rate, steps_per_epoch, printer):
    """Nothing to set without a warm-up: the rate stays the optimizer's."""
    return _warmup_decay(settings, learning_rate, steps_per_epoch, printer) if settings.warmup_epochs else None


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One `--lr_schedule` choice.

    does: what it does (the flag's help); paper: the section defining it, "" where no paper does;
    make(settings, learning_rate, steps_per_epoch, printer): its callback for a run (`make_schedule`), or None;
    decay: for a step-wise schedule, the fraction of the rate at progress p (0..1) through the steps after the
    warm-up (`scheduled_rate`); None for one acting at epoch ends.
    """

    does: str
    paper: str
    make: Callable
    decay: Optional[Callable[[float], float]] = None


SCHEDULES = {
    "plateau": Schedule("divide by 10 when the validation top-1 error stops improving (--lr_patience, "
                        "--lr_min_delta), --lr_max_reductions times, then stop", "AlexNet §5, VGG §3.1", _plateau),
    "linear": Schedule("warm-up over --warmup_epochs, then a linear decay to 0 by the last step", "",
                       _warmup_decay, decay=lambda progress: 1.0 - progress),
    "cosine": Schedule("warm-up over --warmup_epochs, then a cosine decay to 0 by the last step", "",
                       _warmup_decay, decay=lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress))),
    "constant": Schedule("the rate held, after a warm-up over --warmup_epochs if given", "",
                         _warmup_only, decay=lambda progress: 1.0),
}


def make_schedule(settings, learning_rate, steps_per_epoch, printer=print):
    """The learning-rate callback of a run with the schedule settings `settings` (a `ScheduleConfig`: epochs,
    lr_schedule and its options) starting at `learning_rate`, `steps_per_epoch` steps an epoch; None when the
    rate stays as the optimizer was given it."""
    return SCHEDULES[settings.lr_schedule].make(settings, learning_rate, steps_per_epoch, printer)
