"""The callbacks of a training run, chosen from its `TrainConfig` (one place that wires `callbacks/`).

Every process: dropped-record reports, the NaN guard, throughput, the learning-rate schedule (AlexNet §5's
plateau division, or warm-up + decay). The chief only: 10-crop validation (AlexNet §4.1), the progress
display, `metrics.csv`, TensorBoard scalars, conv1 kernels (AlexNet Figure 3, nets with towers' family),
a batch of augmented training inputs (AlexNet §4.1, `pipelines.preview`) and hyper-parameters, and
`--export_best` publishing.
"""

import dataclasses
import os
import sys

from keras_alexnet import metric_names, runs
from keras_alexnet.training.config import TrainConfig


@dataclasses.dataclass
class CallbackSet:
    callbacks: list
    ten_crop: object  # the TenCropEvaluation callback (its `final` result), None off the chief
    log_dir: str
    trial: str  # the run's name: its TensorBoard folder under log_dir and its hparams trial id

    def final_summaries(self, epoch, validation, test):
        """The end-of-training 10-crop errors in TensorBoard (the trial's `validation_10crop` and
        `test_10crop` runs), also when 10-crop evaluation ran only at the end. [AlexNet §4.1]"""
        from callbacks.summaries import run_name, write_final_errors

        for split, values in (("validation", validation), ("test", test)):
            if values:
                write_final_errors(self.log_dir, self.trial, run_name(split, "ten_crop"), epoch, values)


# What the hparams table shows first for a run alone (nothing to tell apart): what the model is, how
# wide, and the recipe's learning rate, batch and length (AlexNet §5).
KEY_HPARAMS = ("architecture", "width", "learning_rate", "batch_size", "epochs")


def hparams(config: TrainConfig, replicas) -> dict:
    """The run's settings as flat hyper-parameters for TensorBoard, each with its own type (booleans as
    booleans, counts as integers, rates as floats, choices as strings); `replicas` None leaves it out."""
    values = {"architecture": config.model.architecture}
    for part in (config.model, config.optimizer, config.schedule):
        values.update(dataclasses.asdict(part))
    data = config.data
    jitter = data.scale_jitter
    values.update(image_size=data.image_size, resize_size=data.resize_size, pca_jitter_std=data.pca_jitter_std,
                  mean=data.mean, batch_size=data.batch_size,
                  scale_jitter="none" if jitter is None else ",".join(map(str, jitter)) if isinstance(
                      jitter, (tuple, list)) else str(jitter),
                  input_scale=config.input_scale, strategy=config.strategy, mixed_precision=config.mixed_precision,
                  seed=config.seed, replicas=replicas)
    return {k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))}


def hparams_shown_first(config: TrainConfig, values: dict) -> list:
    """The hyper-parameters the hparams table shows first (`callbacks.summaries.hparam_infos`): those
    whose value differs between this run and the runs beside it (the folder holding its run folder:
    `runs/`, or a study's arms and seeds), else `KEY_HPARAMS`. Folders without a readable `run.json` of
    a training run are passed over."""
    from keras_alexnet.errors import UserError

    here = os.path.abspath(config.run_dir)
    parent = os.path.dirname(here)
    differing = set()
    for name in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        folder = os.path.join(parent, name)
        if folder == here or not os.path.isdir(folder):
            continue
        try:
            record = runs.read_record(folder)
            other = hparams(TrainConfig.from_dict(record.config), None) if record and record.config else None
        except (UserError, ValueError):
            continue
        if other is not None:
            differing |= {key for key, value in values.items() if key in other and other[key] != value}
    return sorted(differing) or [key for key in KEY_HPARAMS if key in values]


def training_callbacks(config: TrainConfig, *, chief, log_dir, steps_per_epoch, replicas, dropped, printer,
                       ten_crop_dataset, export_settings, val_examples=None, lost=None,
                       should_stop=None) -> CallbackSet:
    """The callbacks for `config` (see the module docstring); `val_examples`: the validation split's size
    (the 10-crop progress line's total); `should_stop`: asked between the 10-crop evaluation's batches
    (a stop event's `is_set`)."""
    from callbacks.augmented_inputs import AugmentedInputs
    from callbacks.conv1_images import Conv1Images
    from callbacks.csv_log import MetricsCSV
    from callbacks.dropped_records import DroppedRecords
    from callbacks.export_best import ExportBest
    from callbacks.nan_guard import NanGuard
    from callbacks.lr_schedules import make_schedule
    from callbacks.summaries import HParams, ScalarSummaries, run_name
    from callbacks.ten_crop import TenCropEvaluation
    from callbacks.throughput import Progress, Throughput

    schedule = config.schedule
    batch = config.data.batch_size
    throughput = Throughput(batch)
    found = [DroppedRecords(dropped, printer, lost), NanGuard(), throughput]
    rate_schedule = make_schedule(schedule, config.optimizer.learning_rate, steps_per_epoch, printer)
    if rate_schedule is not None:
        found.append(rate_schedule)
    ten_crop = None
    run_dir = config.run_dir
    trial = os.path.basename(run_dir)
    if chief:
        from pipelines.preview import augmentations, augmented_batch

        settings = hparams(config, replicas)

        ten_crop = TenCropEvaluation(ten_crop_dataset, every_n_epochs=config.ten_crop_every, printer=printer,
                                     examples=val_examples, should_stop=should_stop)
        # First: a 10-crop evaluation stopped by Ctrl-C leaves every other callback's epoch end undone,
        # so the epoch's end is run whole when the run resumes (the plateau count is not taken twice).
        found.insert(0, ten_crop)
        found += [Progress(steps_per_epoch, schedule.epochs, throughput, printer,
                           bar=config.progress and sys.stdout.isatty()),
                  MetricsCSV(os.path.join(run_dir, runs.METRICS_FILE)),
                  ScalarSummaries(log_dir, trial, update_freq=config.log_every_steps),
                  HParams(log_dir, settings, trial, test_run=run_name(config.test_split, "ten_crop")
                          if config.test_split else None, shown_first=hparams_shown_first(config, settings)),
                  AugmentedInputs(lambda: augmented_batch(config.input_for("train", training=True)), log_dir, trial,
                                  applied=augmentations(config.input_for("train", training=True)))]
        if config.spec.family == "alexnet":
            found.append(Conv1Images(log_dir, trial))
        if config.export_best:
            found.append(ExportBest(config.export_dir, config.run_name, monitor=metric_names.VAL_TOP1_ERROR,
                                    input_scale=config.input_scale, **export_settings))
    return CallbackSet(found, ten_crop, log_dir, trial)
