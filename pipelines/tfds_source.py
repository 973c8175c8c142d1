"""TFDS datasets by name (`--tfds=imagenet2012`, `imagenette`, `fashion_mnist`, ...) as record shards.

Nothing is downloaded here and TFDS's own `as_dataset` is not used: the builder's prepared TFRecord
files are read by the same tf.data pipeline as our shards, with the record keys of the dataset's
`Image` and `ClassLabel` features (serialized as encoded image bytes and an int64, 0-based). So
`--tfds=NAME` yields the same (images, labels) as our records made from the same images.

A dataset not yet prepared in the TFDS data dir is prepared only when a manual dir is given (TFDS's
`imagenet2012` builds offline from the ILSVRC tars placed there); otherwise it is a one-line
`UserError`. `tensorflow_datasets` is imported lazily (it is slow to import); tensorflow-datasets
4.9.10 also needs `importlib_resources`, which it does not declare (requirements.txt lists it).
"""

import dataclasses
import os

from keras_alexnet.errors import UserError


@dataclasses.dataclass
class TfdsSource:
    """The prepared files of one split and the record keys of its image and label."""

    name: str
    files: list
    image_key: str
    label_key: str
    num_classes: int
    num_examples: dict  # split name -> examples
    data_dir: str


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def load_builder(name: str, data_dir=None, manual_dir=None):
    """The TFDS builder of `name` (`name[/config][:version]`), prepared (see the module docstring)."""
    tfds = _tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # DatasetNotFoundError and friends vary across TFDS versions.
        raise UserError(f"--tfds={name}: {str(error).splitlines()[0]}") from None
    if not builder.is_prepared():
        if not manual_dir:
            raise UserError(
                f"--tfds={name}: not prepared in {builder.data_dir} (give --tfds_data_dir where it is "
                f"prepared, or --tfds_manual_dir holding its manual files to prepare it offline)"
            )
        if not os.path.isdir(manual_dir):
            raise UserError(f"{manual_dir}: TFDS manual dir does not exist")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as error:
            raise UserError(f"--tfds={name}: preparing from {manual_dir} failed: {str(error).splitlines()[0]}") from None
    return builder


def _feature_keys(builder):
    """(image key, label key, num_classes): top-level `Image` and `ClassLabel` features ("image" and
    "label" preferred when there are several)."""
    tfds = _tfds()
    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    name = builder.info.full_name
    if not images or not labels:
        raise UserError(f"--tfds={name}: needs an Image and a ClassLabel feature, has {sorted(features.keys())}")
    image_key = "image" if "image" in images else images[0]
    label_key = "label" if "label" in labels else labels[0]
    return image_key, label_key, features[label_key].num_classes


def source(name: str, split: str, data_dir=None, manual_dir=None) -> TfdsSource:
    """The TFRecord files of `split` of TFDS dataset `name` and how to read them."""
    builder = load_builder(name, data_dir, manual_dir)
    info = builder.info
    file_format = getattr(getattr(info, "file_format", None), "value", "tfrecord")
    if file_format != "tfrecord":
        raise UserError(f"--tfds={name}: prepared as {file_format}; only TFRecord-prepared datasets are read")
    if split not in info.splits:
        raise UserError(f"--tfds={name}: no split {split!r} (has {', '.join(sorted(info.splits.keys()))})")
    files = [os.fspath(path) for path in info.splits[split].filepaths]
    image_key, label_key, num_classes = _feature_keys(builder)
    return TfdsSource(
        name=name,
        files=files,
        image_key=image_key,
        label_key=label_key,
        num_classes=num_classes,
        num_examples={s: info.splits[s].num_examples for s in info.splits.keys()},
        data_dir=builder.data_dir,
    )
