"""`python main.py prepare`: images -> TFRecord shards + `dataset.json`/`labels.txt` (pipelines/prepare.py).

Sources:
  --train=ROOT [--validation=ROOT] [--test=ROOT]        folders ROOT/<class>/<image>
  --train=ILSVRC2012_img_train.tar --validation=ILSVRC2012_img_val.tar [--validation_labels=FILE]
  --dataset=fashion_mnist                                the built-in default dataset

Images are stored as RGB JPEGs per --image_policy (AlexNet §2 / VGG §3.1). Rerunning resumes: shards
already complete are kept. Progress goes to stderr with images/s and ETA.
"""

import os
import tarfile

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flaghelp
from pipelines import image_codec
from pipelines.sources import fashion_mnist

FLAGS = flags.FLAGS

_DATA = dict(module_name=flaghelp.DATA)
_OUTPUTS = dict(module_name=flaghelp.OUTPUTS)

flags.DEFINE_string("train", None, "Training images: a ROOT/<class>/<image> folder, or ILSVRC2012_img_train.tar "
                    "(a tar of per-synset tars) or a tar of <class>/<image>. Classes are its sorted class names.",
                    **_DATA)
flags.DEFINE_string("validation", None, "Validation images: a folder like --train, or ILSVRC2012_img_val.tar "
                    "(flat; labels from --validation_labels).", **_DATA)
flags.DEFINE_string("test", None, "Test images: a folder like --train, or a tar of <class>/<image>.", **_DATA)
flags.DEFINE_enum("dataset", None, ["fashion_mnist"], "A built-in dataset instead of --train: Fashion-MNIST "
                  "(Debian's IDX files, else TFDS), validation held out of train.", **_DATA)
flags.DEFINE_string("fashion_mnist_dir", fashion_mnist.DEBIAN_DIR, "Where the Fashion-MNIST IDX "
                    "files are (Debian's dataset-fashion-mnist); TFDS when the default folder lacks them, an "
                    "error when a named one does.", **_DATA)
flags.DEFINE_string("validation_labels", None, "Ground truth of a flat validation tar, one line per image in "
                    "sorted file-name order: synsets (n01751748; default: TFDS's ILSVRC-2012 "
                    "validation_labels.txt) or the devkit's ILSVRC2012_IDs (needs --synsets).", **_DATA)
flags.DEFINE_string("synsets", None, "For ILSVRC2012_ID ground truth: synsets one per line in ILSVRC2012_ID "
                    "order (meta.mat's order).", **_DATA)
flags.DEFINE_string("class_names", None, "Optional `synset text` lines (synset_words.txt, "
                    "imagenet_metadata.txt) for image/class/text.", **_DATA)
flags.DEFINE_integer("validation_holdout", None, "Training images moved to a validation split, chosen with "
                     "--seed (default: 5000 for fashion_mnist; without --validation 10% of --train, at most 10,000; "
                     "else 0).", lower_bound=0, **_DATA)
flags.DEFINE_integer("seed", 0, "Seed of the file-order shuffle and the hold-out.", **_DATA)
flags.DEFINE_integer("label_offset", 0, "Added to the 0-based labels: 1 writes tensorflow/models-style "
                     "1-based labels (recorded in dataset.json).", lower_bound=0, upper_bound=1, **_DATA)
flags.DEFINE_enum("image_policy", "alexnet", list(image_codec.POLICIES), "Stored size: alexnet = shorter side "
                  "--stored_size then central square crop; vgg = shorter side --stored_size, aspect kept; none = "
                  "as is. [AlexNet §2, VGG §3.1]", **_DATA)
flags.DEFINE_integer("stored_size", 0, "Stored pixels of the policy (0: 256 for alexnet, 512 = S_max for vgg); "
                     "train's --resize_size / --scale_jitter then rescale from these. "
                     "[AlexNet §2, VGG §3.1]", lower_bound=0, **_DATA)
flags.DEFINE_integer("jpeg_quality", 95, "Quality of the stored JPEGs (1-100).", lower_bound=1, upper_bound=100,
                     **_DATA)
flags.DEFINE_string("data_dir", None, "Output folder for the shards, dataset.json and labels.txt.", **_OUTPUTS)
flags.DEFINE_integer("train_shards", 0, "Training shards (0: about 1,024 images each, at most 1,024; "
                     "tensorflow/models uses 1024).", lower_bound=0, **_OUTPUTS)
flags.DEFINE_integer("validation_shards", 0, "Validation shards (0: automatic; tensorflow/models uses 128).",
                     lower_bound=0, **_OUTPUTS)
flags.DEFINE_integer("test_shards", 0, "Test shards (0: automatic).", lower_bound=0, **_OUTPUTS)
flags.DEFINE_boolean("overwrite", False, "Delete the shards, metadata and stats already in --data_dir first "
                     "(otherwise complete matching shards are kept and the run resumes).", **_OUTPUTS)
flags.DEFINE_float("progress_interval", 0.0, "Seconds between progress lines (0: an updating line on a "
                   "terminal, else every 10 s).", lower_bound=0.0, **_OUTPUTS)
flags.DEFINE_integer("num_workers", 0, "Worker processes (0: one per core).", lower_bound=0,
                     module_name=flaghelp.SPEED)

def validate() -> None:
    from keras_alexnet.errors import FlagError, UserError

    if not FLAGS.data_dir:
        raise FlagError("--data_dir is required (the output folder)")
    outputs.check_writable_dir(FLAGS.data_dir, "data_dir")
    if FLAGS.dataset and (FLAGS.train or FLAGS.validation or FLAGS.test):
        raise FlagError("--dataset=fashion_mnist replaces --train/--validation/--test; pass one or the other")
    if not FLAGS.dataset and not FLAGS.train:
        raise FlagError("pass --train=PATH (a folder or tar) or --dataset=fashion_mnist")
    if FLAGS.image_policy == "none" and FLAGS.stored_size:
        raise FlagError("--stored_size has no effect with --image_policy=none (images keep their size)")
    if FLAGS.synsets and not FLAGS.validation_labels:
        raise FlagError("--synsets goes with --validation_labels (devkit ILSVRC2012_ID ground truth)")
    if FLAGS.validation_labels and not FLAGS.validation:
        raise FlagError("--validation_labels goes with --validation (the ground truth of a flat validation tar)")
    if FLAGS.validation_holdout and FLAGS.validation:
        raise FlagError("--validation_holdout and --validation both make the validation split; pass one")
    if FLAGS.dataset == "fashion_mnist" and FLAGS["fashion_mnist_dir"].present:
        from pipelines.sources.fashion_mnist import missing_files

        missing = missing_files(FLAGS.fashion_mnist_dir)
        if missing:
            raise FlagError(f"--fashion_mnist_dir={FLAGS.fashion_mnist_dir}: no {os.path.basename(missing[0])} "
                            "(the Fashion-MNIST IDX files); a named folder is never replaced by a download")
    for name in ("train", "validation", "test", "validation_labels", "synsets", "class_names"):
        path = FLAGS[name].value
        if path and not os.path.exists(path):
            raise UserError(f"--{name}: {path}: no such file or folder")
    for name in ("validation_labels", "synsets", "class_names"):
        path = FLAGS[name].value
        if path and os.path.isdir(path):
            raise FlagError(f"--{name}={path}: a folder, expected a file")
    for name in ("train", "validation", "test"):
        path = FLAGS[name].value
        if path and os.path.isdir(path):
            from pipelines.sources import folder

            folder.class_folders(path)  # no class folders, or one linking to the root or another class
        elif path and not tarfile.is_tarfile(path):
            raise FlagError(f"--{name}={path}: neither a folder of class folders nor a tar file")


def run(argv) -> None:
    from pipelines import prepare
    from pipelines.sources import load

    if FLAGS.dataset == "fashion_mnist":
        source = load.fashion_mnist(FLAGS.fashion_mnist_dir, fallback=not FLAGS["fashion_mnist_dir"].present)
        holdout = 5000 if FLAGS.validation_holdout is None else FLAGS.validation_holdout
    else:
        source = load.from_paths(FLAGS.train, FLAGS.validation or "", FLAGS.test or "",
                                 FLAGS.validation_labels or "", FLAGS.synsets or "", FLAGS.class_names or "")
        holdout = FLAGS.validation_holdout  # None: 10% of the training images without --validation
    config = prepare.PrepareConfig(
        data_dir=FLAGS.data_dir,
        image_policy=FLAGS.image_policy,
        image_size=FLAGS.stored_size,
        jpeg_quality=FLAGS.jpeg_quality,
        label_offset=FLAGS.label_offset,
        seed=FLAGS.seed,
        num_workers=FLAGS.num_workers,
        num_shards={"train": FLAGS.train_shards, "validation": FLAGS.validation_shards, "test": FLAGS.test_shards},
        validation_holdout=holdout,
        overwrite=FLAGS.overwrite,
        progress_interval=FLAGS.progress_interval,
    )
    prepare.prepare(source, config)
