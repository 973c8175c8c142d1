"""Model and data flags shared by the commands that build a model or read prepared data (`train`,
and `evaluate`/`export` where they need them). Defining them does not import TensorFlow.

`define_model_flags()` / `define_data_flags()` define the flags once (safe to call again);
`model_options()` and `input_config(split, ...)` turn their values into `registry.build_model`
options and a `pipelines.input_pipeline.InputConfig`.
"""

from absl import flags

from keras_alexnet.errors import FlagError

FLAGS = flags.FLAGS

MODEL_NAMES = ("alexnet", "alexnet_1tower", "vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c", "vgg_d", "vgg_e")


def _defined(name):
    return name in FLAGS


def define_model_flags():
    if _defined("model"):
        return
    flags.DEFINE_string("model", "alexnet", f"The network: one of {', '.join(MODEL_NAMES)}. "
                        "[AlexNet §3.5, VGG Table 1]")
    flags.DEFINE_float("width", 1.0, "Multiplier of every conv/FC width (not the classes); 1.0 is the "
                       "paper's net. [AlexNet §3.5]")
    flags.DEFINE_enum("lrn", "auto", ["auto", "true", "false"], "Local response normalisation: auto = "
                      "on for AlexNet and vgg_a_lrn, off for other VGG nets. [AlexNet §3.3, VGG §4.1]")
    flags.DEFINE_enum("lrn_convention", "paper", ["paper", "cuda_convnet"], "How LRN's alpha is read: "
                      "the paper's sum, or cuda-convnet's alpha/n. [AlexNet §3.3]")
    flags.DEFINE_enum("pooling", "overlapping", ["overlapping", "non_overlapping"], "AlexNet max-pooling: "
                      "3x3 stride 2 (overlapping) or 2x2 stride 2. [AlexNet §3.4]")
    flags.DEFINE_boolean("extra_conv", False, "AlexNet with a sixth convolutional layer. [AlexNet §6]")
    flags.DEFINE_enum("init", "paper", ["paper", "caffe", "glorot"], "Weight initialisation: N(0, 0.01) "
                      "with biases 1 in conv2/4/5 and fc6/7 (paper), Caffe's reading, or Glorot. "
                      "[AlexNet §5, VGG §3.1]")
    flags.DEFINE_float("dropout", 0.5, "Dropout rate in fc6 and fc7. [AlexNet §4.2]")


def define_data_flags():
    if _defined("data_dir"):
        return
    flags.DEFINE_string("data_dir", None, "Prepared data folder (shards, dataset.json, stats.npz); "
                        "absent (and no --tfds): the built-in Fashion-MNIST default run. [AlexNet §2]")
    flags.DEFINE_string("tfds", None, "A TFDS dataset by name instead of --data_dir (imagenet2012, "
                        "imagenette, fashion_mnist, ...), read from TFDS's prepared TFRecords; needs "
                        "--stats_path for mean subtraction and colour jitter. [AlexNet §2]")
    flags.DEFINE_string("tfds_data_dir", None, "Where TFDS datasets are prepared (TFDS's default when "
                        "absent). [AlexNet §2]")
    flags.DEFINE_string("tfds_manual_dir", None, "Folder with the dataset's manual files (ILSVRC tars "
                        "for imagenet2012), to prepare it offline on first use. [AlexNet §2]")
    flags.DEFINE_integer("num_classes", 0, "Classes of the data; 0: from dataset.json or TFDS. "
                         "[AlexNet §3.5]", lower_bound=0)
    flags.DEFINE_integer("label_offset", None, "Subtracted from stored labels; absent: dataset.json's, "
                         "else 1 (tensorflow/models shards are 1-based). [AlexNet §2]", lower_bound=0)
    flags.DEFINE_integer("image_size", 224, "Side of the crop fed to the net. [AlexNet §4.1, VGG §2.1]")
    flags.DEFINE_integer("resize_size", 256, "Images rescaled to this shorter side, central square "
                         "(AlexNet framing). [AlexNet §2]")
    flags.DEFINE_list("scale_jitter", None, "VGG training scale S: one value (fixed S, e.g. 256 or 384) "
                      "or Smin,Smax for S ~ U[Smin, Smax] (e.g. 256,512). [VGG §3.1]")
    flags.DEFINE_float("pca_jitter_std", 0.1, "Std of the PCA colour-jitter alphas; 0 disables. "
                       "[AlexNet §4.1]")
    flags.DEFINE_enum("mean", "auto", ["auto", "image", "rgb", "none"], "Mean subtracted: auto = the "
                      "per-pixel image (AlexNet) or the mean colour (VGG). [AlexNet §2, VGG §2.1]")
    flags.DEFINE_string("stats_path", None, "stats.npz to use instead of <data_dir>/stats.npz. "
                        "[AlexNet §2]")
    flags.DEFINE_integer("shuffle_buffer", 10000, "Records in the training shuffle buffer. [AlexNet §5]")
    flags.DEFINE_boolean("cache", False, "Cache the training records in memory after the first epoch "
                         "(small data sets). [AlexNet §5]")


def model_options() -> dict:
    """`registry.build_model` options from the model flags (LRN `auto` leaves the model's default)."""
    options = {"width": FLAGS.width, "lrn_convention": FLAGS.lrn_convention, "init": FLAGS.init,
               "dropout": FLAGS.dropout}
    if FLAGS.lrn != "auto":
        options["lrn"] = FLAGS.lrn == "true"
    if FLAGS.model.startswith("alexnet"):
        options.update(pooling=FLAGS.pooling, extra_conv=FLAGS.extra_conv)
    return options


def scale_jitter():
    """None, S or (Smin, Smax) from --scale_jitter."""
    values = FLAGS.scale_jitter
    if not values:
        return None
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise FlagError(f"--scale_jitter={','.join(values)}: expected S or Smin,Smax (integers)") from None
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) == 2 and numbers[0] <= numbers[1]:
        return tuple(numbers)
    raise FlagError(f"--scale_jitter={','.join(values)}: expected S or Smin,Smax with Smin <= Smax")


def mean_mode() -> str:
    if FLAGS.mean != "auto":
        return FLAGS.mean
    return "image" if FLAGS.model.startswith("alexnet") and not FLAGS.scale_jitter else "rgb"


def check_model_and_data_flags() -> None:
    """One-line FlagError for values that cannot work (before TensorFlow is imported)."""
    if FLAGS.model not in MODEL_NAMES:
        raise FlagError(f"--model={FLAGS.model}: unknown model (choose from: {', '.join(MODEL_NAMES)})")
    if not FLAGS.width > 0:
        raise FlagError(f"--width={FLAGS.width}: must be positive")
    if not 0 <= FLAGS.dropout < 1:
        raise FlagError(f"--dropout={FLAGS.dropout}: must be in [0, 1)")
    if FLAGS.model.startswith("alexnet") and FLAGS.image_size < 63:
        raise FlagError(f"--image_size={FLAGS.image_size}: AlexNet needs at least 63 pixels")
    if FLAGS.model.startswith("vgg") and FLAGS.image_size < 32:
        raise FlagError(f"--image_size={FLAGS.image_size}: VGG needs at least 32 pixels")
    if FLAGS.resize_size < FLAGS.image_size:
        raise FlagError(f"--resize_size={FLAGS.resize_size} must be at least --image_size={FLAGS.image_size}")
    jitter = scale_jitter()
    if jitter is not None:
        low = jitter if isinstance(jitter, int) else jitter[0]
        if low < FLAGS.image_size:
            raise FlagError(f"--scale_jitter: Smin must be at least --image_size={FLAGS.image_size}")
    if FLAGS.pca_jitter_std < 0:
        raise FlagError(f"--pca_jitter_std={FLAGS.pca_jitter_std}: must be >= 0")
    if FLAGS.data_dir is not None and FLAGS.tfds is not None:
        raise FlagError(f"--data_dir={FLAGS.data_dir} and --tfds={FLAGS.tfds}: give one data source")
    if FLAGS.data_dir is not None:
        import os

        if not os.path.isdir(FLAGS.data_dir):
            raise FlagError(f"--data_dir={FLAGS.data_dir}: no such directory")


def input_config(split, data_dir, batch_size, **overrides):
    """The `InputConfig` for `split` of `data_dir` (None with --tfds) from the data flags."""
    from pipelines.input_pipeline import InputConfig

    values = dict(data_dir=data_dir, tfds_name=FLAGS.tfds, tfds_data_dir=FLAGS.tfds_data_dir,
                  tfds_manual_dir=FLAGS.tfds_manual_dir, num_classes=FLAGS.num_classes or None,
                  label_offset=FLAGS.label_offset, split=split, image_size=FLAGS.image_size,
                  resize_size=FLAGS.resize_size, scale_jitter=scale_jitter(),
                  pca_jitter_std=FLAGS.pca_jitter_std, mean=mean_mode(), stats_path=FLAGS.stats_path,
                  batch_size=batch_size, shuffle_buffer=FLAGS.shuffle_buffer, cache=FLAGS.cache)
    values.update(overrides)
    return InputConfig(**values)
