"""Flags shared by several commands, each defined once (safe to call again), without importing TensorFlow.

- `define_model_flags()`: the architecture and its options (`train`, `summary`): `--architecture`,
  `--width`, `--lrn`, `--lrn_convention`, `--pooling`, `--extra_conv`, `--init`, `--dropout`, `--activation`;
- `define_data_flags()`: what `train` reads and how (`--data_dir`, `--tfds`, `--image_size` the crop,
  `--resize_size` the AlexNet frame, `--scale_jitter`, `--mean`, ...);
- `define_trained_model_flags(multiple)`: a trained model and how to feed it (`evaluate`, `export`,
  `predict`, `figures`, `neighbors`): `--model` (a run folder, a .keras file or a SavedModel), `--data_dir`,
  `--test_scale` (Q; default: the run's) and `--mean` (default: the run's).

Defaults come from the typed config (`keras_alexnet.training.config`) and choices from the lists the
builders and the config check use (`keras_alexnet.registry`, `config.MEANS`), so a flag and its field
never disagree. Each flag is in a `flaghelp` group, the heading `--help` lists it under.
`model_values()` / `data_values()` turn the flags into the flat settings `config_from_values` takes;
`model_settings(...)` resolves a trained model's image size, test scale, mean and class names.
"""

from absl import flags

from keras_alexnet import registry
from keras_alexnet.cli import flaghelp
from keras_alexnet.errors import FlagError
from keras_alexnet.training import config as train_config

FLAGS = flags.FLAGS
_DEFAULTS = train_config.TrainConfig()


def _defined(name):
    return name in FLAGS


def define_model_flags():
    if _defined("architecture"):
        return
    model = _DEFAULTS.model
    group = dict(module_name=flaghelp.MODEL)
    flags.DEFINE_enum("architecture", model.architecture, list(registry.MODEL_NAMES), "The network. "
                      "[AlexNet §3.5, VGG Table 1]", **group)
    flags.DEFINE_float("width", model.width, "Multiplier of every conv/FC width (not the classes); 1.0 is the "
                       "paper's net.", **group)
    flags.DEFINE_enum("lrn", "auto", ["auto", "true", "false"], "Local response normalisation: auto = on for "
                      "AlexNet and vgg_a_lrn, off for other VGG nets. [AlexNet §3.3, VGG §4.1]", **group)
    flags.DEFINE_enum("lrn_convention", model.lrn_convention, list(registry.LRN_CONVENTIONS), "How LRN's "
                      "alpha is read: the paper's sum, cuda-convnet's alpha/n, or Caffe's alpha/n with k=1. "
                      "[AlexNet §3.3]", **group)
    flags.DEFINE_enum("pooling", model.pooling, list(registry.POOLINGS), "AlexNet max-pooling: 3x3 "
                      "stride 2 (overlapping) or 2x2 stride 2. [AlexNet §3.4]", **group)
    flags.DEFINE_boolean("extra_conv", model.extra_conv, "AlexNet with a sixth convolutional layer. [AlexNet §6]",
                         **group)
    flags.DEFINE_enum("init", model.init, list(registry.INITS), "Weight initialisation: N(0, 0.01) with "
                      "biases 1 in conv2/4/5 and fc6/7 (paper), Caffe's reading, or Glorot. [AlexNet §5, VGG §3.1]",
                      **group)
    flags.DEFINE_float("dropout", model.dropout, "Dropout rate in fc6 and fc7. [AlexNet §4.2]", **group)
    flags.DEFINE_enum("activation", model.activation, list(registry.ACTIVATIONS), "Hidden units: ReLU, "
                      "or the saturating tanh the paper compares it with (Figure 1). [AlexNet §3.1]", **group)


def model_values() -> dict:
    """The model flags as flat config settings."""
    values = {name: FLAGS[name].value for name in ("architecture", "width", "lrn_convention", "pooling",
                                                    "extra_conv", "init", "dropout", "activation")}
    values["lrn"] = None if FLAGS.lrn == "auto" else FLAGS.lrn == "true"
    return values


def define_data_flags():
    if _defined("data_dir"):
        return
    data = _DEFAULTS.data
    group = dict(module_name=flaghelp.DATA)
    flags.DEFINE_string("data_dir", None, "Prepared data folder (shards, dataset.json, stats.npz); "
                        "absent (and no --tfds): the built-in Fashion-MNIST default run.", **group)
    flags.DEFINE_string("tfds", None, "A TFDS dataset by name instead of --data_dir (imagenet2012, "
                        "imagenette, fashion_mnist, ...), read from TFDS's prepared TFRecords; needs "
                        "--stats_path for mean subtraction and colour jitter.", **group)
    flags.DEFINE_string("tfds_data_dir", None, "Where TFDS datasets are prepared (TFDS's default when "
                        "absent).", **group)
    flags.DEFINE_string("tfds_manual_dir", None, "Folder with the dataset's manual files (ILSVRC tars "
                        "for imagenet2012), to prepare it offline on first use.", **group)
    flags.DEFINE_integer("num_classes", 0, "Classes of the data; 0: from dataset.json or TFDS.", lower_bound=0,
                         **group)
    flags.DEFINE_integer("label_offset", None, "Subtracted from stored labels; absent: dataset.json's, "
                         "else 1 (tensorflow/models shards are 1-based).", lower_bound=0, **group)
    flags.DEFINE_integer("image_size", data.image_size, "Side of the crop fed to the net; not given, on data "
                         "stored by prepare's alexnet policy: 224/256 of --resize_size. [AlexNet §4.1, VGG §2.1]",
                         **group)
    flags.DEFINE_integer("resize_size", data.resize_size, "Images rescaled to this shorter side, central "
                         "square (AlexNet framing); also the test scale Q the run records. Not given, on data "
                         "stored by prepare's alexnet policy: the stored size. [AlexNet §2]", **group)
    flags.DEFINE_list("scale_jitter", None, "VGG training scale S: one value (fixed S, e.g. 256 or 384) "
                      "or Smin,Smax for S ~ U[Smin, Smax] (e.g. 256,512). [VGG §3.1]", **group)
    flags.DEFINE_float("pca_jitter_std", data.pca_jitter_std, "Std of the PCA colour-jitter alphas; 0 "
                       "disables. [AlexNet §4.1]", **group)
    flags.DEFINE_enum("mean", "auto", list(train_config.MEANS), "Mean subtracted: auto = the per-pixel image "
                      "(AlexNet) or the mean colour (VGG). [AlexNet §2, VGG §2.1]", **group)
    flags.DEFINE_string("stats_path", None, "stats.npz to use instead of <data_dir>/stats.npz.", **group)
    flags.DEFINE_integer("shuffle_buffer", data.shuffle_buffer, "Records in the training shuffle buffer.",
                         **group)
    flags.DEFINE_boolean("cache", False, "Cache the training records in memory after the first epoch "
                         "(small data sets).", module_name=flaghelp.SPEED)


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


def data_values() -> dict:
    """The data flags as flat config settings."""
    if FLAGS.data_dir is not None and FLAGS.tfds is not None:
        raise FlagError(f"--data_dir={FLAGS.data_dir} and --tfds={FLAGS.tfds}: give one data source")
    if FLAGS.data_dir is not None:
        import os

        if not os.path.isdir(FLAGS.data_dir):
            raise FlagError(f"--data_dir={FLAGS.data_dir}: no such directory")
    values = {name: FLAGS[name].value for name in ("data_dir", "tfds_data_dir", "tfds_manual_dir", "label_offset",
                                                    "image_size", "resize_size", "pca_jitter_std", "mean",
                                                    "stats_path", "shuffle_buffer", "cache")}
    values.update(tfds_name=FLAGS.tfds, num_classes=FLAGS.num_classes or None, scale_jitter=scale_jitter())
    return values


def define_trained_model_flags(multiple: bool = False):
    """`--model` (one, or a comma-separated list with `multiple`), `--data_dir`, `--test_scale`, `--mean`."""
    if _defined("model"):
        return
    what = ("Trained models, comma-separated: run folders, .keras files or SavedModel folders" if multiple
            else "The trained model: a run folder, a .keras file or a SavedModel folder")
    definer = flags.DEFINE_list if multiple else flags.DEFINE_string
    definer("model", None, f"{what}; a run folder's run.json gives the crop size, test scale, mean and class "
            "names.", module_name=flaghelp.MODEL)
    flags.DEFINE_string("data_dir", None, "Prepared data folder (shards, dataset.json, stats.npz).",
                        module_name=flaghelp.DATA)
    flags.DEFINE_list("test_scale", None, "Test scale Q (shorter side before cropping); default: the one the "
                      "run recorded (its --resize_size, or VGG's middle of the jitter range). [AlexNet §2, VGG §3.2]",
                      module_name=flaghelp.EVALUATION)
    flags.DEFINE_enum("mean", "auto", list(train_config.MEANS), "Mean subtracted before the net; auto: the one "
                      "the run trained with (run.json / the export). [AlexNet §2, VGG §2.1]",
                      module_name=flaghelp.DATA)


def test_scales() -> list:
    """The --test_scale values as positive integers (empty: the run's)."""
    try:
        numbers = [int(v) for v in FLAGS.test_scale or []]
    except ValueError:
        raise FlagError(f"--test_scale={','.join(FLAGS.test_scale)}: expected integers") from None
    if any(n <= 0 for n in numbers):
        raise FlagError(f"--test_scale={','.join(FLAGS.test_scale)}: scales must be positive")
    return list(dict.fromkeys(numbers))


def single_test_scale():
    """The one --test_scale of a command that takes one, or None (the run's)."""
    scales = test_scales()
    if len(scales) > 1:
        raise FlagError(f"--test_scale={','.join(FLAGS.test_scale)}: this command takes one scale")
    return scales[0] if scales else None


def check_model_paths() -> list:
    """The --model paths, each existing; FlagError otherwise."""
    import os

    paths = FLAGS.model if isinstance(FLAGS.model, list) else ([FLAGS.model] if FLAGS.model else [])
    if not paths:
        raise FlagError("--model is required (a run folder, a .keras file or a SavedModel folder)")
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import models
    from keras_alexnet.export import saved_model_dir

    for path in paths:
        if not os.path.exists(path):
            raise FlagError(f"--model={path}: no such file or folder")
        try:  # an empty folder, a text file: named now, not after TensorFlow's import
            saved_model_dir(path) or models.keras_model_file(path)
        except UserError as error:
            raise FlagError(f"--model={error}") from None
    return paths


def check_shards(data_dir: str, split: str) -> None:
    """UserError unless `data_dir` holds complete `split` shards, in the words of `pipelines.stats` (
    a folder without shards is refused before TensorFlow is imported)."""
    from keras_alexnet.errors import UserError
    from pipelines import records

    if not records.list_shards(data_dir, split):
        raise UserError(f"{data_dir}: no {split} shards (run `python main.py prepare` first)")


def model_settings(path: str, image_size: int, test_scale=None):
    """`runs.EvalSettings` of the model at `path` with the --mean / --data_dir flags and `test_scale`."""
    from keras_alexnet import runs

    mean = None if FLAGS.mean == "auto" else FLAGS.mean
    return runs.eval_settings(path, image_size, test_scale=test_scale, mean=mean, data_dir=data_dir(path))


def data_dir(model_path: str):
    """--data_dir, else the prepared data folder the model's run recorded (when it still exists)."""
    import os

    from keras_alexnet.evaluation.models import recorded_data_dir

    if FLAGS.data_dir:
        if not os.path.isdir(FLAGS.data_dir):
            raise FlagError(f"--data_dir={FLAGS.data_dir}: no such directory")
        return FLAGS.data_dir
    return recorded_data_dir(model_path)


def require_data_dir(model_path: str) -> str:
    """`data_dir(model_path)`; FlagError saying why there is none: no --data_dir, and the run records no data
    folder, or one that does not exist from here."""
    import os

    from keras_alexnet import runs

    found = data_dir(model_path)
    if found:
        return found
    run_dir = runs.run_dir_of(model_path)
    record = runs.read_record(run_dir) if run_dir else None
    recorded = record.data_source if record is not None and not record.data_source.startswith("tfds:") else ""
    if not recorded:
        raise FlagError("--data_dir is required (the model records no data folder)")
    where = "" if os.path.isabs(recorded) else " relative to the folder train ran in (an older run.json)"
    raise FlagError(f"--data_dir is required: {runs.run_file(run_dir)} records the data folder {recorded}{where}, "
                    "not found from here")


def check_figure_inputs(purpose: str) -> None:
    """FlagError unless the figure commands can read --model and its data: they need the Keras model itself
    (its conv1 kernels, its fc7 layer), so a SavedModel is refused, and a data folder."""
    from keras_alexnet.export import saved_model_dir

    if saved_model_dir(FLAGS.model):
        raise FlagError(f"--model={FLAGS.model} is a SavedModel; {purpose} need the run folder or .keras file")
    require_data_dir(FLAGS.model)


def figure_inputs():
    """(Keras model, EvalSettings, data folder, class names) of --model for the figure commands, whose
    `validate()` ran `check_figure_inputs`."""
    from keras_alexnet.evaluation import models

    model = models.load_keras_model(FLAGS.model)
    settings = model_settings(FLAGS.model, int(model.inputs[0].shape[1]), single_test_scale())
    folder = data_dir(FLAGS.model)
    names = settings.class_names or models.class_names(folder)
    return model, settings, folder, names


def figures_dir() -> str:
    """--output_dir, else <the model's run folder>/figures (beside a .keras file without a run)."""
    import os

    from keras_alexnet import runs

    if FLAGS.output_dir:
        return FLAGS.output_dir
    base = runs.run_dir_of(FLAGS.model) or os.path.dirname(os.path.abspath(FLAGS.model))
    return os.path.join(base, "figures")
