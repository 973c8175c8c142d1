"""`python main.py study NAME`: re-measures the papers' claims (NAME: alexnet, vgg or precision).

Each arm (the baseline with one of the paper's choices changed) is trained with several seeds, each a
normal training run in `studies/<NAME>/<arm>_seed<k>/` (run.json, checkpoints, TensorBoard logs); then a
report gives per arm the claim's error as mean ± std over seeds, the difference to its reference with a 95%
interval, the paper's own figure and section beside it, and a verdict in words ("same direction, interval
excludes 0", "no significant difference at this scale", "opposite direction"): report.md, report.csv and
PNG figures in the study folder. The same command after an interruption skips finished runs and resumes the
interrupted one; --report_only rebuilds the report from the runs on disk.

--shard=i/N runs only shard i of N of the arm x seed runs (`keras_alexnet.study.sharding`), so a job array
on several machines sharing the studies folder runs the study between them; a shard writes no report:
--report_only merges the finished runs of every shard and names the missing ones.

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
from keras_alexnet.study import definitions, sharding
from keras_alexnet.training import presets

TAKES_ARGUMENTS = True

flags.DEFINE_enum("scale", definitions.SCALES[0], list(definitions.SCALES), "cpu: sized for a 2-core CPU on the "
                  "built-in data; paper: the papers' own settings (ImageNet via --data_dir, GPUs).",
                  module_name=flaghelp.STUDY)
flags.DEFINE_integer("seeds", 3, "Seeds per arm (0, 1, ..., N-1); more seeds narrow the intervals.",
                     lower_bound=1, module_name=flaghelp.STUDY)
flags.DEFINE_string("data_dir", None, "Prepared data (shards, dataset.json, stats.npz); default at "
                    "--scale=cpu: the built-in Fashion-MNIST.", module_name=flaghelp.DATA)
flags.DEFINE_string("default_data_root", presets.DEFAULT_DATA_ROOT, "Where the built-in "
                    "Fashion-MNIST is prepared.", module_name=flaghelp.DATA)
flags.DEFINE_integer("epochs", 0, "Epochs per run; 0: the scale's.", lower_bound=0,
                     module_name=flaghelp.OPTIMISATION)
flags.DEFINE_integer("steps_per_epoch", None, "Training steps per epoch; absent: the scale's (0: whole "
                     "passes).", lower_bound=0, module_name=flaghelp.OPTIMISATION)
flags.DEFINE_string("studies_dir", "studies", "Folder holding the studies: studies/<NAME> (cpu scale) or "
                    "studies/<NAME>_paper.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_boolean("report_only", False, "Only rebuild the report and figures from the runs on disk "
                     "(every shard's), naming the runs still missing.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_string("shard", None, "i/N: run only shard i (0 to N-1) of N of the arm x seed runs, e.g. one "
                    "task of a job array on machines sharing --studies_dir; no report (--report_only merges the "
                    "shards).", module_name=flaghelp.DISTRIBUTION)
FLAGS = flags.FLAGS


def validate(argv):
    """The study name, the data and the studies folder, checked before TensorFlow is imported."""
    from keras_alexnet import outputs
    from keras_alexnet.cli import flagdefs

    if len(argv) != 1:
        *others, last = definitions.STUDIES
        raise FlagError(f"give one study name: {', '.join(others)} or {last}")
    study = definitions.get(argv[0])
    if FLAGS.scale not in study.scales:
        raise FlagError(f"--scale={FLAGS.scale}: study {study.name} runs at {', '.join(study.scales)}")
    if FLAGS.shard is not None:
        if FLAGS.report_only:
            raise FlagError(f"--shard={FLAGS.shard}: --report_only reports every shard's runs; give one of the two")
        try:
            sharding.parse_shard(FLAGS.shard)
        except ValueError as error:
            raise FlagError(f"--shard={FLAGS.shard}: {error}") from None
    if not study.scales[FLAGS.scale].default_data and not FLAGS.data_dir and not FLAGS.report_only:
        raise FlagError(f"--scale={FLAGS.scale} needs --data_dir (ImageNet prepared with `main.py prepare` and "
                        "`main.py stats`)")
    if FLAGS.report_only:
        return
    if FLAGS.data_dir is not None:
        if not os.path.isdir(FLAGS.data_dir):
            raise FlagError(f"--data_dir={FLAGS.data_dir}: no such folder")
        flagdefs.check_shards(FLAGS.data_dir, "train")
    outputs.check_writable_dir(FLAGS.studies_dir, "studies_dir")


def study_dir(name: str) -> str:
    return os.path.join(FLAGS.studies_dir, name if FLAGS.scale == definitions.SCALES[0] else f"{name}_{FLAGS.scale}")


def _overrides(data_dir: str) -> dict:
    values = {"data_dir": data_dir}
    if FLAGS.epochs:
        values["epochs"] = FLAGS.epochs
    if FLAGS.steps_per_epoch is not None:
        values["steps_per_epoch"] = FLAGS.steps_per_epoch
    return values


def _report_command(name: str) -> str:
    """The `--report_only` command for this study folder."""
    words = ["python", "main.py", "study", name, "--report_only"]
    for flag in ("scale", "studies_dir"):
        if FLAGS[flag].present:
            words.append(f"--{flag}={FLAGS[flag].value}")
    return shlex.join(words)


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
        shard = sharding.parse_shard(FLAGS.shard) if FLAGS.shard else sharding.Shard()
        plan = runner.Plan(study, scale, tuple(range(FLAGS.seeds)), folder, _overrides(data_dir), shard)
        runs = plan.runs()
        mine = "" if shard.whole else (f"\n  shard {shard}: {len(plan.shard_runs())} of them: "
                                       + ", ".join(runner.run_name(a.name, s) for a, s in plan.shard_runs()))
        _print(f"Study {study.name} ({scale.name} scale): {len(study.trained_arms())} trained arms x {FLAGS.seeds} "
               f"seeds = {len(runs)} runs in {folder}/{mine}\n  {scale.description}\n  base settings: "
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
    record = runner.read_study_record(folder) or {}
    missing = runner.missing_runs(study, record.get("seeds") or range(FLAGS.seeds), results)
    unfinished = (f"{len(missing)} run(s) not finished yet: "
                  + ", ".join(runner.run_name(arm, seed) for arm, seed in missing)) if missing else ""
    if FLAGS.shard:
        _print(f"Shard {FLAGS.shard} of study {study.name} done. " + (f"Study-wide, {unfinished}. " if missing else "")
               + "When every shard is done, the report: " + _report_command(study.name))
        return
    if not results:
        raise FlagError(f"{folder}: no finished runs to report")
    if missing:
        _print(f"Reporting {len(results)} finished runs; {unfinished}")
    versions = sorted({i.get("code_version", "") for i in record.get("invocations", [])} - {""})
    seeds = sorted({seed for _, seed in results})
    header += (f"\n\nSeeds: {', '.join(map(str, seeds))}. Code: {', '.join(versions) or 'unknown'}. "
               f"Report made {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
               + (f" Partial: {unfinished}." if missing else ""))
    text, paths = report.write_report(study, folder, results, scale.error_threshold, header)
    _print(text)
    _print("wrote " + ", ".join(paths) + f"\nTensorBoard: tensorboard --logdir {folder}")
