"""The on-disk format of prepared data: TFRecord `tf.train.Example` keys, shard names, metadata.

The keys and shard names follow tensorflow/models' ImageNet scripts (`build_imagenet_data.py`), so
shards users already made with them read as ours. Those scripts write 1-based labels (0 unused); ours
are 0-based. `dataset.json`, written beside our shards, records the offset; a folder without it is
taken as tensorflow/models output (offset 1) unless a flag says otherwise.

`main.py prepare` writes `dataset.json` last, once every shard is complete, so its presence marks a
finished preparation. While it runs, a shard is written as `<shard>.tmp` and renamed when whole; the
hidden `.prepare/<shard>.json` beside it records that shard's counts, skipped files and a fingerprint
of its settings and images (how an interrupted run resumes). Readers need neither.
"""

import dataclasses
import json
import os
import re

from keras_alexnet import atomic

ENCODED = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"
COLORSPACE = "image/colorspace"
LABEL = "image/class/label"
SYNSET = "image/class/synset"
TEXT = "image/class/text"
FILENAME = "image/filename"

METADATA_FILE = "dataset.json"
LABELS_FILE = "labels.txt"
STATS_FILE = "stats.npz"
METADATA_FORMAT = "keras-alexnet/1"
TF_MODELS_LABEL_OFFSET = 1

SPLITS = ("train", "validation", "test")
_SHARD_RE = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<total>\d{5})$")


def shard_name(split: str, index: int, total: int) -> str:
    """`train-00003-of-01024`, as tensorflow/models names its shards."""
    return f"{split}-{index:05d}-of-{total:05d}"


def is_shard_name(name: str) -> bool:
    """True for a complete shard's file name (`validation-00007-of-00128`)."""
    return _SHARD_RE.match(name) is not None


def list_shards(data_dir: str, split: str) -> list:
    """The complete shards of `split` in `data_dir`, sorted; temporary (partial) files are not listed."""
    if not os.path.isdir(data_dir):
        return []
    names = []
    for name in os.listdir(data_dir):
        match = _SHARD_RE.match(name)
        if match and match.group("split") == split:
            names.append(os.path.join(data_dir, name))
    return sorted(names)


@dataclasses.dataclass
class ClassInfo:
    label: int  # 0-based label, before any offset
    synset: str
    text: str


@dataclasses.dataclass
class SplitInfo:
    num_examples: int
    num_shards: int
    skipped: int = 0  # images that could not be decoded and were left out
    shard_examples: list = dataclasses.field(default_factory=list)  # records per shard, in shard order

    def records_per_shard(self) -> list:
        """The records each shard holds, in shard order, as far as recorded: `shard_examples`, or for a
        single shard `num_examples`; [] when unknown (a `dataset.json` written before per-shard counts)."""
        if len(self.shard_examples) == self.num_shards:
            return list(self.shard_examples)
        return [self.num_examples] if self.num_shards == 1 else []


@dataclasses.dataclass
class DatasetInfo:
    """What `dataset.json` holds: classes, splits, the stored-image policy and the label offset.

    `label_offset` is added to the 0-based label when writing a record; readers subtract it.
    """

    classes: list
    splits: dict
    image_policy: str = "none"  # "alexnet" (256x256), "vgg" (shorter side kept), or "none"
    image_size: int = 0  # the policy's size in pixels (256 for AlexNet); 0 for "none"
    label_offset: int = 0
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return {
            "format": METADATA_FORMAT,
            "num_classes": self.num_classes,
            "label_offset": self.label_offset,
            "image_policy": self.image_policy,
            "image_size": self.image_size,
            "source": self.source,
            "classes": [dataclasses.asdict(c) for c in self.classes],
            "splits": {name: dataclasses.asdict(s) for name, s in self.splits.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> "DatasetInfo":
        return cls(
            classes=[ClassInfo(**c) for c in data["classes"]],
            splits={name: SplitInfo(**s) for name, s in data.get("splits", {}).items()},
            image_policy=data.get("image_policy", "none"),
            image_size=int(data.get("image_size", 0)),
            label_offset=int(data.get("label_offset", 0)),
            source=data.get("source", ""),
        )


def write_metadata(data_dir: str, info: DatasetInfo) -> None:
    """Writes `dataset.json` and `labels.txt` (one `synset<TAB>text` line per class) atomically."""
    os.makedirs(data_dir, exist_ok=True)
    for name, text in (
        (METADATA_FILE, json.dumps(info.to_json(), indent=1) + "\n"),
        (LABELS_FILE, "".join(f"{c.synset}\t{c.text}\n" for c in info.classes)),
    ):
        atomic.write_text(os.path.join(data_dir, name), text)


def read_metadata(data_dir: str):
    """The `DatasetInfo` of `data_dir`, or None when it has no `dataset.json` (tensorflow/models shards)."""
    path = os.path.join(data_dir, METADATA_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return DatasetInfo.from_json(json.load(f))


# `stats.npz` (written by `main.py stats`, read with `pipelines.stats.load_stats` or `read_stats`), all on the 0..255
# scale: mean_image float32 (H, W, 3) (AlexNet §2), mean_rgb float32 (3,) (VGG §2.1), rgb_cov float64
# (3, 3), eigenvalues float64 (3,) descending, eigenvectors float64 (3, 3) with column i for eigenvalue
# i (AlexNet §4.1), num_images.
STATS_KEYS = ("mean_image", "mean_rgb", "rgb_cov", "eigenvalues", "eigenvectors", "num_images")
