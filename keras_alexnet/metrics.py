"""Top-1 and top-5 error, the numbers AlexNet §6 and VGG §4 report, with one top-k for all of them.

AlexNet §6: "the top-5 error rate is the fraction of test images for which the correct label is not
among the five labels considered most probable by the model". Equal scores give no order, so a tie
is never credited as a hit: the label is among the k most probable iff at most k classes score at
least as high as it (the label included), i.e. no tie can push it into the top k. A net whose
output is the same for every class (dead ReLUs, a deep VGG stuck at chance) so misses every label at
every k below the number of classes, in training, validation, the 10-crop callback and `evaluate`
alike; at k >= the number of classes every label is a hit. A row with a non-finite score is a miss
(as `tf.math.in_top_k` has it).

`missed` is that rule, called by everything that scores predictions: `TopKError` (a Keras metric for
`model.compile`), `topk_wrong` (misses in a batch for the custom loop, which sums counts across
replicas and divides once: exact for uneven last batches), the 10-crop callback and evaluation's
tables (`keras_alexnet.evaluation.tables.top_k_error`: the study and ensembles go through it).
"""

import keras
import tensorflow as tf

from keras_alexnet.metric_names import TOP_K, error_name


def missed(labels, probabilities, k: int):
    """1.0 for each example whose label is not among the k highest scores, else 0.0 (float32 [N]): a
    hit iff at most k classes score >= the label's score (label included), ties counting against it
    (module docstring). `probabilities` [N, C] (any scores: only their order matters), float64 kept
    (an ensemble's averages), other dtypes compared as float32."""
    probabilities = tf.convert_to_tensor(probabilities)
    if probabilities.dtype != tf.float64:
        probabilities = tf.cast(probabilities, tf.float32)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    truth = tf.gather(probabilities, labels, axis=1, batch_dims=1)
    at_least = tf.reduce_sum(tf.cast(probabilities >= truth[:, None], tf.int32), axis=1)
    finite = tf.reduce_all(tf.math.is_finite(probabilities), axis=1)
    hit = tf.logical_and(at_least <= k, finite)
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
        super().__init__(name=name or error_name(k), dtype=dtype)
        self.k = k

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(missed(y_true, y_pred, self.k), sample_weight=sample_weight)

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


def error_metrics():
    """The compiled metrics for `model.fit`: top-1 and top-5 error."""
    return [TopKError(k) for k in TOP_K]
