"""Exports the best model seen so far as a new TF Serving version during training.

At the end of an epoch whose monitored metric improves (validation error, the quantity AlexNet §5
and VGG §3.1 watch to decay the learning rate), the model is written with
`keras_alexnet.export.export_saved_model` as the next version of `<base_dir>/<name>`; a TF Serving
server watching that folder picks it up when the rename completes.
"""

import math

import keras

from keras_alexnet.export import export_saved_model, fold_input_scale


class ExportBest(keras.callbacks.Callback):
    """Writes a new SavedModel version each time `monitor` improves (`mode`: "min", "max" or "auto").

    `export_kwargs` go to `export_saved_model` (class_names, mean, image_size, resize_size, crops...).
    `is_chief=False` (the non-chief workers of a multi-worker run) tracks the metric but writes nothing,
    so one run publishes each version once. `versions` lists the folders written, oldest first.
    `input_scale` != 1: the model trains on inputs multiplied by it (`main.py train --input_scale`);
    the export is a copy with the scale folded into its first convolution, so it takes the usual inputs.
    """

    def __init__(self, base_dir: str, name: str, monitor: str = "val_loss", mode: str = "auto",
                 min_delta: float = 0.0, is_chief: bool = True, input_scale: float = 1.0, **export_kwargs):
        super().__init__()
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor and "error" not in monitor) else "min"
        self.base_dir = base_dir
        self.name = name
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.is_chief = is_chief
        self.input_scale = input_scale
        self.export_kwargs = export_kwargs
        self.best = math.inf if mode == "min" else -math.inf
        self.versions = []

    def get_state(self) -> dict:
        """The best value so far, saved in the training checkpoint so a resumed run keeps it."""
        return {"best": self.best}

    def set_state(self, state: dict) -> None:
        self.best = float(state["best"])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        value = float(value)
        if self._improved(value):
            self.best = value
            if self.is_chief:
                from keras_alexnet.progress import phase

                with phase(f"  exporting the best model so far ({self.monitor} {value:.4f})"):
                    self.versions.append(
                        export_saved_model(self._model_to_export(), self.base_dir, self.name, **self.export_kwargs))

    def _model_to_export(self):
        if self.input_scale == 1.0:
            return self.model
        copy = keras.models.clone_model(self.model)
        copy.set_weights(self.model.get_weights())
        fold_input_scale(copy, self.input_scale)
        return copy
