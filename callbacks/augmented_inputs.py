"""A few training inputs as the network sees them, written to TensorBoard when a run starts.

AlexNet §4.1 enlarges the data with random 224×224 crops, their horizontal reflections and PCA
colour jitter ("altering the intensities of the RGB channels"); VGG §3.1 adds scale jitter. Looking
at a few augmented inputs is the quickest check that crops, flips and colour changes are as meant (a
colour jitter at the wrong scale is obvious in a picture). The images are given on the 0..255 scale
before mean subtraction; the callback does not touch the input pipeline.
"""

import keras
import numpy as np
import tensorflow as tf


def _checked(images):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise ValueError(f"AugmentedInputs takes a batch of RGB images [N, h, w, 3], got shape {images.shape}")
    return images


class AugmentedInputs(keras.callbacks.Callback):
    """Writes `images` ([N, h, w, 3], uint8 or float on the 0..255 scale) as one grid image
    (`keras_alexnet.figures.augmented_grid`) tagged `training_inputs/augmented` into the trial's
    `train` run (`callbacks.summaries.trial_dir`) at the start of training: at step 0 of a fresh run
    and at the optimizer's step after a resume. `images` may be a function of no arguments returning
    them: it is called after the first training step of the process (the image keeps the step training
    started at), so building a preview pipeline does not delay the first step. `applied` names the
    augmentations in the image's title and description (`pipelines.preview.augmentations`; none named
    when empty). `trial` defaults to `callbacks.summaries.default_trial(log_dir)`."""

    TAG = "training_inputs/augmented"

    def __init__(self, images, log_dir, trial=None, columns=8, size=96, applied=()):
        super().__init__()
        from callbacks.summaries import default_trial

        self.images = images if callable(images) else _checked(images)
        self.log_dir = log_dir
        self.trial = trial or default_trial(log_dir)
        self.columns = columns
        self.size = size
        self.applied = list(applied)
        self._step = None  # the step training started at, until the image is written

    def on_train_begin(self, logs=None):
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if self._step is not None:
            self._write(self._step)
            self._step = None

    def _write(self, step):
        from callbacks.summaries import TRAIN, trial_dir
        from keras_alexnet.figures import augmented_grid

        images = _checked(self.images()) if callable(self.images) else self.images
        grid = augmented_grid(images, self.columns, self.size, self.applied)
        writer = tf.summary.create_file_writer(trial_dir(self.log_dir, self.trial, TRAIN))
        with writer.as_default():
            applied = f" ({', '.join(self.applied)})" if self.applied else ""
            tf.summary.image(self.TAG, grid[None], step=step, max_outputs=1,
                             description=f"training inputs{applied}, before mean subtraction [AlexNet §4.1]")
        writer.close()
