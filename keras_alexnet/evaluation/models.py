"""Finding and loading what `evaluate`, `predict` and `neighbors` run: exported SavedModels and checkpoints.

A model path is one of:
- a SavedModel version folder (`saved_models/alexnet/3`, holds `saved_model.pb`);
- a TF Serving model folder (`saved_models/alexnet`): its newest integer version;
- a Keras model file (`*.keras`);
- a training run folder (`main.py train`): its `model.keras`, written when the run ends (else the newest
  `*.keras` in it). A run stopped before its end holds only `checkpoints/`: evaluate the last export,
  or resume the run to its end.
"""

import dataclasses
import glob
import os
import zipfile
import zlib

from keras_alexnet import runs
from keras_alexnet.errors import UserError
from keras_alexnet.export import SAVED_MODEL_FILE, saved_model_dir


def keras_model_file(path: str) -> str:
    """The `.keras` file of `path` (a file or a run folder); UserError naming the path otherwise."""
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise UserError(f"{path}: not a .keras model file, a SavedModel or a run folder")
        return path
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such model file or folder")
    final = os.path.join(path, runs.MODEL_FILE)
    if os.path.isfile(final):
        return final
    candidates = glob.glob(os.path.join(path, "*.keras")) + glob.glob(os.path.join(path, "*", "*.keras"))
    if not candidates:
        unfinished = " (a run stopped before its end: resume it)" if os.path.isdir(
            os.path.join(path, runs.CHECKPOINTS_DIR)) else ""
        raise UserError(f"{path}: holds no SavedModel ({SAVED_MODEL_FILE} or integer versions) and no "
                        f".keras model{unfinished}")
    return max(candidates, key=os.path.getmtime)


def load_keras_model(path: str):
    """The Keras model saved at `path` (file or run folder), with the project's layers registered."""
    import keras

    import keras_alexnet.alexnet  # noqa: F401  registers the LRN and tower layers
    import keras_alexnet.vgg  # noqa: F401

    model_file = keras_model_file(path)
    if not zipfile.is_zipfile(model_file):  # Keras would say "File not found" of an empty or text file
        raise UserError(f"{model_file}: cannot load the model (not a .keras archive: empty or damaged file)")
    try:
        return keras.saving.load_model(model_file, compile=False)
    except KeyError as error:  # a zip archive that is not a Keras model: "There is no item named 'config.json'"
        reason = error.args[0] if error.args else error
        raise UserError(f"{model_file}: cannot load the model (not a Keras model archive: {reason})") from None
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        # zipfile.BadZipFile: damaged bytes ("Bad CRC-32 for file 'model.weights.h5'")
        raise UserError(f"{model_file}: cannot load the model ({str(error).splitlines()[0]})") from None


def load_saved_model(path: str):
    """`tf.saved_model.load` of the SavedModel `path` designates; UserError when there is none."""
    import tensorflow as tf

    folder = saved_model_dir(path)
    if folder is None:
        raise UserError(f"{path}: not a SavedModel folder (no {SAVED_MODEL_FILE}, no integer versions)")
    try:
        return tf.saved_model.load(folder)
    except (OSError, ValueError, tf.errors.OpError) as error:  # a damaged saved_model.pb or variables
        raise UserError(f"{folder}: cannot load the SavedModel ({str(error).strip().splitlines()[0][:300]})") from None


def class_names(data_dir: str) -> list:
    """One display name per class from `dataset.json`: its text (words), else its synset."""
    from pipelines import records

    info = records.read_metadata(data_dir) if data_dir else None
    if info is None:
        raise UserError(f"--data_dir: {data_dir or '(unset)'} holds no {records.METADATA_FILE} (run `main.py prepare`)")
    return [c.text or c.synset or str(c.label) for c in info.classes]


def recorded_data_dir(model_path: str):
    """The prepared data folder the run of the model at `model_path` recorded, when it still exists from
    here (None otherwise, and for a model without a run folder)."""
    from keras_alexnet import runs

    run_dir = runs.run_dir_of(model_path)
    record = runs.read_record(run_dir) if run_dir else None
    found = runs.resolve_recorded_path(run_dir, record, record.data_source) if record is not None else None
    return found if found and os.path.isdir(found) else None


def split_size(data_dir: str, split: str):
    """The number of examples `dataset.json` records for `split` (None when it records none)."""
    from pipelines import records

    info = records.read_metadata(data_dir) if data_dir else None
    found = info.splits.get(split) if info is not None else None
    return found.num_examples if found is not None else None


def mean_kind(model_name: str, choice: str = "auto") -> str:
    """"image" (per-pixel mean, AlexNet §2) or "rgb" (mean RGB, VGG §2.1); "auto": the architecture's
    (`registry.SPECS`; "rgb" for a model the registry does not name, e.g. imported VGG16)."""
    if choice != "auto":
        return choice
    from keras_alexnet.registry import SPECS

    found = SPECS.get(model_name)
    return found.mean if found is not None else "rgb"


def training_mean(data_dir: str, kind: str):
    """The training-set mean on the 0..255 scale from `stats.npz`: the mean image or the mean RGB."""
    from pipelines import records
    from pipelines.stats import read_stats

    path = os.path.join(data_dir, records.STATS_FILE)
    stats = read_stats(path)
    if kind == "image" and "mean_image" in stats:
        return stats["mean_image"]
    if "mean_rgb" in stats:
        return stats["mean_rgb"]
    if "mean_image" in stats:
        return stats["mean_image"].mean(axis=(0, 1))
    raise UserError(f"{path}: holds neither mean_image nor mean_rgb")


@dataclasses.dataclass
class Evaluable:
    """A model ready for the protocols: `predict(crops [N, s, s, 3]) -> softmax [N, C]` and, for
    checkpoints, `score_map(images [B, H, W, 3]) -> [B, h, w, C]` (the fully-convolutional net, VGG §3.2)."""

    name: str
    image_size: int
    mean: str  # the mean the model was trained with: "image", "rgb" or "none" (AlexNet §2, VGG §2.1)
    predict: object
    score_map: object = None


def evaluable(path: str) -> Evaluable:
    """The model at `path` (SavedModel or checkpoint, see the module docstring) for evaluation."""
    from keras_alexnet.export import PREPROCESSED_INPUT, SIGNATURE_PREPROCESSED, read_description

    folder = saved_model_dir(path)
    if folder is not None:
        loaded = load_saved_model(folder)  # referenced by `predict`: its variables must outlive this call
        spec = loaded.signatures[SIGNATURE_PREPROCESSED].structured_input_signature[1][PREPROCESSED_INPUT]
        description = read_description(folder)
        name = description.get("model") or os.path.basename(os.path.dirname(os.path.abspath(folder)))

        def predict(images):
            return loaded.signatures[SIGNATURE_PREPROCESSED](**{PREPROCESSED_INPUT: images})["all_probabilities"]

        return Evaluable(name, int(spec.shape[1]), description.get("mean") or mean_kind(name), predict)

    return keras_evaluable(load_keras_model(path))


def keras_evaluable(model, dense: bool = True) -> Evaluable:
    """A Keras model (loaded, or in memory as training's) for evaluation; with `dense`, its
    fully-convolutional net too (`dense_eval.to_fully_convolutional`, a copy of the weights: built only
    when a dense protocol runs)."""
    from keras_alexnet.dense_eval import to_fully_convolutional

    def predict(images):
        return model(images, training=False)

    found = Evaluable(model.name, int(model.inputs[0].shape[1]), mean_kind(model.name), predict)
    if dense:
        fully_convolutional = to_fully_convolutional(model)

        def score_map(images):
            return fully_convolutional(images, training=False)["score_map"]

        found.score_map = score_map
    return found


def center_crops_with_originals(data_dir: str, split: str, settings, batch_size: int):
    """Batches of `(pixels 0..255, network inputs, labels)` of the centre crops of `split` at the test
    scale of `settings` (`runs.EvalSettings`), in file order: the pictures to draw and what the net sees
    (the run's mean subtracted, AlexNet §2)."""
    import tensorflow as tf

    from keras_alexnet.evaluation.engine import eval_input, protocol_dataset

    def crops(mean_kind):
        return protocol_dataset(eval_input(dataclasses.replace(settings, mean=mean_kind), split, batch_size, data_dir),
                                "center")

    pairs = tf.data.Dataset.zip((crops("none"), crops(settings.mean)))
    return pairs.map(lambda shown, fed: (shown[0], fed[0], fed[1]))
