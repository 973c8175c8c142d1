"""The conv1 kernels in TensorBoard, the two towers side by side (AlexNet §6.1, Figure 3): the picture
of `keras_alexnet.figures.conv1_figure` (which draws the grids), written at the start of a fresh run and
after every epoch.
"""

import keras
import tensorflow as tf

from keras_alexnet.figures import conv1_figure, conv1_kernels


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
