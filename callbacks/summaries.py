"""TensorBoard for a training run: the curves that matter first, one chart per quantity, and the run's
hyper-parameters beside its errors.

Layout under `log_dir` (a run's `logs/`): a folder named by the trial (the run name) holds the
hyper-parameters and the model's images; inside it one TensorBoard run per source of numbers, so that
a tag shared by several runs is one chart with a line per run:

    <trial>/                   hparams (trial id = run name, with metrics), weights/conv1_kernels
    <trial>/train              epoch/loss, epoch/top1_error, epoch/top5_error; training/learning_rate
                               (every step), training/images_per_sec, training/running_loss,
                               training/running_top1_error (every `update_freq` steps);
                               epoch/dropped_records (only in epochs that dropped some);
                               training_inputs/augmented
    <trial>/validation         epoch/loss, epoch/top1_error, epoch/top5_error (centre crop)
    <trial>/validation_10crop  epoch/top1_error, epoch/top5_error (AlexNet §4.1's ten crops)
    <trial>/test_10crop        the same on the test split, once at the end (`write_final_errors`)

TensorBoard sorts the tag groups (the part before "/") and opens the first two: `epoch` (loss, top-1
and top-5 error, AlexNet §6's measures) and `training` (learning rate per step, AlexNet §5's schedule;
images/s). The trial folder exists because TensorBoard's hparams plugin looks for a session's metrics
only in the session's own folder and below it: a session written at the root of the logdir (a run
named ".") finds none. Runs of a study side by side under one logdir are one hparams table, a row per
trial. The table's columns are the run's settings with their own types (a boolean is a boolean, a
count a number); the settings that tell the trials apart come first (`hparam_infos`), then the
errors (`hparam_metrics`: test and validation first).
"""

import os

import keras
import tensorflow as tf

from keras_alexnet import metric_names

TRAIN, VALIDATION, VALIDATION_10CROP = "train", "validation", "validation_10crop"
_EPOCH_RUNS = ((metric_names.VALIDATION_PREFIX, VALIDATION), (metric_names.TEN_CROP_PREFIX, VALIDATION_10CROP),
               ("", TRAIN))
_PER_STEP = ("learning_rate", "images_per_sec")  # written every step / every update_freq steps instead
_DESCRIPTIONS = {
    metric_names.LOSS: "cross-entropy, mean over the epoch [AlexNet §5]",
    metric_names.TOP1_ERROR: "fraction of images whose label is not the most probable [AlexNet §6]",
    metric_names.TOP5_ERROR: "fraction of images whose label is not among the five most probable [AlexNet §6]",
    "dropped_records": "training records skipped because their image could not be decoded",
}


def run_name(split: str, protocol: str) -> str:
    """The TensorBoard run of a split's errors under a test protocol: validation, test_10crop..."""
    return split if protocol == "center" else f"{split}_10crop" if protocol == "ten_crop" else f"{split}_{protocol}"


def trial_dir(log_dir: str, trial: str, run: str = "") -> str:
    """The folder of a TensorBoard run of `trial` (the trial's own folder for run "")."""
    return os.path.join(log_dir, trial, run) if run else os.path.join(log_dir, trial)


def default_trial(log_dir: str) -> str:
    """The trial name when none is given: the run folder's name (`runs/<name>/logs` -> <name>)."""
    return os.path.basename(os.path.dirname(os.path.abspath(log_dir)))


def write_final_errors(log_dir, trial, run, step, result) -> None:
    """Errors computed once after training (10-crop validation or test, AlexNet §4.1) as `epoch/...`
    points of `run` at `step` (the last epoch), e.g. run_name("test", "ten_crop")."""
    writer = tf.summary.create_file_writer(trial_dir(log_dir, trial, run))
    with writer.as_default():
        for key, value in result.items():
            name = key.rsplit(metric_names.TEN_CROP_PREFIX, 1)[-1]
            if name in metric_names.ERRORS:
                tf.summary.scalar(f"epoch/{name}", float(value), step=max(int(step), 1),
                                  description=_DESCRIPTIONS[name])
    writer.close()


class ScalarSummaries(keras.callbacks.Callback):
    """Epoch scalars into the train/validation/validation_10crop runs of `trial`; the learning rate at
    every step and images/s, running loss and top-1 error every `update_freq` steps (the step is the
    optimizer's iteration count, so a resumed run continues the same curves). `trial`: the run name
    (default: `default_trial(log_dir)`)."""

    def __init__(self, log_dir, trial=None, update_freq=100):
        super().__init__()
        self.log_dir = log_dir
        self.trial = trial or default_trial(log_dir)
        self.update_freq = update_freq
        self._writers = {}
        self._previous_step = None

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(trial_dir(self.log_dir, self.trial, run))
        return self._writers[run]

    def _global_step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = self._global_step()
        with self._writer(TRAIN).as_default():
            if "learning_rate" in logs:
                tf.summary.scalar("training/learning_rate", float(logs["learning_rate"]), step=step,
                                  description="learning rate of the step [AlexNet §5]")
            previous = step - 1 if self._previous_step is None else self._previous_step
            self._previous_step = step
            # A multiple of update_freq reached since the last batch end (several steps per call skip some).
            if self.update_freq and step // self.update_freq > previous // self.update_freq:
                if "images_per_sec" in logs:
                    tf.summary.scalar("training/images_per_sec", float(logs["images_per_sec"]), step=step,
                                      description="training images per second in the epoch so far")
                for key in (metric_names.LOSS, metric_names.TOP1_ERROR):
                    if key in logs:
                        tf.summary.scalar(f"training/running_{key}", float(logs[key]), step=step,
                                          description=f"{key}, mean over the epoch's steps so far")

    def on_epoch_end(self, epoch, logs=None):
        if "images_per_sec" in (logs or {}):  # the epoch's rate, also when it is shorter than update_freq
            with self._writer(TRAIN).as_default():
                tf.summary.scalar("training/images_per_sec", float(logs["images_per_sec"]), step=self._global_step(),
                                  description="training images per second in the epoch so far")
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if key in _PER_STEP or (key == "dropped_records" and not value):
                continue
            prefix, run = next((p, r) for p, r in _EPOCH_RUNS if key.startswith(p))
            name = key[len(prefix):]
            with self._writer(run).as_default():
                tf.summary.scalar(f"epoch/{name}", value, step=epoch + 1, description=_DESCRIPTIONS.get(name))
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def hparam_metrics(test_run=None):
    """The errors the hparams table shows for each trial, in the order of its columns: (run, tag, title).

    TensorBoard ticks the first five: the test errors (AlexNet §4.1's ten crops, when `test_run`, e.g.
    run_name("test", "ten_crop"), is given), the validation errors with ten crops and with the centre
    crop, then the train error."""
    top1, top5 = (f"epoch/{name}" for name in metric_names.ERRORS)
    found = []
    if test_run and test_run != VALIDATION_10CROP:
        split = test_run.replace("_10crop", "")
        found += [(test_run, top1, f"{split} top-1 error (10-crop)"),
                  (test_run, top5, f"{split} top-5 error (10-crop)")]
    return found + [(VALIDATION_10CROP, top1, "validation top-1 error (10-crop)"),
                    (VALIDATION_10CROP, top5, "validation top-5 error (10-crop)"),
                    (VALIDATION, top1, "validation top-1 error (centre)"),
                    (VALIDATION, top5, "validation top-5 error (centre)"),
                    (TRAIN, top1, "train top-1 error")]


def hparam_value(value):
    """A value TensorBoard's hparams take (bool, number, string): None -> "none", others as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "none" if value is None else str(value)


def hparam_infos(hparams: dict, shown_first=()):
    """The columns of the hparams table: one `HParamInfo` per hyper-parameter, typed by its value (bool,
    number, string). TensorBoard orders the columns by their `differs` flag, then by name, and ticks the
    first five: the flag is set on `shown_first` (the settings that tell the trials apart)."""
    from tensorboard.plugins.hparams import api_pb2

    def data_type(value):
        if isinstance(value, bool):
            return api_pb2.DATA_TYPE_BOOL
        return api_pb2.DATA_TYPE_FLOAT64 if isinstance(value, (int, float)) else api_pb2.DATA_TYPE_STRING

    return [api_pb2.HParamInfo(name=name, type=data_type(value), differs=name in shown_first)
            for name, value in hparams.items()]


class HParams(keras.callbacks.Callback):
    """The run's settings as one hparams session named `trial` (the run name), with the errors of
    `hparam_metrics(test_run)` as its metrics, the columns of `hparam_infos(hparams, shown_first)`; the
    session is marked finished at the end of training. `trial` defaults to `default_trial(log_dir)`."""

    def __init__(self, log_dir, hparams: dict, trial=None, test_run=None, shown_first=()):
        super().__init__()
        self.log_dir = log_dir
        self.trial = trial or default_trial(log_dir)
        self.hparams = {str(k): hparam_value(v) for k, v in hparams.items()}
        self.test_run = test_run
        self.shown_first = tuple(shown_first)

    def _write(self, write):
        writer = tf.summary.create_file_writer(trial_dir(self.log_dir, self.trial))
        with writer.as_default():
            write()
        writer.close()

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp
        from tensorboard.plugins.hparams import summary as hp_summary

        def write():
            metrics = [hp.Metric(tag, group=run, display_name=title).as_proto()
                       for run, tag, title in hparam_metrics(self.test_run)]
            experiment = hp_summary.experiment_pb(hparam_infos(self.hparams, self.shown_first), metrics)
            tf.summary.experimental.write_raw_pb(experiment.SerializeToString(), step=0)
            hp.hparams(self.hparams, trial_id=self.trial)

        self._write(write)

    def on_train_end(self, logs=None):
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hp_summary

        def write():
            tf.summary.experimental.write_raw_pb(
                hp_summary.session_end_pb(api_pb2.STATUS_SUCCESS).SerializeToString(), step=0)

        self._write(write)
