"""`python main.py import_weights --weights=FILE --architecture=vgg_d|vgg_e --run_dir=runs/NAME`: pretrained
VGG weights the user has, as a run folder every other command reads (VGG §2, configurations D and E).

FILE is a ``keras.applications`` VGG16/VGG19 weight file (`.h5` / `.weights.h5`, with the classifier) or
a torchvision VGG16/VGG19 state dict (`.pth` / `.pt`, needs PyTorch). `keras_alexnet.weight_import`
turns the weights' own preprocessing into this project's (RGB on the 0..255 scale minus a mean RGB,
VGG §2.1); the run folder then holds `model.keras`, `stats.npz` (that mean RGB) and `run.json`
(`keras_alexnet.runs.RunRecord`: the architecture, the 1000 ILSVRC-2012 classes named by their synsets
from tensorflow-datasets' `imagenet2012/labels.txt`, mean "rgb", test scale Q = 256, 224x224 crops), so
that `evaluate`, `export`, `predict`, `figures` and `neighbors` work on it as on a trained run. Nothing is
downloaded.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.errors import FlagError, UserError

ARCHITECTURES = {"vgg_d": "D", "vgg_e": "E"}  # keras.applications VGG16 / VGG19, torchvision vgg16 / vgg19
KERAS_SUFFIXES = (".h5", ".hdf5")
TORCH_SUFFIXES = (".pth", ".pt")
NUM_CLASSES, IMAGE_SIZE, TEST_SCALE = 1000, 224, 256  # ILSVRC-2012; VGG §2.1 crops, §3.2 single scale Q

flags.DEFINE_string("weights", None, "The weight file: keras.applications VGG16/VGG19 (.h5, .weights.h5) or "
                    "a torchvision vgg16/vgg19 state dict (.pth). [VGG §2]")
flags.DEFINE_enum("architecture", None, list(ARCHITECTURES), "The configuration the weights are for: vgg_d "
                  "(VGG16) or vgg_e (VGG19). [VGG §2.1]")
flags.DEFINE_string("run_dir", None, "The run folder to create, e.g. runs/vgg16_imported. [VGG §2]")
FLAGS = flags.FLAGS


def validate() -> None:
    for name in ("weights", "architecture", "run_dir"):
        if not FLAGS[name].value:
            raise FlagError(f"--{name} is required")
    check_paths(FLAGS.weights, FLAGS.run_dir)
    outputs.check_writable_dir(FLAGS.run_dir, "run_dir")


def check_paths(weights: str, run_dir: str) -> None:
    """FlagError for a weight file that is missing or of an unknown kind, or a run folder already in use."""
    from keras_alexnet import runs

    if not os.path.isfile(weights):
        raise FlagError(f"--weights={weights}: no such file")
    if not weights.lower().endswith(KERAS_SUFFIXES + TORCH_SUFFIXES):
        raise FlagError(f"--weights={weights}: expected a keras.applications .h5/.weights.h5 file or a "
                        "torchvision .pth state dict")
    if os.path.isfile(runs.run_file(run_dir)) or os.path.isfile(os.path.join(run_dir, runs.MODEL_FILE)):
        raise FlagError(f"--run_dir={run_dir}: already holds a run; choose a new folder")


def imagenet_synsets() -> list:
    """The 1000 ILSVRC-2012 synsets in label order (the order of keras.applications' and torchvision's
    outputs): tensorflow-datasets' `imagenet2012/labels.txt`."""
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


def import_run(weights: str, architecture: str, run_dir: str):
    """Loads `weights` into `architecture` and writes the run folder; returns its `runs.RunRecord`."""
    import keras

    from keras_alexnet import runs, weight_import
    from keras_alexnet.registry import build_model

    check_paths(weights, run_dir)
    config = ARCHITECTURES[architecture]
    target = build_model(architecture, num_classes=NUM_CLASSES, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    if weights.lower().endswith(TORCH_SUFFIXES):
        result = weight_import.load_torchvision_file(target, weights)
        origin = f"torchvision vgg{16 if config == 'D' else 19} state dict"
    else:
        source = weight_import.keras_applications_source(config, weights, include_top=True)
        result = weight_import.from_keras_applications(target, source)
        origin = f"keras.applications {source.name.upper()}"
        del source
    if "fc8" not in result.loaded:
        raise UserError(f"{weights}: has no 1000-class classifier (fc8); import_weights needs the full model")
    names = result.class_names or imagenet_synsets()
    model_path = os.path.join(run_dir, runs.MODEL_FILE)
    with outputs.writing(run_dir, partial=[model_path]):
        os.makedirs(run_dir, exist_ok=True)
        target.save(model_path)
        runs.write_stats(run_dir, {"mean_rgb": result.mean_rgb})
    mean = ", ".join(f"{v:.3f}" for v in result.mean_rgb)
    record = runs.RunRecord(
        architecture=architecture, num_classes=NUM_CLASSES, class_names=names, image_size=IMAGE_SIZE,
        test_scale=TEST_SCALE, mean="rgb", origin="import",
        mean_note=f"imported from {os.path.abspath(weights)} ({origin}): the mean RGB its weights were trained "
                  f"with ({mean})")
    runs.write_record(run_dir, record)
    keras.backend.clear_session()
    return record


def run(argv) -> None:
    record = import_run(FLAGS.weights, FLAGS.architecture, FLAGS.run_dir)
    print(f"import_weights: {FLAGS.run_dir}: {record.architecture}, {record.num_classes} classes, "
          f"{record.mean_note}; test scale {record.test_scale}")
    print(f"  evaluate: python main.py evaluate --model={FLAGS.run_dir} --data_dir=DATA")
    print(f"  predict:  python main.py predict --model={FLAGS.run_dir} IMAGE...")
