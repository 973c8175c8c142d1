"""The default run: `python main.py train` with no flags (no --data_dir).

It trains AlexNet — two towers, LRN, overlapping pooling, dropout, the paper's SGD rule with weight
decay and momentum (AlexNet §3, §5) — on the built-in Fashion-MNIST data (real 28x28 grey photos of
10 clothing classes, prepared on first use as RGB JPEGs), on a 2-core CPU, in under 15 minutes.
What it changes from the paper, and why:

- data: Fashion-MNIST instead of ImageNet (the only real image set available offline);
- resize_size 72 / image_size 64: images upscaled from 28 px to 72, random 64 crops and flips (the
  §4.1 augmentation scaled down; 64 is about the smallest input AlexNet's strides accept);
- width 0.25: a quarter of every conv/FC width (conv1 24 kernels, fc6/fc7 1024) — ~1.2M parameters,
  ~1,000 img/s on 2 cores instead of ~17 for the full net;
- init glorot and learning rate 0.04 with a linear warm-up and a linear decay to 0 over the run,
  instead of N(0, 0.01) and ÷10 on plateaus: a run of a few epochs has no plateaus to wait for;
- pca_jitter_std 0: the images are grey, colour jitter has nothing to act on;
- 10-crop evaluation (§4.1) on the validation split at the end only, then on the test split.
"""

DEFAULT_RUN_NAME = "alexnet_fashion_mnist"

DEFAULT_PRESET = {
    "model": "alexnet",
    "width": 0.25,
    "resize_size": 72,
    "image_size": 64,
    "init": "glorot",
    "learning_rate": 0.04,
    "lr_schedule": "linear",
    "warmup_epochs": 0.3,
    "epochs": 7,
    "batch_size": 128,
    "pca_jitter_std": 0.0,
    "ten_crop_every": 0,
    "test_split": "test",
    "checkpoint_every_steps": 100,
    "cache": True,
    "shuffle_buffer": 60000,
    "run_name": DEFAULT_RUN_NAME,
}


def apply_preset(flag_values, preset=None):
    """Sets every preset flag the user did not give on the command line; returns {flag: value} set."""
    preset = DEFAULT_PRESET if preset is None else preset
    applied = {}
    for name, value in preset.items():
        if not flag_values[name].present:
            flag_values[name].value = value
            applied[name] = value
    return applied


def describe(applied: dict) -> str:
    return " ".join(f"--{name}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                    for name, value in applied.items() for v in [value])
