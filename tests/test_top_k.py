"""One top-k with one tie rule (AlexNet §6's top-1/top-5 error): a tie with the label is never a hit.

Checked against a NumPy transcription of the rule (a hit iff at most k classes score >= the label's
score, the label included) on tied scores, through everything that scores predictions: the training
metric and the custom loop's counts, the 10-crop callback, evaluation's tables; and a collapsed net
(the same output for every class) whose top-1 error is 1.0 alike in training, validation,
TensorBoard, the plateau schedule, the 10-crop callback and `evaluate`'s table.
"""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from callbacks.lr_schedules import PlateauDecay
from callbacks.summaries import ScalarSummaries
from callbacks.ten_crop import TenCropEvaluation, evaluate_ten_crop
from keras_alexnet.evaluation import tables
from keras_alexnet import metric_names
from keras_alexnet.metrics import TopKError, error_metrics, missed, topk_wrong
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer

CLASSES = 10


def reference_missed(probabilities, labels, k):
    """NumPy: 1 where more than k classes score at least the label's score (the label included)."""
    probabilities = np.asarray(probabilities)
    truth = probabilities[np.arange(len(labels)), labels][:, None]
    return ((probabilities >= truth).sum(axis=1) > k).astype(np.float32)


def tied_scores(n=300, seed=0):
    """Scores in multiples of 1/8 (exact in float32, sums of ten exact too): many ties, some with the label."""
    rng = np.random.default_rng(seed)
    probabilities = rng.integers(0, 4, size=(n, CLASSES)).astype(np.float32) / 8
    labels = rng.integers(0, CLASSES, size=n)
    return probabilities, labels


def test_uniform_scores_miss_every_label_below_the_number_of_classes():
    probabilities = np.full((4, CLASSES), 1 / CLASSES, np.float32)
    labels = np.array([0, 3, 5, 9])
    for k in (1, 5, CLASSES - 1):
        np.testing.assert_array_equal(missed(labels, probabilities, k).numpy(), [1, 1, 1, 1])
        assert tables.top_k_error(probabilities, labels, k) == 100.0
    np.testing.assert_array_equal(missed(labels, probabilities, CLASSES).numpy(), [0, 0, 0, 0])  # every class


def test_tied_scores_match_the_numpy_rule_in_every_scorer():
    probabilities, labels = tied_scores()
    for k in (1, 2, 5):
        expected = reference_missed(probabilities, labels, k)
        assert 0 < expected.mean() < 1
        # Ties with the label happen, and the rule differs from crediting them (in_top_k's).
        credited = 1 - tf.math.in_top_k(tf.constant(labels, tf.int32), tf.constant(probabilities), k).numpy()
        assert (expected != credited).any()
        np.testing.assert_array_equal(missed(labels, probabilities, k).numpy(), expected)
        np.testing.assert_array_equal(missed(labels, probabilities.astype(np.float64), k).numpy(), expected)
        np.testing.assert_array_equal(missed(labels, tf.cast(probabilities, tf.bfloat16), k).numpy(), expected)
        assert float(topk_wrong(labels, probabilities, k)) == expected.sum()
        metric = TopKError(k)
        metric.update_state(labels, probabilities)
        assert float(metric.result()) == pytest.approx(expected.mean())
        assert tables.top_k_error(probabilities, labels, k) == pytest.approx(100 * expected.mean())
    # The 10-crop callback's average over crops: a model that outputs its input's values.
    echo = keras.Sequential([keras.Input((1, 1, CLASSES)), keras.layers.Reshape((CLASSES,))])
    crops = np.repeat(probabilities[:, None, None, None, :], 10, axis=1)
    result = evaluate_ten_crop(echo, tf.data.Dataset.from_tensor_slices((crops, labels)).batch(64))
    assert result["top1_error"] == pytest.approx(reference_missed(probabilities, labels, 1).mean())
    assert result["top5_error"] == pytest.approx(reference_missed(probabilities, labels, 5).mean())


def test_training_and_evaluation_name_the_errors_as_metric_names_does():
    """The compiled metrics (epoch logs, metrics.csv) and the evaluation engine's errors share their keys."""
    probabilities, labels = tied_scores()
    assert [metric.name for metric in error_metrics()] == list(metric_names.ERRORS) == ["top1_error", "top5_error"]
    assert tables.errors(probabilities, labels) == {
        "top1_error": pytest.approx(reference_missed(probabilities, labels, 1).mean()),
        "top5_error": pytest.approx(reference_missed(probabilities, labels, 5).mean()), "count": len(labels)}


def test_a_non_finite_score_is_a_miss():
    probabilities = np.array([[0.5, np.nan, 0.1], [np.inf, 0.2, 0.1], [np.nan, 0.2, 0.1]], np.float32)
    np.testing.assert_array_equal(missed([0, 0, 1], probabilities, 1).numpy(), [1, 1, 1])


def collapsed_model(size=12):
    """A net whose output is the same for every class, whatever it is shown (a zero, frozen last layer)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(CLASSES, kernel_initializer="zeros", bias_initializer="zeros", trainable=False)(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(x))


def test_a_collapsed_net_is_wrong_on_every_label_in_training_tensorboard_plateau_ten_crop_and_evaluate(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array([0, 3, 5, 9] * 2, np.int32)
    images = rng.normal(size=(len(labels), 12, 12, 3)).astype(np.float32)

    def train_data(input_context, epoch=0):
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4, drop_remainder=True)

    def val_data(input_context):
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)

    crops = np.repeat(images[:, None], 10, axis=1)
    ten_crop = TenCropEvaluation(tf.data.Dataset.from_tensor_slices((crops, labels)).batch(4), printer=lambda _: None)
    plateau = PlateauDecay(patience=1, printer=lambda _: None)
    log_dir = str(tmp_path / "logs")
    trainer = Trainer(tf.distribute.get_strategy(), collapsed_model, lambda: PaperSGD(0.01), train_data,
                      steps_per_epoch=2, epochs=2, global_batch_size=4, val_dataset_fn=val_data,
                      val_examples=len(labels))
    history = trainer.fit([ten_crop, plateau, ScalarSummaries(log_dir, "trial", update_freq=1)]).history
    for key in ("top1_error", "top5_error", "val_top1_error", "val_top5_error", "ten_crop_top1_error",
                "ten_crop_top5_error"):
        assert history[key] == [1.0, 1.0], key
    assert plateau.best == 1.0 and plateau.reductions == 1  # no improvement on 1.0: the rate was divided
    logged = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "epoch/top1_error":
                    run = os.path.relpath(os.path.dirname(path), log_dir)
                    logged.setdefault(run, []).append(float(tf.make_ndarray(value.tensor)))
    assert logged == {"trial/train": [1.0, 1.0], "trial/validation": [1.0, 1.0],
                      "trial/validation_10crop": [1.0, 1.0]}
    probabilities = trainer.model.predict(images, verbose=0)
    assert tables.top_k_error(probabilities, labels, 1) == 100.0 and tables.top_k_error(probabilities, labels, 5) == 100.0
