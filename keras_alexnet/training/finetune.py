"""Starting a run from another run's weights (`--init_from`): the same task, or new classes (fine-tuning).

The source is a run folder (trained here or made by `import_weights`), one of its checkpoints, or a
`.keras` file. What the new run takes from it:

- the network: the architecture and the model options that change what the copied weights compute
  (every `ModelConfig` field but `TRAINING_ONLY_MODEL_FIELDS`) come from the source's `run.json`
  (`runs.model_config_of`) when they are not given; a given one that differs is refused in one line
  naming both values, before any work;
- the weights: every layer with weights is copied by name, except the classifier fc8 when the class
  counts differ: it keeps the architecture's initialisation for the new classes (`--init`). A layer
  whose shapes still differ (fc6 after another `--image_size`) is named with both shapes;
- the input scale: the source run's `--input_scale` when not given (a reparametrisation of conv1's
  learning rate its conv1 was learned with). A checkpoint holds conv1 as trained, on inputs times the
  source's `--input_scale`; a `.keras` model has that scale folded into conv1
  (`keras_alexnet.export.fold_input_scale`). conv1 is rescaled so that the new run, on inputs times its own
  `--input_scale`, computes what the source did;
- the mean: the source's mean (its `stats.npz`, the mean its weights were trained with), unless
  `--stats_path` or `--mean=none` is given (`run._run_stats`);
- `--freeze_through=LAYER`: the copied layers from the input up to LAYER are not trained at all (not
  trainable: no gradient, no momentum, no weight decay), so they end the run bitwise as copied.

What was done is recorded in `run.json` (`RunRecord.weights_from`) and printed in one line at the start.
"""

import dataclasses
import os
from typing import Optional

from keras_alexnet import registry, runs
from keras_alexnet.errors import FlagError, UserError

CLASSIFIER = registry.CLASSIFIER_LAYER
# ModelConfig fields that change how a net trains or is initialised, not what copied weights compute:
# these may differ from the source's.
TRAINING_ONLY_MODEL_FIELDS = ("dropout", "init")
# Training settings a new run takes from a trained source when they are not given.
INHERITED_SETTINGS = ("input_scale",)


@dataclasses.dataclass
class Source:
    """An `--init_from` path and the run it belongs to (None for a bare file)."""

    path: str
    run_dir: Optional[str]
    record: Optional[runs.RunRecord]

    @property
    def is_keras_model(self) -> bool:
        """A `.keras` file, or a run folder without checkpoints (imported weights): conv1 has the input
        scale folded in. Otherwise a checkpoint (or a run folder's latest one)."""
        path = self.path
        return path.endswith(".keras") or (
            os.path.isdir(path) and not os.path.isdir(os.path.join(path, runs.CHECKPOINTS_DIR)))

    def model_values(self) -> dict:
        """The flat `ModelConfig` values ("architecture", "width", ...) the source was built with, the
        architecture's LRN default filled in; {} when it has no run.json."""
        if self.record is None:
            return {}
        values = dict(runs.model_config_of(self.record) or {})
        values.setdefault("architecture", self.record.architecture)
        if values.get("lrn") is None and values["architecture"] in registry.SPECS:
            values["lrn"] = registry.spec(values["architecture"]).lrn
        return values

    @property
    def trained_input_scale(self) -> float:
        """The input scale conv1's stored kernel expects: 1 in a .keras model (folded), the source run's
        --input_scale in its checkpoints."""
        if self.is_keras_model or self.record is None or not self.record.config:
            return 1.0
        return float(self.record.config.get("input_scale", 1.0))

    @property
    def stats_path(self) -> Optional[str]:
        path = os.path.join(self.run_dir, runs.STATS_FILE) if self.run_dir else None
        return path if path and os.path.isfile(path) else None


def read_source(path: str) -> Source:
    """The `Source` at `path` (its run.json read when it belongs to a run folder; no TensorFlow)."""
    run_dir = runs.run_dir_of(path)
    return Source(path, run_dir, runs.read_record(run_dir) if run_dir else None)


def frozen_layers(architecture: str, extra_conv: bool, freeze_through: Optional[str]) -> tuple:
    """The layers `--freeze_through` keeps fixed: those with weights from the input up to it, in order."""
    if not freeze_through:
        return ()
    names = registry.weight_layer_names(architecture, extra_conv)
    return names[:names.index(freeze_through) + 1]


def check(config) -> None:
    """FlagError in one line for a fine-tuning setting of the resolved `config` that cannot work: a freeze
    without --init_from or of a layer the model does not have, a network option that differs from the
    source's. Reads the source's run.json only."""
    model = config.model
    if config.freeze_through:
        if not config.init_from:
            raise FlagError(f"--freeze_through={config.freeze_through} keeps copied layers fixed: it needs "
                            "--init_from (a run to copy them from)")
        choices = registry.weight_layer_names(model.architecture, model.extra_conv)[:-1]
        if config.freeze_through not in choices:
            raise FlagError(f"--freeze_through={config.freeze_through}: {model.architecture} has no such layer "
                            f"below {CLASSIFIER} (choose from: {', '.join(choices)})")
    if not config.init_from:
        return
    source = read_source(config.init_from)
    given = dataclasses.asdict(model)
    for name, value in source.model_values().items():
        if name not in given or name in TRAINING_ONLY_MODEL_FIELDS or given[name] == value:
            continue
        raise FlagError(f"--{name}={given[name]}: --init_from={config.init_from} was built with --{name}={value}; "
                        f"leave --{name} out to use the source's")


def readable_source(init_from: Optional[str]) -> Optional[Source]:
    """The source when it exists and its run.json (if any) reads; None otherwise (`check` names the problem
    when the config is validated)."""
    if not init_from or not (os.path.exists(init_from) or os.path.exists(init_from + ".index")):
        return None
    try:
        return read_source(init_from)
    except UserError:
        return None


def source_values(init_from: Optional[str], network: tuple) -> dict:
    """What `config_from_values` fills in when not given: the source's network settings among the flat
    names `network`, and its `INHERITED_SETTINGS` (a trained source's)."""
    source = readable_source(init_from)
    if source is None:
        return {}
    values = {name: value for name, value in source.model_values().items()
              if name in network and name not in TRAINING_ONLY_MODEL_FIELDS}
    trained = (source.record.config or {}) if source.record else {}
    values.update({name: trained[name] for name in INHERITED_SETTINGS if name in trained})
    return values


def source_mean(init_from: Optional[str]) -> Optional[str]:
    """The mean kind ("image", "rgb") the source was trained with, when it has statistics to give."""
    source = readable_source(init_from)
    if source is None or source.record is None or source.stats_path is None or source.record.mean == "none":
        return None
    return source.record.mean


def initialise(model, config) -> dict:
    """Copies the source's weights into `model` (built for the new run, `config` resolved); returns what
    was done, as `RunRecord.weights_from` records it. UserError in one line when the source cannot be
    read or a layer does not fit."""
    source = read_source(config.init_from)
    source_model, weights = load_source_model(source, config, model, "init_from")
    target_classes = int(model.get_layer(CLASSIFIER).weights[0].shape[-1])
    try:
        source_classes = int(source_model.get_layer(CLASSIFIER).weights[0].shape[-1])
    except ValueError:
        raise UserError(f"--init_from={config.init_from}: has no classifier layer {CLASSIFIER}") from None
    new_classifier = source_classes != target_classes
    copied = []
    for layer in model.layers:
        if not layer.weights or (layer.name == CLASSIFIER and new_classifier):
            continue
        try:
            source_layer = source_model.get_layer(layer.name)
        except ValueError:
            raise UserError(f"--init_from={config.init_from}: has no layer {layer.name}") from None
        want = [tuple(w.shape) for w in layer.weights]
        have = [tuple(w.shape) for w in source_layer.weights]
        if want != have:
            why = ""
            if layer.name == "fc6" and source.record is not None and source.record.image_size != config.data.image_size:
                why = f" (fc6's input follows the crop: the source used --image_size={source.record.image_size})"
            raise UserError(f"--init_from={config.init_from}: layer {layer.name} has shapes {have} there, {want} "
                            f"in this run{why}")
        layer.set_weights(source_layer.get_weights())
        copied.append(layer.name)
    rescale = rescale_conv1(model, source, config.input_scale)
    record = source.record
    return {
        "path": os.path.abspath(config.init_from),
        "weights": os.path.abspath(weights),
        "origin": record.origin if record else None,
        "architecture": record.architecture if record else config.model.architecture,
        "num_classes": source_classes,
        "copied": copied,
        "classifier": "new" if new_classifier else "copied",
        "frozen": list(frozen_layers(config.model.architecture, config.model.extra_conv, config.freeze_through)),
        "conv1_rescaled_by": rescale,
    }


def rescale_conv1(model, source: Source, input_scale: float) -> float:
    """Rescales the conv1 copied from `source` into `model` so that `model`, on inputs times its own
    `input_scale`, computes what the source did: conv1 is linear in its input, so its kernel is multiplied
    by the scale the stored kernel expects over the new one (`export.fold_input_scale`). Returns that
    factor (1: nothing done)."""
    rescale = source.trained_input_scale / input_scale
    if rescale != 1.0:
        from keras_alexnet.export import fold_input_scale

        fold_input_scale(model, rescale)
    return rescale


def load_source_model(source: Source, config, model, flag: str):
    """(a Keras model holding the source's weights, the file or checkpoint they were read from); a
    problem reading them is a UserError naming `--flag=path`."""
    from keras_alexnet.evaluation.models import keras_model_file, load_keras_model

    if source.is_keras_model:
        return load_keras_model(source.path), keras_model_file(source.path)
    from keras_alexnet.training.checkpointing import restore_model_weights
    from keras_alexnet.training.config import ModelConfig

    record = source.record
    if record is None:  # a checkpoint outside a run folder: assumed to be of this run's network
        architecture, options, classes = config.model.architecture, config.model.build_options(), None
        size = config.data.image_size
    else:
        fields = {f.name for f in dataclasses.fields(ModelConfig)}
        values = {k: v for k, v in source.model_values().items() if k in fields}
        architecture, options = values["architecture"], ModelConfig(**values).build_options()
        classes, size = record.num_classes, record.image_size
    if classes is None:
        classes = int(model.get_layer(CLASSIFIER).weights[0].shape[-1])
    source_model = registry.build_model(architecture, num_classes=classes, input_shape=(size, size, 3), **options)
    try:
        path = restore_model_weights(source_model, source.path)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(f"--{flag}={source.path}: {str(error).splitlines()[0]}") from None
    return source_model, path


def describe(weights_from: dict, num_classes: int) -> str:
    """The one line saying where the weights came from and what was copied, new and frozen."""
    copied = weights_from["copied"]
    origin = ", ".join(str(part) for part in (weights_from.get("origin"), weights_from["architecture"],
                                             f"{weights_from['num_classes']} classes") if part)
    parts = [f"Initialised from {weights_from['path']} ({origin}; {weights_from['weights']}): "
             f"copied {', '.join(copied)}"]
    if weights_from["classifier"] == "new":
        parts.append(f"{CLASSIFIER} new for {num_classes} classes (the architecture's initialisation)")
    if weights_from["frozen"]:
        parts.append(f"frozen {', '.join(weights_from['frozen'])}")
    if weights_from.get("conv1_rescaled_by", 1.0) != 1.0:
        parts.append(f"conv1 x{weights_from['conv1_rescaled_by']:g} for --input_scale")
    return "; ".join(parts) + " [VGG §3.1]"


def learning_rate_hint(config, weights_from: dict) -> Optional[str]:
    """A hint when a new classifier is trained at the paper's default learning rate: fine-tuning starts
    at about 1/10 of the source's rate with a short schedule (R-CNN, Girshick et al. 2014, §2.3: 1/10 of
    the pre-training rate, so that training makes progress without clobbering the copied weights; VGG
    §3.1 likewise restarts its S=384 net from the S=256 one at 10^-3, 1/10 of its initial 10^-2)."""
    from keras_alexnet.training.config import OptimizerConfig

    if weights_from["classifier"] != "new" or config.optimizer.learning_rate != OptimizerConfig().learning_rate:
        return None
    record = read_source(config.init_from).record
    source_rate = ((record.config or {}).get("optimizer") or {}).get("learning_rate") if record else None
    base = source_rate or config.optimizer.learning_rate
    return (f"Hint: --learning_rate is at its default {config.optimizer.learning_rate:g}; fine-tuning usually "
            f"starts at about 1/10 of the source's rate ({base:g} -> --learning_rate={base / 10:g}) with a short "
            "schedule (e.g. --lr_schedule=linear --epochs=10): the copied layers are already near a good "
            "solution, which a large rate would undo (R-CNN §2.3 fine-tunes at 1/10 of the pre-training rate)")
