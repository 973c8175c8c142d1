"""The conv1 kernels drawn as an image grid, the two towers side by side (AlexNet §6.1, Figure 3).

Figure 3 shows the 96 11×11×3 kernels of the first layer, 48 learned on each GPU. Each kernel is
scaled to [0, 1] on its own (as such figures are drawn); each tower's kernels form one grid and the
grids are placed side by side with a gap, so tower specialisation (colour-agnostic vs colour-specific
kernels) is visible at a glance. The titled, enlarged figure is `keras_alexnet.figures.conv1_figure`.
"""

import math

import numpy as np
import keras
import tensorflow as tf


def conv1_kernels(model, layer_name="conv1"):
    """conv1's kernels [kh, kw, in, out], one array per tower.

    In AlexNet conv1 is one convolution whose first half of output maps feeds tower 1 and the second
    half tower 2 (conv2 is split by input channels, `keras_alexnet.towers.TowerConv2D`); the kernel
    is split the same way when the model has such a towered conv2. A layer holding one kernel per
    tower gives them in the order of their variable paths.
    """
    layer = model.get_layer(layer_name)
    weights = sorted((w for w in layer.weights if len(w.shape) == 4), key=lambda w: w.path)
    if not weights:
        raise ValueError(f"layer '{layer_name}' holds no 4-D kernel")
    kernels = [np.asarray(keras.ops.convert_to_numpy(w)) for w in weights]
    if len(kernels) == 1:
        groups = _towers_after(model, layer_name)
        if groups > 1 and kernels[0].shape[-1] % groups == 0:
            return np.split(kernels[0], groups, axis=-1)
    return kernels


def _towers_after(model, layer_name):
    """The tower count of the towered layer following `layer_name` (conv1 -> conv2), else 1."""
    following = {"conv1": "conv2"}.get(layer_name)
    try:
        return int(getattr(model.get_layer(following), "groups", 1)) if following else 1
    except ValueError:
        return 1


def kernel_grid(kernel, columns=None, gap=1):
    """[kh, kw, in, out] -> one image [H, W, 3] in [0, 1]: each kernel min-max scaled on its own."""
    kh, kw, cin, n = kernel.shape
    k = np.transpose(kernel, (3, 0, 1, 2)).astype(np.float32)  # [n, kh, kw, cin]
    if cin == 1:
        k = np.repeat(k, 3, axis=-1)
    elif cin != 3:
        k = k[..., :3] if cin > 3 else np.concatenate([k, np.repeat(k[..., -1:], 3 - cin, -1)], -1)
    lo = k.min(axis=(1, 2, 3), keepdims=True)
    hi = k.max(axis=(1, 2, 3), keepdims=True)
    k = (k - lo) / np.maximum(hi - lo, 1e-12)
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.ones((rows * (kh + gap) - gap, columns * (kw + gap) - gap, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = k[i]
    return grid


def towers_side_by_side(kernels, gap=3):
    """One grid per tower, placed left to right with a white gap: [H, W, 3] in [0, 1]."""
    grids = [kernel_grid(k) for k in kernels]
    height = max(g.shape[0] for g in grids)
    padded = [np.pad(g, ((0, height - g.shape[0]), (0, 0), (0, 0)), constant_values=1.0) for g in grids]
    parts = []
    for i, g in enumerate(padded):
        if i:
            parts.append(np.ones((height, gap, 3), np.float32))
        parts.append(g)
    return np.concatenate(parts, axis=1)


class Conv1Images(keras.callbacks.Callback):
    """Writes the conv1 kernels (`keras_alexnet.figures.conv1_figure`: towers side by side under their
    titles, at least `min_width` pixels wide so they read in TensorBoard's card) as
    `weights/conv1_kernels` into the trial's folder (`callbacks.summaries.trial_dir`): at the start of
    a fresh run (step 0) and at the end of every epoch (step = epochs done). `trial` defaults to
    `callbacks.summaries.default_trial(log_dir)`."""

    TAG = "weights/conv1_kernels"

    def __init__(self, log_dir, trial=None, layer_name="conv1", min_width=600):
        super().__init__()
        from callbacks.summaries import default_trial

        self.log_dir = log_dir
        self.trial = trial or default_trial(log_dir)
        self.layer_name = layer_name
        self.min_width = min_width

    def _write(self, step):
        from callbacks.summaries import trial_dir
        from keras_alexnet.figures import conv1_figure

        image = conv1_figure(conv1_kernels(self.model, self.layer_name), min_width=self.min_width)
        writer = tf.summary.create_file_writer(trial_dir(self.log_dir, self.trial))
        with writer.as_default():
            tf.summary.image(self.TAG, image[None], step=step, max_outputs=1,
                             description="conv1 kernels, one grid per tower [AlexNet §6.1, Figure 3]")
        writer.close()

    def on_train_begin(self, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == 0:
            self._write(0)

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch + 1)
