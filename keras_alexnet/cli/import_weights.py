"""`python main.py import_weights --weights=FILE --architecture=NAME --run_dir=runs/NAME`: published pretrained
weights the user has, as a run folder every other command reads (AlexNet §3.5, VGG §2).

FILE and NAME:

- ``alexnet``: Caffe's ``bvlc_alexnet.caffemodel`` (or CaffeNet's), read by protobuf's wire format
  (`keras_alexnet.caffemodel`, no Caffe needed) into the paper's two-tower net built as Caffe's
  (227-px crops of a 256 frame, no conv1 padding, Caffe's LRN, its LRN position read from the file:
  `keras_alexnet.caffe_import`). ``--mean_file`` Caffe's ``ilsvrc_2012_mean.binaryproto`` (the run's mean
  image), else Caffe's mean colour 104/117/123 (BGR); ``--class_names`` Caffe's ``synset_words.txt``.
- ``alexnet_torchvision``: torchvision's ``alexnet`` state dict (``.pth``, needs PyTorch to read it).
- ``vgg_d`` / ``vgg_e``: a ``keras.applications`` VGG16/VGG19 weight file (``.h5`` / ``.weights.h5``, with
  the classifier) or a torchvision vgg16/vgg19 state dict (``.pth``).

The file is checked before any model is built (an HDF5 signature, a Caffe model that parses, a PyTorch
zip or pickle). `keras_alexnet.weight_import` / `caffe_import` turn the weights' own preprocessing into
this project's (RGB on the 0..255 scale minus a mean); the run folder then holds `model.keras`,
`stats.npz` (that mean) and `run.json` (`keras_alexnet.runs.RunRecord`: the architecture and the
ModelConfig it was built with, the 1000 ILSVRC-2012 classes — Caffe's words from ``--class_names``, else
the synsets of tensorflow-datasets' `imagenet2012/labels.txt` —, the mean and where it came from, test
scale 256 and the crop size), so that `evaluate`, `export`, `predict`, `figures` and `neighbors` work on it
with ``--model`` alone. Nothing is downloaded.
"""

import dataclasses
import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flaghelp
from keras_alexnet.errors import FlagError, UserError

KERAS_SUFFIXES = (".h5", ".hdf5")
TORCH_SUFFIXES = (".pth", ".pt")
CAFFE_SUFFIXES = (".caffemodel",)
# The weight files each architecture takes, and how to say so.
_VGG_FILES = (KERAS_SUFFIXES + TORCH_SUFFIXES,
              "a keras.applications .h5/.weights.h5 file or a torchvision .pth state dict")
ARCHITECTURES = {
    "vgg_d": _VGG_FILES,
    "vgg_e": _VGG_FILES,
    "alexnet": (CAFFE_SUFFIXES, "Caffe's bvlc_alexnet .caffemodel"),
    "alexnet_torchvision": (TORCH_SUFFIXES, "torchvision's alexnet .pth state dict"),
}
VGG_CONFIGS = {"vgg_d": "D", "vgg_e": "E"}  # keras.applications VGG16 / VGG19, torchvision vgg16 / vgg19
NUM_CLASSES, IMAGE_SIZE, TEST_SCALE = 1000, 224, 256  # ILSVRC-2012; VGG §2.1 crops, §3.2 single scale Q
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TORCH_SIGNATURES = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive, or a legacy pickle

flags.DEFINE_string("weights", None, "The weight file: Caffe's bvlc_alexnet.caffemodel (alexnet), torchvision's "
                    "alexnet .pth (alexnet_torchvision), keras.applications VGG16/VGG19 .h5 or torchvision "
                    "vgg16/vgg19 .pth (vgg_d/vgg_e).", module_name=flaghelp.MODEL)
flags.DEFINE_enum("architecture", None, list(ARCHITECTURES), "The net the weights are for: alexnet (Caffe's "
                  "bvlc_alexnet/CaffeNet), alexnet_torchvision, vgg_d (VGG16) or vgg_e (VGG19). "
                  "[AlexNet §3.5, VGG Table 1]", module_name=flaghelp.MODEL)
flags.DEFINE_string("mean_file", None, "alexnet only: Caffe's ilsvrc_2012_mean.binaryproto, the mean image "
                    "the weights were trained with; absent: Caffe's mean colour 104/117/123 (BGR).",
                    module_name=flaghelp.DATA)
flags.DEFINE_string("class_names", None, "Caffe's synset_words.txt ('n01440764 tench, Tinca tinca' per line): "
                    "the class names; absent: the ILSVRC-2012 synsets.", module_name=flaghelp.DATA)
flags.DEFINE_string("run_dir", None, "The run folder to create, e.g. runs/bvlc_alexnet.", module_name=flaghelp.OUTPUTS)
FLAGS = flags.FLAGS


def validate() -> None:
    for name in ("weights", "architecture", "run_dir"):
        if not FLAGS[name].value:
            raise FlagError(f"--{name} is required")
    check_paths(FLAGS.weights, FLAGS.run_dir, FLAGS.architecture, FLAGS.mean_file, FLAGS.class_names)
    outputs.check_writable_dir(FLAGS.run_dir, "run_dir")


def check_paths(weights: str, run_dir: str, architecture: str = "vgg_d", mean_file: str = None,
                class_names: str = None) -> None:
    """FlagError for a weight file that is missing or of a kind `architecture` does not take, a missing
    --mean_file/--class_names, or a run folder already in use."""
    from keras_alexnet import runs

    if architecture not in ARCHITECTURES:
        raise FlagError(f"--architecture={architecture}: choose from {', '.join(ARCHITECTURES)}")
    suffixes, expected = ARCHITECTURES[architecture]
    if not os.path.isfile(weights):
        raise FlagError(f"--weights={weights}: no such file")
    if not weights.lower().endswith(suffixes):
        raise FlagError(f"--weights={weights}: expected {expected} for --architecture={architecture}")
    if mean_file and architecture != "alexnet":
        raise FlagError(f"--mean_file is for Caffe's alexnet; --architecture={architecture}'s mean comes with "
                        "its weights")
    for name, path in (("mean_file", mean_file), ("class_names", class_names)):
        if path and not os.path.isfile(path):
            raise FlagError(f"--{name}={path}: no such file")
    if os.path.isfile(runs.run_file(run_dir)) or os.path.isfile(os.path.join(run_dir, runs.MODEL_FILE)):
        raise FlagError(f"--run_dir={run_dir}: already holds a run; choose a new folder")


def check_signature(weights: str) -> None:
    """UserError naming a .h5 / .pth file whose first bytes are not HDF5 / PyTorch's (before any model is built)."""
    lower = weights.lower()
    try:
        with open(weights, "rb") as f:
            head = f.read(8)
    except OSError as error:
        raise UserError(f"{weights}: cannot read it ({error.strerror or error})") from None
    if lower.endswith(KERAS_SUFFIXES) and head != HDF5_SIGNATURE:
        raise UserError(f"{weights}: not an HDF5 file (a keras.applications weight file starts with the HDF5 "
                        "signature)")
    if lower.endswith(TORCH_SUFFIXES) and not head.startswith(TORCH_SIGNATURES):
        raise UserError(f"{weights}: not a PyTorch file (neither torch.save's zip archive nor a pickle)")


def imagenet_synsets() -> list:
    """The 1000 ILSVRC-2012 synsets in label order (the order of keras.applications', torchvision's and
    Caffe's outputs): tensorflow-datasets' `imagenet2012/labels.txt`."""
    import importlib.util

    spec = importlib.util.find_spec("tensorflow_datasets")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012", "labels.txt") if spec else ""
    if not os.path.isfile(path):
        raise UserError("tensorflow-datasets' imagenet2012/labels.txt not found (pip install -r requirements.txt)")
    with open(path, encoding="utf-8") as f:
        synsets = [line.strip() for line in f if line.strip()]
    if len(synsets) != NUM_CLASSES:
        raise UserError(f"{path}: {len(synsets)} classes, expected {NUM_CLASSES}")
    return synsets


@dataclasses.dataclass
class _Loaded:
    """What one source put into its model: the model, its ModelConfig, the statistics and the run's facts."""

    model: object
    model_config: object
    stats: dict
    mean: str
    image_size: int
    note: str
    class_names: list = None


def _caffe(weights, mean_file):
    from keras_alexnet import caffe_import
    from keras_alexnet.caffemodel import read_net
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.config import ModelConfig

    layers = read_net(weights)  # parsed (and a truncated file refused) before the model is built
    mean_image = caffe_import.mean_image(mean_file) if mean_file else None
    config = ModelConfig("alexnet", **caffe_import.net_options(layers))
    size = caffe_import.IMAGE_SIZE
    model = build_model("alexnet", num_classes=NUM_CLASSES, input_shape=(size, size, 3), **config.build_options())
    caffe_import.load_alexnet(model, layers, weights)
    order = ("LRN before pooling (bvlc_alexnet)" if config.lrn_position == "before_pool"
             else "LRN after pooling (CaffeNet)") if config.lrn else "no LRN"
    if mean_image is not None:
        stats = {"mean_image": mean_image, "mean_rgb": mean_image.mean(axis=(0, 1))}
        mean_text = f"the mean image of {os.path.abspath(mean_file)} (RGB, {mean_image.shape[0]}x{mean_image.shape[1]})"
        mean = "image"
    else:
        stats = {"mean_rgb": caffe_import.mean_rgb()}
        mean_text = "Caffe's mean colour 104/117/123 BGR (no --mean_file)"
        mean = "rgb"
    note = (f"imported from {os.path.abspath(weights)} (Caffe, {order}, conv1 unpadded at 227 px, Caffe's LRN, "
            f"BGR->RGB); mean: {mean_text}")
    return _Loaded(model, config, stats, mean, size, note)


def _torchvision(weights, architecture):
    from keras_alexnet import weight_import
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.config import ModelConfig

    state_dict = weight_import.read_torchvision_file(weights)  # read before the model is built
    config = ModelConfig(architecture, lrn=False)
    model = build_model(architecture, num_classes=NUM_CLASSES, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                        **config.build_options())
    try:
        result = weight_import.from_torchvision_state_dict(model, state_dict)
    except UserError as error:
        raise UserError(f"{weights}: {error}") from None
    name = "alexnet" if architecture == "alexnet_torchvision" else f"vgg{16 if architecture == 'vgg_d' else 19}"
    return _torchvision_or_keras(model, config, result, weights, f"torchvision {name} state dict")


def _keras_applications(weights, architecture):
    from keras_alexnet import weight_import
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.config import ModelConfig

    config = ModelConfig(architecture, lrn=False)
    model = build_model(architecture, num_classes=NUM_CLASSES, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                        **config.build_options())
    source = weight_import.keras_applications_source(VGG_CONFIGS[architecture], weights, include_top=True)
    result = weight_import.from_keras_applications(model, source)
    return _torchvision_or_keras(model, config, result, weights, f"keras.applications {source.name.upper()}")


def _torchvision_or_keras(model, config, result, weights, origin):
    if "fc8" not in result.loaded:
        raise UserError(f"{weights}: has no 1000-class classifier (fc8); import_weights needs the full model")
    mean = ", ".join(f"{v:.3f}" for v in result.mean_rgb)
    note = (f"imported from {os.path.abspath(weights)} ({origin}): the mean RGB its weights were trained "
            f"with ({mean})")
    return _Loaded(model, config, {"mean_rgb": result.mean_rgb}, "rgb", IMAGE_SIZE, note, result.class_names)


def import_run(weights: str, architecture: str, run_dir: str, mean_file: str = None, class_names: str = None):
    """Loads `weights` into `architecture` and writes the run folder; returns its `runs.RunRecord`.

    The file is checked (signature, or a Caffe model parsed) before any model is built."""
    check_paths(weights, run_dir, architecture, mean_file, class_names)
    check_signature(weights)
    import keras

    from keras_alexnet import runs

    if architecture == "alexnet":
        loaded = _caffe(weights, mean_file)
    elif weights.lower().endswith(TORCH_SUFFIXES):
        loaded = _torchvision(weights, architecture)
    else:
        loaded = _keras_applications(weights, architecture)
    if class_names:
        from keras_alexnet.caffe_import import read_synset_words

        names = read_synset_words(class_names, NUM_CLASSES)
    else:
        names = loaded.class_names or imagenet_synsets()
    model_path = os.path.join(run_dir, runs.MODEL_FILE)
    with outputs.writing(run_dir, partial=[model_path]):
        os.makedirs(run_dir, exist_ok=True)
        loaded.model.save(model_path)
        runs.write_stats(run_dir, loaded.stats)
    record = runs.RunRecord(
        architecture=architecture, num_classes=NUM_CLASSES, class_names=names, image_size=loaded.image_size,
        test_scale=TEST_SCALE, mean=loaded.mean, origin="import", mean_note=loaded.note,
        model_config=dataclasses.asdict(loaded.model_config))
    runs.write_record(run_dir, record)
    keras.backend.clear_session()
    return record


def run(argv) -> None:
    record = import_run(FLAGS.weights, FLAGS.architecture, FLAGS.run_dir, FLAGS.mean_file, FLAGS.class_names)
    print(f"import_weights: {FLAGS.run_dir}: {record.architecture}, {record.num_classes} classes, "
          f"{record.image_size}px crops, test scale {record.test_scale}, mean {record.mean}; {record.mean_note}")
    print(f"  evaluate: python main.py evaluate --model={FLAGS.run_dir} --data_dir=DATA --protocols=center")
    print(f"  predict:  python main.py predict --model={FLAGS.run_dir} IMAGE...")
