"""Images per second, the learning rate of each step, the progress of each epoch and a summary line.

The throughput is what AlexNet §1/§7 and VGG §3.3 talk about when they give training times; it is
measured on the training steps only (validation excluded), in images of the global batch, from the
steps after the first one this process runs in an epoch (`keras_alexnet.progress.Rate`): the first
carries tracing and the input pipeline's start-up, and after a resume the earlier steps were not
timed here.
"""

import time

import keras

from keras_alexnet import metric_names
from keras_alexnet.progress import ProgressLine, Rate, format_duration, format_rate

# The values of the epoch logs the line at each epoch's end prints, in order (training, centre-crop and
# 10-crop validation).
_EPOCH_LOG_KEYS = (metric_names.LOSS, *metric_names.ERRORS,
                   *(metric_names.VALIDATION_PREFIX + name for name in (metric_names.LOSS, *metric_names.ERRORS)),
                   *(metric_names.TEN_CROP_PREFIX + name for name in metric_names.ERRORS))


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_sec` (from the second step on) and `learning_rate` (the rate the step used) to
    each step's logs, and both, for the epoch, to the epoch logs. Place it before the loggers."""

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.rate = None
        self._lr = None

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = Rate()
        self._lr = self._learning_rate()

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    @property
    def images_per_sec(self):
        """The epoch's rate so far, None before its second step."""
        steps_per_sec = self.rate.per_second if self.rate is not None else None
        return None if steps_per_sec is None else steps_per_sec * self.global_batch_size

    def on_train_batch_end(self, batch, logs=None):
        self.rate.observe(batch + 1)  # steps, also when a batch end covers several (`steps_per_call`)
        if logs is not None:
            logs["learning_rate"] = self._learning_rate()
            if self.images_per_sec is not None:
                logs["images_per_sec"] = self.images_per_sec

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            if self.images_per_sec is not None:
                logs["images_per_sec"] = self.images_per_sec
            if self._lr is not None:
                logs["learning_rate"] = self._lr


class Progress(keras.callbacks.Callback):
    """Each epoch's progress (step count, loss, top-1 error, images/s, ETA) and a summary line after it.

    Also shows the validation pass that follows the epoch's last step (`on_test_*`, driven by
    `model.fit` and by the training loop). On a terminal the line is redrawn in place; elsewhere a
    line is printed at each phase's start and every `interval` seconds (`keras_alexnet.progress`).
    `printer` prints the summary lines; `bar=False` shows no progress, only them; `stream` (stdout by
    default) and `interactive` (default: whether `stream` is a terminal) choose where and how progress
    goes; `validation_steps` is the number of validation steps (for the ETA of that pass; default: the
    `validation_steps` the training loop puts in the callbacks' params; a validation step is a batch of
    `throughput.global_batch_size` images, as a training step). Until the first step of this process
    completes, the line says the step is being traced (the first step's long wait). `clock` times the
    lines (`keras_alexnet.progress.ProgressLine`).
    """

    def __init__(self, steps_per_epoch, epochs, throughput, printer=print, bar=True, stream=None, interactive=None,
                 interval=15.0, validation_steps=None, clock=time.perf_counter):
        super().__init__()
        self.bar = bar
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.throughput = throughput
        self.printer = printer
        self.stream = stream
        self.interactive = interactive
        self.interval = interval
        self.validation_steps = validation_steps
        self.clock = clock
        self._line = None
        self._epoch_start = None
        self._traced = set()  # the phases whose step this process has run (traced) already

    def _open(self, title, total, traced):
        self._close()
        if not self.bar:
            return
        waiting = None if traced in self._traced else f"tracing the {traced} step"
        self._traced.add(traced)
        self._line = ProgressLine(title, total, count_unit="steps", images_per_count=self.throughput.global_batch_size,
                                  stream=self.stream, interactive=self.interactive, interval=self.interval,
                                  waiting=waiting, clock=self.clock)

    def _close(self):
        if self._line is not None:
            self._line.close()
            self._line = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.clock()
        self._open(f"Epoch {epoch + 1}/{self.epochs}", self.steps_per_epoch, traced="training")

    def on_train_batch_end(self, batch, logs=None):
        if self._line is None:
            return
        logs = logs or {}
        values = {name: float(logs[key]) for key, name in ((metric_names.LOSS, "loss"), (metric_names.TOP1_ERROR, "top-1 error"))
                  if key in logs}
        self._line.update(batch + 1, **values)  # the line stays until the next phase opens its own

    def on_test_begin(self, logs=None):
        steps = self.validation_steps or (self.params or {}).get("validation_steps")
        self._open("  validation (centre crop)", steps, traced="evaluation")

    def on_test_batch_end(self, batch, logs=None):
        if self._line is not None:
            self._line.update(batch + 1)

    def on_test_end(self, logs=None):
        self._close()

    def on_epoch_end(self, epoch, logs=None):
        self._close()
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        for key in _EPOCH_LOG_KEYS:
            if key in logs:
                parts.append(f"{key} {float(logs[key]):.4f}")
        if "learning_rate" in logs:
            parts.append(f"lr {float(logs['learning_rate']):.3g}")
        if "images_per_sec" in logs:
            parts.append(f"{format_rate(float(logs['images_per_sec']))} img/s")
        parts.append(format_duration(self.clock() - self._epoch_start))
        self.printer(" | ".join(parts))

    def on_train_end(self, logs=None):
        self._close()
