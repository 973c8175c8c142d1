"""`python main.py study NAME`: re-measures the papers' claims (NAME: alexnet, vgg or precision).

Each arm (the baseline with one of the paper's choices changed) is trained with several seeds, each a
normal training run in `studies/<NAME>/<arm>_seed<k>/` (run.json, checkpoints, TensorBoard logs); then a
report gives per arm the claim's error as mean ± std over seeds, the difference to its reference with a 95%
interval, the paper's own figure and section beside it, and a verdict in words ("same direction, interval
excludes 0", "no significant difference at this scale", "opposite direction"): report.md, report.csv and
PNG figures in the study folder. The same command after an interruption skips finished runs and resumes the
interrupted one; --report_only rebuilds the report from the runs on disk.

--scale=cpu (default) sizes the study for a 2-core CPU on the built-in Fashion-MNIST data (the settings are
printed); --scale=paper uses the papers' own settings on --data_dir (ImageNet, GPUs).
`tensorboard --logdir studies/<NAME>` compares all runs (one hparams table across arms and seeds).
"""

import os
import shlex
import sys
import time

from absl import flags

from keras_alexnet.cli import flaghelp
from keras_alexnet.errors import FlagError
from keras_alexnet.study import definitions

TAKES_ARGUMENTS = True

flags.DEFINE_enum("scale", "cpu", ["cpu", "paper"], "cpu: sized for a 2-core CPU on the built-in data; paper: "
                  "the papers' own settings (ImageNet via --data_dir, GPUs).", module_name=flaghelp.STUDY)
flags.DEFINE_integer("seeds", 3, "Seeds per arm (0, 1, ..., N-1); more seeds narrow the intervals.",
                     lower_bound=1, module_name=flaghelp.STUDY)
flags.DEFINE_string("data_dir", None, "Prepared data (shards, dataset.json, stats.npz); default at "
                    "--scale=cpu: the built-in Fashion-MNIST.", module_name=flaghelp.DATA)
flags.DEFINE_string("default_data_root", os.path.join("data", "fashion_mnist"), "Where the built-in "
                    "Fashion-MNIST is prepared.", module_name=flaghelp.DATA)
flags.DEFINE_integer("epochs", 0, "Epochs per run; 0: the scale's.", lower_bound=0,
                     module_name=flaghelp.OPTIMISATION)
flags.DEFINE_integer("steps_per_epoch", None, "Training steps per epoch; absent: the scale's (0: whole "
                     "passes).", lower_bound=0, module_name=flaghelp.OPTIMISATION)
flags.DEFINE_string("studies_dir", "studies", "Folder holding the studies: studies/<NAME> (cpu scale) or "
                    "studies/<NAME>_paper.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_boolean("report_only", False, "Only rebuild the report and figures from the runs on disk.",
                     module_name=flaghelp.OUTPUTS)
FLAGS = flags.FLAGS


def validate(argv):
    """The study name, the data and the studies folder, checked before TensorFlow is imported."""
    from keras_alexnet import outputs
    from keras_alexnet.cli import flagdefs

    if len(argv) != 1:
        *others, last = definitions.STUDIES
        raise FlagError(f"give one study name: {', '.join(others)} or {last}")
    definitions.get(argv[0])
    if FLAGS.scale == "paper" and not FLAGS.data_dir and not FLAGS.report_only:
        raise FlagError("--scale=paper needs --data_dir (ImageNet prepared with `main.py prepare` and `main.py stats`)")
    if FLAGS.report_only:
        return
    if FLAGS.data_dir is not None:
        if not os.path.isdir(FLAGS.data_dir):
            raise FlagError(f"--data_dir={FLAGS.data_dir}: no such folder")
        flagdefs.check_shards(FLAGS.data_dir, "train")
    outputs.check_writable_dir(FLAGS.studies_dir, "studies_dir")


def study_dir(name: str) -> str:
    return os.path.join(FLAGS.studies_dir, name if FLAGS.scale == "cpu" else f"{name}_{FLAGS.scale}")


def _overrides(data_dir: str) -> dict:
    values = {"data_dir": data_dir}
    if FLAGS.epochs:
        values["epochs"] = FLAGS.epochs
    if FLAGS.steps_per_epoch is not None:
        values["steps_per_epoch"] = FLAGS.steps_per_epoch
    return values


def _print(message):
    print(message, flush=True)


def run(argv):
    from keras_alexnet.errors import Interrupted
    from keras_alexnet.study import report, runner

    study = definitions.get(argv[0])
    scale = study.scales[FLAGS.scale]
    folder = study_dir(study.name)
    header = f"# Study {study.name}, {scale.name} scale\n\n{study.description}\n\n{scale.description}."
    if not FLAGS.report_only:
        data_dir = FLAGS.data_dir
        if data_dir is None:
            from pipelines.default_data import ensure_default_data

            data_dir = ensure_default_data(FLAGS.default_data_root)  # 72 px frames, cropped or rescaled by each study
        plan = runner.Plan(study, scale, tuple(range(FLAGS.seeds)), folder, _overrides(data_dir))
        runs = plan.runs()
        _print(f"Study {study.name} ({scale.name} scale): {len(study.trained_arms())} trained arms x {FLAGS.seeds} "
               f"seeds = {len(runs)} runs in {folder}/\n  {scale.description}\n  base settings: "
               + " ".join(f"--{k}={v}" for k, v in dict(scale.settings, **plan.overrides).items())
               + "\n  arms: " + "; ".join(f"{a.name} ({a.description})" for a in study.arms))
        command = shlex.join(["python", "main.py", "study"] + sys.argv[2:])
        try:
            runner.run_study(plan, printer=_print, command=command)
        except KeyboardInterrupt:
            raise Interrupted(f"study {study.name} stopped; rerun the same command to resume (finished runs are "
                              "skipped)") from None
        except Exception as error:  # TrainingInterrupted: the run saved a checkpoint
            from keras_alexnet.training.run import TrainingInterrupted

            if isinstance(error, TrainingInterrupted):
                raise Interrupted(f"{error}; rerun the same command to resume (finished runs are skipped)") from None
            raise
    results = runner.collect(folder)
    if not results:
        raise FlagError(f"{folder}: no finished runs to report")
    record = runner.read_study_file(folder) or {}
    versions = sorted({i.get("code_version", "") for i in record.get("invocations", [])} - {""})
    seeds = sorted({seed for _, seed in results})
    header += (f"\n\nSeeds: {', '.join(map(str, seeds))}. Code: {', '.join(versions) or 'unknown'}. "
               f"Report made {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    text, paths = report.write_report(study, folder, results, scale.error_threshold, header)
    _print(text)
    _print("wrote " + ", ".join(paths) + f"\nTensorBoard: tensorboard --logdir {folder}")
