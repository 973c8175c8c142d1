"""`python main.py stats --data_dir=DIR`: the training set's mean image, mean RGB and RGB PCA -> stats.npz.

One streaming pass over the training shards (pipelines/stats.py): the per-pixel mean image AlexNet
subtracts (§2), the mean RGB VGG subtracts (§2.1), and the RGB covariance eigen-decomposition of
AlexNet's colour augmentation (§4.1).
"""

import os

from absl import flags

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "Folder of prepared shards; stats.npz is written beside them. [AlexNet §2]")
flags.DEFINE_integer("max_images", 0, "Use at most this many training images (0: all), a random subsample "
                     "since prepare shuffles. [AlexNet §4.1]", lower_bound=0)


def validate() -> None:
    from keras_alexnet.errors import FlagError, UserError

    if not FLAGS.data_dir:
        raise FlagError("--data_dir is required (the folder of prepared shards)")
    if not os.path.isdir(FLAGS.data_dir):
        raise UserError(f"--data_dir: {FLAGS.data_dir}: no such folder")


def run(argv) -> None:
    import numpy as np

    from pipelines import stats

    result = stats.run(FLAGS.data_dir, FLAGS.max_images)
    with np.printoptions(precision=3, suppress=True):
        print(f"stats: {os.path.join(FLAGS.data_dir, 'stats.npz')}: {result['num_images']:,} images, "
              f"mean RGB {result['mean_rgb']}, eigenvalues {result['eigenvalues']}")
