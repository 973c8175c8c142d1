"""The default run: `python main.py train` with no flags (no --data_dir).

It trains AlexNet — two towers, LRN, overlapping pooling, dropout, the paper's SGD rule with weight
decay and momentum (AlexNet §3, §5) — on the built-in Fashion-MNIST data (real 28x28 grey photos of
10 clothing classes, prepared on first use as RGB JPEGs), on a 2-core CPU, in under 15 minutes.
What it changes from the paper, and why (measured on a 2-core CPU shared with other jobs):

- data: Fashion-MNIST instead of ImageNet (the only real image set available offline): 55,000
  training images, 5,000 held out for validation (the plateau/10-crop split), 10,000 test;
- resize_size 72 / image_size 64: images upscaled from 28 px to 72, random 64 crops and flips (the
  §4.1 augmentation scaled down; 63 is the smallest input AlexNet's strides accept);
- width 0.25: a quarter of every conv/FC width (conv1 24 kernels, fc6/fc7 1024), ~1.3M parameters,
  ~1,000 img/s on 2 idle cores instead of ~17 for the full net;
- init glorot, input_scale 1/64 (inputs of std ~1 instead of ~90 while training, folded back into
  conv1's kernel when the model is saved, so the saved model takes the usual 0..255 inputs);
- learning rate 0.04 with a linear warm-up over 0.3 epoch and a linear decay to 0 at the end of
  epoch 8, instead of 0.01 ÷10 on plateaus: a run of a few epochs has no plateaus to wait for;
- batch 64 (twice the updates per epoch for the same images) and dropout 0.2 (the small net
  underfits: its training error stays above its validation error even with 0.3);
- pca_jitter_std 0: the images are grey, colour jitter has nothing to act on;
- 10-crop evaluation (§4.1) of the validation split at the end only, then of the test split.

Its measured time and accuracy on the 2-core development CPU are in README.md, "The default run".
"""

import os

from keras_alexnet.training import finetune
from keras_alexnet.training.config import TrainConfig, config_from_values, flat_field_names

DEFAULT_RUN_NAME = "alexnet_fashion_mnist"
DEFAULT_DATA_ROOT = os.path.join("data", "fashion_mnist")

# Flat settings (`config.config_from_values` names) the default run changes from the paper's.
DEFAULT_PRESET = {
    "architecture": "alexnet",
    "width": 0.25,
    "resize_size": 72,
    "image_size": 64,
    "init": "glorot",
    "input_scale": 1.0 / 64,
    "learning_rate": 0.04,
    "lr_schedule": "linear",
    "warmup_epochs": 0.3,
    "epochs": 8,
    "batch_size": 64,
    "dropout": 0.2,
    "pca_jitter_std": 0.0,
    "ten_crop_every": 0,
    "test_split": "test",
    "checkpoint_every_steps": 200,
    "cache": True,
    "shuffle_buffer": 60000,
    "run_name": DEFAULT_RUN_NAME,
}


def default_run_config(data_dir: str, overrides: dict = None) -> TrainConfig:
    """The default run on the prepared data in `data_dir`: the paper's settings, then `DEFAULT_PRESET`,
    then `overrides` (flat settings, e.g. the flags given on the command line). With --init_from the
    network and input scale are the source's: the preset's architecture, width and input scale are left
    out (`finetune.py`)."""
    overrides = overrides or {}
    sources = {name for name, (part, _) in flat_field_names().items()
               if part == "model" and name not in finetune.TRAINING_ONLY_MODEL_FIELDS}
    sources.update(finetune.INHERITED_SETTINGS)
    preset = {name: value for name, value in DEFAULT_PRESET.items()
              if not (overrides.get("init_from") and name in sources)}
    values = dict(preset, **overrides)
    values["data_dir"] = data_dir
    return config_from_values(values)


def describe(values: dict) -> str:
    """Flat settings as the command-line flags that set them (`--width=0.25 ...`)."""
    return " ".join(f"--{name}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
                    for name, value in values.items())
