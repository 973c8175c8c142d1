"""What an input pipeline reads and how it turns records into network inputs: `InputConfig` (no
TensorFlow import, so flag validation and run records use it before TensorFlow starts).
[AlexNet §2, §4.1; VGG §3.1, §3.2]"""

import dataclasses
from typing import Optional, Tuple, Union

from keras_alexnet.errors import FlagError

# The mean subtracted: the per-pixel mean image (AlexNet §2), the mean colour (VGG §2.1), or none.
MEANS = ("image", "rgb", "none")


@dataclasses.dataclass
class InputConfig:
    """What to read and how to turn it into network inputs.

    Source (exactly one): `data_dir`, a folder of our shards (`train-00000-of-00128`, with
    `dataset.json`) or of tensorflow/models ones (no `dataset.json`: 1-based labels); or `tfds_name`, a
    TFDS dataset prepared in `tfds_data_dir` (TFDS's default when None), prepared offline from
    `tfds_manual_dir` if needed.

    - split: "train", "validation", ... (shard prefix / TFDS split name).
    - image_size: side of the crop fed to the network (224, AlexNet §4.1 / VGG §2.1).
    - resize_size: AlexNet §2's rescaling: shorter side to this (256), central square, then crops.
      Images stored that way (the "alexnet" policy) are used as they are.
    - scale_jitter: VGG §3.1 training scale instead of resize_size: None (AlexNet), an int S (fixed:
      256 or 384), or (Smin, Smax) for S ~ U[Smin, Smax] per image (256, 512). Crops then come from the
      whole rescaled image, not its central square.
    - random_crop / flip: random crop position (else central) and random horizontal flips (AlexNet
      §4.1, VGG §3.1); training only.
    - pca_jitter_std: std of AlexNet §4.1's α for PCA colour jitter (0.1); 0 disables it.
    - mean: "image" (per-pixel mean image, AlexNet §2), "rgb" (mean colour, VGG §2.1) or "none".
    - stats_path: `stats.npz` (mean_image float32 HxWx3, mean_rgb (3,), eigenvalues (3,) descending,
      eigenvectors (3, 3) with column i for eigenvalue i; 0..255 scale); default
      `<data_dir>/stats.npz` (TFDS sources: required when used). Only read when mean subtraction or
      PCA jitter needs it.
    - label_offset: subtracted from stored labels; None = from `dataset.json`, else 1 (tensorflow/models).
      TFDS labels are 0-based.
    - num_classes: None = from `dataset.json` / TFDS; labels must lie in [0, num_classes).
    - batch_size: global batch (split across replicas through the input context); 128 (AlexNet §5).
    - shuffle_buffer: records in the shuffle buffer (encoded, ~110 kB each for ImageNet JPEGs).
    - cache: False, True (records cached in memory after the first pass) or a file path prefix.
    - deterministic: same batches in the same order on every build (seeded shuffle and augmentation,
      ordered parallelism; a little slower). seed: the seed (None: random; 0 in deterministic mode).
    - drop_remainder: drop the last partial training batch (static batch shape).
    - cycle_length: shards read at once by the interleave.
    - strict_records: a damaged shard (CRC mismatch, truncated file) stops reading with its one-line
      error instead of its remainder being skipped and counted (pipelines/input_pipeline.py).
    """

    data_dir: Optional[str] = None
    tfds_name: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    tfds_manual_dir: Optional[str] = None
    split: str = "train"
    image_size: int = 224
    resize_size: int = 256
    scale_jitter: Union[None, int, Tuple[int, int]] = None
    random_crop: bool = True
    flip: bool = True
    pca_jitter_std: float = 0.1
    mean: str = "image"
    stats_path: Optional[str] = None
    label_offset: Optional[int] = None
    num_classes: Optional[int] = None
    batch_size: int = 128
    shuffle_buffer: int = 10_000
    cache: Union[bool, str] = False
    deterministic: bool = False
    seed: Optional[int] = None
    drop_remainder: bool = True
    cycle_length: int = 16
    strict_records: bool = False

    def validate(self) -> None:
        """Raises FlagError for settings that cannot work."""
        if bool(self.data_dir) == bool(self.tfds_name):
            raise FlagError("give exactly one data source: --data_dir or --tfds")
        if self.mean not in MEANS:
            raise FlagError(f"--mean={self.mean}: expected one of {', '.join(MEANS)}")
        if self.image_size < 1 or self.resize_size < self.image_size:
            raise FlagError(f"--resize_size={self.resize_size} must be at least --image_size={self.image_size}")
        if self.scale_jitter is not None:
            low, high = scale_range(self.scale_jitter)
            if not self.image_size <= low <= high:
                raise FlagError(f"--scale_jitter={self.scale_jitter}: need {self.image_size} <= Smin <= Smax")
            if self.mean == "image":
                raise FlagError("--mean=image needs the fixed AlexNet framing: use --mean=rgb with --scale_jitter (VGG §2.1)")
        if self.pca_jitter_std < 0:
            raise FlagError(f"--pca_jitter_std={self.pca_jitter_std} must be >= 0")
        if self.batch_size < 1:
            raise FlagError(f"--batch_size={self.batch_size} must be positive")


def scale_range(scale_jitter):
    if isinstance(scale_jitter, (tuple, list)):
        return int(scale_jitter[0]), int(scale_jitter[1])
    return int(scale_jitter), int(scale_jitter)


def test_scale(config: InputConfig) -> int:
    """The default test scale Q: resize_size, the fixed S, or 0.5 (Smin + Smax) (VGG §3.2)."""
    if config.scale_jitter is None:
        return config.resize_size
    low, high = scale_range(config.scale_jitter)
    return (low + high) // 2
