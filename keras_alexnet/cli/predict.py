"""`python main.py predict FILE_OR_FOLDER...`: top-5 class names for images (AlexNet §6.1, Figure 4 left).

From an exported SavedModel (its `serving_default` signature does all the preprocessing), from a run
folder or .keras file (the same preprocessing code, with the run's test scale, mean and class names from
its `run.json`), or from a running TF Serving over REST (`--server=http://host:8501 --model_name=NAME`).
A file that cannot be read or predicted (not an image, truncated, over the size limits) is named on its
own line and the others go on; the CSV holds the files predicted, and the exit code is then 1.
"""

import csv
import os
import stat
import sys

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError, UserError
from pipelines import eval_protocols
from pipelines.sources import IMAGE_EXTENSIONS, is_image_name

TAKES_ARGUMENTS = True

flagdefs.define_trained_model_flags()
flags.DEFINE_enum("crops", "center", eval_protocols.servable(), "Run folder or .keras file only (a SavedModel's "
                  "export fixed its crops): the centre crop, or the ten crops whose softmax is averaged. "
                  "[AlexNet §4.1]", module_name=flaghelp.EVALUATION)
flags.DEFINE_string("server", None, "Address of a running TF Serving REST API, e.g. http://localhost:8501; "
                    "used instead of --model.", module_name=flaghelp.SERVING)
flags.DEFINE_string("model_name", None, "The model's name on --server (the folder under TF Serving's "
                    "base path).", module_name=flaghelp.SERVING)
flags.DEFINE_integer("model_version", None, "A version on --server instead of the newest.",
                     module_name=flaghelp.SERVING)
flags.DEFINE_string("output_csv", None, "Also write the predictions to this CSV file "
                    "(file, rank, class, name, probability).", module_name=flaghelp.OUTPUTS)
flags.DEFINE_integer("batch_size", 16, "Images per request or model call.", lower_bound=1,
                     module_name=flaghelp.SPEED)
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
    _check_fixed_preprocessing()
    flagdefs.single_test_scale()
    if FLAGS.output_csv:
        outputs.check_writable_file(FLAGS.output_csv, "output_csv")
    image_files(argv)  # none named, a missing file, a folder without images: refused before TensorFlow


def _check_fixed_preprocessing():
    """FlagError for the preprocessing flags a SavedModel, local or on --server, cannot take: its
    `serving_default` signature fixes the crops, test scale and mean it was exported with
    (`main.py export --crops/--test_scale/--mean`)."""
    from keras_alexnet.export import saved_model_dir

    if FLAGS.server:
        what = f"--server={FLAGS.server} serves a SavedModel"
    elif saved_model_dir(FLAGS.model):
        what = f"--model={FLAGS.model} is a SavedModel"
    else:
        return
    given = [f"--{name}" for name in ("crops", "test_scale", "mean") if FLAGS[name].present]
    if given:
        raise FlagError(f"{', '.join(given)}: {what}, whose export fixed its crops, test scale and mean (export "
                        "again with them, or predict from the run folder)")


def _not_regular(path: str):
    """What `path` is when it is not a regular file (a FIFO would block the read forever), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a dangling link"
    kinds = ((stat.S_ISREG, None), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def image_files(arguments, skipped=None) -> list:
    """The image files named, folders expanded to their image files (`pipelines.sources.IMAGE_EXTENSIONS`,
    any case; sorted, not recursive). Only regular files are read: a FIFO, socket, device or folder found
    in a folder or named is left out, with "PATH: skipped, KIND ..." appended to `skipped`."""
    if not arguments:
        raise FlagError("name at least one image file or folder")
    files, left_out = [], []
    for path in arguments:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_name(n))
            if not found:
                raise UserError(f"{path}: holds no image ({'/'.join(IMAGE_EXTENSIONS)})")
        elif os.path.lexists(path):
            found = [path]
        else:
            raise UserError(f"{path}: no such image file or folder")
        for file in found:
            kind = _not_regular(file)
            if kind:
                left_out.append(f"{file}: skipped, {kind} (only regular files are read)")
            else:
                files.append(file)
    if not files:
        raise UserError(left_out[0] if len(left_out) == 1 else
                        f"no regular image file among the {len(left_out)} named (FIFOs, sockets, devices, ...)")
    if skipped is not None:
        skipped += left_out
    return files


def _local_predictor():
    """A function list[bytes] -> list[Prediction] running the SavedModel or checkpoint in this process."""
    import tensorflow as tf

    from keras_alexnet import export
    from keras_alexnet.evaluation import models
    from keras_alexnet.serving_client import STATUS_OK, Prediction

    if export.saved_model_dir(FLAGS.model):
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
    """The bytes of `file` as JPEG or PNG (what the serving signature decodes; GIF, BMP and WebP are
    converted to PNG), or None with (file, reason) appended to `failed`."""
    from pipelines.image_codec import DecodeError, as_jpeg_or_png

    try:
        with open(file, "rb") as f:
            return as_jpeg_or_png(f.read())
    except OSError as error:
        failed.append((file, error.strerror or str(error)))
    except DecodeError as error:  # TF's own words, except its long list of formats for unknown bytes
        unknown = str(error).startswith("Unknown image file format")
        failed.append((file, "not an image (not JPEG, PNG, GIF, BMP or WebP)" if unknown else f"not an image ({error})"))
    return None


def run(argv):
    skipped = []
    files = image_files(argv, skipped)
    for line in skipped:
        print(f"main.py predict: {line}", file=sys.stderr, flush=True)
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
