"""The evaluation engine: models x protocols x test scales over a split, to softmax outputs and the error
table (AlexNet §4.1, §6; VGG §3.2, §4).

    result = evaluate(EvalConfig(models=["runs/mine"], protocols=("center", "ten_crop")))
    result.table()                        # the error table (pandas), as `main.py evaluate` prints it
    result.errors("alexnet", "ten_crop")  # {"top1_error", "top5_error" (fractions), "count"}

Everything that evaluates goes through here: `main.py evaluate` (flags -> `EvalConfig` -> `evaluate`),
the studies' measures, training's final test pass and the 10-crop callback (`evaluate_model`, on the
Keras model in memory). The protocols are those of `pipelines.eval_protocols`; a model's settings
(crop size, test scale Q, mean and statistics: `runs.EvalSettings`, from its run.json or export) become
the evaluation `InputConfig` in one place, `eval_input`; the loop over a dataset is
`protocols.run_protocol`, the top-1/top-5 rule `keras_alexnet.metrics.missed` (`tables.errors`).
"""

import dataclasses
import os
from typing import Callable, Optional

from keras_alexnet.errors import FlagError
from keras_alexnet.evaluation import ensemble, models, protocols, tables
from pipelines import eval_protocols


@dataclasses.dataclass
class EvalConfig:
    """What `evaluate` runs.

    - models: model paths (run folders, .keras files, SavedModel folders; `evaluation.models`).
    - data_dir: the prepared data to evaluate on; None: the data folder the first model's run recorded.
    - split: the split evaluated.
    - protocols: names in `pipelines.eval_protocols.PROTOCOLS`.
    - scales: the test scales Q; None: each model's own (its run.json or export, VGG §3.2 single scale).
    - mean: "image", "rgb" or "none" instead of each model's own (None).
    - batch_size: images per batch of the crop protocols (dense ones run one image at a time).
    - max_examples: only the first N images of the split (None: all).
    - fuse: also the fusion of all models, their softmax averaged (AlexNet §6, VGG §4.4).
    - progress: a progress line per pass.
    - scale_flag: the flag a refused scale is named by.
    """

    models: tuple
    data_dir: Optional[str] = None
    split: str = "validation"
    protocols: tuple = ("center",)
    scales: Optional[tuple] = None
    mean: Optional[str] = None
    batch_size: int = 32
    max_examples: Optional[int] = None
    fuse: bool = False
    progress: bool = True
    scale_flag: str = "test_scale"

    def validate(self) -> None:
        """FlagError in one line for settings that cannot work (before TensorFlow starts)."""
        if not self.models:
            raise FlagError("--model is required (a run folder, a .keras file or a SavedModel folder)")
        eval_protocols.check(self.protocols)
        if self.fuse and len(self.models) < 2:
            raise FlagError("--ensemble needs at least two --model")
        if self.batch_size < 1:
            raise FlagError(f"--batch_size={self.batch_size} must be positive")
        if self.max_examples is not None and self.max_examples < 1:
            raise FlagError(f"--max_examples={self.max_examples} must be positive")
        if self.scales is not None and (not self.scales or any(int(q) <= 0 for q in self.scales)):
            raise FlagError(f"--{self.scale_flag}: scales must be positive")


@dataclasses.dataclass
class EvalResult:
    """What `evaluate` produced: `runs` (a `protocols.Run` per model, protocol and scale: softmax
    outputs, labels, seconds), the error table's `rows` (`ensemble.table_rows`), and `fusion_problem`
    (why the models could not be fused, their own rows kept) or None."""

    split: str
    runs: list
    rows: list
    fusion_problem: Optional[str] = None

    def table(self):
        """The error table (pandas) whose headings name the split."""
        return tables.error_table(self.rows, self.split)

    def errors(self, model: str, measure: str) -> dict:
        """`tables.errors` of `model` (its name in the runs) under `measure`, a protocol or a combination
        of `pipelines.eval_protocols`, the softmax averaged over all its scales (and members)."""
        combination = eval_protocols.COMBINATIONS.get(measure)
        members = combination.members if combination else (eval_protocols.get(measure).name,)
        chosen = [run for run in self.runs if run.model == model and run.protocol in members]
        if not chosen:
            raise ValueError(f"no run of {model} under {measure}")
        return tables.errors(*protocols.average(chosen))


def eval_input(settings, split: str, batch_size: int, data=None):
    """The evaluation `InputConfig` of a model whose `runs.EvalSettings` are `settings` (crop size, test
    scale Q, mean kind and statistics file): the one place they become input settings. `data`: a data
    folder, or the `InputConfig` of a training run's own data (its folder or TFDS dataset, label offset,
    strict reading) whose source is kept. No augmentation, no caching (AlexNet §4.1 test time)."""
    from pipelines.input_config import InputConfig

    source = data if isinstance(data, InputConfig) else InputConfig(data_dir=data)
    return dataclasses.replace(
        source, split=split, image_size=settings.image_size, resize_size=settings.test_scale, scale_jitter=None,
        mean=settings.mean, stats_path=settings.stats_path, batch_size=batch_size, random_crop=False,
        flip=False, pca_jitter_std=0.0, cache=False)


def protocol_dataset(config, protocol: str, scale: Optional[int] = None, max_examples: Optional[int] = None):
    """`pipelines.input_pipeline.build_eval_dataset` of `config` (`eval_input`) under `protocol` at
    `scale` (None: config's Q), only its first `max_examples` images when given."""
    from pipelines.input_pipeline import build_eval_dataset

    dataset = build_eval_dataset(config, protocol, scale)
    if max_examples:
        batch = 1 if eval_protocols.get(protocol).dense else config.batch_size
        dataset = dataset.unbatch().take(max_examples).batch(batch)
    return dataset


def evaluate_model(model, protocol: str, dataset, scale: Optional[int] = None, progress=False, examples=None,
                   should_stop=None) -> protocols.Run:
    """One pass of `protocol` over `dataset` (as `protocol_dataset` makes it) with `model`, an
    `evaluation.models.Evaluable` or a Keras model in memory (nothing reloaded: the 10-crop callback
    calls this every few epochs). `progress`, `examples`, `should_stop` as `protocols.run_protocol`'s;
    the run's `errors()` are its top-1/top-5 error."""
    dense = eval_protocols.get(protocol).dense
    evaluable = model if isinstance(model, models.Evaluable) else models.keras_evaluable(model, dense=dense)
    return protocols.run_protocol(evaluable.name, protocol, scale, protocols.batch_probabilities(evaluable, protocol),
                                  dataset, progress=progress, examples=examples, should_stop=should_stop)


def _examples(data_dir: str, config: EvalConfig):
    """How many images one pass evaluates (for the progress line's ETA), None if not recorded."""
    recorded = models.split_size(data_dir, config.split)
    if config.max_examples:
        return min(recorded, config.max_examples) if recorded else config.max_examples
    return recorded


def evaluate(config: EvalConfig, printer: Callable[[str], None] = print) -> EvalResult:
    """Every model of `config` under every protocol at every test scale, and the error table's rows (each
    model's, with `fuse` the fusion's: `ensemble.table_rows`). `printer` gets a line per model (its
    settings) and per pass (images, images/s). FlagError / UserError in one line for models, data or
    settings that cannot work."""
    from keras_alexnet import runs as run_folders
    from pipelines import record_parser

    config.validate()
    data_dir = config.data_dir or models.recorded_data_dir(config.models[0])
    if not data_dir:
        raise FlagError("--data_dir is required (the model records no data folder)")
    examples = _examples(data_dir, config)
    runs, names = [], []
    for path in config.models:
        model = models.evaluable(path)
        name = model.name
        if name in names:  # two models of one architecture: tell them apart by file or run folder
            name = f"{model.name} ({os.path.basename(os.path.normpath(path))})"
        names.append(name)
        dense = [p for p in config.protocols if eval_protocols.get(p).dense]
        if dense and model.score_map is None:
            raise FlagError(f"--protocols={dense[0]}: {path} is a SavedModel with a fixed input size; "
                            "evaluate the checkpoint it came from")
        # A model without recorded settings takes the smallest scale given.
        smallest = min(config.scales) if config.scales else None
        settings = run_folders.eval_settings(path, model.image_size, test_scale=smallest, mean=config.mean,
                                             data_dir=data_dir, scale_flag=config.scale_flag)
        scales = list(config.scales) if config.scales else [settings.test_scale]
        printer(f"{name}: {settings.image_size}px crops, Q={','.join(map(str, scales))}, mean {settings.mean} "
                f"(from {settings.source})")
        for protocol in config.protocols:
            views = protocols.batch_probabilities(model, protocol)
            for scale in scales:
                input_config = eval_input(dataclasses.replace(settings, test_scale=scale), config.split,
                                          config.batch_size, data_dir)
                with record_parser.user_errors():
                    run = protocols.run_protocol(
                        name, protocol, scale, views,
                        protocol_dataset(input_config, protocol, scale, config.max_examples),
                        progress=config.progress, examples=examples)
                runs.append(run)
                printer(f"{name}: {protocol} at Q={scale}: {len(run.labels)} images, "
                        f"{run.images_per_second:.1f} images/s")
    fusion_problem = None
    try:
        rows = ensemble.table_rows(runs, fuse=config.fuse)
    except ValueError as error:  # the models cannot be fused: their own rows are still made
        fusion_problem = f"--ensemble: {error}"
        rows = ensemble.table_rows(runs, fuse=False)
    return EvalResult(config.split, runs, rows, fusion_problem)

