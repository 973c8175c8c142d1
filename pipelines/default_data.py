"""The built-in default dataset: Fashion-MNIST, prepared like any dataset (the data of `main.py train`).

`ensure_default_data(root, image_size)` prepares, once, `root/fashion_mnist_<size>/`: train (55,000),
validation (5,000 held out of the 60,000 training images with a fixed seed, so learning-rate plateau
decisions never see test, AlexNet §5), and test (10,000), stored as RGB JPEGs upscaled from 28x28 to
`image_size` x `image_size` (the "alexnet" policy on square images is a plain resize, AlexNet §2), plus
`stats.npz` (AlexNet §2 mean image, §4.1 RGB PCA). A later call finds it complete and returns at once;
an interrupted one resumes. Processes calling it together (the tasks of a study job array, `train`
beside them) take turns through a lock file beside the folder: one prepares, the others say that they
wait, then find the folder complete.
"""

import contextlib
import fcntl
import os
import sys

from keras_alexnet.errors import UserError
from pipelines import prepare
from pipelines import records
from pipelines import stats
from pipelines.sources import fashion_mnist
from pipelines.sources import load

DEFAULT_IMAGE_SIZE = 72
VALIDATION_IMAGES = 5000
SEED = 0


def data_dir_for(root: str, image_size: int) -> str:
    return os.path.join(root, f"fashion_mnist_{image_size}")


def is_complete(data_dir: str, image_size: int) -> bool:
    """True when `data_dir` holds the whole prepared dataset at `image_size` and its statistics.

    `dataset.json` is written only when every shard is complete, so it marks a finished `prepare`.
    """
    info = records.read_metadata(data_dir)
    if info is None or info.image_size != image_size or info.num_classes != len(fashion_mnist.CLASSES):
        return False
    for split in records.SPLITS:
        split_info = info.splits.get(split)
        if split_info is None or len(records.list_shards(data_dir, split)) != split_info.num_shards:
            return False
    return os.path.isfile(os.path.join(data_dir, records.STATS_FILE))


def ensure_default_data(root: str, image_size: int = DEFAULT_IMAGE_SIZE, num_workers: int = 0,
                        source_dir: str = fashion_mnist.DEBIAN_DIR, validation_images: int = VALIDATION_IMAGES) -> str:
    """Prepares Fashion-MNIST under `root` unless already complete; returns the prepared folder.

    `source_dir` holds the IDX files (TFDS `fashion_mnist` when they are absent); `validation_images`
    are held out of the training images.
    """
    if image_size < 28:
        raise UserError(f"image size {image_size}: Fashion-MNIST needs at least its own 28 pixels")
    data_dir = data_dir_for(root, image_size)
    if is_complete(data_dir, image_size):
        return data_dir
    with _preparing_alone(data_dir):
        if not is_complete(data_dir, image_size):  # another process may have prepared it meanwhile
            _prepare(data_dir, image_size, num_workers, source_dir, validation_images)
    return data_dir


def _prepare(data_dir: str, image_size: int, num_workers: int, source_dir: str, validation_images: int) -> None:
    config = prepare.PrepareConfig(
        data_dir=data_dir,
        image_policy="alexnet",
        image_size=image_size,
        seed=SEED,
        num_workers=num_workers,
        validation_holdout=validation_images,
    )
    prepare.prepare(load.fashion_mnist(source_dir), config)
    stats.run(data_dir)


@contextlib.contextmanager
def _preparing_alone(data_dir: str):
    """Holds an exclusive lock on `<data_dir>.lock` (released by the system when the process dies, so a
    killed preparation never blocks the next one); says so once when another process holds it."""
    lock_path = data_dir + ".lock"
    try:
        os.makedirs(os.path.dirname(lock_path) or ".", exist_ok=True)
        lock = open(lock_path, "a", encoding="utf-8")  # noqa: SIM115 - held for the block
    except OSError as error:
        raise UserError(f"{lock_path}: cannot create the preparation lock ({error.strerror or error})") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"default data: another process is preparing {data_dir}; waiting for it\n")
            sys.stderr.flush()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
