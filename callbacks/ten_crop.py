"""10-crop evaluation on the validation set (AlexNet §4.1).

"At test time, the network makes a prediction by extracting five 224×224 patches (the four corner
patches and the center patch) as well as their horizontal reflections (hence ten patches in all), and
averaging the predictions made by the network's softmax layer on the ten patches."

The dataset yields `(images [B, 10, h, w, 3], labels [B])`, as
`pipelines.input_pipeline.build_eval_dataset(config, protocol="ten_crop")` makes them.
"""

import numpy as np
import keras
import tensorflow as tf

from keras_alexnet.metrics import missed
from pipelines.eval_crops import crop_probabilities


class EvaluationStopped(Exception):
    """A 10-crop evaluation stopped between two batches because its `should_stop()` became true."""


def evaluate_ten_crop(model, dataset, ks=(1, 5), progress=None, should_stop=None):
    """Top-k errors of 10-crop prediction over `dataset`: {"top1_error": .., "top5_error": .., "count": n}
    (a tie with the label is a miss: `keras_alexnet.metrics.missed`).

    `progress` (a `keras_alexnet.progress.ProgressLine` counting images) is updated after each batch
    and closed at the end. `should_stop` (a function of no arguments, e.g. a stop event's `is_set`) is
    asked after each batch; when true, EvaluationStopped is raised (Ctrl-C during a long evaluation).
    """

    @tf.function
    def batch_wrong(images, labels):
        probs = crop_probabilities(lambda crops: model(crops, training=False), images)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return tf.stack([tf.reduce_sum(missed(labels, probs, k)) for k in ks]), tf.shape(labels)[0]

    wrong = np.zeros(len(ks))
    count = 0
    for images, labels in dataset:
        w, n = batch_wrong(images, labels)
        wrong += w.numpy()
        count += int(n)
        if progress is not None:
            progress.update(count)
        if should_stop is not None and should_stop():
            if progress is not None:
                progress.close()
            raise EvaluationStopped(f"10-crop evaluation stopped after {count} images")
    if progress is not None:
        progress.close()
    if count == 0:
        raise ValueError("10-crop evaluation got an empty dataset")
    result = {f"top{k}_error": float(w / count) for k, w in zip(ks, wrong)}
    result["count"] = count
    return result


class TenCropEvaluation(keras.callbacks.Callback):
    """Runs 10-crop evaluation every `every_n_epochs` epochs and at the end of training.

    `dataset`: the 10-crop dataset, or a function of no arguments returning it, called at the first
    evaluation (so building the pipeline costs nothing before training starts).

    Adds `ten_crop_top1_error` and `ten_crop_top5_error` to the epoch logs (so CSV and TensorBoard
    record them); the result at the end of training is kept in `self.final`. While it runs, a progress
    line titled `title` counts the images (`examples`: how many the dataset holds, for the ETA;
    `stream`, `interactive`, `interval` as `keras_alexnet.progress.ProgressLine`). `should_stop`: as
    `evaluate_ten_crop`'s; an evaluation it stops raises EvaluationStopped out of the callback.
    """

    def __init__(self, dataset, every_n_epochs=1, prefix="ten_crop_", printer=print, examples=None,
                 title="  validation (10 crops)", stream=None, interactive=None, interval=15.0, should_stop=None):
        super().__init__()
        self.should_stop = should_stop
        self.dataset = dataset
        self.every_n_epochs = every_n_epochs
        self.prefix = prefix
        self.printer = printer
        self.examples = examples
        self.title = title
        self.stream = stream
        self.interactive = interactive
        self.interval = interval
        self.final = None
        self._last = None

    def _run(self):
        from keras_alexnet.progress import ProgressLine

        progress = ProgressLine(self.title, self.examples, stream=self.stream, interactive=self.interactive,
                                interval=self.interval)
        if callable(self.dataset):
            self.dataset = self.dataset()
        result = evaluate_ten_crop(self.model, self.dataset, progress=progress, should_stop=self.should_stop)
        return {self.prefix + k: v for k, v in result.items() if k != "count"}

    def on_train_batch_end(self, batch, logs=None):
        self._last = None  # weights changed since the last evaluation

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._last = self._run()
            if logs is not None:
                logs.update(self._last)

    def on_train_end(self, logs=None):
        self.final = self._last if self._last is not None else self._run()
        self.printer("10-crop validation [AlexNet §4.1]: top-1 error %.4f, top-5 error %.4f"
                     % (self.final[self.prefix + "top1_error"], self.final[self.prefix + "top5_error"]))
