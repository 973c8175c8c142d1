"""`python main.py train`: trains AlexNet or a VGG net with the papers' recipe (AlexNet §5, VGG §3.1).

Every part of the recipe is a flag whose default is the paper's value. Without --data_dir the
command is the default run (`keras_alexnet.training.presets`): AlexNet on the built-in Fashion-MNIST
data, sized for a 2-core CPU; the flags it sets are printed. A run lives in `runs/<run_name>/`
(`checkpoints/`, `logs/` for TensorBoard, `metrics.csv`, `model.keras`); the same command after an
interruption (even kill -9) resumes from the last checkpoint.
"""

import json
import os
import shutil
import sys
import time

from absl import flags

from keras_alexnet.cli import flagdefs
from keras_alexnet.errors import FlagError, UserError
from keras_alexnet.training import presets

FLAGS = flags.FLAGS
STRATEGIES = ("default", "mirrored", "multi_worker", "towers")
SCHEDULES = ("plateau", "linear", "cosine", "constant")
_PRESET_APPLIED = {}  # the default run's flags, set in validate()

flagdefs.define_model_flags()
flagdefs.define_data_flags()
flags.DEFINE_integer("batch_size", 0, "Global batch size over all replicas; 0 = the paper's: 128 for "
                     "AlexNet, 256 for VGG. [AlexNet §5, VGG §3.1]")
flags.DEFINE_float("learning_rate", 0.01, "Initial learning rate epsilon. [AlexNet §5, VGG §3.1]")
flags.DEFINE_float("momentum", 0.9, "Momentum of the SGD rule. [AlexNet §5]")
flags.DEFINE_float("weight_decay", 5e-4, "Weight decay inside the momentum update "
                   "(v <- 0.9 v - wd*lr*w - lr*grad). [AlexNet §5]")
flags.DEFINE_boolean("decay_biases", True, "Apply weight decay to biases too, as the paper's formula; "
                     "--nodecay_biases exempts them as Caffe does. [AlexNet §5]")
flags.DEFINE_integer("epochs", 0, "Epoch cap; 0 = the paper's: 90 for AlexNet, 74 for VGG. "
                     "[AlexNet §5, VGG §3.1]")
flags.DEFINE_integer("steps_per_epoch", 0, "Training steps per epoch; 0 = one pass over the "
                     "training split. [AlexNet §5]")
flags.DEFINE_enum("lr_schedule", "plateau", list(SCHEDULES), "plateau: divide by 10 when the "
                  "validation error stops improving, --lr_max_reductions times, then stop; "
                  "linear/cosine: warm-up then decay to 0 by the last epoch (short runs). [AlexNet §5]")
flags.DEFINE_integer("lr_patience", 2, "Epochs without improvement of the validation top-1 error "
                     "before the learning rate is divided by 10. [AlexNet §5]")
flags.DEFINE_float("lr_min_delta", 0.001, "Smallest decrease of the validation top-1 error that "
                   "counts as an improvement. [AlexNet §5]")
flags.DEFINE_integer("lr_max_reductions", 3, "Divisions by 10 before training stops at the next "
                     "plateau. [AlexNet §5, VGG §3.1]")
flags.DEFINE_float("warmup_epochs", 0.0, "Linear learning-rate warm-up (linear/cosine schedules), in "
                   "epochs. [AlexNet §5]")
flags.DEFINE_integer("ten_crop_every", 1, "10-crop evaluation of the validation split every N epochs "
                     "(0: only at the end). [AlexNet §4.1]")
flags.DEFINE_string("validation_split", "validation", "Split watched for the learning-rate schedule "
                    "and 10-crop evaluation. [AlexNet §5]")
flags.DEFINE_string("test_split", "", "If set, 10-crop accuracy on this split is reported at the "
                    "end. [AlexNet §4.1, §6]")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "default: one device; mirrored: "
                  "data-parallel over local GPUs (VGG §3.3); multi_worker: several machines from "
                  "TF_CONFIG; towers: AlexNet's two towers on two devices. [AlexNet §3.2, VGG §3.3]")
flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into N logical devices (mirrored/towers "
                     "without GPUs, for tests). [VGG §3.3]")
flags.DEFINE_boolean("mixed_precision", False, "Mixed precision (float16 on GPU with loss scaling, "
                     "bfloat16 on CPU); LRN and the softmax stay float32. [AlexNet §3.3]")
flags.DEFINE_boolean("jit_compile", False, "Compile the forward and backward pass with XLA. [AlexNet §5]")
flags.DEFINE_integer("checkpoint_every_steps", 1000, "Also checkpoint every N steps (epochs are long "
                     "on ImageNet); 0: epoch ends only. [AlexNet §5]")
flags.DEFINE_integer("log_every_steps", 100, "Write the batch loss to TensorBoard every N steps. [AlexNet §5]")
flags.DEFINE_string("runs_dir", "runs", "Folder holding the runs. [AlexNet §5]")
flags.DEFINE_string("run_name", None, "Name of this run's folder under --runs_dir; default: the model "
                    "name. The same name resumes the run. [AlexNet §5]")
flags.DEFINE_string("warm_start", None, "VGG: a trained net A (run folder or .keras) whose first four "
                    "conv and three FC layers initialise this deeper net. [VGG §3.1]")
flags.DEFINE_string("init_from", None, "Initialise the whole model from another run (run folder, "
                    "checkpoint or .keras), e.g. S=384 from S=256 with --learning_rate=0.001. [VGG §3.1]")
flags.DEFINE_float("input_scale", 1.0, "Inputs (mean-subtracted, 0..255 scale) are multiplied by this "
                   "while training; the first conv kernel is multiplied by it when the model is saved, so the "
                   "saved model takes the usual inputs. A reparametrisation that slows conv1's learning "
                   "relative to the other layers; 1 = the paper. [AlexNet §2, §5]")
flags.DEFINE_integer("seed", 0, "Seed for initialisation, data order and augmentation. [AlexNet §5]")
flags.DEFINE_boolean("progress", True, "A progress bar per epoch (images/s, ETA) when the output is a "
                     "terminal. [AlexNet §5]")
flags.DEFINE_boolean("export", True, "Export the trained model as a TF Serving SavedModel at the end. "
                     "[AlexNet §4.1]")
flags.DEFINE_boolean("export_best", False, "Also export a new version each time the validation top-1 "
                     "error improves, so a TF Serving watching --export_dir serves the best model while "
                     "the run goes on. [AlexNet §5]")
flags.DEFINE_string("export_dir", "saved_models", "Export root (TF Serving layout). [AlexNet §4.1]")
flags.DEFINE_string("default_data_root", os.path.join("data", "fashion_mnist"), "Where the default "
                    "run prepares Fashion-MNIST. [AlexNet §2]")


def _default_run() -> bool:
    return FLAGS.data_dir is None and FLAGS.tfds is None


def _family() -> str:
    return "alexnet" if FLAGS.model.startswith("alexnet") else "vgg"


def _batch_size() -> int:
    return FLAGS.batch_size or (128 if _family() == "alexnet" else 256)


def _epochs() -> int:
    return FLAGS.epochs or (90 if _family() == "alexnet" else 74)


def _run_name() -> str:
    return FLAGS.run_name or FLAGS.model


def _tf_config_workers():
    raw = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(raw)["cluster"]
        return len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    except (TypeError, ValueError, KeyError):
        return None


def validate():
    """Refuses impossible flags in one line, before TensorFlow is imported or anything built."""
    if _default_run():
        _PRESET_APPLIED.update(presets.apply_preset(FLAGS))
    flagdefs.check_model_and_data_flags()
    if FLAGS.batch_size < 0:
        raise FlagError(f"--batch_size={FLAGS.batch_size}: must be positive (0 = the paper's)")
    if FLAGS.epochs < 0 or FLAGS.steps_per_epoch < 0:
        raise FlagError("--epochs and --steps_per_epoch must be >= 0")
    if not FLAGS.learning_rate > 0:
        raise FlagError(f"--learning_rate={FLAGS.learning_rate}: must be positive")
    if not 0 <= FLAGS.momentum < 1:
        raise FlagError(f"--momentum={FLAGS.momentum}: must be in [0, 1)")
    if FLAGS.weight_decay < 0:
        raise FlagError(f"--weight_decay={FLAGS.weight_decay}: must be >= 0")
    if FLAGS.lr_patience < 1 or FLAGS.lr_max_reductions < 0 or FLAGS.lr_min_delta < 0:
        raise FlagError("--lr_patience must be >= 1, --lr_max_reductions and --lr_min_delta >= 0")
    if FLAGS.warmup_epochs < 0 or FLAGS.ten_crop_every < 0 or FLAGS.checkpoint_every_steps < 0:
        raise FlagError("--warmup_epochs, --ten_crop_every and --checkpoint_every_steps must be >= 0")
    if not FLAGS.input_scale > 0:
        raise FlagError(f"--input_scale={FLAGS.input_scale}: must be positive")
    if FLAGS.logical_cpus < 0:
        raise FlagError(f"--logical_cpus={FLAGS.logical_cpus}: must be >= 0")
    if FLAGS.strategy == "towers" and FLAGS.model != "alexnet":
        raise FlagError(f"--strategy=towers places AlexNet's two towers; --model={FLAGS.model} has none")
    if FLAGS.strategy == "multi_worker":
        from keras_alexnet.training.strategy import tf_config_problem

        problem = tf_config_problem()
        if problem:
            raise FlagError(problem)
    replicas = None
    if FLAGS.strategy == "mirrored" and FLAGS.logical_cpus > 1:
        replicas = FLAGS.logical_cpus
    elif FLAGS.strategy == "multi_worker":
        replicas = _tf_config_workers()
    if replicas and _batch_size() % replicas:
        raise FlagError(f"--batch_size={_batch_size()} is not divisible across {replicas} replicas")
    if FLAGS.warm_start:
        if FLAGS.model in ("alexnet", "alexnet_1tower", "vgg_a", "vgg_a_lrn"):
            raise FlagError(f"--warm_start initialises a deeper VGG net (vgg_b..vgg_e) from net A, "
                            f"not --model={FLAGS.model}")
        if not os.path.exists(FLAGS.warm_start):
            raise FlagError(f"--warm_start={FLAGS.warm_start}: no such run folder or file")
    if FLAGS.init_from and not (os.path.exists(FLAGS.init_from) or os.path.exists(FLAGS.init_from + ".index")):
        raise FlagError(f"--init_from={FLAGS.init_from}: no such run folder, checkpoint or file")
    if FLAGS.warm_start and FLAGS.init_from:
        raise FlagError("give --warm_start or --init_from, not both")
    if not FLAGS.run_name and "/" in FLAGS.model:
        raise FlagError("--run_name is required")


def _printer(message):
    print(message, flush=True)


def _silent(message):
    del message


def _load_source_model(path):
    """A trained model from a .keras file or run folder (via evaluate's loader)."""
    from keras_alexnet.evaluation.models import load_keras_model

    return load_keras_model(path)


def _initial_weights():
    """The callable Trainer runs once on a fresh start: VGG warm start or whole-model init."""
    if FLAGS.warm_start:
        def warm(model):
            from keras_alexnet.vgg import warm_start

            try:
                copied = warm_start(model, _load_source_model(FLAGS.warm_start))
            except ValueError as error:
                raise UserError(f"--warm_start={FLAGS.warm_start}: {error}") from None
            _printer(f"Warm start from {FLAGS.warm_start}: {', '.join(copied)} [VGG §3.1]")
        return warm
    if FLAGS.init_from:
        def init(model):
            from keras_alexnet.training.checkpointing import restore_model_weights

            path = FLAGS.init_from
            try:
                if path.endswith(".keras") or (os.path.isdir(path) and not os.path.isdir(
                        os.path.join(path, "checkpoints"))):
                    model.set_weights(_load_source_model(path).get_weights())
                else:
                    path = restore_model_weights(model, path)
            except (ValueError, FileNotFoundError) as error:
                raise UserError(f"--init_from={FLAGS.init_from}: {str(error).splitlines()[0]}") from None
            _printer(f"Initialised from {path} [VGG §3.1]")
        return init
    return None


def _prepare_default_data():
    from pipelines.default_data import ensure_default_data

    return ensure_default_data(FLAGS.default_data_root, FLAGS.resize_size)


def run(argv):
    start = time.time()
    applied = dict(_PRESET_APPLIED) or (presets.apply_preset(FLAGS) if _default_run() else {})
    if applied:
        _printer("Default run: AlexNet on the built-in Fashion-MNIST data, sized for a CPU "
                 "(keras_alexnet/training/presets.py). Flags set: " + presets.describe(applied))

    from absl import logging

    from keras_alexnet.training.strategy import configure_logical_cpus

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # no per-save INFO lines from the checkpoint writer
    import tensorflow as tf

    configure_logical_cpus(FLAGS.logical_cpus)
    import keras

    from callbacks.conv1_images import Conv1Images
    from callbacks.csv_log import MetricsCSV
    from callbacks.nan_guard import NanGuard
    from callbacks.dropped_records import DroppedRecords
    from callbacks.export_best import ExportBest
    from callbacks.plateau import PlateauDecay
    from callbacks.schedule import WarmupDecay
    from callbacks.summaries import HParams, ScalarSummaries
    from callbacks.ten_crop import TenCropEvaluation, evaluate_ten_crop
    from callbacks.throughput import Progress, Throughput
    from keras_alexnet import registry
    from keras_alexnet.training.checkpointing import fold_input_scale
    from keras_alexnet.training.optimizer import PaperSGD
    from keras_alexnet.training.strategy import is_chief, make_strategy
    from keras_alexnet.training.trainer import Trainer
    from pipelines import input_pipeline, record_parser

    # The strategy first: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy, strategy_options = make_strategy(FLAGS.strategy)
    replicas = strategy.num_replicas_in_sync
    batch = _batch_size()
    if batch % replicas:
        raise FlagError(f"--batch_size={batch} is not divisible across {replicas} replicas")
    chief = is_chief(strategy)
    printer = _printer if chief else _silent

    keras.utils.set_random_seed(FLAGS.seed)
    loss_scale = False
    if FLAGS.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
        loss_scale = policy == "mixed_float16"

    data_dir = _prepare_default_data() if _default_run() else FLAGS.data_dir
    epochs = _epochs()
    train_config = flagdefs.input_config("train", data_dir, batch, seed=FLAGS.seed, deterministic=True)
    val_config = flagdefs.input_config(FLAGS.validation_split, data_dir, batch, random_crop=False,
                                       flip=False, pca_jitter_std=0.0, cache=False)
    info = input_pipeline.dataset_info(train_config)
    num_classes = info.num_classes
    if not num_classes:
        raise UserError(f"{info.source}: the number of classes is unknown (no dataset.json): pass --num_classes")
    train_examples = input_pipeline.count_examples(train_config)
    val_examples = input_pipeline.count_examples(val_config)
    steps_per_epoch = FLAGS.steps_per_epoch or train_examples // batch
    if steps_per_epoch < 1:
        raise FlagError(f"--batch_size={batch} is larger than the {train_examples} training examples")

    run_dir = os.path.join(FLAGS.runs_dir, _run_name())
    log_dir = os.path.join(run_dir, "logs")
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    image_shape = (FLAGS.image_size, FLAGS.image_size, 3)
    options = dict(flagdefs.model_options(), **strategy_options)

    def build_model():
        return registry.build_model(FLAGS.model, num_classes=num_classes, input_shape=image_shape, **options)

    def build_optimizer():
        return PaperSGD(FLAGS.learning_rate, momentum=FLAGS.momentum, decay=FLAGS.weight_decay,
                        decay_biases=FLAGS.decay_biases)

    dropped = record_parser.DropCounter()

    def train_dataset_fn(input_context, epoch):
        # One seed per epoch: an epoch's batches are the same when it is run again after a resume.
        config = flagdefs.input_config("train", data_dir, batch, seed=FLAGS.seed * 100003 + epoch,
                                       deterministic=True)
        return scaled(input_pipeline.build_train_dataset(config, input_context, drop_counter=dropped))

    def val_dataset_fn(input_context):
        return scaled(input_pipeline.build_eval_dataset(val_config, "center", input_context=input_context))

    eval_batch = max(1, min(batch, 64))

    def scaled(dataset, scale=None):
        scale = FLAGS.input_scale if scale is None else scale
        if scale == 1.0:
            return dataset

        def multiply(images, labels):
            return images * scale, labels

        return dataset.map(multiply)

    def ten_crop_dataset(split, scale=None):
        config = flagdefs.input_config(split, data_dir, eval_batch, random_crop=False, flip=False,
                                       pca_jitter_std=0.0, cache=False)
        return scaled(input_pipeline.build_eval_dataset(config, "ten_crop", scale=FLAGS.resize_size), scale)

    with record_parser.user_errors():
        trainer = Trainer(strategy, build_model, build_optimizer, train_dataset_fn, steps_per_epoch,
                          epochs, batch, val_dataset_fn=val_dataset_fn, val_examples=val_examples,
                          checkpoint_dir=checkpoint_dir, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
                          jit_compile=FLAGS.jit_compile, loss_scale=loss_scale, is_chief=chief,
                          initial_weights=_initial_weights(), printer=printer)
        throughput = Throughput(batch)
        callbacks = [DroppedRecords(dropped, printer), NanGuard(), throughput]
        if FLAGS.lr_schedule == "plateau":
            callbacks.append(PlateauDecay(monitor="val_top1_error", factor=0.1, patience=FLAGS.lr_patience,
                                          min_delta=FLAGS.lr_min_delta,
                                          max_reductions=FLAGS.lr_max_reductions, printer=printer))
        else:
            callbacks.append(WarmupDecay(FLAGS.learning_rate, epochs * steps_per_epoch,
                                         int(FLAGS.warmup_epochs * steps_per_epoch), FLAGS.lr_schedule))
        ten_crop = None
        if chief:
            ten_crop = TenCropEvaluation(ten_crop_dataset(FLAGS.validation_split),
                                         every_n_epochs=FLAGS.ten_crop_every, printer=printer)
            hparams = {name: FLAGS[name].value for name in _hparam_flags()}
            hparams.update(batch_size=batch, epochs=epochs, replicas=replicas)
            callbacks += [ten_crop, Progress(steps_per_epoch, epochs, throughput, printer,
                                                   bar=FLAGS.progress and sys.stdout.isatty()),
                          MetricsCSV(os.path.join(run_dir, "metrics.csv")),
                          ScalarSummaries(log_dir, update_freq=FLAGS.log_every_steps),
                          Conv1Images(os.path.join(log_dir, "train")) if FLAGS.model.startswith("alexnet") else None,
                          HParams(log_dir, hparams)]
            if FLAGS.export_best:
                callbacks.append(ExportBest(FLAGS.export_dir, _run_name(), monitor="val_top1_error",
                                            input_scale=FLAGS.input_scale, **_export_settings(data_dir)))
            callbacks = [c for c in callbacks if c is not None]
            printer(f"Run folder: {run_dir}   TensorBoard: {_tool('tensorboard')} --logdir {log_dir}")
            printer(f"{FLAGS.model} on {info.source}: {num_classes} classes, {train_examples} training "
                    f"images, {steps_per_epoch} steps of {batch} per epoch, up to {epochs} epochs, "
                    f"{replicas} replica(s) ({FLAGS.strategy})")
        trainer.fit(callbacks)

        if not chief:
            return
        model = trainer.model
        if FLAGS.input_scale != 1.0:
            fold_input_scale(model, FLAGS.input_scale)
        model_path = os.path.join(run_dir, "model.keras")
        model.save(model_path)
        test_result = None
        if FLAGS.test_split:
            # On the usual inputs: the saved model, with the scale folded into its first kernel.
            test_result = evaluate_ten_crop(model, ten_crop_dataset(FLAGS.test_split, scale=1.0))
            printer(f"10-crop {FLAGS.test_split} [AlexNet §4.1]: accuracy {1 - test_result['top1_error']:.4f}, "
                    f"top-1 error {test_result['top1_error']:.4f}, top-5 error "
                    f"{test_result['top5_error']:.4f} ({test_result['count']} images)")
            _write_json(os.path.join(run_dir, f"{FLAGS.test_split}_ten_crop.json"), test_result)
        _final_summaries(log_dir, int(trainer.state.epoch.numpy()), ten_crop.final, test_result)
    export_path = _export(model, data_dir) if FLAGS.export else None
    _final_report(run_dir, log_dir, checkpoint_dir, model_path, export_path, data_dir, time.time() - start)


def _hparam_flags():
    return ("model", "width", "lrn", "init", "dropout", "image_size", "resize_size", "pca_jitter_std",
            "learning_rate", "momentum", "weight_decay", "decay_biases", "lr_schedule", "lr_patience",
            "lr_max_reductions", "warmup_epochs", "input_scale", "strategy", "mixed_precision", "jit_compile", "seed")


def _final_summaries(log_dir, epoch, validation, test):
    """The end-of-training 10-crop errors in TensorBoard (`ten_crop/` for validation, `test_ten_crop/`
    for the test split), also when 10-crop evaluation ran only at the end. [AlexNet §4.1]"""
    import tensorflow as tf

    for folder, values in (("ten_crop", validation), ("test_ten_crop", test)):
        if not values:
            continue
        writer = tf.summary.create_file_writer(os.path.join(log_dir, folder))
        with writer.as_default():
            for key, value in values.items():
                if key.endswith("_error"):
                    tf.summary.scalar(key.replace("ten_crop_", ""), float(value), step=max(epoch, 1))
        writer.close()


def _write_json(path, data):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def _class_names(data_dir):
    """Class names for the export: dataset.json's, or the TFDS label feature's."""
    from pipelines import records

    if data_dir:
        metadata = records.read_metadata(data_dir)
        return [c.text or c.synset for c in metadata.classes] if metadata else None
    from pipelines.tfds_source import load_builder

    builder = load_builder(FLAGS.tfds, FLAGS.tfds_data_dir, FLAGS.tfds_manual_dir)
    return list(builder.info.features["label"].names) if "label" in builder.info.features else None


def _export_settings(data_dir) -> dict:
    """How exports of this run preprocess: class names, the training mean, sizes, 10 crops."""
    from pipelines import records
    from pipelines.stats import read_stats

    mean = None
    mode = flagdefs.mean_mode()
    if mode != "none":
        stats = read_stats(FLAGS.stats_path or os.path.join(data_dir, records.STATS_FILE))
        mean = stats.get("mean_image") if mode == "image" else stats.get("mean_rgb", stats["mean_image"].mean((0, 1)))
    return dict(class_names=_class_names(data_dir), mean=mean, image_size=FLAGS.image_size,
                resize_size=FLAGS.resize_size, crops="ten_crop")


def _export(model, data_dir):
    from keras_alexnet.export import export_saved_model

    return export_saved_model(model, FLAGS.export_dir, _run_name(), **_export_settings(data_dir))


def _tool(name) -> str:
    """How to call `name` from here: this interpreter's environment (`.venv/bin/tensorboard`) unless
    that environment is active, so the printed commands work as they are pasted."""
    program = sys.executable if name == "python" else os.path.join(os.path.dirname(sys.executable), name)
    if shutil.which(name) == program or not os.path.exists(program):
        return name
    relative = os.path.relpath(program)
    return relative if not relative.startswith("..") else program


def _final_report(run_dir, log_dir, checkpoint_dir, model_path, export_path, data_dir, seconds):
    lines = [
        f"Done in {seconds / 60:.1f} min.",
        f"  checkpoints:  {checkpoint_dir}",
        f"  metrics:      {os.path.join(run_dir, 'metrics.csv')}",
        f"  Keras model:  {model_path}",
        f"  TensorBoard:  {_tool('tensorboard')} --logdir {log_dir}",
    ]
    if data_dir:
        lines.append(f"  evaluate:     {_tool('python')} main.py evaluate --model={run_dir} --data_dir={data_dir} "
                     f"--split=test --protocols=center,ten_crop --resize_size={FLAGS.resize_size}")
    if export_path:
        lines += [f"  SavedModel:   {export_path}",
                  f"  inspect it:   {_tool('saved_model_cli')} show --dir {export_path} --all"]
    _printer("\n".join(lines))
