"""The papers' test-time protocols, as aggregations of softmax outputs over views of each image.

- ``center``: one central crop.
- ``ten_crop`` (AlexNet §4.1): "five 224×224 patches (the four corner patches and the center patch) as
  well as their horizontal reflections (hence ten patches in all), and averaging the predictions made
  by the network's softmax layer on the ten patches".
- ``multi_crop`` (VGG §3.2): a 5×5 regular grid of crops with 2 flips, 50 crops per scale, softmax
  averaged.
- ``dense`` (VGG §3.2): the fully-convolutional net on the whole image rescaled to the test scale Q;
  the class score map is spatially averaged, and the softmax of the image and of its horizontal flip
  are averaged.

Several test scales Q (VGG §4.2), dense + multi-crop (VGG §4.3, Table 5) and fusion of several models
(AlexNet §6: "averaging the predictions of five similar CNNs"; VGG §4.4) all average the softmax
outputs of the runs they combine: `average`.

Datasets yield ``(views, labels)``: crop protocols give ``views`` [B, K, h, w, 3] (K = 1, 10, 50; a
[B, h, w, 3] batch is one crop each), ``dense`` gives whole images [B, H, W, 3], all mean-subtracted,
as `pipelines.input_pipeline.build_eval_dataset(config, protocol, scale)` makes them.
"""

import dataclasses
import time

import numpy as np

PROTOCOLS = ("center", "ten_crop", "multi_crop", "dense")


def multi_scale(train_scale) -> list:
    """VGG §4.2's test scales: Q = {S−32, S, S+32} for a fixed S; {Smin, (Smin+Smax)/2, Smax} for a
    scale-jittered model trained with S in [Smin, Smax] (`train_scale` a pair)."""
    if isinstance(train_scale, (tuple, list)):
        low, high = (int(s) for s in train_scale)
        return [low, (low + high) // 2, high]
    s = int(train_scale)
    return [s - 32, s, s + 32]


def dense_probabilities(score_map, images):
    """VGG §3.2 dense evaluation: [B, H, W, 3] -> [B, C].

    `score_map(x)` is the fully-convolutional net: [B, H, W, 3] -> class score map [B, h, w, C] of
    softmax outputs per location. The map is spatially averaged, then image and flip are averaged.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    both = tf.concat([images, tf.reverse(images, axis=[2])], axis=0)
    scores = tf.reduce_mean(tf.cast(score_map(both), tf.float32), axis=[1, 2])
    original, flipped = tf.split(scores, 2, axis=0)
    return (original + flipped) / 2.0


def batch_probabilities(model, protocol: str):
    """`views -> softmax [B, C]` of an `evaluation.models.Evaluable` under `protocol`: the score map
    averaged for "dense" (VGG §3.2), the crops' softmax averaged otherwise (AlexNet §4.1)."""
    from pipelines.eval_crops import crop_probabilities

    if protocol == "dense":
        return lambda images: dense_probabilities(model.score_map, images)
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


def run_protocol(model_name, protocol, scale, batch_probabilities, dataset, progress=True, examples=None,
                 stream=None) -> Run:
    """Runs `batch_probabilities(views) -> [B, C]` over `dataset` and times it (images/s: model time
    only, without tracing or the input pipeline).

    With `progress`, a line says what runs from the start (before tracing) and counts the images
    (`examples`: the split's size, for an ETA), redrawn on a terminal and every 15 s elsewhere
    (`keras_alexnet.progress.ProgressLine` on `stream`, stdout by default).
    """
    import tensorflow as tf

    from keras_alexnet.progress import ProgressLine

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (choose from {PROTOCOLS})")
    line = ProgressLine(f"{model_name}: {protocol} at Q={scale}", examples, stream=stream) if progress else None
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
