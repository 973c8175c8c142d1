"""`main.py stats`: one streaming pass over the training shards -> `stats.npz` beside them.

What the papers subtract or jitter with, all on the 0..255 pixel scale:
- `mean_image` (float32, H x W x 3): the per-pixel mean over the training set, which AlexNet subtracts
  (AlexNet §2). Computed at the stored size when the images are stored at one size (image policy
  "alexnet", e.g. 256x256, or Fashion-MNIST at the training resolution); otherwise (policies "vgg" and
  "none", or tensorflow/models shards without `dataset.json`) each image is first brought to 256x256
  the AlexNet way (shorter side 256, central crop), so the result is always AlexNet's 256x256 mean.
- `mean_rgb` (float32, (3,)): the mean RGB value, which VGG subtracts (VGG §2.1).
- `rgb_cov` (float64, 3x3): the covariance of RGB pixel values over all training pixels (population
  covariance, divided by the pixel count), with `eigenvalues` (descending) and `eigenvectors` (column i
  pairs with eigenvalue i; each column's sign is fixed so its component sum is >= 0): the PCA of
  AlexNet §4.1's colour augmentation.
- `num_images`, `num_pixels`, and `mean_image_size` ((height, width) of `mean_image`).

- `lost_records`, `dropped_records`: the training records left out, lost to damaged shards or not
  decodable.

The shards are read as training and evaluation read them (`input_pipeline.decoded_records`): a
damaged shard (CRC mismatch, truncated file) is named on stderr in one line and its records from the
damage on are skipped and counted (its `dataset.json` count minus the records read); a record whose
image does not decode (or that does not parse) is named, dropped and counted. Memory is bounded (one
mean image and 3x3 sums). RGB moments are summed exactly as integers; the mean image is accumulated in
float64. `--max_images` subsamples: the first images of the shards read in order, a random sample
because `prepare` (like tensorflow/models' scripts) shuffles the images before sharding.
"""

import os

import numpy as np

from keras_alexnet import atomic
from keras_alexnet.errors import UserError
from pipelines import records

ALEXNET_SIZE = 256
MAX_OPEN_SHARDS = 16
_SHIFT = 128  # moments of (x - 128): smaller numbers, same covariance


def _mean_image_size(data_dir: str):
    info = records.read_metadata(data_dir)
    if info is not None and info.image_policy == "alexnet" and info.image_size:
        return info.image_size, info.image_size, False
    return ALEXNET_SIZE, ALEXNET_SIZE, True


def compute(data_dir: str, split: str = "train", max_images: int = 0, batch_size: int = 64, progress=None):
    """Streams `split`'s shards once and returns the statistics as a dict (see the module docstring).

    `progress` (a `keras_alexnet.progress.ProgressLine` counting images) is updated after each batch
    and closed at the end."""
    import tensorflow as tf

    from pipelines import input_pipeline, record_parser

    shards = records.list_shards(data_dir, split)
    if not shards:
        raise UserError(f"{data_dir}: no {split} shards (run `python main.py prepare` first)")
    height, width, rescale = _mean_image_size(data_dir)

    def per_image(image):
        pixels = tf.reshape(tf.cast(image, tf.float64) - _SHIFT, [-1, 3])
        moments = (tf.reduce_sum(pixels, axis=0), tf.matmul(pixels, pixels, transpose_a=True), tf.shape(pixels)[0])
        if rescale:
            image = _alexnet_256(image)
        else:
            tf.debugging.assert_equal(tf.shape(image)[:2], [height, width],
                                      message=f"images of {data_dir} are not all {height}x{width}")
        return tf.cast(image, tf.float64), moments

    config = input_pipeline.InputConfig(data_dir=data_dir, split=split, mean="none", pca_jitter_std=0.0)
    dropped, lost = record_parser.DropCounter(), record_parser.DropCounter("lost_records")
    dataset = input_pipeline.decoded_records(config, input_pipeline.dataset_info(config), per_image, dropped, lost)
    if max_images:
        dataset = dataset.take(max_images)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(lambda element: element["image"]))
    dataset = dataset.batch(batch_size).map(_batch_sums, num_parallel_calls=2, deterministic=False).prefetch(2)

    image_sum = np.zeros((height, width, 3), np.float64)
    rgb_sum = np.zeros(3, np.int64)
    rgb_outer = np.zeros((3, 3), np.int64)
    num_images = num_pixels = 0
    try:
        with record_parser.user_errors():
            for images, sums, outers, count, pixels in dataset.as_numpy_iterator():
                image_sum += images
                rgb_sum += sums
                rgb_outer += outers
                num_images += int(count)
                num_pixels += int(pixels)
                if progress is not None:
                    progress.update(num_images)
    except tf.errors.InvalidArgumentError as error:
        raise UserError(f"{data_dir}: {error.message.splitlines()[0]}") from None
    finally:
        if progress is not None:
            progress.close()
    if num_images == 0:
        raise UserError(f"{data_dir}: the {split} shards hold no images")
    result = finish(image_sum, rgb_sum, rgb_outer, num_images, num_pixels)
    result.update(lost_records=np.int64(lost.count()), dropped_records=np.int64(dropped.count()))
    return result


def _batch_sums(images, moments):
    """Sums a batch in the graph: the image sum (float64, exact for uint8 pixels) and integer moments."""
    import tensorflow as tf

    sums, outers, pixels = moments
    # Per-image sums are integers below 2**53, exact in float64; rounded to int64 they add exactly.
    return (
        tf.reduce_sum(images, axis=0),
        tf.reduce_sum(tf.cast(tf.round(sums), tf.int64), axis=0),
        tf.reduce_sum(tf.cast(tf.round(outers), tf.int64), axis=0),
        tf.shape(images, out_type=tf.int64)[0],
        tf.reduce_sum(tf.cast(pixels, tf.int64)),
    )


def _alexnet_256(image):
    """AlexNet §2 in TF: shorter side to 256 (bilinear, antialiased when shrinking), central 256x256."""
    import tensorflow as tf

    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    scale = ALEXNET_SIZE / tf.minimum(h, w)
    new_h = tf.maximum(ALEXNET_SIZE, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(ALEXNET_SIZE, tf.cast(tf.round(w * scale), tf.int32))
    resized = tf.cond(
        scale < 1.0,
        lambda: tf.image.resize(image, [new_h, new_w], antialias=True),
        lambda: tf.image.resize(image, [new_h, new_w], antialias=False),
    )
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    return tf.image.resize_with_crop_or_pad(resized, ALEXNET_SIZE, ALEXNET_SIZE)


def finish(image_sum, rgb_sum, rgb_outer, num_images: int, num_pixels: int) -> dict:
    """Sums -> statistics: means, covariance, and its eigen-decomposition (descending, fixed signs)."""
    shifted_mean = rgb_sum.astype(np.float64) / num_pixels
    cov = rgb_outer.astype(np.float64) / num_pixels - np.outer(shifted_mean, shifted_mean)
    cov = (cov + cov.T) / 2.0
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    eigenvalues = np.maximum(eigenvalues, 0.0)  # rounding can leave -1e-12 where the true value is 0
    eigenvectors = eigenvectors * np.where(eigenvectors.sum(axis=0) < 0, -1.0, 1.0)
    return {
        "mean_image": (image_sum / num_images).astype(np.float32),
        "mean_rgb": (shifted_mean + _SHIFT).astype(np.float32),
        "rgb_cov": cov,
        "eigenvalues": eigenvalues,
        "eigenvectors": eigenvectors,
        "num_images": np.int64(num_images),
        "num_pixels": np.int64(num_pixels),
        "mean_image_size": np.array(image_sum.shape[:2], np.int64),
    }


def save(data_dir: str, stats: dict) -> str:
    """Writes `stats.npz` beside the shards atomically; returns its path."""
    path = os.path.join(data_dir, records.STATS_FILE)
    return atomic.write_npz(path, stats)


_SHAPES = {"mean_rgb": (3,), "eigenvalues": (3,), "eigenvectors": (3, 3), "rgb_cov": (3, 3)}


def read_stats(path: str) -> dict:
    """A `stats.npz` file as a dict of NumPy arrays (`num_images` an int when present), its shapes checked.

    UserError naming the file when it is missing, unreadable or malformed. Callers that need a key
    the file lacks say so themselves (`mean_rgb` can be derived from `mean_image`).
    """
    if not path or not os.path.isfile(path):
        raise UserError(f"{path}: statistics file not found (run `python main.py stats --data_dir=DIR`, "
                        "or use --mean=none --pca_jitter_std=0)")
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable statistics ({error}); rerun `python main.py stats`") from None
    for key, shape in _SHAPES.items():
        if key in stats and stats[key].shape != shape:
            raise UserError(f"{path}: {key} has shape {stats[key].shape}, expected {shape}")
    if "mean_image" in stats and (stats["mean_image"].ndim != 3 or stats["mean_image"].shape[-1] != 3):
        raise UserError(f"{path}: mean_image has shape {stats['mean_image'].shape}, expected (H, W, 3)")
    if "num_images" in stats:
        stats["num_images"] = int(stats["num_images"])
    return stats


def resize_mean_image(mean_image, size: int):
    """`mean_image` (H x W x 3) at size x size, bilinear with antialiasing: the per-pixel mean of another
    frame brought to this one (AlexNet §2's mean is per pixel of the frame the crops are taken from)."""
    import tensorflow as tf

    return tf.image.resize(mean_image, [size, size], method="bilinear", antialias=True).numpy()


def load_stats(data_dir: str) -> dict:
    """The statistics `main.py stats` wrote for `data_dir`, with every key of `records.STATS_KEYS`."""
    path = os.path.join(data_dir, records.STATS_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no dataset statistics; run `python main.py stats --data_dir={data_dir}` first")
    stats = read_stats(path)
    missing = [key for key in records.STATS_KEYS if key not in stats]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}; rerun `python main.py stats --data_dir={data_dir}`")
    return stats


def run(data_dir: str, max_images: int = 0) -> dict:
    """Computes and saves the statistics of `data_dir`'s training shards."""
    stats = compute(data_dir, "train", max_images)
    save(data_dir, stats)
    return stats


