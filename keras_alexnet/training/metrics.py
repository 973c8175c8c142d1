"""Top-1 and top-5 error, the numbers AlexNet §6 and VGG §4 report.

`TopKError` is a Keras metric for `model.compile`; `topk_wrong` counts misses in a batch for the
custom loop, which sums counts across replicas and divides once (exact for uneven last batches).
"""

import keras
import tensorflow as tf


def metric_name(k: int) -> str:
    return f"top{k}_error"


def missed(labels, probabilities, k: int):
    """1.0 for each example whose label is not among the k highest scores, else 0.0 (float32 [N]);
    the one top-k of training, 10-crop evaluation and the metric (AlexNet §6)."""
    k = min(k, probabilities.shape[-1])
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    hit = tf.math.in_top_k(targets=labels, predictions=tf.cast(probabilities, tf.float32), k=k)
    return 1.0 - tf.cast(hit, tf.float32)


def topk_wrong(labels, probabilities, k: int, weights=None):
    """The number of examples whose label is not among the k highest scores (float32 scalar);
    `weights` (0 or 1 per example) leaves out padding."""
    wrong = missed(labels, probabilities, k)
    return tf.reduce_sum(wrong if weights is None else wrong * weights)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class TopKError(keras.metrics.Mean):
    """The fraction of examples whose label is not among the top k predictions. [AlexNet §6]"""

    def __init__(self, k: int = 1, name=None, dtype=None):
        super().__init__(name=name or metric_name(k), dtype=dtype)
        self.k = k

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(missed(y_true, y_pred, self.k), sample_weight=sample_weight)

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


def error_metrics():
    """The compiled metrics for `model.fit`: top-1 and top-5 error."""
    return [TopKError(1), TopKError(5)]
