"""The run folder contract: what a trained model carries so that every later command uses its settings.

A run folder (`runs/<name>/`, made by `train` or `import_weights`) holds:

- `run.json` (`RunRecord`): the architecture, the classes and their names, the crop size, the test scale
  Q (AlexNet §2's 256 framing, or VGG §3.2's single-scale Q), the mean subtracted and how it was
  obtained, the label offset and data source, the resolved `TrainConfig` (None for imported weights),
  library versions, and every resume with the settings it changed;
- `stats.npz`: the statistics the model was trained with (mean image at the run's frame size, mean RGB,
  RGB PCA), so evaluation subtracts the training mean even when it reads other data;
- `model.keras` (at the end of training), `checkpoints/`, `logs/`, `metrics.csv`.

`evaluate`, `export`, `predict`, `figures` and `neighbors` call `eval_settings(path, ...)` on the model
they are given and use its image size, test scale, mean and class names unless a flag overrides them;
an override the model cannot take is refused in one line.
"""

import dataclasses
import datetime
import json
import os
import platform
from typing import Optional

from keras_alexnet import atomic
from keras_alexnet.errors import FlagError, UserError
from pipelines import records

RUN_FILE = "run.json"
STATS_FILE = records.STATS_FILE  # the statistics file of a data folder, read by the same `pipelines.stats.read_stats`
MODEL_FILE = "model.keras"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"  # TensorBoard
METRICS_FILE = "metrics.csv"
FORMAT = 1


@dataclasses.dataclass
class RunRecord:
    """The resolved facts of a run (see the module docstring); `run.json` on disk."""

    architecture: str
    num_classes: int
    class_names: list
    image_size: int
    test_scale: int
    mean: str  # "image" (AlexNet §2), "rgb" (VGG §2.1) or "none"
    label_offset: int = 0
    data_source: str = ""
    mean_note: str = ""  # how the mean was obtained (e.g. resized from another frame, imported weights)
    config: Optional[dict] = None  # TrainConfig.to_dict(); None for imported weights
    origin: str = "train"  # "train" or "import"
    model_config: Optional[dict] = None  # ModelConfig as a dict (imported runs; trained runs keep it in config["model"])
    weights_from: Optional[dict] = None  # a run started from another run's weights (training/finetune.py)
    versions: dict = dataclasses.field(default_factory=dict)
    created: str = ""
    resumes: list = dataclasses.field(default_factory=list)
    finished: Optional[dict] = None  # set by `train` at a run's end (keras_alexnet/training/run.py)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)


def library_versions() -> dict:
    """Versions of what produced a run (TensorFlow/Keras only when already imported)."""
    import sys

    from keras_alexnet import __version__

    versions = {"keras_alexnet": __version__, "python": platform.python_version()}
    for module in ("tensorflow", "keras", "numpy"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    return versions


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_file(run_dir: str) -> str:
    return os.path.join(run_dir, RUN_FILE)


def write_record(run_dir: str, record: RunRecord) -> str:
    """Writes `run.json` atomically (temporary file + rename); returns its path."""
    path = run_file(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    record.versions = record.versions or library_versions()
    record.created = record.created or now()
    return atomic.write_text(path, record.to_json(), what="the run record")


def read_record(run_dir: str) -> Optional[RunRecord]:
    """The `RunRecord` of `run_dir`, None when it has no `run.json`; UserError naming a damaged file."""
    path = run_file(run_dir)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        return RunRecord(**values)
    except (OSError, ValueError, TypeError) as error:
        raise UserError(f"{path}: not a run record ({str(error).splitlines()[0]})") from None


def resumable_record(run_dir: str) -> Optional[RunRecord]:
    """The `RunRecord` a new `train` into `run_dir` continues: None when the folder has none, or when an
    earlier start of a training run stopped before its first checkpoint (nothing to resume, so the settings
    given now apply instead of the recorded ones). Imported weights are returned (training into them is
    refused)."""
    record = read_record(run_dir)
    if record is not None and record.origin == "train" and not os.path.isfile(
            os.path.join(run_dir, CHECKPOINTS_DIR, "checkpoint")):
        return None
    return record


def model_config_of(record: "RunRecord") -> Optional[dict]:
    """The ModelConfig (as a dict) the run's model was built with: imported runs' model_config, trained runs' config["model"]."""
    if record.model_config is not None:
        return record.model_config
    return (record.config or {}).get("model")


def write_stats(run_dir: str, stats: dict) -> str:
    """The statistics the run uses, as `<run_dir>/stats.npz` (the keys of `pipelines.stats`)."""
    path = os.path.join(run_dir, STATS_FILE)
    os.makedirs(run_dir, exist_ok=True)
    return atomic.write_npz(path, stats, what="the run's statistics")


# The settings of a recorded `TrainConfig` that are paths (data.cache: a file prefix when a string).
PATH_SETTINGS = ("data.data_dir", "data.stats_path", "data.tfds_data_dir", "data.tfds_manual_dir", "data.cache",
                 "warm_start", "init_from", "runs_dir", "export_dir")


def absolute_paths(config_dict: dict) -> dict:
    """A copy of `TrainConfig.to_dict()` with its `PATH_SETTINGS` absolute, as `run.json` records them:
    a relative path would mean something else to a command run from another folder."""
    copied = {key: dict(value) if isinstance(value, dict) else value for key, value in config_dict.items()}
    for setting in PATH_SETTINGS:
        *parents, leaf = setting.split(".")
        target = copied
        for parent in parents:
            target = target.get(parent) or {}
        if isinstance(target.get(leaf), str) and target[leaf]:
            target[leaf] = os.path.abspath(target[leaf])
    return copied


def recorded_source(source: str) -> str:
    """The data source as `run.json` records it: a data folder made absolute, a `tfds:NAME` kept."""
    return source if not source or source.startswith("tfds:") else os.path.abspath(source)


def resolve_recorded_path(run_dir: str, record: RunRecord, path: str) -> Optional[str]:
    """A path `record` (the run.json of `run_dir`) holds, as it names an existing file or folder from here;
    None when it names nothing that exists.

    Absolute paths are taken as they are. A relative one (recorded by an older version, relative to the
    folder `train` ran in) is tried relative to that folder, found by taking the recorded --runs_dir and
    run name off the end of the run folder's absolute path, then relative to the current folder."""
    if not path:
        return None
    candidates = [path]
    if not os.path.isabs(path):
        config = record.config or {}
        ran_in = _folder_train_ran_in(run_dir, config.get("runs_dir"), config.get("run_name"))
        candidates = ([os.path.join(ran_in, path)] if ran_in else []) + [path]
    return next((candidate for candidate in candidates if os.path.exists(candidate)), None)


def _folder_train_ran_in(run_dir: str, runs_dir: Optional[str], run_name: Optional[str]) -> Optional[str]:
    """The working folder of the `train` that made `run_dir` from a relative --runs_dir, None if unknown."""
    if not runs_dir or not run_name or os.path.isabs(runs_dir):
        return None
    tail = os.path.normpath(os.path.join(runs_dir, run_name)).split(os.sep)
    if ".." in tail:
        return None
    parts = os.path.abspath(run_dir).split(os.sep)
    if parts[-len(tail):] != tail:
        return None
    return os.sep.join(parts[:-len(tail)]) or os.sep


def run_dir_of(path: str) -> Optional[str]:
    """The run folder a model path belongs to: the folder itself, or the folder of `<run>/model.keras`
    (or of a checkpoint prefix in `<run>/checkpoints/`); None when there is no `run.json`."""
    candidates = [path, os.path.dirname(os.path.abspath(path)),
                  os.path.dirname(os.path.dirname(os.path.abspath(path)))]
    for candidate in candidates:
        if os.path.isdir(candidate) and os.path.isfile(run_file(candidate)):
            return candidate
    return None


@dataclasses.dataclass
class EvalSettings:
    """How to feed a trained model: crop size, test scale Q, the mean (kind and values), class names.

    `source` says where the settings came from (a run.json, a SavedModel's description, flags)."""

    image_size: int
    test_scale: int
    mean: str
    class_names: Optional[list]
    stats_path: Optional[str]
    source: str

    @property
    def mean_values(self):
        """The mean to subtract on the 0..255 scale: the mean image, the mean RGB, or None."""
        if self.mean == "none":
            return None
        from pipelines.stats import read_stats

        stats = read_stats(self.stats_path)
        if self.mean == "image" and "mean_image" in stats:
            return stats["mean_image"]
        if "mean_rgb" in stats:
            return stats["mean_rgb"]
        return stats["mean_image"].mean(axis=(0, 1))


def eval_settings(model_path: str, image_size: int, test_scale: Optional[int] = None, mean: Optional[str] = None,
                  data_dir: Optional[str] = None, scale_flag: str = "test_scale") -> EvalSettings:
    """The settings a trained model at `model_path` (input side `image_size`) is evaluated with.

    From its run folder's `run.json` (and the run's `stats.npz`) when it has one; otherwise from
    `data_dir`'s statistics with the test scale and mean recorded in an exported SavedModel's description
    or given explicitly (a bare `.keras` file carries neither). `test_scale` / `mean` override the recorded values; a scale smaller than the model's input,
    or a mean the model has no statistics for, is a FlagError naming the flag.
    """
    run_dir = run_dir_of(model_path)
    record = read_record(run_dir) if run_dir else None
    exported = None if record else _export_description(model_path)
    if exported:  # a SavedModel records its framing and mean kind; the mean values come from the data
        test_scale = test_scale or exported.get("resize_size")
        mean = mean or exported.get("mean")
    if record is not None:
        chosen_mean = mean or record.mean
        stats_path = os.path.join(run_dir, STATS_FILE)
        if chosen_mean != "none" and not os.path.isfile(stats_path):
            raise FlagError(f"--mean={chosen_mean}: {run_dir} has no {STATS_FILE}; use --mean=none")
        settings = EvalSettings(image_size, test_scale or record.test_scale, chosen_mean, record.class_names,
                                stats_path if chosen_mean != "none" else None, run_file(run_dir))
    else:
        if not test_scale or not mean:
            raise FlagError(f"{model_path} has no {RUN_FILE} (not a run folder): give --{scale_flag} and --mean "
                            "(the sizes and mean it was trained with)")
        stats_path = os.path.join(data_dir, records.STATS_FILE) if data_dir and mean != "none" else None
        if mean != "none" and not stats_path:
            raise FlagError(f"--mean={mean}: needs --data_dir with the training statistics ({records.STATS_FILE})")
        settings = EvalSettings(image_size, test_scale, mean, None, stats_path,
                                "the SavedModel's description" if exported else "flags")
    if settings.test_scale < image_size:
        raise FlagError(f"--{scale_flag}={settings.test_scale} is smaller than the model's input ({image_size})")
    return settings


def _export_description(model_path: str) -> Optional[dict]:
    """The description an export wrote (`keras_alexnet.export`), None for anything else."""
    from keras_alexnet.export import read_description, saved_model_dir

    folder = saved_model_dir(model_path) if os.path.isdir(model_path) else None
    return read_description(folder) if folder else None
