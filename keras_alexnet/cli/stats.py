"""`python main.py stats --data_dir=DIR`: the training set's mean image, mean RGB and RGB PCA -> stats.npz.

One streaming pass over the training shards (pipelines/stats.py): the per-pixel mean image AlexNet
subtracts (§2), the mean RGB VGG subtracts (§2.1), and the RGB covariance eigen-decomposition of
AlexNet's colour augmentation (§4.1). Damaged shards and undecodable records are skipped and counted
as training skips them: one line per damaged shard (and per dropped record) on stderr, the counts
after the result.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "Folder of prepared shards; stats.npz is written beside them.",
                    module_name=flaghelp.DATA)
flags.DEFINE_integer("max_images", 0, "Use at most this many training images (0: all), a random subsample "
                     "since prepare shuffles.", lower_bound=0, module_name=flaghelp.DATA)


def validate() -> None:
    from keras_alexnet.errors import FlagError, UserError

    if not FLAGS.data_dir:
        raise FlagError("--data_dir is required (the folder of prepared shards)")
    if not os.path.isdir(FLAGS.data_dir):
        raise UserError(f"--data_dir: {FLAGS.data_dir}: no such folder")
    outputs.check_writable_dir(FLAGS.data_dir, "data_dir")  # stats.npz is written there
    flagdefs.check_shards(FLAGS.data_dir, "train")


def run(argv) -> None:
    import numpy as np

    from pipelines import record_parser, records, stats

    from keras_alexnet.evaluation.models import split_size
    from keras_alexnet.progress import ProgressLine

    total = split_size(FLAGS.data_dir, "train")
    if FLAGS.max_images:
        total = min(total, FLAGS.max_images) if total else FLAGS.max_images
    progress = ProgressLine("stats: mean image, mean RGB and RGB covariance of the training images", total)
    result = stats.compute(FLAGS.data_dir, "train", FLAGS.max_images, progress=progress)
    path = os.path.join(FLAGS.data_dir, records.STATS_FILE)
    with outputs.writing(path):
        stats.save(FLAGS.data_dir, result)
    with np.printoptions(precision=3, suppress=True):
        print(f"stats: {path}: {result['num_images']:,} images, "
              f"mean RGB {result['mean_rgb']}, eigenvalues {result['eigenvalues']}")
    for count, note in ((result["lost_records"], record_parser.LOST_NOTE),
                        (result["dropped_records"], record_parser.DROPPED_NOTE)):
        if count:
            print(f"stats: {count:,} {note}")
