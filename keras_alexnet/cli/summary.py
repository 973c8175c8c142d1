"""`python main.py summary --model NAME`: the model's layer table, feature-map sizes and parameter count.

Builds the model (no training, no data) with `keras_alexnet.registry.build_model` and prints
`keras_alexnet.model_summary.format_summary`. `--dense` prints instead the fully-convolutional net of
VGG §3.2 of the model built at 224x224, applied to an --image_size input (e.g. 384: a 6x6 score map for VGG).
"""

from absl import flags

from keras_alexnet.cli import flagdefs, flaghelp

flagdefs.define_model_flags()
flags.DEFINE_integer("num_classes", 1000, "Classes of the final layer fc8. [AlexNet §3.5]", lower_bound=1,
                     module_name=flaghelp.MODEL)
flags.DEFINE_integer("image_size", 224, "Side of the square input image in pixels. [AlexNet §3.5, VGG §2.1]",
                     lower_bound=1, module_name=flaghelp.MODEL)
flags.DEFINE_boolean("dense", False, "Summarize the fully-convolutional net (dense evaluation) of the "
                     "224x224 model, applied to an --image_size input. [VGG §3.2]", module_name=flaghelp.EVALUATION)
FLAGS = flags.FLAGS


def _model_config():
    from keras_alexnet.training.config import ModelConfig

    return ModelConfig(**flagdefs.model_values())


def validate() -> None:
    from keras_alexnet.errors import FlagError
    from keras_alexnet.registry import spec

    model_spec = spec(FLAGS.architecture)
    if FLAGS.dense and FLAGS.image_size < 224:
        raise FlagError(f"--image_size must be at least 224 with --dense (the model's size), got {FLAGS.image_size}")
    if FLAGS.image_size < model_spec.min_input:
        raise FlagError(f"--image_size must be at least {model_spec.min_input} for {FLAGS.architecture}, "
                        f"got {FLAGS.image_size}")
    _model_config().validate()


def run(argv) -> None:
    from keras_alexnet.model_summary import format_summary
    from keras_alexnet.registry import build_model

    size = FLAGS.image_size
    model_size = 224 if FLAGS.dense else size
    model = build_model(FLAGS.architecture, num_classes=FLAGS.num_classes,
                        input_shape=(model_size, model_size, 3), **_model_config().build_options())
    if FLAGS.dense:
        from keras_alexnet.dense_eval import to_fully_convolutional

        model = _at_size(to_fully_convolutional(model), size)
    print(format_summary(model))


def _at_size(dense, size):
    """The dense net (any input size) rebuilt on a ``size`` input, so the table shows every map size."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for layer in dense.layers[1:-1]:
        x = layer(x)
    scores = dense.layers[-1](x)
    return keras.Model(inputs, {"score_map": x, "scores": scores}, name=dense.name)
