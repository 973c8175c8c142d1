"""`--tfds=NAME` sources: a tiny TFDS dataset prepared offline into a temporary data dir, read through
the same pipeline, gives the same (images, labels) as our records made from the same images."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_alexnet.errors import UserError
from pipelines import input_pipeline, records

SIZE, RESIZE = 24, 32
IMAGES = [np.random.default_rng(i).integers(0, 256, (RESIZE, 40 + 4 * i, 3)).astype(np.uint8) for i in range(6)]
GREY = [np.random.default_rng(50 + i).integers(0, 256, (28, 28, 1)).astype(np.uint8) for i in range(4)]


class KaTinyImages(tfds.core.GeneratorBasedBuilder):
    """Six RGB images, one per class (PNG-encoded by TFDS), in train and validation."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(num_classes=6),
                "file_name": tfds.features.Text(),
            }
        )
        return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(), "validation": self._generate_examples()}

    def _generate_examples(self):
        for i, image in enumerate(IMAGES):
            yield i, {"image": image, "label": i, "file_name": f"{i}.png"}


class KaTinyGrey(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST-like: 28x28 grey images (one channel), 4 classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=4)}
        )
        return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, image in enumerate(GREY):
            yield i, {"image": image, "label": i}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for builder in (KaTinyImages(data_dir=data_dir), KaTinyGrey(data_dir=data_dir)):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return data_dir


def _records_of(images, data_dir):
    os.makedirs(data_dir, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name("validation", 0, 1))) as writer:
        for label, image in enumerate(images):
            feature = {
                records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
                records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    classes = [records.ClassInfo(i, f"c{i}", f"class {i}") for i in range(len(images))]
    records.write_metadata(data_dir, records.DatasetInfo(classes=classes, splits={"validation": records.SplitInfo(len(images), 1)}))
    return data_dir


def _by_label(dataset):
    images, labels = [], []
    for x, y in dataset:
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    order = np.argsort(labels)
    return images[order], labels[order]


def _config(**settings):
    base = dict(image_size=SIZE, resize_size=RESIZE, batch_size=4, mean="none", pca_jitter_std=0.0, shuffle_buffer=16)
    base.update(settings)
    return input_pipeline.InputConfig(**base)


@pytest.mark.parametrize("protocol", ["center", "ten_crop"])
def test_tfds_name_gives_the_same_examples_as_our_records(tfds_dir, tmp_path, protocol):
    ours = _config(data_dir=_records_of(IMAGES, str(tmp_path / "records")), split="validation")
    theirs = _config(tfds_name="ka_tiny_images", tfds_data_dir=tfds_dir, split="validation")
    info = input_pipeline.dataset_info(theirs)
    assert info.num_classes == 6 and info.num_examples == {"train": 6, "validation": 6} and info.label_offset == 0
    assert input_pipeline.count_examples(theirs) == 6
    our_images, our_labels = _by_label(input_pipeline.build_eval_dataset(ours, protocol))
    tfds_images, tfds_labels = _by_label(input_pipeline.build_eval_dataset(theirs, protocol))
    np.testing.assert_array_equal(tfds_labels, np.arange(6))
    np.testing.assert_array_equal(our_labels, tfds_labels)
    np.testing.assert_array_equal(our_images, tfds_images)


def test_tfds_training_pipeline_with_worker_sharding(tfds_dir):
    config = _config(tfds_name="ka_tiny_images", tfds_data_dir=tfds_dir, drop_remainder=False, flip=True, seed=1)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0, num_replicas_in_sync=2)
    first = _by_label(input_pipeline.build_train_dataset(config, input_context=context))[1]
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    images, second = _by_label(input_pipeline.build_train_dataset(config, input_context=context))
    assert images.shape[1:] == (SIZE, SIZE, 3)
    assert sorted(first.tolist() + second.tolist()) == list(range(6)) and not set(first) & set(second)


def test_grey_tfds_images_become_rgb(tfds_dir):
    config = _config(tfds_name="ka_tiny_grey", tfds_data_dir=tfds_dir)
    images, labels = _by_label(input_pipeline.build_eval_dataset(config, "center"))
    assert images.shape == (4, SIZE, SIZE, 3) and labels.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    reference = tf.image.resize(np.repeat(GREY[2], 3, -1), [RESIZE, RESIZE], antialias=True).numpy()
    np.testing.assert_allclose(images[2], reference[4:28, 4:28], atol=1e-3)


def test_tfds_errors_are_one_line(tfds_dir, tmp_path):
    with pytest.raises(UserError, match="^--tfds=ka_tiny_images: no split 'test' \\(has train, validation\\)$"):
        input_pipeline.build_eval_dataset(_config(tfds_name="ka_tiny_images", tfds_data_dir=tfds_dir, split="test"))
    with pytest.raises(UserError, match="^--tfds=ka_tiny_images: not prepared in "):
        input_pipeline.dataset_info(_config(tfds_name="ka_tiny_images", tfds_data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="^--tfds=no_such_dataset_xyz: "):
        input_pipeline.dataset_info(_config(tfds_name="no_such_dataset_xyz", tfds_data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="no statistics file"):
        input_pipeline.build_train_dataset(_config(tfds_name="ka_tiny_images", tfds_data_dir=tfds_dir, mean="rgb"))
