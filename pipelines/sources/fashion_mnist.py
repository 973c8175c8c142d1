"""Fashion-MNIST (Xiao et al., 2017): the built-in default dataset, 70,000 28x28 grey photos, 10 classes.

Read from Debian's `dataset-fashion-mnist` IDX files (`/usr/share/datasets/fashion-mnist/`) when they
are installed, else through TFDS `fashion_mnist` (which downloads it once into TFDS's data folder); a
folder the user names must hold the IDX files (no download then).
"""

import gzip
import os

import numpy as np

from keras_alexnet.errors import UserError
from pipelines.records import ClassInfo
from pipelines.sources import Item

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# (synset, text) in label order, as in the dataset's documentation and TFDS's `label` feature.
CLASSES = (
    ("t_shirt_top", "T-shirt/top"),
    ("trouser", "Trouser"),
    ("pullover", "Pullover"),
    ("dress", "Dress"),
    ("coat", "Coat"),
    ("sandal", "Sandal"),
    ("shirt", "Shirt"),
    ("sneaker", "Sneaker"),
    ("bag", "Bag"),
    ("ankle_boot", "Ankle boot"),
)


def classes() -> list:
    return [ClassInfo(label=i, synset=s, text=t) for i, (s, t) in enumerate(CLASSES)]


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzip or plain) -> uint8 array of its declared shape (LeCun's MNIST format)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise UserError(f"{path}: cannot read IDX file ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(shape)):
        raise UserError(f"{path}: size does not match its IDX header {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def missing_files(directory: str) -> list:
    """The IDX files `load_idx` needs that `directory` lacks."""
    return [os.path.join(directory, f) for pair in FILES.values() for f in pair
            if not os.path.isfile(os.path.join(directory, f))]


def debian_available(directory: str = DEBIAN_DIR) -> bool:
    return not missing_files(directory)


def load_idx(directory: str) -> dict:
    """{split: (images uint8 (N, 28, 28), labels uint8 (N,))} from the IDX files in `directory`."""
    arrays = {}
    for split, (images_file, labels_file) in FILES.items():
        images = read_idx(os.path.join(directory, images_file))
        labels = read_idx(os.path.join(directory, labels_file))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{os.path.join(directory, images_file)}: images and labels do not match")
        arrays[split] = (images, labels)
    return arrays


def load_tfds(data_dir=None) -> dict:
    """{split: (images (N, 28, 28), labels (N,))} through TFDS `fashion_mnist` (downloads on first use)."""
    import tensorflow_datasets as tfds

    arrays = {}
    for split in FILES:
        data = tfds.as_numpy(tfds.load("fashion_mnist", split=split, batch_size=-1, data_dir=data_dir))
        arrays[split] = (np.asarray(data["image"], np.uint8).reshape(-1, 28, 28), np.asarray(data["label"]))
    return arrays


def load(directory: str = DEBIAN_DIR, fallback: bool = True) -> tuple:
    """(arrays, description): the IDX files in `directory` when present, else TFDS when `fallback`
    (never when the user named the folder: a UserError naming the first missing file instead)."""
    missing = missing_files(directory)
    if not missing:
        return load_idx(directory), f"fashion-mnist IDX files in {directory}"
    if not fallback:
        raise UserError(f"{missing[0]}: no such file (the Fashion-MNIST IDX files are not in {directory})")
    return load_tfds(), "tensorflow-datasets fashion_mnist"


def to_items(split: str, images: np.ndarray, labels: np.ndarray) -> list:
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise UserError(f"fashion-mnist {split}: label {int(labels.max())} outside 0..{len(CLASSES) - 1}")
    return [
        Item(where=f"fashion-mnist/{split}/{i}", filename=f"fashion-mnist-{split}-{i:05d}.png", label=int(label), pixels=image)
        for i, (image, label) in enumerate(zip(images, labels))
    ]
