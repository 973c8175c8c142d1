"""Images per second, a progress bar per epoch (images/s and ETA) and a one-line epoch summary.

The throughput is what AlexNet §1/§7 and VGG §3.3 talk about when they give training times; it is
measured on the training steps only (validation excluded), in images of the global batch.
"""

import time

import keras


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_sec` (train steps of the epoch) and `learning_rate` (as used in the epoch) to
    the epoch logs; `latest` holds the running rate for progress bars and step summaries."""

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.latest = 0.0
        self._start = None
        self._images = 0
        self._lr = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = None
        self._images = 0
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        if self._start is None:  # from the first batch on, so start-up (tracing) is counted once only
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._images += self.global_batch_size
        elapsed = time.perf_counter() - (self._start or time.perf_counter())
        self.latest = self._images / elapsed if elapsed > 0 else 0.0

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["images_per_sec"] = self.latest
            if self._lr is not None:
                logs["learning_rate"] = self._lr


class Progress(keras.callbacks.Callback):
    """A progress bar per epoch with loss, top-1 error, images/s and ETA; a summary line per epoch."""

    def __init__(self, steps_per_epoch, epochs, throughput, printer=print, bar=True):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.throughput = throughput
        self.printer = printer
        self.bar = bar
        self._progbar = None
        self._epoch = 0
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        if self.bar:
            self.printer(f"Epoch {epoch + 1}/{self.epochs}")
            self._progbar = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=[
                "loss", "top1_error", "img/s"], unit_name="step", interval=0.5)

    def on_train_batch_end(self, batch, logs=None):
        if self._progbar is not None:
            logs = logs or {}
            values = [(k, float(logs[k])) for k in ("loss", "top1_error") if k in logs]
            values.append(("img/s", self.throughput.latest))
            self._progbar.update(batch + 1, values=values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        for key in ("loss", "top1_error", "top5_error", "val_loss", "val_top1_error",
                    "val_top5_error", "ten_crop_top1_error", "ten_crop_top5_error"):
            if key in logs:
                parts.append(f"{key} {float(logs[key]):.4f}")
        if "learning_rate" in logs:
            parts.append(f"lr {float(logs['learning_rate']):.3g}")
        if "images_per_sec" in logs:
            parts.append(f"{float(logs['images_per_sec']):.0f} img/s")
        parts.append(f"{time.perf_counter() - self._epoch_start:.0f}s")
        self.printer(" | ".join(parts))
