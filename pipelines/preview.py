"""A batch of training inputs as the network sees them, before mean subtraction (AlexNet §4.1, VGG §3.1).

The training pipeline (`pipelines.input_pipeline.build_train_dataset`) with the run's augmentation —
random crops (at a jittered scale for VGG §3.1), horizontal reflections, PCA colour jitter — and the
mean left in (`mean="none"`), so the images are on the 0..255 scale and can be looked at
(`callbacks.augmented_inputs.AugmentedInputs`). A small shuffle buffer and no cache: one batch comes
quickly whatever the run's settings. `augmentations` says in words what that pipeline applies, for the
picture's caption. It names no damaged shard and counts no lost record: the training epochs do.
"""

import dataclasses

import numpy as np

from pipelines.input_config import InputConfig


def augmented_batch(config: InputConfig, count: int = 32, shuffle_buffer: int = 256) -> np.ndarray:
    """`count` (or fewer, for a smaller split) training images [N, h, w, 3] float32 on the 0..255 scale,
    augmented as `config` (the run's training input config) says, without mean subtraction."""
    from pipelines import input_pipeline

    preview = dataclasses.replace(config, mean="none", batch_size=count, cache=False, drop_remainder=False,
                                  shuffle_buffer=max(1, min(config.shuffle_buffer, shuffle_buffer)))
    for images, _ in input_pipeline.build_train_dataset(preview, report=False).take(1):  # the epochs report
        return images.numpy()
    raise ValueError(f"{config.data_dir or config.tfds_name}: the {config.split} split is empty")


def augmentations(config: InputConfig) -> list:
    """What the training pipeline (`pipelines.input_pipeline.build_train_dataset`) does to `config`'s
    images, in words, e.g. ["random 224px crop", "flip", "PCA colour jitter (std 0.1)"]: the training
    scale (VGG §3.1), the crop and flip (AlexNet §4.1), and the colour jitter or its absence (AlexNet §4.1)."""
    applied = []
    jitter = config.scale_jitter
    if isinstance(jitter, (tuple, list)):
        applied.append(f"scale jitter S in [{jitter[0]}, {jitter[1]}]")
    elif jitter is not None:
        applied.append(f"rescaled to S={jitter}")
    applied.append(f"{'random' if config.random_crop else 'central'} {config.image_size}px crop")
    if config.flip:
        applied.append("flip")
    applied.append(f"PCA colour jitter (std {config.pca_jitter_std:g})" if config.pca_jitter_std > 0
                   else "no colour jitter")
    return applied
