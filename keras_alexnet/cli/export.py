"""`python main.py export`: a trained model as a new SavedModel version in TF Serving's layout.

Writes `<base_dir>/<name>/<version>/` (the next integer version) with the `serving_default` signature
(JPEG/PNG bytes -> top-5 class ids, probabilities, names; AlexNet §4.1 centre or ten crops) and
`serving_preprocessed` (mean-subtracted crops -> probabilities). See `keras_alexnet/export.py`. The test
scale, mean and class names come from the run (`run.json`) unless --test_scale / --mean override them.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError
from keras_alexnet.export import BASE_DIR, DEFAULT_MAX_PIXELS
from pipelines import eval_protocols

flagdefs.define_trained_model_flags()
flags.DEFINE_enum("crops", "center", eval_protocols.servable(), "What serving_default feeds the net: the centre "
                  "crop, or the four corner and centre crops and their reflections, softmax averaged. [AlexNet §4.1]",
                  module_name=flaghelp.EVALUATION)
flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Images whose header claims more pixels are refused before "
                     "decoding.", lower_bound=1, module_name=flaghelp.SERVING)
flags.DEFINE_string("base_dir", BASE_DIR, "TF Serving base folder: versions go to BASE_DIR/NAME/N.",
                    module_name=flaghelp.OUTPUTS)
flags.DEFINE_string("name", None, "Model name (the folder under --base_dir); default: the run's name "
                    "(the model's name for a .keras file).", module_name=flaghelp.OUTPUTS)
flags.DEFINE_integer("version", None, "Write this version number instead of the next one (refused if it "
                     "exists).", lower_bound=1, module_name=flaghelp.OUTPUTS)
FLAGS = flags.FLAGS


def validate():
    from keras_alexnet.export import saved_model_dir

    flagdefs.check_model_paths()
    if saved_model_dir(FLAGS.model):
        raise FlagError(f"--model={FLAGS.model} is already a SavedModel; export a run folder or .keras file")
    flagdefs.single_test_scale()
    outputs.check_writable_dir(FLAGS.base_dir, "base_dir")
    if FLAGS.name is not None:
        outputs.check_folder_name(FLAGS.name, "name", "base_dir")


def run(argv):
    from keras_alexnet import runs
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import models
    from keras_alexnet.export import export_saved_model

    model = models.load_keras_model(FLAGS.model)
    image_size = int(model.inputs[0].shape[1])
    settings = flagdefs.model_settings(FLAGS.model, image_size, flagdefs.single_test_scale())
    class_names = settings.class_names
    if class_names is None:
        data_dir = flagdefs.data_dir(FLAGS.model)
        class_names = models.class_names(data_dir) if data_dir else None
    run_dir = runs.run_dir_of(FLAGS.model)
    name = FLAGS.name or (os.path.basename(os.path.normpath(run_dir)) if run_dir else model.name)
    with outputs.writing(os.path.join(FLAGS.base_dir, name)):  # export_saved_model removes its temporary
        try:
            path = export_saved_model(
                model, FLAGS.base_dir, name, class_names=class_names,
                mean=settings.mean_values, image_size=image_size, resize_size=settings.test_scale,
                crops=FLAGS.crops, max_pixels=FLAGS.max_pixels, version=FLAGS.version,
            )
        except FileExistsError as error:
            raise FlagError(f"--version: {error}") from None
        except ValueError as error:
            raise UserError(f"--model: {error}") from None
    print(path)
