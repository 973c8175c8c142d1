"""`python main.py predict FILE_OR_FOLDER...`: top-5 class names for images (AlexNet §6.1, Figure 4 left).

From an exported SavedModel (its `serving_default` signature does all the preprocessing), from a run
folder or .keras file (the same preprocessing code, with the run's test scale, mean and class names from
its `run.json`), or from a running TF Serving over REST (`--server=http://host:8501 --model_name=NAME`).
A file that cannot be read or predicted (not an image, truncated, over the size limits) is named on its
own line and the others go on; the CSV holds the files predicted, and the exit code is then 1.
"""

import csv
import os
import sys

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs
from keras_alexnet.errors import FlagError, UserError

TAKES_ARGUMENTS = True
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG")

flagdefs.define_trained_model_flags()
flags.DEFINE_string("server", None, "Address of a running TF Serving REST API, e.g. http://localhost:8501; "
                    "used instead of --model. [AlexNet §6.1]")
flags.DEFINE_string("model_name", None, "The model's name on --server (the folder under TF Serving's "
                    "base path). [AlexNet §6.1]")
flags.DEFINE_integer("model_version", None, "A version on --server instead of the newest. [AlexNet §6.1]")
flags.DEFINE_enum("crops", "center", ["center", "ten_crop"], "Checkpoint only: the centre crop, or the "
                  "ten crops whose softmax is averaged. [AlexNet §4.1]")
flags.DEFINE_integer("batch_size", 16, "Images per request or model call. [AlexNet §5]", lower_bound=1)
flags.DEFINE_string("output_csv", None, "Also write the predictions to this CSV file "
                    "(file, rank, class, name, probability). [AlexNet §6.1]")
FLAGS = flags.FLAGS


def validate(argv):
    if FLAGS.server and FLAGS.model:
        raise FlagError("--server and --model are exclusive: predict from one or the other")
    if not FLAGS.server and not FLAGS.model:
        raise FlagError("--model (SavedModel or checkpoint) or --server (TF Serving) is required")
    if FLAGS.server and not FLAGS.model_name:
        raise FlagError("--model_name is required with --server")
    if FLAGS.model:
        flagdefs.check_model_paths()
    flagdefs.single_test_scale()
    if FLAGS.output_csv:
        outputs.check_writable_file(FLAGS.output_csv, "output_csv")
    image_files(argv)  # none named, a missing file, a folder without images: refused before TensorFlow


def image_files(arguments) -> list:
    """The image files named, folders expanded to their JPEG/PNG files (sorted, not recursive)."""
    if not arguments:
        raise FlagError("name at least one image file or folder")
    files = []
    for path in arguments:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(IMAGE_EXTENSIONS))
            if not found:
                raise UserError(f"{path}: holds no .jpg/.jpeg/.png image")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UserError(f"{path}: no such image file or folder")
    return files


def _local_predictor():
    """A function list[bytes] -> list[Prediction] running the SavedModel or checkpoint in this process."""
    import tensorflow as tf

    from keras_alexnet import export
    from keras_alexnet.evaluation import models
    from keras_alexnet.serving_client import STATUS_OK, Prediction

    if models.saved_model_dir(FLAGS.model):
        loaded = models.load_saved_model(FLAGS.model)  # kept alive by `run`, which uses its variables

        def run(images):
            return loaded.signatures[export.SIGNATURE_BYTES](**{export.BYTES_INPUT: images})
    else:
        model = models.load_keras_model(FLAGS.model)
        image_size = int(model.inputs[0].shape[1])
        settings = flagdefs.model_settings(FLAGS.model, image_size, flagdefs.single_test_scale())
        data_dir = flagdefs.data_dir(FLAGS.model)
        class_names = settings.class_names or (models.class_names(data_dir) if data_dir else None)
        run = tf.function(export.make_bytes_function(
            model, class_names=class_names or [str(i) for i in range(int(model.outputs[0].shape[-1]))],
            mean=settings.mean_values, image_size=image_size, resize_size=settings.test_scale, crops=FLAGS.crops,
        ))

    def predict(images):
        out = run(tf.constant(images))
        status = out.get(export.STATUS_OUTPUT)  # absent from SavedModels exported before it existed
        return [Prediction(out["classes"][i].numpy().tolist(),
                           [n.decode() for n in out["class_names"][i].numpy()],
                           out["probabilities"][i].numpy().tolist())
                if status is None or status[i].numpy().decode() == STATUS_OK
                else Prediction([], [], [], error=status[i].numpy().decode()) for i in range(len(images))]

    return predict


def _remote_predictor():
    from keras_alexnet import serving_client

    def predict(images):
        return serving_client.predict(FLAGS.server, FLAGS.model_name, images, version=FLAGS.model_version)

    return predict


def _predict_batch(predict, files, images, failed):
    """[(file, Prediction)] for the files of a batch that could be predicted; a file the model did not
    classify goes to `failed` as (file, reason). When the whole batch is refused (a request limit, or a
    model exported without per-image `status`), each file is tried alone, so one bad image costs only
    itself."""
    from keras_alexnet.serving_client import ServingUnreachable, one_line

    try:
        predicted = list(zip(files, predict(images)))
        failed += [(file, one_line(prediction.error)) for file, prediction in predicted if prediction.error]
        return [(file, prediction) for file, prediction in predicted if not prediction.error]
    except ServingUnreachable:
        raise
    except Exception as error:  # noqa: BLE001 - a refused batch is narrowed to the files at fault
        if len(files) == 1:
            failed.append((files[0], one_line(getattr(error, "message", None) or str(error))))
            return []
        return [pair for file, data in zip(files, images) for pair in _predict_batch(predict, [file], [data], failed)]


def _read(file, failed):
    """The bytes of `file`, or None with (file, reason) appended to `failed`."""
    try:
        with open(file, "rb") as f:
            return f.read()
    except OSError as error:
        failed.append((file, error.strerror or str(error)))
        return None


def run(argv):
    files = image_files(argv)
    predict = _remote_predictor() if FLAGS.server else _local_predictor()
    rows, failed = [], []
    for start in range(0, len(files), FLAGS.batch_size):
        already = len(failed)
        batch = [(file, _read(file, failed)) for file in files[start:start + FLAGS.batch_size]]
        batch = [(file, data) for file, data in batch if data is not None]
        predicted = _predict_batch(predict, [f for f, _ in batch], [d for _, d in batch], failed) if batch else []
        for file, reason in failed[already:]:
            print(f"main.py predict: error: {file}: {reason}", file=sys.stderr, flush=True)
        for file, prediction in predicted:
            print(file)
            for rank, (class_id, name, probability) in enumerate(prediction.rows(), 1):
                print(f"  {rank}. {probability:7.4f}  {class_id:>5d}  {name}")
                rows.append((file, rank, class_id, name, f"{probability:.6f}"))
    if FLAGS.output_csv:
        with outputs.writing(FLAGS.output_csv, partial=[FLAGS.output_csv]):
            with open(FLAGS.output_csv, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(("file", "rank", "class", "name", "probability"))
                writer.writerows(rows)
        print(f"wrote {FLAGS.output_csv}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(files)} images could not be predicted (each named above)")
