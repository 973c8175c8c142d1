"""A training run's settings as one typed object: `TrainConfig`, what `train(config)` takes.

    from keras_alexnet.training import TrainConfig, ModelConfig, train
    from pipelines.input_config import InputConfig

    result = train(TrainConfig(model=ModelConfig("alexnet", width=0.25),
                               data=InputConfig(data_dir="data/mine", image_size=80, resize_size=96),
                               run_name="mine"))

Every field's default is the paper's value (AlexNet §5, VGG §3.1); a value of 0 / None where the papers
differ between families (batch size, epochs, LRN, the mean) means "the architecture's own", filled in by
`resolve()` from the model table (`keras_alexnet.registry`). The resolved config is what a run records in
its folder (`runs.RunRecord`) and what every later command reads back.

`data` is the training split's `InputConfig` (split "train"); the validation and test inputs are derived
from it (`input_for`), so crop size, framing, mean and statistics are the same everywhere. Its fields
`split`, `random_crop`, `flip`, `deterministic`, `seed`, `drop_remainder` are set by the training run.

The command line builds the same object from its flags (`config_from_values`): a flag and the field it
sets share a name (`--learning_rate` -> `optimizer.learning_rate`), except `--architecture` ->
`model.architecture` and `--tfds` -> `data.tfds_name`.
"""

import dataclasses
import os
from typing import Optional

from callbacks.lr_schedules import SCHEDULES
from keras_alexnet import registry
from keras_alexnet.errors import FlagError
from keras_alexnet.export import BASE_DIR as EXPORT_BASE_DIR
from keras_alexnet.outputs import check_folder_name
from keras_alexnet.training import finetune
from keras_alexnet.training import strategy as strategies
from pipelines import input_config
from pipelines.input_config import InputConfig

# Choice lists beyond the model options' (`registry.LRN_CONVENTIONS`, `POOLINGS`, `INITS`, ...) and the
# learning-rate schedules' (`callbacks.lr_schedules.SCHEDULES`), built on the lists of the modules that
# implement them: "auto" (the architecture's own, `registry`) or a mean of `input_config.MEANS`.
MEANS = ("auto",) + input_config.MEANS
# The ModelConfig fields only the paper's two AlexNets take (`registry`), and those of them that are flags.
_ALEXNET_ONLY_FLAGS = ("pooling", "extra_conv")
_ALEXNET_ONLY = _ALEXNET_ONLY_FLAGS + ("conv1_padding", "lrn_position")
# InputConfig fields the training run sets itself (not user settings).
_RUN_SET_INPUT_FIELDS = ("split", "random_crop", "flip", "deterministic", "seed", "drop_remainder")


@dataclasses.dataclass
class ModelConfig:
    """The network and its options (`registry.build_model`). [AlexNet §3, VGG §2]

    lrn None: the architecture's default (on for AlexNet and vgg_a_lrn); pooling, extra_conv,
    conv1_padding (2: the paper's 224 input as this project reads it; 0: Caffe's 227 input) and
    lrn_position ("before_pool": the paper, bvlc_alexnet; "after_pool": CaffeNet) apply to the two
    AlexNets of the paper only (`registry`). lrn_convention "caffe": Caffe's LRN (α/n, k=1).
    """

    architecture: str = "alexnet"
    width: float = 1.0
    lrn: Optional[bool] = None
    lrn_convention: str = "paper"
    pooling: str = "overlapping"
    extra_conv: bool = False
    init: str = "paper"
    dropout: float = 0.5
    activation: str = "relu"
    conv1_padding: int = 2
    lrn_position: str = "before_pool"

    def build_options(self) -> dict:
        """Keyword options for `registry.build_model` (those the architecture takes)."""
        options = dict(width=self.width, lrn=self.lrn, lrn_convention=self.lrn_convention, init=self.init,
                       dropout=self.dropout, activation=self.activation, pooling=self.pooling,
                       extra_conv=self.extra_conv, conv1_padding=self.conv1_padding,
                       lrn_position=self.lrn_position)
        return {key: value for key, value in options.items() if key in registry.spec(self.architecture).options}

    def validate(self) -> None:
        """FlagError in one line, naming the setting, for model options the architecture cannot take: the
        check `train` and `summary` share."""
        spec = registry.spec(self.architecture)
        _choice("lrn_convention", self.lrn_convention, registry.LRN_CONVENTIONS)
        _choice("lrn_position", self.lrn_position, registry.LRN_POSITIONS)
        _choice("pooling", self.pooling, registry.POOLINGS)
        _choice("init", self.init, registry.INITS)
        _choice("activation", self.activation, registry.ACTIVATIONS)
        default = ModelConfig()
        changed = [name for name in _ALEXNET_ONLY if getattr(self, name) != getattr(default, name)]
        if "pooling" not in spec.options and changed:
            net = "VGG" if spec.family == "vgg" else spec.name
            if set(changed) & set(_ALEXNET_ONLY_FLAGS):
                raise FlagError(f"{' and '.join(f'--{name}' for name in _ALEXNET_ONLY_FLAGS)} are AlexNet options; "
                                f"{net} has neither")
            # conv1_padding and lrn_position have no flag: they come with imported Caffe weights.
            raise FlagError(f"{', '.join(changed)}: AlexNet options; {net} has none of them")
        if not self.width > 0:
            raise FlagError(f"--width={self.width}: must be positive")
        if not 0 <= self.dropout < 1:
            raise FlagError(f"--dropout={self.dropout}: must be in [0, 1)")


@dataclasses.dataclass
class OptimizerConfig:
    """AlexNet §5's update rule: v <- momentum v - weight_decay lr w - lr grad; w <- w + v."""

    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_biases: bool = True


@dataclasses.dataclass
class ScheduleConfig:
    """Epochs and the learning-rate schedule. [AlexNet §5, VGG §3.1]

    epochs 0: the paper's cap (90 AlexNet, 74 VGG); steps_per_epoch 0: one pass over the training split.
    lr_schedule: a name in `callbacks.lr_schedules.SCHEDULES`, which says what each does; lr_patience,
    lr_min_delta and lr_max_reductions are the plateau schedule's (the papers'), warmup_epochs the others'.
    """

    epochs: int = 0
    steps_per_epoch: int = 0
    lr_schedule: str = "plateau"
    lr_patience: int = 2
    lr_min_delta: float = 0.001
    lr_max_reductions: int = 3
    warmup_epochs: float = 0.0


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on (see the module docstring).

    - validation_split: watched by the plateau schedule and 10-crop evaluation; test_split: if set,
      10-crop errors on it at the end (AlexNet §4.1, §6); ten_crop_every: 10-crop validation every N
      epochs (0: at the end only).
    - strategy: "default", "mirrored" (VGG §3.3), "multi_worker" (TF_CONFIG), "towers" (AlexNet §3.2);
      logical_cpus: split the CPU into N devices (tests, no GPUs).
    - mixed_precision: True / False, or None: the machine's default for a new run, the recorded setting
      for a resumed one (`precision.py`); a run's record holds the resolved value.
    - input_scale: inputs multiplied by it while training, folded into conv1 when saved (1 = the paper).
    - warm_start: a trained VGG net A whose first four conv and three FC layers initialise a deeper
      net (VGG §3.1); init_from: a run, checkpoint or .keras initialising the model: every layer, or all
      but the classifier fc8 for another number of classes, the network and the mean taken from the
      source (`finetune.py`); freeze_through: a layer name, the copied layers up to it kept fixed.
    - steps_per_call: training steps per call of the compiled step; callbacks see each call as one
      batch, so a scheduled learning rate is set once per call (`trainer.py`).
    - runs_dir / run_name: the run folder (run_name None: the architecture's name); the same folder
      resumes the run.
    - data_service: "grpc://HOST:PORT" of a tf.data service dispatcher whose workers make the training
      batches (`pipelines/data_service.py`); "" for the pipeline in this process.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: InputConfig = dataclasses.field(default_factory=lambda: InputConfig(batch_size=0, mean="auto"))
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    validation_split: str = "validation"
    test_split: str = ""
    ten_crop_every: int = 1
    strategy: str = "default"
    logical_cpus: int = 0
    mixed_precision: Optional[bool] = None
    jit_compile: bool = False
    input_scale: float = 1.0
    seed: int = 0
    warm_start: Optional[str] = None
    init_from: Optional[str] = None
    freeze_through: Optional[str] = None
    runs_dir: str = "runs"
    run_name: Optional[str] = None
    checkpoint_every_steps: int = 1000
    steps_per_call: int = 1
    log_every_steps: int = 100
    progress: bool = True
    export: bool = True
    export_best: bool = False
    export_dir: str = EXPORT_BASE_DIR
    data_service: str = ""

    @property
    def spec(self) -> registry.ModelSpec:
        return registry.spec(self.model.architecture)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.runs_dir, self.run_name or self.model.architecture)

    def resolve(self) -> "TrainConfig":
        """A copy with the architecture's defaults filled in (batch, epochs, LRN, mean, run name), validated."""
        spec = self.spec
        data = self.data
        kind = finetune.source_mean(self.init_from) or spec.mean  # the mean the copied weights know
        mean = data.mean if data.mean != "auto" else (
            "image" if kind == "image" and data.scale_jitter is None else "rgb")
        data = dataclasses.replace(data, split="train", batch_size=data.batch_size or spec.batch_size, mean=mean)
        resolved = dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, lrn=spec.lrn if self.model.lrn is None else self.model.lrn),
            data=data,
            schedule=dataclasses.replace(self.schedule, epochs=self.schedule.epochs or spec.epochs),
            run_name=self.run_name or self.model.architecture,
        )
        resolved.validate()
        return resolved

    def input_for(self, split: str, batch_size: Optional[int] = None, training: bool = False) -> InputConfig:
        """The InputConfig of `split`: the training augmentation when `training`, else centre views
        without augmentation or caching. [AlexNet §4.1]"""
        if training:
            return dataclasses.replace(self.data, split=split, deterministic=True, seed=self.seed)
        return dataclasses.replace(self.data, split=split, random_crop=False, flip=False, pca_jitter_std=0.0,
                                   cache=False, batch_size=batch_size or self.data.batch_size)

    def validate(self) -> None:
        """FlagError (a ValueError) in one line, naming the setting, for values that cannot work."""
        spec = self.spec
        model, data, opt, sched = self.model, self.data, self.optimizer, self.schedule
        model.validate()
        _choice("mean", data.mean, MEANS)
        _choice("lr_schedule", sched.lr_schedule, SCHEDULES)
        _choice("strategy", self.strategy, strategies.STRATEGIES)
        checks = (
            (data.image_size >= spec.min_input,
             f"--image_size={data.image_size}: {spec.name} needs at least {spec.min_input} pixels"),
            (data.resize_size >= data.image_size,
             f"--resize_size={data.resize_size} must be at least --image_size={data.image_size}"),
            (data.pca_jitter_std >= 0, f"--pca_jitter_std={data.pca_jitter_std}: must be >= 0"),
            (bool(data.data_dir) != bool(data.tfds_name),
             "give one data source: --data_dir or --tfds" if data.data_dir else "no data: give --data_dir or --tfds"),
            (data.batch_size >= 1, f"--batch_size={data.batch_size}: must be positive (0 = the paper's)"),
            (sched.epochs >= 0 and sched.steps_per_epoch >= 0, "--epochs and --steps_per_epoch must be >= 0"),
            (opt.learning_rate > 0, f"--learning_rate={opt.learning_rate}: must be positive"),
            (0 <= opt.momentum < 1, f"--momentum={opt.momentum}: must be in [0, 1)"),
            (opt.weight_decay >= 0, f"--weight_decay={opt.weight_decay}: must be >= 0"),
            (sched.lr_patience >= 1 and sched.lr_max_reductions >= 0 and sched.lr_min_delta >= 0,
             "--lr_patience must be >= 1, --lr_max_reductions and --lr_min_delta >= 0"),
            (sched.warmup_epochs >= 0 and self.ten_crop_every >= 0 and self.checkpoint_every_steps >= 0,
             "--warmup_epochs, --ten_crop_every and --checkpoint_every_steps must be >= 0"),
            (self.steps_per_call >= 1, f"--steps_per_call={self.steps_per_call}: must be >= 1"),
            (data.shuffle_buffer >= 1, f"--shuffle_buffer={data.shuffle_buffer}: must be >= 1"),
            (self.log_every_steps >= 0, f"--log_every_steps={self.log_every_steps}: must be >= 0 (0: never)"),
            (0 <= self.seed < 2**32, f"--seed={self.seed}: must be in [0, 2**32)"),
            (self.input_scale > 0, f"--input_scale={self.input_scale}: must be positive"),
            (self.logical_cpus >= 0, f"--logical_cpus={self.logical_cpus}: must be >= 0"),
            (self.strategy != "towers" or spec.towers == 2,
             f"--strategy=towers places AlexNet's two towers; --architecture={spec.name} has none"),
            (not (self.warm_start and self.init_from), "give --warm_start or --init_from, not both"),
            (not (self.data_service and self.strategy == "multi_worker"),
             "--data_service with --strategy=multi_worker: each worker would read the whole epoch; use one "
             "trainer (default, mirrored or towers)"),
            (not self.warm_start or (spec.family == "vgg" and spec.vgg_config != "A"),
             f"--warm_start initialises a deeper VGG net (vgg_b..vgg_e) from net A, not --architecture={spec.name}"),
        )
        for holds, message in checks:
            if not holds:
                raise FlagError(message)
        if self.run_name is not None:
            check_folder_name(self.run_name, "run_name", "runs_dir")
        if data.scale_jitter is not None and data.mean == "image":
            raise FlagError("--mean=image needs the fixed AlexNet framing: use --mean=rgb with --scale_jitter (VGG §2.1)")
        if data.data_dir is not None:
            data.validate()
        if self.data_service:
            from pipelines.data_service import split_address

            split_address(self.data_service, "data_service", protocol_required=True)
        if self.warm_start and not (os.path.exists(self.warm_start) or os.path.exists(self.warm_start + ".index")):
            raise FlagError(f"--warm_start={self.warm_start}: no such run folder, checkpoint or file")
        if self.init_from and not (os.path.exists(self.init_from) or os.path.exists(self.init_from + ".index")):
            raise FlagError(f"--init_from={self.init_from}: no such run folder, checkpoint or file")
        finetune.check(self)

    def to_dict(self) -> dict:
        """Plain JSON-able values (what `run.json` records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The inverse of `to_dict` (unknown keys refused: a run.json from another version is named)."""
        parts = dict(values)
        try:
            model = ModelConfig(**parts.pop("model"))
            data = dict(parts.pop("data"))
            if isinstance(data.get("scale_jitter"), list):
                data["scale_jitter"] = tuple(data["scale_jitter"])
            return cls(model=model, data=InputConfig(**data), optimizer=OptimizerConfig(**parts.pop("optimizer")),
                       schedule=ScheduleConfig(**parts.pop("schedule")), **parts)
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a TrainConfig ({error})") from None


def _choice(name, value, choices):
    if value not in choices:
        raise FlagError(f"--{name}={value}: choose from {', '.join(map(str, choices))}")


def flat_field_names() -> dict:
    """{flat name: (part, field)} for every user setting: what `config_from_values` accepts."""
    names = {"architecture": ("model", "architecture")}
    for part, cls in (("model", ModelConfig), ("optimizer", OptimizerConfig), ("schedule", ScheduleConfig)):
        names.update({f.name: (part, f.name) for f in dataclasses.fields(cls) if f.name != "architecture"})
    names.update({f.name: ("data", f.name) for f in dataclasses.fields(InputConfig)
                  if f.name not in _RUN_SET_INPUT_FIELDS})
    names.update({f.name: (None, f.name) for f in dataclasses.fields(TrainConfig)
                  if f.name not in ("model", "data", "optimizer", "schedule")})
    return names


def config_from_values(values: dict, base: Optional[TrainConfig] = None) -> TrainConfig:
    """`base` (default: the paper's settings) with the flat `values` ({"learning_rate": 0.02, ...}) set."""
    fields = flat_field_names()
    config = base or TrainConfig()
    if values.get("init_from"):  # the network (and input scale) not given are the source's (finetune.py)
        network = [name for name, (part, _) in fields.items() if part == "model"]
        values = dict(finetune.source_values(values["init_from"], tuple(network)), **values)
    parts = {"model": {}, "data": {}, "optimizer": {}, "schedule": {}, None: {}}
    for name, value in values.items():
        if name not in fields:
            raise FlagError(f"unknown training setting '{name}'")
        part, field = fields[name]
        parts[part][field] = value
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, **parts["model"]),
        data=dataclasses.replace(config.data, **parts["data"]),
        optimizer=dataclasses.replace(config.optimizer, **parts["optimizer"]),
        schedule=dataclasses.replace(config.schedule, **parts["schedule"]),
        **parts[None],
    )
