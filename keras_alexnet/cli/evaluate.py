"""`python main.py evaluate`: top-1/top-5 error of models under the papers' test protocols.

Protocols (`--protocols`, the table of `pipelines.eval_protocols`): centre crop; AlexNet §4.1's ten crops;
VGG §3.2's multi-crop (5x5 grid x 2 flips) and dense evaluation; at the test scale Q the run recorded, or
at one or several given ones (`--test_scale`, or `--train_scale` for VGG §4.2's Q sets). Crop size, mean
and statistics come from the run (`run.json`); `--data_dir` defaults to the data the run was trained on.
With dense and multi-crop both run, a "dense + multi-crop" row averages them (VGG Table 5); with
`--ensemble` the softmax outputs of all `--model`s are averaged too (AlexNet §6, VGG §4.4). The table
(pandas) is printed and written as CSV and Markdown, with images/s per row. The flags become an
`evaluation.engine.EvalConfig`, run by `evaluation.engine.evaluate`.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError
from pipelines import eval_protocols

flagdefs.define_trained_model_flags(multiple=True)
flags.DEFINE_string("split", "validation", "The split to evaluate on.", module_name=flaghelp.DATA)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N examples of the split.", lower_bound=1,
                     module_name=flaghelp.DATA)
flags.DEFINE_list("protocols", ["center"], f"Comma-separated from {eval_protocols.described()}.",
                  module_name=flaghelp.EVALUATION)
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


def test_scales():
    """The scales Q to evaluate at: --test_scale, --train_scale's set, else None (each run's own)."""
    from keras_alexnet.evaluation.protocols import multi_scale

    if FLAGS.test_scale:
        return flagdefs.test_scales()
    if FLAGS.train_scale:
        values = _ints(FLAGS.train_scale, "train_scale")
        if len(values) > 2:
            raise FlagError("--train_scale: one value (fixed S) or two (Smin,Smax)")
        return multi_scale(values[0] if len(values) == 1 else values)
    return None


def validate():
    paths = flagdefs.check_model_paths()
    flagdefs.require_data_dir(paths[0])
    if FLAGS.test_scale and FLAGS.train_scale:
        raise FlagError("--test_scale and --train_scale are exclusive")
    eval_config().validate()  # protocols, --ensemble, the scales
    outputs.check_writable_dir(FLAGS.output_dir or _default_output_dir(paths[0]), "output_dir")


def starting() -> str:
    """The first line, printed before TensorFlow is imported."""
    models = " and ".join(FLAGS.model)
    return f"Evaluating {models} on the {FLAGS.split} split ({', '.join(FLAGS.protocols)})"


def eval_config():
    """The flags as an `evaluation.engine.EvalConfig`."""
    from keras_alexnet.evaluation.engine import EvalConfig

    given = test_scales()
    return EvalConfig(models=tuple(FLAGS.model), data_dir=flagdefs.data_dir(FLAGS.model[0]), split=FLAGS.split,
                      protocols=tuple(FLAGS.protocols), scales=tuple(given) if given else None,
                      mean=None if FLAGS.mean == "auto" else FLAGS.mean, batch_size=FLAGS.batch_size,
                      max_examples=FLAGS.max_examples, fuse=FLAGS.ensemble,
                      scale_flag="train_scale" if FLAGS.train_scale else "test_scale")


def run(argv):
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import engine, tables

    result = engine.evaluate(eval_config(), printer=lambda line: print(line, flush=True))
    table = result.table()
    print(table.to_string(index=False))
    output_dir = FLAGS.output_dir or _default_output_dir(FLAGS.model[0])
    with outputs.writing(output_dir, partial=[os.path.join(output_dir, f"errors.{kind}") for kind in ("csv", "md")]):
        csv_path, md_path = tables.write_table(table, output_dir)
    print(f"wrote {csv_path} and {md_path}")
    if result.fusion_problem:
        raise UserError(result.fusion_problem)


def _default_output_dir(model_path):
    """<run folder>/evaluation/<split> of the first model (its folder for a .keras file or SavedModel)."""
    from keras_alexnet import runs

    base = runs.run_dir_of(model_path) or (model_path if os.path.isdir(model_path) else os.path.dirname(model_path))
    return os.path.join(base or ".", "evaluation", FLAGS.split)
