"""`python main.py export`: a trained model as a new SavedModel version in TF Serving's layout.

Writes `<base_dir>/<name>/<version>/` (the next integer version) with the `serving_default` signature
(JPEG/PNG bytes -> top-5 class ids, probabilities, names; AlexNet §4.1 centre or ten crops) and
`serving_preprocessed` (mean-subtracted crops -> probabilities). See `keras_alexnet/export.py`.
"""

import os

from absl import flags

from keras_alexnet.errors import FlagError

flags.DEFINE_string("model", None, "The trained model: a .keras file or a training run folder. [AlexNet §5]")
flags.DEFINE_string("data_dir", None, "Prepared data folder: dataset.json gives the class names, stats.npz "
                    "the training mean. [AlexNet §2]")
flags.DEFINE_string("base_dir", "saved_models", "TF Serving base folder: versions go to BASE_DIR/NAME/N. "
                    "[AlexNet §6.1]")
flags.DEFINE_string("name", None, "Model name (the folder under --base_dir); default: the model's name. "
                    "[AlexNet §6.1]")
flags.DEFINE_enum("crops", "center", ["center", "ten_crop"], "What serving_default feeds the net: the centre "
                  "crop, or the four corner and centre crops and their reflections, softmax averaged. [AlexNet §4.1]")
flags.DEFINE_enum("mean", "auto", ["auto", "image", "rgb"], "Subtract the per-pixel mean image (AlexNet) or the "
                  "mean RGB (VGG); auto follows the model name. [AlexNet §2, VGG §2.1]")
flags.DEFINE_integer("resize_size", 256, "The shorter side is rescaled to this and the central square kept "
                     "before cropping (256 in AlexNet; the test scale Q in VGG). [AlexNet §2, VGG §3.2]",
                     lower_bound=1)
flags.DEFINE_integer("max_pixels", 40_000_000, "Images whose header claims more pixels are refused before "
                     "decoding. [AlexNet §2]", lower_bound=1)
flags.DEFINE_integer("version", None, "Write this version number instead of the next one (refused if it "
                     "exists). [AlexNet §6.1]", lower_bound=1)
FLAGS = flags.FLAGS


def validate():
    if not FLAGS.model:
        raise FlagError("--model is required (a .keras file or a training run folder)")
    if not os.path.exists(FLAGS.model):
        raise FlagError(f"--model: {FLAGS.model} does not exist")
    if not FLAGS.data_dir:
        raise FlagError("--data_dir is required (class names and training mean come from it)")


def run(argv):
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import models
    from keras_alexnet.export import export_saved_model

    model = models.load_keras_model(FLAGS.model)
    image_size = int(model.inputs[0].shape[1])
    if FLAGS.resize_size < image_size:
        raise FlagError(f"--resize_size={FLAGS.resize_size} is smaller than the model's input ({image_size})")
    kind = models.mean_kind(model.name, FLAGS.mean)
    try:
        path = export_saved_model(
            model, FLAGS.base_dir, FLAGS.name or model.name,
            class_names=models.class_names(FLAGS.data_dir), mean=models.training_mean(FLAGS.data_dir, kind),
            image_size=image_size, resize_size=FLAGS.resize_size, crops=FLAGS.crops,
            max_pixels=FLAGS.max_pixels, version=FLAGS.version,
        )
    except FileExistsError as error:
        raise FlagError(f"--version: {error}") from None
    except ValueError as error:
        raise UserError(f"--model: {error}") from None
    print(path)
