"""TensorBoard scalars and hyper-parameters for a run's `logs/` folder.

Layout (as Keras' TensorBoard callback, so both read the same way): `logs/train` holds `loss`,
`top1_error`, `top5_error`, `learning_rate`, `images_per_sec` per epoch and `batch_loss` every
`update_freq` steps; `logs/validation` holds `loss`, `top1_error`, `top5_error`;
`logs/ten_crop` holds `top1_error`, `top5_error` (AlexNet §4.1). `HParams` writes the run's
flags to the hparams plugin once.
"""

import os

import keras
import tensorflow as tf

_TRAIN_ONLY = ("learning_rate", "images_per_sec")


class ScalarSummaries(keras.callbacks.Callback):
    """Epoch scalars into train/validation/ten_crop writers; `batch_loss` every `update_freq` steps.

    `step_fn()` gives the global step for batch scalars (the optimizer's iterations by default).
    """

    def __init__(self, log_dir, update_freq=100):
        super().__init__()
        self.log_dir = log_dir
        self.update_freq = update_freq
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def _global_step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if not self.update_freq or "loss" not in (logs or {}):
            return
        step = self._global_step()
        if step % self.update_freq == 0:
            with self._writer("train").as_default():
                tf.summary.scalar("batch_loss", float(logs["loss"]), step=step)
                if "top1_error" in logs:
                    tf.summary.scalar("batch_top1_error", float(logs["top1_error"]), step=step)

    def on_epoch_end(self, epoch, logs=None):
        groups = {}
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if key.startswith("val_"):
                groups.setdefault("validation", {})[key[4:]] = value
            elif key.startswith("ten_crop_"):
                groups.setdefault("ten_crop", {})[key[9:]] = value
            else:
                groups.setdefault("train", {})[key] = value
        for name, values in groups.items():
            with self._writer(name).as_default():
                for tag, value in values.items():
                    tf.summary.scalar(tag, value, step=epoch + 1)
            self._writer(name).flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class HParams(keras.callbacks.Callback):
    """Writes the hyper-parameters (flag values: numbers, strings, booleans) once at train begin."""

    def __init__(self, log_dir, hparams: dict):
        super().__init__()
        self.log_dir = log_dir
        self.hparams = {k: v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))}

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            hp.hparams(self.hparams)
        writer.close()
