"""`python main.py train`: trains AlexNet or a VGG net with the papers' recipe (AlexNet §5, VGG §3.1).

Flags -> `TrainConfig` -> `keras_alexnet.training.run.train`. Every part of the recipe is a flag whose
default is the paper's value. Without --data_dir and --tfds the command is the default run
(`keras_alexnet.training.presets`): AlexNet on the built-in Fashion-MNIST data, sized for a 2-core CPU;
the settings it changes are printed, and any flag given on the command line overrides them. With
--data_dir, the sizes and batch not given are fitted to the data (`keras_alexnet.training.data_fit`),
one printed line each. A run lives
in `runs/<run_name>/` (`run.json` with its resolved settings, `checkpoints/`, `logs/` for TensorBoard,
`metrics.csv`, `model.keras`); the same command after an interruption (Ctrl-C, kill -9) resumes from
the last checkpoint.
"""

import os
import sys

from absl import flags

from callbacks.lr_schedules import SCHEDULES
from keras_alexnet import outputs, runs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError
from keras_alexnet.training import config as train_config
from keras_alexnet.training import data_fit, finetune, presets, strategy

FLAGS = flags.FLAGS
_D = train_config.TrainConfig()

flagdefs.define_model_flags()
flagdefs.define_data_flags()
_MODEL = dict(module_name=flaghelp.MODEL)
_OPTIMISATION = dict(module_name=flaghelp.OPTIMISATION)
_EVALUATION = dict(module_name=flaghelp.EVALUATION)
_OUTPUTS = dict(module_name=flaghelp.OUTPUTS)
_SPEED = dict(module_name=flaghelp.SPEED)
_DISTRIBUTION = dict(module_name=flaghelp.DISTRIBUTION)

flags.DEFINE_string("warm_start", None, "VGG: a trained net A (run folder, checkpoint or .keras) whose first four "
                    "conv and three FC layers initialise this deeper net. [VGG §3.1]", **_MODEL)
flags.DEFINE_string("init_from", None, "Initialise the model from another run (run folder, checkpoint or "
                    ".keras; trained here or imported): every layer, e.g. S=384 from S=256 with "
                    "--learning_rate=0.001, or all but fc8 when the classes differ (fine-tuning on your own "
                    "classes). The architecture, its options and the mean are the source's unless given. "
                    "[VGG §3.1]", **_MODEL)
flags.DEFINE_string("freeze_through", None, "With --init_from: keep the copied layers from the input up to "
                    "this one fixed, e.g. conv5 trains only fc6-fc8 (a layer name of the architecture, "
                    "below fc8).", **_MODEL)
flags.DEFINE_string("default_data_root", presets.DEFAULT_DATA_ROOT, "Where the default run prepares "
                    "Fashion-MNIST.", module_name=flaghelp.DATA)
flags.DEFINE_boolean("strict_records", False, "Stop at a damaged shard (CRC mismatch, truncated file) with "
                     "its one line instead of skipping and counting the rest of it (main.py verify lists "
                     "them).", module_name=flaghelp.DATA)

flags.DEFINE_integer("batch_size", 0, "Global batch size over all replicas; 0 = the paper's: 128 for "
                     "AlexNet, 256 for VGG, or the largest power of two within a smaller training split. "
                     "[AlexNet §5, VGG §3.1]", **_OPTIMISATION)
flags.DEFINE_float("learning_rate", _D.optimizer.learning_rate, "Initial learning rate epsilon. "
                   "[AlexNet §5, VGG §3.1]", **_OPTIMISATION)
flags.DEFINE_float("momentum", _D.optimizer.momentum, "Momentum of the SGD rule. [AlexNet §5]", **_OPTIMISATION)
flags.DEFINE_float("weight_decay", _D.optimizer.weight_decay, "Weight decay inside the momentum update "
                   "(v <- 0.9 v - wd*lr*w - lr*grad). [AlexNet §5]", **_OPTIMISATION)
flags.DEFINE_boolean("decay_biases", _D.optimizer.decay_biases, "Apply weight decay to biases too, as the "
                     "paper's formula; --nodecay_biases exempts them as Caffe does. [AlexNet §5]", **_OPTIMISATION)
flags.DEFINE_integer("epochs", _D.schedule.epochs, "Epoch cap; 0 = the paper's: 90 for AlexNet, 74 for VGG. "
                     "May change when resuming. [AlexNet §5, VGG §3.1]", **_OPTIMISATION)
flags.DEFINE_integer("steps_per_epoch", _D.schedule.steps_per_epoch, "Training steps per epoch; 0 = one pass "
                     "over the training split.", **_OPTIMISATION)
flags.DEFINE_enum("lr_schedule", _D.schedule.lr_schedule, list(SCHEDULES), "; ".join(
    f"{name}: {schedule.does} ({schedule.paper or 'in neither paper'})"
    for name, schedule in SCHEDULES.items()) + ".", **_OPTIMISATION)
flags.DEFINE_integer("lr_patience", _D.schedule.lr_patience, "Epochs without improvement of the validation "
                     "top-1 error before the learning rate is divided by 10.", **_OPTIMISATION)
flags.DEFINE_float("lr_min_delta", _D.schedule.lr_min_delta, "Smallest decrease of the validation top-1 error "
                   "that counts as an improvement.", **_OPTIMISATION)
flags.DEFINE_integer("lr_max_reductions", _D.schedule.lr_max_reductions, "Divisions by 10 before training "
                     "stops at the next plateau. [AlexNet §5, VGG §3.1]", **_OPTIMISATION)
flags.DEFINE_float("warmup_epochs", _D.schedule.warmup_epochs, "Linear learning-rate warm-up (linear, cosine "
                   "and constant schedules), in epochs.", **_OPTIMISATION)
flags.DEFINE_float("input_scale", _D.input_scale, "Inputs (mean-subtracted, 0..255 scale) are multiplied by "
                   "this while training; the first conv kernel is multiplied by it when the model is saved, so "
                   "the saved model takes the usual inputs. A reparametrisation that slows conv1's learning "
                   "relative to the other layers; 1 = the paper; with --init_from: the source run's unless given.",
                   **_OPTIMISATION)
flags.DEFINE_integer("seed", _D.seed, "Seed for initialisation, data order and augmentation.", **_OPTIMISATION)

flags.DEFINE_string("validation_split", _D.validation_split, "Split watched for the learning-rate schedule "
                    "and 10-crop evaluation.", **_EVALUATION)
flags.DEFINE_integer("ten_crop_every", _D.ten_crop_every, "10-crop evaluation of the validation split every "
                     "N epochs (0: only at the end).", **_EVALUATION)
flags.DEFINE_string("test_split", _D.test_split, "If set, 10-crop errors on this split are reported at the "
                    "end.", **_EVALUATION)

flags.DEFINE_string("runs_dir", _D.runs_dir, "Folder holding the runs.", **_OUTPUTS)
flags.DEFINE_string("run_name", None, "Name of this run's folder under --runs_dir; default: the "
                    "architecture's name. The same name resumes the run.", **_OUTPUTS)
flags.DEFINE_integer("checkpoint_every_steps", _D.checkpoint_every_steps, "Also checkpoint every N steps "
                     "(epochs are long on ImageNet); 0: epoch ends only.", **_OUTPUTS)
flags.DEFINE_integer("log_every_steps", _D.log_every_steps, "Write the batch loss to TensorBoard every N "
                     "steps.", **_OUTPUTS)
flags.DEFINE_boolean("progress", _D.progress, "A progress bar per epoch (images/s, ETA) when the output is a "
                     "terminal.", **_OUTPUTS)
flags.DEFINE_boolean("export", _D.export, "Export the trained model as a TF Serving SavedModel at the end.",
                     **_OUTPUTS)
flags.DEFINE_boolean("export_best", _D.export_best, "Also export a new version each time the validation top-1 "
                     "error improves, so a TF Serving watching --export_dir serves the best model while "
                     "the run goes on.", **_OUTPUTS)
flags.DEFINE_string("export_dir", _D.export_dir, "Export root (TF Serving layout).", **_OUTPUTS)

flags.DEFINE_boolean("mixed_precision", _D.mixed_precision, "Mixed precision (float16 on GPU with loss "
                     "scaling, bfloat16 on CPU); LRN and the softmax stay float32. Unset: on for a new run only "
                     "on a CPU with AMX-BF16 and no GPU; a resumed run keeps its own.", **_SPEED)
flags.DEFINE_boolean("jit_compile", _D.jit_compile, "Compile the forward and backward pass with XLA.", **_SPEED)
flags.DEFINE_integer("steps_per_call", _D.steps_per_call, "Training steps run by one call of the compiled "
                     "step (less per-step host overhead); callbacks, the scheduled learning rate and Ctrl-C act "
                     "once per call.", **_SPEED)

flags.DEFINE_enum("strategy", _D.strategy, list(strategy.STRATEGIES), "default: one device; mirrored: "
                  "data-parallel over local GPUs; multi_worker: several machines from TF_CONFIG; towers: "
                  "AlexNet's two towers on two devices. [AlexNet §3.2, VGG §3.3]", **_DISTRIBUTION)
flags.DEFINE_integer("logical_cpus", _D.logical_cpus, "Split the CPU into N logical devices (mirrored/towers "
                     "without GPUs, for tests).", **_DISTRIBUTION)
flags.DEFINE_string("data_service", _D.data_service, "grpc://HOST:PORT of a tf.data service dispatcher (main.py "
                    "data_service): its workers read, decode, crop, flip and colour-shift the training batches; "
                    "validation and 10-crop evaluation stay here. The workers must see --data_dir at the same "
                    "path. See docs/data_service.md.", **_DISTRIBUTION)

# What the default run (no --data_dir, no --tfds) uses instead of the flags' defaults; `--help` shows it.
DEFAULT_RUN_VALUES = presets.DEFAULT_PRESET

# Flat TrainConfig settings (`train_config.flat_field_names()`) no flag sets, and why. Every other one
# is read from the flag of its name (`FLAG_NAMES` for the one named otherwise) by `_flag_values`, so a
# new field without a flag, or a flag not read, fails tests/test_train_flags.py.
NOT_FLAGS = {
    "conv1_padding": "Caffe's AlexNet layout (227 px, no conv1 padding): set by import_weights and taken "
                     "from the --init_from source, like the other network options not given",
    "lrn_position": "CaffeNet's LRN after pooling: set by import_weights, taken from the --init_from source",
    "cycle_length": "shards the input pipeline reads at once: a library setting (InputConfig)",
}
FLAG_NAMES = {"tfds_name": "tfds"}  # flat setting -> its flag, where the names differ


def _flag_name(setting: str) -> str:
    return FLAG_NAMES.get(setting, setting)


def _default_run() -> bool:
    return FLAGS.data_dir is None and FLAGS.tfds is None


def _flag_values() -> dict:
    """Every flat setting but `NOT_FLAGS`, from its flag (--lrn, --tfds, --num_classes and --scale_jitter
    converted by `flagdefs`)."""
    converted = dict(flagdefs.model_values(), **flagdefs.data_values())
    return {name: converted[name] if name in converted else FLAGS[_flag_name(name)].value
            for name in train_config.flat_field_names() if name not in NOT_FLAGS}


def _given_values() -> dict:
    """Flat settings from the flags: all of them, or for the default run only those given. With --init_from,
    the network and `finetune.INHERITED_SETTINGS` not given are left out: they are the source's."""
    values = _flag_values()
    if FLAGS.init_from:
        inherited = {name for name, (part, _) in train_config.flat_field_names().items() if part == "model"}
        inherited.update(finetune.INHERITED_SETTINGS)
        values = {name: value for name, value in values.items()
                  if name not in inherited or FLAGS[_flag_name(name)].present}
    if not _default_run():
        return values
    return {name: value for name, value in values.items() if FLAGS[_flag_name(name)].present}


def _config(data_dir=None) -> train_config.TrainConfig:
    return _config_and_notes(data_dir)[0]


def _config_and_notes(data_dir=None):
    """The run's configuration, and the lines saying which settings were fitted to the data."""
    values = _given_values()
    if _default_run():
        from pipelines.default_data import data_dir_for

        size = values.get("resize_size", presets.DEFAULT_PRESET["resize_size"])
        return presets.default_run_config(data_dir or data_dir_for(FLAGS.default_data_root, size), values), []
    notes = []
    if FLAGS.data_dir:
        given = {name for name in ("image_size", "resize_size", "batch_size") if FLAGS[name].present}
        run_dir = train_config.config_from_values(values).run_dir
        values, notes = data_fit.fit_to_data(values, given, FLAGS.data_dir, run_dir)
    return train_config.config_from_values(values), notes


def validate():
    """Refuses impossible flags in one line, before TensorFlow is imported or anything built."""
    config = _config().resolve()
    outputs.check_writable_dir(FLAGS.runs_dir, "runs_dir")
    outputs.check_writable_dir(config.run_dir, "run_name", shown=f"--run_name={config.run_name}")
    if config.strategy == "multi_worker":
        from keras_alexnet.training.strategy import tf_config_problem, tf_config_workers

        problem = tf_config_problem()
        if problem:
            raise FlagError(problem)
        workers = tf_config_workers()
        if config.data.batch_size % workers:
            raise FlagError(f"--batch_size={config.data.batch_size} is not divisible across {workers} replicas")
    if config.strategy == "mirrored" and config.logical_cpus > 1 and config.data.batch_size % config.logical_cpus:
        raise FlagError(f"--batch_size={config.data.batch_size} is not divisible across {config.logical_cpus} "
                        "replicas")
    if config.data.stats_path and not os.path.isfile(config.data.stats_path):
        raise FlagError(f"--stats_path={config.data.stats_path}: no such file")
    if FLAGS.data_dir is not None:
        flagdefs.check_shards(FLAGS.data_dir, "train")
    if config.data_service:  # a dispatcher that does not answer would leave the run waiting for an hour
        from pipelines.data_service import check_dispatcher

        check_dispatcher(config.data_service)


def starting() -> str:
    """The first line, printed before TensorFlow is imported: what will be trained on what, and where."""
    if _default_run():
        return ("Default run: AlexNet on the built-in Fashion-MNIST data, sized for a CPU "
                "(keras_alexnet/training/presets.py). Settings: " + presets.describe(
                    {k: v for k, v in presets.DEFAULT_PRESET.items() if not FLAGS[k].present}))
    config = _config().resolve()
    data = config.data.data_dir or f"TFDS {config.data.tfds_name}"
    return f"Training {config.model.architecture} on {data}, run folder {config.run_dir}"


def run(argv):
    import shlex

    from keras_alexnet.errors import Interrupted
    from keras_alexnet.memory_fit import check_training_fits
    from keras_alexnet.training.run import TrainingInterrupted, tool, train

    check_training_fits(_config().resolve())  # before any data, model or pipeline is built
    resume = shlex.join([tool("python"), _main_py(), "train"] + sys.argv[2:])
    try:
        data_dir = None
        if _default_run():
            from pipelines.default_data import ensure_default_data

            data_dir = ensure_default_data(FLAGS.default_data_root, _config().data.resize_size)
        config, notes = _config_and_notes(data_dir)
        for note in notes:
            _print(note)
        result = train(config, printer=_print)
    except TrainingInterrupted as stopped:
        raise Interrupted(f"{stopped}; resume with: {resume}") from None
    except KeyboardInterrupt:  # a second signal, or one before training set up its handler
        raise Interrupted(f"stopped at once, {_last_checkpoint(_config().run_dir)}; resume with: {resume}") from None
    if result.model_path and not result.finished_before:
        _final_report(result)


def _last_checkpoint(run_dir) -> str:
    import tensorflow as tf

    directory = os.path.join(run_dir, runs.CHECKPOINTS_DIR)
    path = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    return f"the last checkpoint is {path}" if path else "no checkpoint yet"


def _main_py():
    """main.py as this process was started with it (the printed commands work from the same folder)."""
    return os.path.relpath(sys.argv[0]) if not os.path.relpath(sys.argv[0]).startswith("..") else sys.argv[0]


def _print(message):
    print(message, flush=True)


def _final_report(result):
    from keras_alexnet.training.run import tool

    config = result.config
    lines = [f"Done in {result.seconds / 60:.1f} min.",
             f"  run settings: {runs.run_file(result.run_dir)}",
             f"  checkpoints:  {result.checkpoint_dir}",
             f"  metrics:      {os.path.join(result.run_dir, runs.METRICS_FILE)}",
             f"  Keras model:  {result.model_path}",
             f"  TensorBoard:  {tool('tensorboard')} --logdir {result.log_dir}"]
    if config.data.data_dir:  # the run's data folder, crop, scale and mean come from its run.json
        split = config.test_split or config.validation_split
        python = f"{tool('python')} {_main_py()}"
        lines += [f"  evaluate:     {python} evaluate --model={result.run_dir} --split={split} "
                  "--protocols=center,ten_crop",
                  f"  figures:      {python} figures --model={result.run_dir} --split={split}"]
    if result.export_path:
        lines += [f"  SavedModel:   {result.export_path}",
                  f"  inspect it:   {tool('saved_model_cli')} show --dir {result.export_path} --all"]
    _print("\n".join(lines))
