"""10-crop evaluation on the validation set (AlexNet §4.1).

"At test time, the network makes a prediction by extracting five 224×224 patches (the four corner
patches and the center patch) as well as their horizontal reflections (hence ten patches in all), and
averaging the predictions made by the network's softmax layer on the ten patches."

The dataset yields `(images [B, 10, h, w, 3], labels [B])`, as
`keras_alexnet.evaluation.engine.protocol_dataset(config, "ten_crop")` makes them; the pass is the
evaluation engine's (`engine.evaluate_model` on the Keras model in memory), so the callback, training's
test pass and `main.py evaluate` give the same numbers.
"""

import keras

from keras_alexnet import metric_names
from keras_alexnet.evaluation.engine import evaluate_model

PROTOCOL = "ten_crop"


def evaluate_ten_crop(model, dataset, progress=None, should_stop=None) -> dict:
    """Top-k errors of 10-crop prediction of the Keras `model` over `dataset`: {"top1_error": ..,
    "top5_error": .., "count": n} (fractions; a tie with the label is a miss: `keras_alexnet.metrics.missed`).

    `progress` (a `keras_alexnet.progress.ProgressLine` counting images) is updated after each batch
    and closed at the end. `should_stop` (a function of no arguments, e.g. a stop event's `is_set`) is
    asked after each batch; when true, `evaluation.protocols.EvaluationStopped` is raised (Ctrl-C during a
    long evaluation).
    """
    return evaluate_model(model, PROTOCOL, dataset, progress=progress or False, should_stop=should_stop).errors()


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

    def __init__(self, dataset, every_n_epochs=1, prefix=metric_names.TEN_CROP_PREFIX, printer=print, examples=None,
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
        return {self.prefix + k: v for k, v in result.items() if k != metric_names.COUNT}

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
                     % tuple(self.final[self.prefix + name] for name in metric_names.ERRORS))
