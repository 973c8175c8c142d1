"""Divide the learning rate by 10 when the validation error stops improving, three times, then stop.

AlexNet §5: "divide the learning rate by 10 when the validation error rate stopped improving with the
current learning rate ... reduced three times prior to termination". VGG §3.1 does the same with
validation accuracy. The state (best value, epochs waited, reductions made) is exposed through
`get_state`/`set_state` so a resumed run continues the same schedule.
"""

import math

import keras


class PlateauDecay(keras.callbacks.Callback):
    """Watches `monitor` (lower is better) at each epoch end.

    After `patience` epochs without an improvement larger than `min_delta`, the learning rate is
    multiplied by `factor`; once `max_reductions` reductions have been made, the next plateau stops
    training (`model.stop_training = True`). `max_reductions=0` stops at the first plateau.
    """

    def __init__(self, monitor="val_top1_error", factor=0.1, patience=1, min_delta=0.0,
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
