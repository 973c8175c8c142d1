"""Stops training at the first NaN or infinite loss, with one clear line (and no checkpoint after it).

A diverged step leaves NaN weights; raising from `on_train_batch_end` before the checkpoint callback
runs for that batch keeps the last good checkpoint on disk. Works with `model.fit` too.
"""

import math

import keras

from keras_alexnet.errors import UserError


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite."""


class NanGuard(keras.callbacks.Callback):
    def __init__(self, hint=""):
        super().__init__()
        self.hint = hint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self.model.stop_training = True
            message = f"loss became {loss} at epoch {self._epoch + 1}, step {batch + 1}; training stopped"
            if self.hint:
                message += f"; {self.hint}"
            raise NonFiniteLoss(message)
