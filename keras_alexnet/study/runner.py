"""Runs a study: every training arm x every seed as a normal `train(config)` run, then its measures.

Layout (one TensorBoard logdir for the whole study: `tensorboard --logdir studies/<name>` shows every run;
a run's name `<arm>_seed<k>` is its hparams trial id, so the hparams table has one row per arm and seed):

    studies/<name>/invocations/<time>_<host>_<pid>.json   one per invocation: the arms' settings, seeds,
                                                     scale, shard, command and code version
    studies/<name>/<arm>_seed<k>/                    a run folder (run.json, checkpoints/, logs/, metrics.csv)
    studies/<name>/<arm>_seed<k>/study_result.json   the run's measures and per-epoch history, when done

Resumable: a run with `study_result.json` (made with the same settings) is skipped; a run folder without
it is resumed by `train` from its last checkpoint. Runs go seed by seed (all arms of seed 0 first), so an
interrupted study already holds whole comparisons (arms are compared seed by seed: the same seed gives
every arm the same data order and augmentation).

Several machines sharing the studies folder: each runs a shard of the runs (`Plan.shard`, `sharding.py`);
no two invocations write the same file (each its own invocation record and run folders), and
`read_study_record` merges the invocation records.
"""

import dataclasses
import json
import os
import socket
import subprocess
import time
from typing import Callable, Optional

from keras_alexnet import atomic, metric_names, runs
from keras_alexnet.errors import FlagError, UserError
from keras_alexnet.study.definitions import Arm, PerScale, RunOf, Scale, Study
from keras_alexnet.study.sharding import Shard, shard_runs

INVOCATIONS_DIR = "invocations"
LEGACY_STUDY_FILE = "study.json"  # the single record of studies run before invocation records
RESULT_FILE = "study_result.json"
# Run settings every study run takes: no export or test split (the claims are measured on validation).
RUN_SETTINGS = {"export": False, "test_split": "", "ten_crop_every": 0, "progress": False,
                "checkpoint_every_steps": 0}


@dataclasses.dataclass
class Plan:
    """One invocation of a study: which scale, which seeds, where, the user's overrides (flat settings
    applied to the scale's base, under every arm's own overlay; e.g. data_dir), and its shard of the runs."""

    study: Study
    scale: Scale
    seeds: tuple
    study_dir: str
    overrides: dict = dataclasses.field(default_factory=dict)
    shard: Shard = Shard()

    def run_dir(self, arm_name: str, seed: int) -> str:
        return os.path.join(self.study_dir, run_name(arm_name, seed))

    def values(self, arm: Arm, seed: int) -> dict:
        """The flat settings of `arm`'s run with `seed`."""
        values = dict(self.scale.settings, **self.overrides)
        for name, value in arm.overlay.items():
            if isinstance(value, RunOf):
                value = self.run_dir(value.arm, seed)
            elif isinstance(value, PerScale):
                value = value.value(self.scale.name)
            values[name] = value
        values.update(RUN_SETTINGS, seed=seed, runs_dir=self.study_dir, run_name=run_name(arm.name, seed))
        return values

    def config(self, arm: Arm, seed: int):
        from keras_alexnet.training.config import config_from_values

        return config_from_values(self.values(arm, seed))

    def runs(self) -> list:
        """(arm, seed) of every training run, seed by seed."""
        return [(arm, seed) for seed in self.seeds for arm in self.study.trained_arms()]

    def shard_runs(self) -> list:
        """(arm, seed) of the runs this invocation's shard trains, in order."""
        return shard_runs(self.runs(), self.shard)


def run_name(arm_name: str, seed: int) -> str:
    """The run folder's name: unique in the study (TensorBoard's hparams trial id is the run's name)."""
    return f"{arm_name}_seed{seed}"


def code_version() -> str:
    """`git describe --always --dirty` of the source tree when it is a git checkout, else the package version."""
    from keras_alexnet import __version__

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                                   capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    if described.returncode != 0 or not described.stdout.strip():
        return __version__
    return f"{__version__} ({described.stdout.strip()})"


def _jsonable(value):
    if isinstance(value, RunOf):
        return f"run of arm {value.arm}, same seed"
    if isinstance(value, PerScale):
        return {k: _jsonable(v) for k, v in value.values}
    if isinstance(value, tuple):
        return list(value)
    return value


def write_invocation_record(plan: Plan, command: str = "") -> str:
    """This invocation's record `invocations/<time>_<host>_<pid>.json`: the study's arms (settings,
    measure, reference, the paper's claim), the scale and its base settings, the overrides, seeds, shard,
    command and code version. A file of its own, so shards starting together on several machines never
    write the same file; `read_study_record` merges them."""
    study = plan.study
    arms = []
    for arm in study.arms:
        entry = {"name": arm.name, "description": arm.description, "measure": arm.measure,
                 "reference": study.reference_of(arm).name if arm is not study.baseline else None,
                 "reference_measure": arm.reference_measure or arm.measure, "trains": arm.trains,
                 "overlay": {k: _jsonable(v) for k, v in arm.overlay.items()},
                 "claim": dataclasses.asdict(arm.claim) if arm.claim else None}
        if arm.trains:
            entry["settings"] = {k: _jsonable(v) for k, v in plan.values(arm, plan.seeds[0]).items()
                                 if k not in ("seed", "run_name")}
        arms.append(entry)
    now = time.time()
    host = socket.gethostname()
    invocation = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "code_version": code_version(),
                  "seeds": list(plan.seeds), "shard": str(plan.shard), "host": host, "command": command}
    record = {"study": study.name, "description": study.description, "scale": plan.scale.name,
              "scale_description": plan.scale.description,
              "base_settings": {k: _jsonable(v) for k, v in plan.scale.settings.items()},
              "overrides": {k: _jsonable(v) for k, v in plan.overrides.items()},
              "error_threshold": plan.scale.error_threshold, "arms": arms, "invocation": invocation}
    folder = os.path.join(plan.study_dir, INVOCATIONS_DIR)
    os.makedirs(folder, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:]
    name = f"{stamp}_{host}_{os.getpid()}.json"
    return atomic.write_json(os.path.join(folder, name), record)


def _read_json(path: str, what: str) -> Optional[dict]:
    """The JSON object in `path`, None if there is no such file; UserError naming `what` it should be."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a {what} ({str(error).splitlines()[0]})") from None


def read_study_record(study_dir: str) -> Optional[dict]:
    """The study's record merged from its invocation records (and a `study.json` of an older study):
    the newest invocation's settings, every invocation in time order under "invocations", the union of
    their seeds under "seeds"; None when there is none."""
    records = [_read_json(os.path.join(study_dir, LEGACY_STUDY_FILE), "study record")]
    folder = os.path.join(study_dir, INVOCATIONS_DIR)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json")) if os.path.isdir(folder) else []
    records += [_read_json(os.path.join(folder, name), "study invocation record") for name in names]
    records = [r for r in records if r is not None]
    if not records:
        return None
    invocations = []
    for record in records:
        invocations += record.get("invocations", []) + ([record["invocation"]] if "invocation" in record else [])
    merged = {k: v for k, v in records[-1].items() if k != "invocation"}
    merged["invocations"] = sorted(invocations, key=lambda i: i.get("time", ""))
    merged["seeds"] = sorted({seed for i in invocations for seed in i.get("seeds", [])}
                             | set(merged.get("seeds", [])))
    return merged


def missing_runs(study: Study, seeds, results: dict) -> list:
    """(arm name, seed) of the trained runs of `seeds` that have no result in `results` yet."""
    return [(arm.name, seed) for seed in seeds for arm in study.trained_arms() if (arm.name, seed) not in results]


def read_result(run_dir: str) -> Optional[dict]:
    return _read_json(os.path.join(run_dir, RESULT_FILE), "study result")


def _write_result(run_dir: str, result: dict) -> None:
    path = os.path.join(run_dir, RESULT_FILE)
    atomic.write_json(path, result)


def _history(run_dir: str) -> dict:
    """Per-epoch values by metric from the run's `metrics.csv` (the on-disk record of every epoch)."""
    from callbacks.csv_log import read_rows

    history = {}
    for row in read_rows(os.path.join(run_dir, runs.METRICS_FILE)):
        for key, value in row.items():
            if key != "epoch" and value not in ("", None):
                history.setdefault(key, []).append(float(value))
    return history


def _ten_crop_of(result) -> Optional[dict]:
    """The training run's final 10-crop validation errors, as {"top1_error", "top5_error"} (fractions)."""
    values = (result.validation or {}).get("ten_crop") if result is not None else None
    if not values:
        return None
    return {name: float(values.get(name, values.get(metric_names.TEN_CROP_PREFIX + name)))
            for name in metric_names.ERRORS}


def measure_run(run_dir: str, protocols, split: str, max_examples: int = 0, batch_size: int = 64) -> dict:
    """Top-1/top-5 error (fractions) and count of the run's saved model under each of `protocols` on
    `split`, and under each combination of them (`pipelines.eval_protocols.COMBINATIONS`: dense and
    multi_crop together also give "dense+multi_crop", VGG Table 5), at the run's own test scale on the data
    it was trained on (`keras_alexnet.evaluation.engine.evaluate`)."""
    from keras_alexnet.evaluation.engine import EvalConfig, evaluate
    from pipelines.eval_protocols import combinations_of

    result = evaluate(EvalConfig(models=(run_dir,), split=split, protocols=tuple(protocols), batch_size=batch_size,
                                 max_examples=max_examples or None), printer=lambda line: None)
    model = result.runs[0].model
    return {measure: result.errors(model, measure)
            for measure in list(protocols) + [c.name for c in combinations_of(protocols)]}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_study(plan: Plan, train: Optional[Callable] = None, measure: Callable = measure_run,
              printer: Callable[[str], None] = print, command: str = "") -> dict:
    """Trains and measures every run of `plan`'s shard not done yet; returns {(arm, seed): result dict}.

    `train` is `keras_alexnet.training.run.train` unless given (tests inject a stand-in); `measure` runs
    the study's extra protocols on a trained run. TrainingInterrupted from `train` propagates (the run
    resumes from its checkpoint next time).
    """
    if train is None:
        from keras_alexnet.training.run import train
    from keras_alexnet.training.run import check_resume
    from keras_alexnet import runs

    plan.study.validate()
    write_invocation_record(plan, command)
    todo = plan.shard_runs()
    tag = f"[study {plan.study.name}" + ("]" if plan.shard.whole else f", shard {plan.shard}]")
    results, durations = {}, []
    for index, (arm, seed) in enumerate(todo, start=1):
        run_dir = plan.run_dir(arm.name, seed)
        config = plan.config(arm, seed)
        done = read_result(run_dir)
        if done is not None:
            record = runs.read_record(run_dir)
            if record is not None and record.config:
                # FlagError naming a setting the finished run differs in; a run of other length is refused too
                epochs = check_resume(config.resolve(), record).get("schedule.epochs")
                if epochs:
                    raise FlagError(f"--epochs={epochs[1]}: {run_dir} finished with {epochs[0]} epochs; rerun "
                                    "with its epochs or give another --studies_dir")
            results[(arm.name, seed)] = done
            durations.append(done.get("seconds", 0.0))
            printer(f"{tag} run {index} of {len(todo)}: {arm.name} seed {seed}: done earlier, "
                    "skipped")
            continue
        remaining = len(todo) - index + 1
        per_run = sum(durations) / len(durations) if durations else plan.scale.seconds_per_run
        eta = f"ETA {_minutes(per_run * remaining)}" if per_run else "ETA after the first run"
        state = "resuming" if os.path.isdir(run_dir) else "starting"
        printer(f"{tag} run {index} of {len(todo)}: {arm.name} seed {seed} ({state}; "
                f"{remaining} to go, {eta}) -> {run_dir}")
        start = time.time()
        result = train(config, printer=lambda line: printer("  " + line))
        ten_crop = _ten_crop_of(result)
        protocols = [p for p in plan.study.protocols if p != "ten_crop"] + ([] if ten_crop else ["ten_crop"])
        measures = measure(run_dir, protocols, config.validation_split, plan.study.eval_examples) if protocols else {}
        if ten_crop:
            measures["ten_crop"] = ten_crop
        seconds = time.time() - start
        durations.append(seconds)
        record = runs.read_record(run_dir)
        done = {"arm": arm.name, "seed": seed, "measures": measures, "history": _history(run_dir),
                "num_classes": record.num_classes if record else None,
                "epochs_run": int(getattr(result, "epochs_run", 0) or 0), "seconds": seconds,
                "code_version": code_version()}
        _write_result(run_dir, done)
        results[(arm.name, seed)] = done
        printer(f"{tag} run {index} of {len(todo)}: {arm.name} seed {seed} done in "
                f"{_minutes(seconds)}: " + ", ".join(
                    f"{name} top-1 {100 * m[metric_names.TOP1_ERROR]:.2f}%" for name, m in sorted(measures.items())))
    return results


def collect(study_dir: str) -> dict:
    """{(arm, seed): result} of every finished run on disk under `study_dir`."""
    if not os.path.isdir(study_dir):
        raise FlagError(f"{study_dir}: no such study folder (run the study first)")
    results = {}
    for name in sorted(os.listdir(study_dir)):
        arm, _, seed = name.rpartition("_seed")
        if arm and seed.isdigit():
            result = read_result(os.path.join(study_dir, name))
            if result is not None:
                results[(arm, int(seed))] = result
    return results
