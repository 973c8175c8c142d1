"""Running a test protocol of `pipelines.eval_protocols` (the table of the protocols: centre crop,
AlexNet §4.1's ten crops, VGG §3.2's multi-crop and dense evaluation) over a dataset: softmax outputs
per image, averaged over the image's views, and timed.

Several test scales Q (VGG §4.2), protocol combinations (VGG §4.3, Table 5) and fusion of several
models (AlexNet §6: "averaging the predictions of five similar CNNs"; VGG §4.4) all average the softmax
outputs of the runs they combine: `average`.

Datasets yield ``(views, labels)`` as `pipelines.input_pipeline.build_eval_dataset(config, protocol,
scale)` makes them: crop protocols give ``views`` [B, K, h, w, 3] (a [B, h, w, 3] batch is one crop
each), dense ones whole images [B, H, W, 3], all mean-subtracted.
"""

import dataclasses
import time

import numpy as np

from pipelines import eval_protocols


def multi_scale(train_scale) -> list:
    """VGG §4.2's test scales: Q = {S−32, S, S+32} for a fixed S; {Smin, (Smin+Smax)/2, Smax} for a
    scale-jittered model trained with S in [Smin, Smax] (`train_scale` a pair)."""
    if isinstance(train_scale, (tuple, list)):
        low, high = (int(s) for s in train_scale)
        return [low, (low + high) // 2, high]
    s = int(train_scale)
    return [s - 32, s, s + 32]


def dense_probabilities(score_map, images, flip=True):
    """VGG §3.2 dense evaluation: [B, H, W, 3] -> [B, C].

    `score_map(x)` is the fully-convolutional net: [B, H, W, 3] -> class score map [B, h, w, C] of
    softmax outputs per location. The map is spatially averaged, then, with `flip`, image and flip are
    averaged.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if not flip:
        return tf.reduce_mean(tf.cast(score_map(images), tf.float32), axis=[1, 2])
    both = tf.concat([images, tf.reverse(images, axis=[2])], axis=0)
    scores = tf.reduce_mean(tf.cast(score_map(both), tf.float32), axis=[1, 2])
    original, flipped = tf.split(scores, 2, axis=0)
    return (original + flipped) / 2.0


def batch_probabilities(model, protocol: str):
    """`views -> softmax [B, C]` of an `evaluation.models.Evaluable` under `protocol` (a name in
    `pipelines.eval_protocols.PROTOCOLS`): the score map averaged for dense protocols (VGG §3.2), the
    crops' softmax averaged otherwise (AlexNet §4.1)."""
    from pipelines.eval_crops import crop_probabilities

    chosen = eval_protocols.get(protocol)
    if chosen.dense:
        return lambda images: dense_probabilities(model.score_map, images, flip=chosen.flip)
    return lambda crops: crop_probabilities(model.predict, crops)


@dataclasses.dataclass
class Run:
    """The softmax outputs of one model under one protocol at one test scale, over a whole split."""

    model: str
    protocol: str
    scale: int
    probabilities: np.ndarray  # [N, C] float32
    labels: np.ndarray  # [N] int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.labels) / self.seconds if self.seconds > 0 else float("inf")

    def errors(self) -> dict:
        """{"top1_error", "top5_error" (fractions), "count"} of this run (`tables.errors`)."""
        from keras_alexnet.evaluation.tables import errors

        return errors(self.probabilities, self.labels)


class EvaluationStopped(Exception):
    """An evaluation stopped between two batches because its `should_stop()` became true."""


def run_protocol(model_name, protocol, scale, batch_probabilities, dataset, progress=True, examples=None,
                 stream=None, should_stop=None) -> Run:
    """Runs `batch_probabilities(views) -> [B, C]` over `dataset` and times it (images/s: model time
    only, without tracing or the input pipeline): the one loop every evaluation goes through (`main.py
    evaluate`, the studies, the 10-crop callback and training's test pass).

    `progress`: True for a line that says what runs from the start (before tracing) and counts the
    images (`examples`: the split's size, for an ETA), redrawn on a terminal and every 15 s elsewhere
    (`keras_alexnet.progress.ProgressLine` on `stream`, stdout by default); a ProgressLine to update
    that one; False for none. Each line is closed at the end. `should_stop` (no arguments, e.g. a stop
    event's `is_set`) is asked after each batch: when true, EvaluationStopped (Ctrl-C during a long
    evaluation). ValueError for an unknown protocol or an empty dataset.
    """
    import tensorflow as tf

    from keras_alexnet.progress import ProgressLine

    eval_protocols.get(protocol)
    line = progress if isinstance(progress, ProgressLine) else (
        ProgressLine(f"{model_name}: {protocol} at Q={scale}", examples, stream=stream) if progress else None)
    # One trace for the whole split, whatever the image sizes (dense evaluation varies them).
    step = tf.function(batch_probabilities, input_signature=[dataset.element_spec[0]])
    step.get_concrete_function()  # trace before timing: images/s measures the computation
    outputs, labels = [], []
    seconds = 0.0
    done = 0
    for views, batch_labels in dataset:
        start = time.perf_counter()
        outputs.append(step(views).numpy())
        seconds += time.perf_counter() - start
        labels.append(np.asarray(batch_labels).reshape(-1))
        done += len(labels[-1])
        if line is not None:
            line.update(done)
        if should_stop is not None and should_stop():
            if line is not None:
                line.close()
            raise EvaluationStopped(f"{protocol} evaluation stopped after {done} images")
    if line is not None:
        line.close()
    if not outputs:
        raise ValueError(f"{protocol} at scale {scale}: the dataset is empty")
    return Run(model_name, protocol, scale, np.concatenate(outputs), np.concatenate(labels), seconds)


def average(runs) -> tuple:
    """Softmax averaged over `runs` of the same examples (scales, protocols or models): (probs, labels).

    Refuses runs whose labels differ: averaging needs the same images in the same order.
    """
    runs = list(runs)
    labels = runs[0].labels
    for run in runs[1:]:
        if run.labels.shape != labels.shape or not np.array_equal(run.labels, labels):
            raise ValueError(
                f"{run.model}/{run.protocol}@{run.scale}: different examples than "
                f"{runs[0].model}/{runs[0].protocol}@{runs[0].scale}; cannot average"
            )
        if run.probabilities.shape != runs[0].probabilities.shape:
            raise ValueError(
                f"{run.model} has {run.probabilities.shape[-1]} classes and {runs[0].model} "
                f"{runs[0].probabilities.shape[-1]}; cannot average"
            )
    return np.mean([run.probabilities for run in runs], axis=0), labels
