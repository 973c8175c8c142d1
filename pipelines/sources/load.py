"""Builds a `SourceData` from the `prepare` flags: paths (folders or ILSVRC tars) or Fashion-MNIST."""

import os

from keras_alexnet.errors import UserError
from pipelines.sources import SourceData, folder, ilsvrc, make_classes, read_class_names
from pipelines.sources import fashion_mnist as fmnist


def from_paths(train: str, validation: str = "", test: str = "", validation_labels: str = "",
               synsets: str = "", class_names: str = "") -> SourceData:
    """Training classes come from `train` (a `ROOT/<class>/<image>` folder or a tar); the other splits
    use them. A flat validation tar (ILSVRC2012_img_val.tar) takes its labels from `validation_labels`,
    by default TFDS's ILSVRC-2012 `validation_labels.txt`."""
    for flag, path in (("train", train), ("validation", validation), ("test", test),
                       ("validation_labels", validation_labels), ("synsets", synsets), ("class_names", class_names)):
        if path and not os.path.exists(path):
            raise UserError(f"--{flag}: {path}: no such file or folder")
    names = read_class_names(class_names) if class_names else {}
    ignored = []
    if os.path.isdir(train):
        classes = make_classes(folder.class_folders(train), names)
        labels = {c.synset: c.label for c in classes}
        splits = {"train": folder.scan(train, labels, ignored)}
    else:
        entries, synset_list = ilsvrc.train_synsets(train, ignored)
        classes = make_classes(synset_list, names)
        labels = {c.synset: c.label for c in classes}
        splits = {"train": ilsvrc.items(train, entries, labels)}
    for split, path in (("validation", validation), ("test", test)):
        if not path:
            continue
        if os.path.isdir(path):
            splits[split] = folder.scan(path, labels, ignored)
            continue
        labels_file = (validation_labels or ilsvrc.default_validation_labels()) if split == "validation" else ""
        ground_truth = ilsvrc.read_ground_truth(labels_file, synsets) if labels_file else []
        entries = ilsvrc.validation_entries(path, ground_truth, ignored)
        unknown = next((e for e in entries if e[0] not in labels), None)
        if unknown is not None:
            raise UserError(f"{unknown[2]}: class '{unknown[0]}' is not among the training classes")
        splits[split] = ilsvrc.items(path, entries, labels)
    if not splits["train"]:
        raise UserError(f"--train: {train}: no images found")
    return SourceData(classes=classes, splits=splits, description=os.path.abspath(train), ignored=ignored)


def fashion_mnist(directory: str = fmnist.DEBIAN_DIR, fallback: bool = True) -> SourceData:
    """Fashion-MNIST train (60,000) and test (10,000) as array items (the built-in default dataset);
    TFDS when `directory` lacks the IDX files only with `fallback`."""
    arrays, description = fmnist.load(directory, fallback)
    splits = {split: fmnist.to_items(split, images, labels) for split, (images, labels) in arrays.items()}
    return SourceData(classes=fmnist.classes(), splits=splits, description=description)
