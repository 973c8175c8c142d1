"""`train(config)`: one training run end to end, the library call behind `python main.py train`.

    result = train(TrainConfig(...))        # see keras_alexnet/training/config.py
    result.test["ten_crop"]["top1_error"]   # AlexNet §4.1's 10-crop test error, when test_split is set

A run lives in `config.run_dir` (`runs/<run_name>/`): `run.json` (the resolved settings, written when the
run starts; `keras_alexnet.runs`), `stats.npz` (the statistics it trains with), `checkpoints/`, `logs/`
(TensorBoard), `metrics.csv`, and `model.keras` at the end; an export goes to `config.export_dir`.
Calling `train` again with the same run folder resumes from the last checkpoint; settings that would
change the run (architecture, data, sizes, batch, seed) are refused in one line naming the flag,
settings that may change (epoch cap, logging, export) are accepted and recorded in `run.json`.

SIGINT (Ctrl-C) and SIGTERM (what a scheduler sends) in any phase of `train` stop it at the next safe
point and raise `TrainingInterrupted` naming the checkpoint to resume from: during set-up, training or
an epoch's validation (centre or 10-crop) a checkpoint is saved; during the phases after the last
epoch (the final 10-crop validation, saving the model, the 10-crop test, the export) the last
checkpoint is current, and resuming runs those phases again. A second signal stops at once.

A run that finished (its model saved, evaluated and exported) is marked so in its `run.json`
(`finished`: when, its epochs, final errors, model and SavedModel paths); calling `train` on it again
trains and exports nothing and returns that record (`RunResult.finished_before`), unless a larger
epoch cap resumes its training (not after its learning-rate schedule stopped it). Under `multi_worker`
the chief's run folder decides, once the cluster is up, and tells the other workers. [AlexNet §5]
"""

import dataclasses
import os
import re
import shutil
import signal
import threading
import time
from typing import Callable, Optional

from keras_alexnet import atomic, metric_names, runs
from keras_alexnet import scratch as scratch_folders
from keras_alexnet.errors import FlagError, UserError
from keras_alexnet.training import finetune, precision
from keras_alexnet.training.config import TrainConfig
from pipelines import records

# Settings that may differ when a run is resumed (everything else defines the run).
RESUMABLE_CHANGES = ("schedule.epochs", "checkpoint_every_steps", "log_every_steps", "progress", "export",
                     "export_best", "export_dir", "ten_crop_every", "test_split", "strategy", "logical_cpus",
                     "jit_compile", "warm_start", "init_from", "data.shuffle_buffer", "data.cache",
                     "data.cycle_length", "data.data_dir", "data.tfds_data_dir", "data.tfds_manual_dir",
                     "data.stats_path", "data.strict_records", "runs_dir", "steps_per_call", "data_service")


class TrainingInterrupted(Exception):
    """`train` stopped on SIGINT/SIGTERM; `checkpoint`: the one saved then, or (`current`) the last one,
    which holds every epoch trained; None if there is none (or not `chief`: a worker that only the chief's
    checkpoints resume)."""

    def __init__(self, checkpoint, signal_name, step, phase="training", current=False, chief=True):
        self.checkpoint = checkpoint
        self.signal_name = signal_name
        self.step = step
        if not chief:  # a multi-worker run's other worker: its checkpoints are temporary
            saved = "the chief's last checkpoint is the one to resume from"
        elif not checkpoint:
            saved = "no checkpoint could be saved"
        elif current:
            saved = f"the last checkpoint is current: {checkpoint}"
        else:
            saved = f"checkpoint saved: {checkpoint}"
        super().__init__(f"{signal_name}: stopped during {phase} at step {step}, {saved}")


@dataclasses.dataclass
class RunResult:
    """What a finished run produced.

    history: per-epoch values by metric (loss, top1_error, top5_error, val_*, learning_rate, ...);
    validation / test: {"center": {...}, "ten_crop": {...}} with top1_error, top5_error, count (None when
    the split is not evaluated); paths of the run's products; seconds of this call.
    """

    run_dir: str
    config: TrainConfig
    history: dict
    validation: Optional[dict]
    test: Optional[dict]
    model_path: Optional[str]
    export_path: Optional[str]
    checkpoint_dir: str
    log_dir: str
    epochs_run: int
    seconds: float
    finished_before: Optional[str] = None  # when the run had finished, for a call that did nothing


def _flat(config_dict, prefix=""):
    out = {}
    for key, value in config_dict.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume(config: TrainConfig, record: runs.RunRecord) -> dict:
    """{setting: (recorded, new)} of the allowed changes; FlagError naming the first setting that would
    change the run, or saying that the folder holds imported weights (a run.json without a training
    configuration), which training would overwrite."""
    if not record.config:
        raise FlagError(f"--run_name={os.path.basename(config.run_dir)}: {record_path(config)} holds imported "
                        f"weights, not a training run; train from them with --init_from={config.run_dir} and "
                        "another --run_name")
    try:  # settings added since the run was recorded take their defaults (the behaviour it was trained with)
        old = _flat(TrainConfig.from_dict(record.config).to_dict())
    except ValueError:
        old = _flat(record.config)
    new = _flat(runs.absolute_paths(config.to_dict()))
    if new.get("mixed_precision") is None:  # unset: the run keeps the precision it recorded (precision.py)
        new["mixed_precision"] = old.get("mixed_precision")
    changes = {}
    for key in sorted(set(old) | set(new), key=lambda k: (k != "model.architecture", k)):  # the cause first
        before, after = old.get(key), new.get(key)
        if isinstance(before, list):
            before = tuple(before)
        if before == after:
            continue
        if key in RESUMABLE_CHANGES:
            changes[key] = (before, after)
            continue
        flag = "architecture" if key == "model.architecture" else ("tfds" if key == "data.tfds_name" else key.split(".")[-1])
        raise FlagError(f"--{flag}={after}: {record_path(config)} was trained with {before}; resume with the "
                        f"run's value or start another run (--run_name)")
    return changes


def record_path(config):
    return runs.run_file(config.run_dir)


def _class_names(config: TrainConfig, num_classes: int):
    data = config.data
    if data.data_dir:
        metadata = records.read_metadata(data.data_dir)
        if metadata:
            return [c.text or c.synset or str(c.label) for c in metadata.classes]
    else:
        from pipelines.tfds_source import load_builder

        builder = load_builder(data.tfds_name, data.tfds_data_dir, data.tfds_manual_dir)
        if "label" in builder.info.features:
            return list(builder.info.features["label"].names)
    return [str(i) for i in range(num_classes)]


def _run_stats(config: TrainConfig, info, printer):
    """The statistics the run trains with, at the run's frame size, or None; and a note of what was done.

    With --init_from and no --stats_path, the mean is the source's (its `stats.npz`: the mean its weights
    were trained with; `finetune.py`), the rest (colour PCA) the data's. A mean image of another size than
    `resize_size` (statistics computed at another stored size, or a source of another frame) is resized
    to the frame (AlexNet §2's mean is per pixel of the 256 frame); the note says so.
    """
    data = config.data
    if data.mean == "none" and data.pca_jitter_std == 0:
        return None, ""
    from pipelines.stats import read_stats, resize_mean_image

    path = data.stats_path or info.default_stats_path
    source = finetune.read_source(config.init_from).stats_path if config.init_from and not data.stats_path else None
    if not path and not source:
        raise UserError(f"--tfds={data.tfds_name}: no statistics file: pass --stats_path (or --mean=none "
                        "--pca_jitter_std=0)")
    stats = read_stats(path) if path and (not source or os.path.isfile(path)) else {}
    note = f"from {path}"
    if source and data.mean != "none":
        means = {key: value for key, value in read_stats(source).items() if key in ("mean_image", "mean_rgb")}
        if "mean_rgb" not in means:
            means["mean_rgb"] = means["mean_image"].mean(axis=(0, 1))
        if data.mean == "image" and "mean_image" not in means:
            note = (f"the mean image from {path} (--init_from's {source} has a mean colour only; its mean RGB "
                    "is not used)")
        else:
            stats = dict(stats, **means)
            note = (f"the mean {'image' if data.mean == 'image' else 'RGB'} from {source}, the one --init_from's "
                    "weights were trained with (--stats_path or --mean=none override)")
    mean_image = stats.get("mean_image")
    frame = data.resize_size
    resized = data.mean == "image" and mean_image is not None and mean_image.shape[:2] != (frame, frame)
    if resized:
        old = "x".join(map(str, mean_image.shape[:2]))
        stats = dict(stats, mean_image=resize_mean_image(mean_image, frame))
        note = f"{note}, mean image resized from {old} to {frame}x{frame} (--resize_size)"
    if config.init_from or resized:
        printer(f"Mean: {note}")
    return stats, note


class _SignalStop:
    """While active, SIGINT/SIGTERM set `event` (the trainer saves and stops after the current step);
    a second signal raises KeyboardInterrupt at once. Only in the main thread."""

    def __init__(self, printer):
        self.event = threading.Event()
        self.signal_name = None
        self.printer = printer
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        self.printer(f"\n{self.signal_name}: stopping after the current step or batch, with a checkpoint to "
                     "resume from (again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def train(config: TrainConfig, printer: Callable[[str], None] = print, callbacks=()) -> RunResult:
    """Trains (or resumes) the run `config` describes; see the module docstring. [AlexNet §5, VGG §3.1]

    `printer` receives the progress lines (the chief's only); `callbacks` are extra Keras callbacks.
    Raises FlagError / UserError (one line) for settings or data that cannot work, TrainingInterrupted
    after a signal.
    """
    start = time.time()
    config = config.resolve()
    several = config.strategy == "multi_worker"  # the chief's run folder decides, once the cluster is up
    finished = None if several else _finished(config)
    if finished:  # before TensorFlow starts: a finished run answers at once
        printer(_finished_message(finished, config))
        return _finished_result(finished, config, start)
    from keras_alexnet.training.strategy import configure_logical_cpus

    configure_logical_cpus(config.logical_cpus)
    import keras
    import tensorflow as tf

    from keras_alexnet.training.strategy import is_chief, make_strategy

    # The strategy first: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    try:
        strategy, strategy_options = make_strategy(config.strategy)
    except ValueError as error:
        raise FlagError(str(error)) from None
    chief = is_chief(strategy)
    say = printer if chief else (lambda message: None)
    from pipelines import input_pipeline, record_parser

    policy = keras.mixed_precision.global_policy()
    # A worker other than the chief keeps its copies (the statistics) in a folder of its own, removed at the end.
    scratch = None if chief else scratch_folders.make("stats")
    try:
        if several:  # every worker learns from the chief whether the run finished: none waits for it in vain
            from keras_alexnet.training.checkpointing import text_from_chief

            finished = _finished(config) if chief else None  # a FlagError: the others stop with the lost-worker line
            when = text_from_chief(strategy, finished["time"] if finished else "", chief)
            if when and chief:
                printer(_finished_message(finished, config))
                return _finished_result(finished, config, start)
            if when:
                return RunResult(config.run_dir, config, {}, None, None, None, None,
                                 os.path.join(config.run_dir, runs.CHECKPOINTS_DIR),
                                 os.path.join(config.run_dir, runs.LOGS_DIR), 0, time.time() - start,
                                 finished_before=when)
        with record_parser.user_errors(), _SignalStop(say) as stop:
            return _train(config, strategy, strategy_options, chief, say, list(callbacks), start, keras, tf,
                          input_pipeline, record_parser, stop, scratch)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as error:
        if not several:
            raise
        raise UserError(_lost_worker_message(error, config, chief)) from None
    finally:
        keras.mixed_precision.set_global_policy(policy)  # a library call leaves the process as it found it
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _lost_worker_message(error, config: TrainConfig, chief: bool) -> str:
    """One line for a multi-worker run whose collective operations failed: a worker died or cannot be
    reached. MultiWorkerMirroredStrategy is not elastic: every worker is started again, with its command."""
    import tensorflow as tf

    text = error.message or type(error).__name__
    found = re.search(r"aborted by: ([^\n]+)", text)
    reason = (found.group(1) if found else text.strip().splitlines()[0]).strip()
    if chief:
        last = tf.train.latest_checkpoint(os.path.join(config.run_dir, runs.CHECKPOINTS_DIR))
        resume = f"resume from {last}" if last else "start afresh (no checkpoint yet)"
    else:
        resume = "resume from the chief's last checkpoint"
    return (f"--strategy=multi_worker: a worker of the cluster stopped or cannot be reached ({reason}); "
            f"training cannot go on without it: start every worker again with its same command to {resume}")


def _train(config, strategy, strategy_options, chief, say, extra_callbacks, start, keras, tf, input_pipeline,
           record_parser, stop, scratch):
    from keras_alexnet import registry
    from keras_alexnet.export import fold_input_scale
    from keras_alexnet.training.optimizer import PaperSGD
    from keras_alexnet.training.trainer import Trainer

    replicas = strategy.num_replicas_in_sync
    batch = config.data.batch_size
    if batch % replicas:
        raise FlagError(f"--batch_size={batch} is not divisible across {replicas} replicas")
    keras.utils.set_random_seed(config.seed)
    run_dir = config.run_dir
    record = runs.resumable_record(run_dir)
    if record is None and runs.read_record(run_dir) is not None:
        say(f"{runs.run_file(run_dir)}: an earlier start stopped before its first checkpoint; starting afresh "
            "with these settings")
    gpus = len(tf.config.list_physical_devices("GPU"))
    recorded = record.config.get("mixed_precision") if record is not None and record.config else None
    mixed, why = precision.resolve(config.mixed_precision, recorded, gpus)
    config = dataclasses.replace(config, mixed_precision=mixed)
    policy = precision.policy_name(gpus) if mixed else precision.FLOAT32_POLICY
    if mixed:
        keras.mixed_precision.set_global_policy(policy)
    loss_scale = precision.needs_loss_scaling(policy)
    if why:
        say(f"  precision: {policy} ({why})")
    changes = check_resume(config, record) if record is not None else {}

    if config.data_service:  # library callers too: the service's client would retry for an hour
        from pipelines.data_service import check_dispatcher

        check_dispatcher(config.data_service)
    info = input_pipeline.dataset_info(config.input_for("train", training=True))
    num_classes = info.num_classes
    if not num_classes:
        raise UserError(f"{info.source}: the number of classes is unknown (no {records.METADATA_FILE}): "
                        "pass --num_classes")
    stats, mean_note = _run_stats(config, info, say)
    # The user's settings, paths absolute; the pipelines read the run's copy of the stats.
    recorded_config = runs.absolute_paths(config.to_dict())
    if stats is not None:  # the chief's copy in the run folder; other workers keep theirs to themselves
        stats_path = runs.write_stats(run_dir if chief else scratch, stats)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, stats_path=stats_path))
    train_examples = input_pipeline.count_examples(config.input_for("train", training=True))
    from keras_alexnet.evaluation.engine import eval_input, protocol_dataset

    eval_settings = _eval_settings(config)
    val_config = eval_input(eval_settings, config.validation_split, config.data.batch_size, config.data)
    val_examples = input_pipeline.count_examples(val_config)
    if batch > train_examples:  # the epoch's pass would hold no full batch, with or without --steps_per_epoch
        raise FlagError(f"--batch_size={batch} is larger than the {train_examples} training examples")
    steps_per_epoch = config.schedule.steps_per_epoch or train_examples // batch
    epochs = config.schedule.epochs

    if chief:
        if record is None:
            record = runs.RunRecord(
                architecture=config.model.architecture, num_classes=num_classes,
                class_names=_class_names(config, num_classes), image_size=config.data.image_size,
                test_scale=input_pipeline.test_scale(config.data), mean=config.data.mean,
                label_offset=info.label_offset, data_source=runs.recorded_source(info.source), mean_note=mean_note,
                config=recorded_config, origin="train")
        elif changes:
            record.resumes.append({"time": runs.now(), "changed": {k: list(v) for k, v in changes.items()}})
            record.config = recorded_config if record.config is None else _updated(record.config, changes)
        record.finished = None  # training on (a larger epoch cap): finished again at its end
        runs.write_record(run_dir, record)

    log_dir = os.path.join(run_dir, runs.LOGS_DIR)
    checkpoint_dir = os.path.join(run_dir, runs.CHECKPOINTS_DIR)
    image_shape = (config.data.image_size, config.data.image_size, 3)
    options = dict(config.model.build_options(), **strategy_options)

    frozen = finetune.frozen_layers(config.model.architecture, config.model.extra_conv, config.freeze_through)

    def build_model():
        model = registry.build_model(config.model.architecture, num_classes=num_classes, input_shape=image_shape,
                                     **options)
        for name in frozen:  # not trainable: no gradient, no momentum, no weight decay, also after a resume
            model.get_layer(name).trainable = False
        return model

    def build_optimizer():
        opt = config.optimizer
        return PaperSGD(opt.learning_rate, momentum=opt.momentum, decay=opt.weight_decay,
                        decay_biases=opt.decay_biases)

    dropped = record_parser.DropCounter()
    lost = record_parser.DropCounter("lost_records")  # records in damaged shards' skipped remainders

    def scaled(dataset, scale=None):
        scale = config.input_scale if scale is None else scale
        if scale == 1.0:
            return dataset

        @tf.autograph.experimental.do_not_convert  # plain ops: no AutoGraph conversion at every epoch's pipeline
        def times_scale(images, labels):
            return images * scale, labels

        return dataset.map(times_scale)

    def train_dataset_fn(input_context, epoch):
        # One seed per epoch: an epoch's batches are the same when it is run again after a resume (not
        # through the tf.data service, whose workers' timing orders the batches).
        epoch_config = dataclasses.replace(config.input_for("train", training=True),
                                           seed=config.seed * 100003 + epoch)
        if config.data_service:
            from pipelines.data_service import distributed_train_dataset

            per_replica = dataclasses.replace(epoch_config, batch_size=input_context.get_per_replica_batch_size(batch))
            return distributed_train_dataset(per_replica, config.data_service, dropped, lost)
        return input_pipeline.build_train_dataset(epoch_config, input_context, drop_counter=dropped, lost_counter=lost,
                                                  crops=True)

    # The training batches' float work (and the input scale) runs in the training step, on the device.
    finish_batch = input_pipeline.train_batch_finisher(config.input_for("train", training=True), config.input_scale)

    def val_dataset_fn(input_context):
        return scaled(input_pipeline.build_eval_dataset(val_config, "center", input_context=input_context))

    eval_batch = max(1, min(batch, 64))

    def eval_dataset(split, protocol, scale=None):
        return scaled(protocol_dataset(eval_input(eval_settings, split, eval_batch, config.data), protocol), scale)

    from keras_alexnet.training.callbacks import training_callbacks

    weights_from = {}
    initial_weights = _initial_weights(config, say, num_classes, weights_from)
    trainer = Trainer(strategy, build_model, build_optimizer, train_dataset_fn, steps_per_epoch, epochs, batch,
                      val_dataset_fn=val_dataset_fn, val_examples=val_examples, checkpoint_dir=checkpoint_dir,
                      checkpoint_every_steps=config.checkpoint_every_steps, jit_compile=config.jit_compile,
                      loss_scale=loss_scale, is_chief=chief, initial_weights=initial_weights,
                      printer=say, stop_event=stop.event, steps_per_call=config.steps_per_call,
                      prepare_inputs=finish_batch, replays_epochs=not config.data_service)
    callback_set = training_callbacks(config, chief=chief, log_dir=log_dir, steps_per_epoch=steps_per_epoch,
                                      replicas=replicas, dropped=dropped, lost=lost, printer=say,
                                      val_examples=val_examples,
                                      ten_crop_dataset=(lambda: eval_dataset(config.validation_split, "ten_crop"))
                                      if chief else None,
                                      export_settings=_export_settings(config, record) if chief else None,
                                      should_stop=trainer.stop_requested)
    if chief and weights_from:  # a fresh start from another run's weights: recorded with the run
        record.weights_from = weights_from
        runs.write_record(run_dir, record)
    elif chief and trainer.resumed_from and record.weights_from:
        say(f"{finetune.describe(record.weights_from, num_classes)} (as {runs.RUN_FILE} records it)")
    if chief:
        say(f"Run folder: {run_dir}   TensorBoard: {tool('tensorboard')} --logdir {log_dir}")
        say(f"{config.model.architecture} on {info.source}: {num_classes} classes, {train_examples} training "
            f"images, {steps_per_epoch} steps of {batch} per epoch, up to {epochs} epochs, {replicas} "
            f"replica(s) ({config.strategy})")
        if config.data_service:
            from pipelines.data_service import describe

            say(describe(config.data_service))
    history = trainer.fit(callback_set.callbacks + extra_callbacks)
    step = int(trainer.optimizer.iterations.numpy())
    epochs_run = int(trainer.state.epoch.numpy())
    if stop.event.is_set() or trainer.stopped_by_another_worker:
        raise TrainingInterrupted(trainer.interrupted_at or trainer.checkpointer.latest(),
                                  stop.signal_name or "a signal to another worker", step,
                                  trainer.stopped_in or "the end of training", current=not trainer.saved_on_stop,
                                  chief=chief)

    def stop_if_asked(phase):  # between the phases after training; the last checkpoint holds every epoch
        if stop.event.is_set():
            raise TrainingInterrupted(trainer.checkpointer.latest(), stop.signal_name, step, phase, current=True)

    model = trainer.model
    if not chief:
        return RunResult(run_dir, config, history.history, None, None, None, None, checkpoint_dir, log_dir,
                         epochs_run, time.time() - start)
    if config.input_scale != 1.0:
        fold_input_scale(model, config.input_scale)
    model_path = os.path.join(run_dir, runs.MODEL_FILE)
    from keras_alexnet.progress import ProgressLine, phase

    with phase(f"Saving {model_path}"):
        model.save(model_path)
    stop_if_asked(f"saving {model_path}")
    final = callback_set.ten_crop.final  # keys as in the epoch logs: ten_crop_top1_error, ...
    validation = ({"ten_crop": {k.removeprefix(metric_names.TEN_CROP_PREFIX): v for k, v in final.items()}}
                  if final else None)
    test = None
    if config.test_split:
        # On the usual inputs: the saved model, with the scale folded into its first kernel.
        from keras_alexnet.evaluation.engine import evaluate_model
        from keras_alexnet.evaluation.protocols import EvaluationStopped

        progress = ProgressLine(f"10-crop {config.test_split}",
                                input_pipeline.count_examples(config.input_for(config.test_split)))
        try:
            result = evaluate_model(model, "ten_crop", eval_dataset(config.test_split, "ten_crop", scale=1.0),
                                    progress=progress, should_stop=stop.event.is_set).errors()
        except EvaluationStopped:
            stop_if_asked(f"the 10-crop {config.test_split} evaluation")
            raise
        test = {"ten_crop": result}
        top1, top5 = (result[name] for name in metric_names.ERRORS)
        say(f"10-crop {config.test_split} [AlexNet §4.1]: accuracy {1 - top1:.4f}, top-1 error {top1:.4f}, "
            f"top-5 error {top5:.4f} ({result[metric_names.COUNT]} images)")
        atomic.write_json(os.path.join(run_dir, f"{config.test_split}_ten_crop.json"), result)
    callback_set.final_summaries(epochs_run, validation and validation["ten_crop"], test and test["ten_crop"])
    stop_if_asked("the final summaries")
    export_path = None
    if config.export:
        from keras_alexnet.export import export_saved_model

        with phase(f"Exporting a SavedModel to {os.path.join(config.export_dir, config.run_name)}"):
            export_path = export_saved_model(model, config.export_dir, config.run_name,
                                             **_export_settings(config, record))
    record.finished = {"time": runs.now(), "epochs": epochs_run,
                       "schedule_stopped": bool(trainer.state.finished.numpy()),
                       "validation": validation, "test": test, "model": model_path, "export": export_path}
    runs.write_record(run_dir, record)
    return RunResult(run_dir, config, history.history, validation, test, model_path, export_path, checkpoint_dir,
                     log_dir, epochs_run, time.time() - start)


def _finished(config: TrainConfig) -> Optional[dict]:
    """The `finished` record of the run `config` names when there is nothing left for it to train (its
    epoch cap not above the epochs it ran, or its schedule stopped it), else None. A setting that would
    change the run is refused (FlagError) as for any resume."""
    record = runs.read_record(config.run_dir)
    if record is None or not record.finished:
        return None
    check_resume(config, record)
    finished = record.finished
    return finished if finished["schedule_stopped"] or config.schedule.epochs <= finished["epochs"] else None


def _finished_message(finished: dict, config: TrainConfig) -> str:
    """What a finished run says when asked to train again: its final numbers and products."""
    epochs = finished["epochs"]
    parts = [f"This run finished on {finished['time']} after {epochs} epoch{'' if epochs == 1 else 's'}"
             + (" (its learning-rate schedule stopped it)" if finished["schedule_stopped"] else "") + "."]
    for split, errors in (("validation", finished["validation"]), ("test", finished["test"])):
        if errors:
            top1, top5 = (errors["ten_crop"][name] for name in metric_names.ERRORS)
            parts.append(f"10-crop {split}: top-1 error {top1:.4f}, top-5 error {top5:.4f}.")
    parts.append(f"Model: {finished['model']}.")
    if finished["export"]:
        parts.append(f"SavedModel: {finished['export']}.")
    more = "" if finished["schedule_stopped"] else f"--epochs above {finished['epochs']} trains on; "
    parts.append(f"Nothing trained or exported: {more}main.py export --model={config.run_dir} exports it again.")
    return " ".join(parts)


def _finished_result(finished: dict, config: TrainConfig, start: float) -> RunResult:
    run_dir = config.run_dir
    return RunResult(run_dir, config, {}, finished["validation"], finished["test"], finished["model"],
                     finished["export"], os.path.join(run_dir, runs.CHECKPOINTS_DIR),
                     os.path.join(run_dir, runs.LOGS_DIR), finished["epochs"], time.time() - start,
                     finished_before=finished["time"])


def _updated(recorded: dict, changes: dict) -> dict:
    """`recorded` (a nested config dict) with the allowed changes applied."""
    updated = {k: dict(v) if isinstance(v, dict) else v for k, v in recorded.items()}
    for key, (_, new) in changes.items():
        target = updated
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = new
    return updated


def _initial_weights(config: TrainConfig, say, num_classes: int, weights_from: dict):
    """The callable the Trainer runs once on a fresh start: VGG warm start, or the weights of another run
    (`finetune.py`, `warm_start.py`), what it did printed in one line (and put in `weights_from`)."""
    if config.warm_start:
        def warm(model):
            from keras_alexnet.training import warm_start

            say(warm_start.initialise(model, config))
        return warm
    if config.init_from:
        def init(model):
            weights_from.update(finetune.initialise(model, config))
            say(finetune.describe(weights_from, num_classes))
            hint = finetune.learning_rate_hint(config, weights_from)
            if hint:
                say(hint)
        return init
    return None


def _eval_settings(config: TrainConfig) -> runs.EvalSettings:
    """How the run's model is fed at test time, as `run.json` records it: its crop size, test scale Q
    (`input_pipeline.test_scale`: resize_size, or VGG §3.2's middle of the jitter range), mean and
    statistics."""
    from pipelines.input_config import test_scale

    stats_path = config.data.stats_path if config.data.mean != "none" else None
    return runs.EvalSettings(config.data.image_size, test_scale(config.data), config.data.mean, None, stats_path,
                             "the run's settings")


def _export_settings(config: TrainConfig, record: runs.RunRecord) -> dict:
    """How exports of this run preprocess: class names, the training mean, sizes, 10 crops."""
    mean = None
    if config.data.mean != "none":
        mean = runs.EvalSettings(config.data.image_size, record.test_scale, config.data.mean, None,
                                 os.path.join(config.run_dir, runs.STATS_FILE), "").mean_values
    return dict(class_names=record.class_names, mean=mean, image_size=config.data.image_size,
                resize_size=record.test_scale, crops="ten_crop")


def tool(name) -> str:
    """How to call `name` from here: this interpreter's environment (`.venv/bin/tensorboard`) unless
    that environment is active, so the printed commands work as they are pasted."""
    import shutil
    import sys

    program = sys.executable if name == "python" else os.path.join(os.path.dirname(sys.executable), name)
    if shutil.which(name) == program or not os.path.exists(program):
        return name
    relative = os.path.relpath(program)
    return relative if not relative.startswith("..") else program
