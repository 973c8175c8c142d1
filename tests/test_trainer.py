"""The custom training loop: same result as `model.fit`, callbacks driven like `fit`, NaN handling,
and a smoke check that a tiny run on real Fashion-MNIST images learns."""


import numpy as np
import pytest
import keras
import tensorflow as tf

from callbacks.nan_guard import NanGuard, NonFiniteLoss
from callbacks.lr_schedules import PlateauDecay
from callbacks.summaries import ScalarSummaries
from callbacks.throughput import Throughput
from keras_alexnet.metrics import error_metrics
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer
from test_train_cli import read_idx

CLASSES = 6


def tiny_model(size=12, classes=CLASSES, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(classes, name="fc8")(x)
    outputs = keras.layers.Activation("softmax", name="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def data(n=32, size=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n).astype("int32")
    images = rng.normal(size=(n, size, size, 3)).astype("float32") + labels[:, None, None, None] * 0.3
    return images, labels


def dataset_fn(x, y, batch):
    def make(input_context, epoch=0):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(
            input_context.get_per_replica_batch_size(batch), drop_remainder=True)
    return make


def test_one_epoch_matches_model_fit():
    x, y = data()
    reference = tiny_model()
    reference.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy",
                      metrics=error_metrics())
    fit_logs = reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05),
                      dataset_fn(x, y, 8), steps_per_epoch=4, epochs=2, global_batch_size=8)
    loop_logs = trainer.fit().history
    for a, b in zip(reference.get_weights(), trainer.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "top1_error", "top5_error"):
        np.testing.assert_allclose(loop_logs[key], fit_logs[key], rtol=1e-5)
    assert int(trainer.optimizer.iterations.numpy()) == 8


def test_prepare_inputs_runs_in_the_step():
    """Batches of uint8 images made float and scaled in the step train as the float batches do."""
    x, y = data()
    pixels = np.clip(np.round(x * 40 + 128), 0, 255).astype("uint8")
    floats = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05),
                     dataset_fn((pixels.astype("float32") - 128) / 40, y, 8), steps_per_epoch=4, epochs=1,
                     global_batch_size=8)
    floats.fit()
    prepared = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05), dataset_fn(pixels, y, 8),
                       steps_per_epoch=4, epochs=1, global_batch_size=8,
                       prepare_inputs=lambda images: (tf.cast(images, tf.float32) - 128) / 40)
    prepared.fit()
    for a, b in zip(floats.model.get_weights(), prepared.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_callbacks_validation_and_checkpoints(tmp_path):
    x, y = data()
    val = data(20, seed=1)
    trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05),
                      dataset_fn(x, y, 8), steps_per_epoch=4, epochs=3, global_batch_size=8,
                      val_dataset_fn=dataset_fn(*val, 8), val_examples=20, checkpoint_dir=str(tmp_path / "ckpt"),
                      checkpoint_every_steps=2)
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(("batch", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch", epoch, sorted(logs)))

    history = trainer.fit([NanGuard(), Throughput(8), PlateauDecay(printer=lambda m: None),
                           ScalarSummaries(str(tmp_path / "logs")), Recorder()])
    assert [s[1] for s in seen if s[0] == "epoch"] == [0, 1, 2]
    assert seen[0] == ("batch", 0, ["learning_rate", "loss", "top1_error", "top5_error"])  # Throughput adds the rate
    epoch_keys = [s for s in seen if s[0] == "epoch"][0][2]
    assert {"val_loss", "val_top1_error", "val_top5_error", "images_per_sec", "learning_rate"} <= set(epoch_keys)
    assert len(history.history["val_top1_error"]) == 3
    # Every epoch and every 2 steps: steps 2, 4 (epoch end), 6, 8, ...; the manager keeps the last 3.
    latest = tf.train.latest_checkpoint(str(tmp_path / "ckpt"))
    assert latest.endswith("ckpt-12")
    # The same command again: the run is finished and trains no further.
    again = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05),
                    dataset_fn(x, y, 8), steps_per_epoch=4, epochs=3, global_batch_size=8,
                    checkpoint_dir=str(tmp_path / "ckpt"), printer=lambda m: None)
    again.fit()
    assert int(again.optimizer.iterations.numpy()) == 12
    for a, b in zip(trainer.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_reads_its_data_once_per_pass_and_weighs_only_real_examples():
    x, y = data()
    val_x, val_y = data(20, seed=1)
    reads = tf.Variable(0, dtype=tf.int64)

    def val_dataset_fn(input_context):
        def counted(image, label):
            with tf.control_dependencies([reads.assign_add(1)]):
                return tf.identity(image), label
        return tf.data.Dataset.from_tensor_slices((val_x, val_y)).map(counted).batch(8)

    trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05),
                      dataset_fn(x, y, 8), steps_per_epoch=4, epochs=1, global_batch_size=8,
                      val_dataset_fn=val_dataset_fn, val_examples=20)
    logs = trainer.evaluate()
    assert int(reads.numpy()) == 20  # no second read for the padding of the last batch (3 steps of 8)
    probabilities = trainer.model.predict(val_x, verbose=0)
    expected = np.mean(np.argmax(probabilities, axis=1) != val_y)
    np.testing.assert_allclose(logs["val_top1_error"], expected, rtol=1e-6)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    x, y = data(64)
    trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(1e20),
                      dataset_fn(x, y, 8), steps_per_epoch=8, epochs=3, global_batch_size=8,
                      checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every_steps=1)
    with pytest.raises(NonFiniteLoss, match=r"loss became (nan|inf) .*the last good checkpoint is .*ckpt-\d+"):
        trainer.fit([NanGuard()])
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "ckpt")))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_learns_real_fashion_mnist():
    images = read_idx("train-images-idx3-ubyte.gz")[:4096].astype("float32")
    labels = read_idx("train-labels-idx1-ubyte.gz")[:4096].astype("int32")
    test_x = read_idx("t10k-images-idx3-ubyte.gz")[:1000].astype("float32")
    test_y = read_idx("t10k-labels-idx1-ubyte.gz")[:1000].astype("int32")
    mean = images.mean()

    def prep(x):
        return np.repeat(((x - mean) / 64.0)[..., None], 3, axis=-1)

    def build():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((28, 28, 3))
        x = keras.layers.Conv2D(16, 5, strides=2, activation="relu", name="conv1")(inputs)
        x = keras.layers.MaxPooling2D(3, 2)(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(64, activation="relu", name="fc7")(x)
        x = keras.layers.Dense(10, name="fc8")(x)
        return keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(x))

    train = prep(images)

    def train_fn(input_context, epoch):
        return tf.data.Dataset.from_tensor_slices((train, labels)).shuffle(4096, seed=epoch).batch(64)

    trainer = Trainer(tf.distribute.get_strategy(), build, lambda: PaperSGD(0.02),
                      train_fn, steps_per_epoch=64, epochs=2, global_batch_size=64,
                      val_dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices(
                          (prep(test_x), test_y)).batch(250), val_examples=1000)
    history = trainer.fit().history
    assert history["val_top1_error"][-1] < 0.35  # chance is 0.9


def test_fold_input_scale_gives_the_same_function_on_unscaled_inputs():
    from keras_alexnet.export import fold_input_scale

    model = tiny_model()
    x, _ = data(4)
    expected = model(x * 0.25).numpy()
    assert fold_input_scale(model, 0.25) == "conv1"
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_float16_loss_scaling_unscales_before_the_update():
    """`--mixed_precision` on GPUs (README "Mixed precision"): mixed_float16 with a dynamic loss scale (2**15
    at the start): the loss is multiplied by the scale before the backward pass and the gradients divided
    by it before PaperSGD's update, so the weights follow float32 training to float16's precision; a
    missing unscale would move them 32768 times as far."""
    x, y = data()
    reference = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05), dataset_fn(x, y, 8),
                        steps_per_epoch=4, epochs=1, global_batch_size=8)
    reference.fit()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05), dataset_fn(x, y, 8),
                          steps_per_epoch=4, epochs=1, global_batch_size=8, loss_scale=True)
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        assert trainer.model.get_layer("conv1").compute_dtype == "float16"
        trainer.fit()
        assert float(trainer.optimizer.dynamic_scale.numpy()) == 2.0 ** 15  # no step overflowed
        initial = tiny_model().get_weights()
        for start, expected, got in zip(initial, reference.model.get_weights(), trainer.model.get_weights()):
            assert got.dtype == np.float32  # float32 master weights
            np.testing.assert_allclose(got - start, expected - start, rtol=0.05, atol=2e-4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
