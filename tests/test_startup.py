"""Start-up to the first training step: the training input pipeline starts producing when its
iterator is made (so its first batches are ready when the traced step first runs), the 10-crop
evaluation's pipeline is built at its first evaluation and the augmented-input preview after the first
step, not before training starts."""

import time

import numpy as np
import keras
import tensorflow as tf

from callbacks.ten_crop import TenCropEvaluation
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer
from test_steps_per_call import tiny_model


def test_training_pipeline_starts_when_its_iterator_is_made():
    produced = []

    def record(x):
        produced.append(1)
        return x

    def train_fn(input_context, epoch):
        images = tf.zeros([8, 8, 8, 3])
        labels = tf.zeros([8], tf.int32)
        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(4)
        dataset = dataset.map(lambda x, y: (tf.numpy_function(record, [x], tf.float32), y))
        return dataset.map(lambda x, y: (tf.ensure_shape(x, [8, 8, 8, 3]), y)).prefetch(2)

    trainer = Trainer(tf.distribute.get_strategy(), tiny_model, lambda: PaperSGD(0.05), train_fn,
                      steps_per_epoch=2, epochs=1, global_batch_size=8)
    iterator = trainer._train_iterator(0, 0)
    deadline = time.monotonic() + 20
    while not produced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert produced, "no element was produced before the first next()"
    assert next(iterator)[0].shape == (8, 8, 8, 3)


def test_ten_crop_dataset_is_built_at_the_first_evaluation():
    model = tiny_model()
    model.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    crops = (rng.normal(size=(6, 10, 8, 8, 3)).astype("float32"), rng.integers(0, 4, 6).astype("int32"))
    built = []

    def factory():
        built.append(1)
        return tf.data.Dataset.from_tensor_slices(crops).batch(3)

    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 16).astype("int32")

    before_evaluation = []

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                before_evaluation.append(len(built))

    lazy = TenCropEvaluation(factory, every_n_epochs=2, printer=lambda m: None, interactive=False)
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[Check(), lazy], verbose=0)
    assert before_evaluation == [0]
    assert built == [1]  # built once, at the first evaluation (epoch 2), and reused at the end
    eager = TenCropEvaluation(factory(), printer=lambda m: None, interactive=False)
    eager.set_model(model)
    eager.on_train_end()
    assert eager.final == lazy.final


def test_augmented_inputs_preview_is_made_after_the_first_step(tmp_path):
    import glob
    import os

    from callbacks.augmented_inputs import AugmentedInputs

    model = tiny_model()
    model.compile(optimizer=PaperSGD(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    made_at = []

    def preview():
        made_at.append(int(model.optimizer.iterations.numpy()))
        return rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)

    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 16).astype("int32")
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[AugmentedInputs(preview, str(tmp_path), "trial")], verbose=0)
    assert made_at == [1]  # once, after the first step
    steps = [event.step for path in glob.glob(os.path.join(str(tmp_path), "trial", "train", "*"))
             for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value
             if value.tag == AugmentedInputs.TAG]
    assert steps == [0]  # at the step training started at
