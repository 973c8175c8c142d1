"""Settings a `train` command left out, fitted to the prepared data it names (no TensorFlow import).

The paper's defaults assume ImageNet stored at 256 px (AlexNet §2) and 1.2 M training images. On a
folder `prepare` wrote, `dataset.json` records the stored size and the examples per split, and
`fit_to_data` fills the settings that were not given from them, with one line saying what it chose:

- sizes: data stored by the "alexnet" policy is already AlexNet §2's frame, so `resize_size` is its
  stored size and `image_size` the paper's crop ratio 224/256 of it (at least the architecture's
  smallest input); a stored size below that smallest input is refused in one line.
- crop of a fine-tune: an `--init_from` run's crop (fc6's input size follows the crop, so the copied
  fc6 fits only at the source's crop);
- batch: when the paper's batch (AlexNet §5: 128, VGG §3.1: 256) is more than the training examples,
  the largest power of two within them.

A given setting always wins, and a run being resumed keeps the values its `run.json` recorded.
"""

import os

from keras_alexnet import registry, runs
from keras_alexnet.errors import FlagError, UserError
from pipelines import records
from pipelines.input_config import InputConfig

# AlexNet §2, §4.1: 224x224 patches of the 256x256 images (the input's defaults, the paper's).
PAPER_CROP, PAPER_FRAME = InputConfig.image_size, InputConfig.resize_size


def paper_crop(frame: int, min_input: int) -> int:
    """The crop side the paper's ratio 224/256 gives for a `frame`-px image, at least `min_input`."""
    return max(min_input, int(round(frame * PAPER_CROP / PAPER_FRAME)))


def largest_power_of_two(limit: int) -> int:
    """The largest power of two <= `limit` (>= 1)."""
    return 1 << (max(1, limit).bit_length() - 1)


def fit_to_data(values: dict, given: set, data_dir: str, run_dir: str):
    """(`values` with the settings not in `given` fitted to `data_dir`, the lines saying so).

    `values`: flat settings (`config.config_from_values` names) holding at least image_size,
    resize_size, batch_size (0: the paper's) and scale_jitter, and architecture unless the network comes
    from an --init_from source (then the source's, as `config_from_values` fills it); `given`: the names the
    user set. Raises FlagError when the stored images are smaller than the architecture's input, or
    a given batch is larger than the training split (an epoch would hold no step).
    """
    values = dict(values)
    recorded = _recorded(run_dir)
    if recorded is not None:  # a resumed run keeps its own sizes and batch
        data = recorded.get("data", {})
        for name in ("image_size", "resize_size", "batch_size"):
            if name not in given and name in data:
                values[name] = data[name]
        return values, []
    notes = []
    source_crop = None if "image_size" in given else _source_crop(values.get("init_from"))
    if source_crop:  # fc6's input follows the crop: a fine-tune takes its source's
        values["image_size"], given = source_crop, set(given) | {"image_size"}
        notes.append(f"Crop {source_crop} px: the crop of --init_from={values['init_from']} (fc6's input follows "
                     "it); --image_size sets another")
    try:
        info = records.read_metadata(data_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"--data_dir={data_dir}: unreadable {records.METADATA_FILE}: {error}") from None
    if info is None:
        return values, notes
    spec = registry.spec(values.get("architecture") or _source_architecture(values.get("init_from")))
    sizes_given = {"image_size", "resize_size"} & given
    if info.image_policy == "alexnet" and info.image_size and sizes_given != {"image_size", "resize_size"} \
            and not values.get("scale_jitter"):
        stored = info.image_size
        if "image_size" in given:
            values["resize_size"] = max(stored, values["image_size"])
        else:
            if "resize_size" not in given:
                if stored < spec.min_input:
                    raise FlagError(
                        f"--data_dir={data_dir}: its images are stored at {stored} px, below the {spec.min_input} px "
                        f"that --architecture={spec.name} takes: prepare them with --stored_size={spec.min_input} "
                        "or more")
                values["resize_size"] = stored
            values["image_size"] = min(values["resize_size"], paper_crop(values["resize_size"], spec.min_input))
        crop = "given" if "image_size" in given else f"the paper's {PAPER_CROP}/{PAPER_FRAME} crop"
        notes.append(f"Sizes from the data, stored at {stored} px ({os.path.join(data_dir, records.METADATA_FILE)}): "
                     f"--resize_size={values['resize_size']} --image_size={values['image_size']} ({crop}); give "
                     "them to choose others [AlexNet §2, §4.1]")
    train = info.splits.get("train")
    batch = values.get("batch_size") or spec.batch_size
    if train is not None and 0 < train.num_examples < batch and "batch_size" in given \
            and not values.get("steps_per_epoch"):  # a set number of steps reads the split more than once
        raise FlagError(f"--batch_size={batch} is larger than the {train.num_examples} training examples "
                        f"of {data_dir}")
    if "batch_size" not in given and train is not None and 0 < train.num_examples < batch:
        values["batch_size"] = largest_power_of_two(train.num_examples)
        notes.append(f"Batch {values['batch_size']}: the paper's {batch} is more than the {train.num_examples} "
                     "training examples, so the largest power of two within them; --batch_size sets it [AlexNet §5]")
    return values, notes


def _recorded(run_dir: str):
    """The training configuration `run_dir`'s run.json recorded, or None for a new run."""
    record = runs.resumable_record(run_dir)
    return record.config if record is not None and record.config else None


def _source_architecture(init_from) -> str:
    """The architecture an --init_from source gives a run that names none (the default's when unreadable:
    the source is checked and named when the config is validated)."""
    from keras_alexnet.training import finetune
    from keras_alexnet.training.config import ModelConfig

    return finetune.source_values(init_from, ("architecture",)).get("architecture", ModelConfig.architecture)


def _source_crop(init_from):
    """The crop side of an --init_from run (its run.json), None for a bare file or no source."""
    from keras_alexnet.training import finetune

    source = finetune.readable_source(init_from)
    return source.record.image_size if source is not None and source.record is not None else None
