"""A step-wise learning-rate schedule for short runs: linear warm-up, then linear or cosine decay.

The papers decay the rate on plateaus (AlexNet §5, VGG §3.1, `plateau.py`); a run of a few epochs
(the CPU default preset) has no plateau to wait for, so it warms up over the first steps and decays
to zero by the last one. The rate is a function of the optimizer's iteration count only, so a
resumed run continues the same curve.
"""

import math

import keras

from callbacks.decays import DECAYS


def scheduled_rate(step, base, total_steps, warmup_steps=0, decay="linear"):
    """The learning rate for 0-based `step` of `total_steps`."""
    if warmup_steps and step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if decay == "constant":
        return base
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    if decay == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base * (1.0 - progress)


class WarmupDecay(keras.callbacks.Callback):
    def __init__(self, base_rate, total_steps, warmup_steps=0, decay="linear"):
        super().__init__()
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
        self.base_rate = base_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay = decay

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = scheduled_rate(
            step, self.base_rate, self.total_steps, self.warmup_steps, self.decay)
