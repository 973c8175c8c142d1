"""`python main.py evaluate`: top-1/top-5 error of models under the papers' test protocols.

Protocols (`--protocols`): centre crop; AlexNet §4.1's ten crops; VGG §3.2's multi-crop (5x5 grid x 2
flips) and dense evaluation; at the test scale Q the run recorded, or at one or several given ones
(`--test_scale`, or `--train_scale` for VGG §4.2's Q sets). Crop size, mean and statistics come from
the run (`run.json`); `--data_dir` defaults to the data the run was trained on. With dense and multi-crop both run, a "dense + multi-crop" row averages them (VGG
Table 5); with `--ensemble` the softmax outputs of all `--model`s are averaged too (AlexNet §6, VGG
§4.4). The table (pandas) is printed and written as CSV and Markdown, with images/s per row.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError

PROTOCOL_CHOICES = ("center", "ten_crop", "multi_crop", "dense")

flagdefs.define_trained_model_flags(multiple=True)
flags.DEFINE_string("split", "validation", "The split to evaluate on.", module_name=flaghelp.DATA)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N examples of the split.", lower_bound=1,
                     module_name=flaghelp.DATA)
flags.DEFINE_list("protocols", ["center"], "Comma-separated from center, ten_crop, "
                  "multi_crop, dense. [AlexNet §4.1, VGG §3.2]", module_name=flaghelp.EVALUATION)
flags.DEFINE_list("train_scale", None, "Q from the training scale S instead of --test_scale: one value gives "
                  "Q = {S-32, S, S+32}, two (Smin,Smax) give Q = {Smin, (Smin+Smax)/2, Smax}. [VGG §4.2]",
                  module_name=flaghelp.EVALUATION)
flags.DEFINE_boolean("ensemble", False, "Also report the fusion of all --model by averaging their softmax "
                     "outputs. [AlexNet §6, VGG §4.4]", module_name=flaghelp.EVALUATION)
flags.DEFINE_string("output_dir", None, "Folder for errors.csv and errors.md; default: "
                    "<first model's run folder>/evaluation/<split>.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_integer("batch_size", 32, "Images per batch for the crop protocols (dense runs one image at a "
                     "time).", lower_bound=1, module_name=flaghelp.SPEED)
FLAGS = flags.FLAGS


def _ints(values, flag):
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise FlagError(f"--{flag}: expected integers, got {','.join(values)}") from None
    if any(n <= 0 for n in numbers):
        raise FlagError(f"--{flag}: scales must be positive")
    return numbers


def test_scales(recorded_scale):
    """The scales Q to evaluate at: --test_scale, --train_scale's set, else the run's own."""
    from keras_alexnet.evaluation.protocols import multi_scale

    if FLAGS.test_scale:
        return flagdefs.test_scales()
    if FLAGS.train_scale:
        values = _ints(FLAGS.train_scale, "train_scale")
        if len(values) > 2:
            raise FlagError("--train_scale: one value (fixed S) or two (Smin,Smax)")
        return multi_scale(values[0] if len(values) == 1 else values)
    return [recorded_scale]


def validate():
    paths = flagdefs.check_model_paths()
    flagdefs.require_data_dir(paths[0])
    unknown = [p for p in FLAGS.protocols if p not in PROTOCOL_CHOICES]
    if unknown or not FLAGS.protocols:
        raise FlagError(f"--protocols: unknown '{unknown[0] if unknown else ''}' "
                        f"(choose from {', '.join(PROTOCOL_CHOICES)})")
    if FLAGS.ensemble and len(FLAGS.model) < 2:
        raise FlagError("--ensemble needs at least two --model")
    if FLAGS.test_scale and FLAGS.train_scale:
        raise FlagError("--test_scale and --train_scale are exclusive")
    flagdefs.test_scales()
    if FLAGS.train_scale:
        test_scales(None)
    outputs.check_writable_dir(FLAGS.output_dir or _default_output_dir(paths[0]), "output_dir")


def starting() -> str:
    """The first line, printed before TensorFlow is imported."""
    models = " and ".join(FLAGS.model)
    return f"Evaluating {models} on the {FLAGS.split} split ({', '.join(FLAGS.protocols)})"


def _examples(data_dir):
    """How many images one pass evaluates (for the progress line's ETA), None if not recorded."""
    from keras_alexnet.evaluation import models

    recorded = models.split_size(data_dir, FLAGS.split)
    if FLAGS.max_examples:
        return min(recorded, FLAGS.max_examples) if recorded else FLAGS.max_examples
    return recorded


def _dataset(protocol, scale, settings, data_dir):
    from pipelines.input_pipeline import InputConfig, build_eval_dataset

    config = InputConfig(data_dir=data_dir, split=FLAGS.split, image_size=settings.image_size,
                         resize_size=scale, mean=settings.mean, stats_path=settings.stats_path,
                         batch_size=FLAGS.batch_size, pca_jitter_std=0.0)
    dataset = build_eval_dataset(config, protocol, scale)
    if FLAGS.max_examples:
        batch = 1 if protocol == "dense" else FLAGS.batch_size
        dataset = dataset.unbatch().take(FLAGS.max_examples).batch(batch)
    return dataset


def run(argv):
    from pipelines import record_parser

    from keras_alexnet.evaluation import ensemble, models, protocols, tables

    data_dir = flagdefs.data_dir(FLAGS.model[0])
    runs, names = [], []
    for path in FLAGS.model:
        model = models.evaluable(path)
        name = model.name
        if name in names:  # two models of one architecture: tell them apart by file or run folder
            name = f"{model.name} ({os.path.basename(os.path.normpath(path))})"
        names.append(name)
        if "dense" in FLAGS.protocols and model.score_map is None:
            raise FlagError(f"--protocols=dense: {path} is a SavedModel with a fixed input size; "
                            "evaluate the checkpoint it came from")
        given = test_scales(None)  # a model without recorded settings takes the smallest scale given
        settings = flagdefs.model_settings(path, model.image_size, min(given) if given != [None] else None)
        scales = test_scales(settings.test_scale)
        too_small = [q for q in scales if q < model.image_size]
        if too_small:
            flag = "train_scale" if FLAGS.train_scale else "test_scale"
            raise FlagError(f"--{flag}: test scale {too_small[0]} is smaller than the model's input "
                            f"({model.image_size})")
        print(f"{name}: {settings.image_size}px crops, Q={','.join(map(str, scales))}, mean {settings.mean} "
              f"(from {settings.source})", flush=True)
        for protocol in FLAGS.protocols:
            views = protocols.batch_probabilities(model, protocol)
            for scale in scales:
                with record_parser.user_errors():
                    result = protocols.run_protocol(
                        name, protocol, scale, views, _dataset(protocol, scale, settings, data_dir),
                        examples=_examples(data_dir))
                runs.append(result)
                print(f"{name}: {protocol} at Q={scale}: {len(result.labels)} images, "
                      f"{result.images_per_second:.1f} images/s", flush=True)
    fusion_problem = None
    try:
        rows = ensemble.table_rows(runs, fuse=FLAGS.ensemble)
    except ValueError as error:  # the models cannot be fused: their own rows are still written
        fusion_problem = f"--ensemble: {error}"
        rows = ensemble.table_rows(runs, fuse=False)
    table = tables.error_table(rows, FLAGS.split)
    print(table.to_string(index=False))
    output_dir = FLAGS.output_dir or _default_output_dir(FLAGS.model[0])
    with outputs.writing(output_dir, partial=[os.path.join(output_dir, f"errors.{kind}") for kind in ("csv", "md")]):
        csv_path, md_path = tables.write_table(table, output_dir)
    print(f"wrote {csv_path} and {md_path}")
    if fusion_problem:
        from keras_alexnet.errors import UserError

        raise UserError(fusion_problem)


def _default_output_dir(model_path):
    """<run folder>/evaluation/<split> of the first model (its folder for a .keras file or SavedModel)."""
    from keras_alexnet import runs

    base = runs.run_dir_of(model_path) or (model_path if os.path.isdir(model_path) else os.path.dirname(model_path))
    return os.path.join(base or ".", "evaluation", FLAGS.split)
