"""Writes one TFRecord shard of `tf.train.Example`s in the tensorflow/models ImageNet layout.

A shard is written under a temporary name (`<shard>.tmp`) and renamed when complete, after its
summary (`.prepare/<shard>.json`: counts, skipped files, the fingerprint of what it holds) is saved,
so a shard with its final name is always whole and an interrupted `prepare` resumes shard by shard.
"""

import dataclasses
import json
import os

import numpy as np

from keras_alexnet import atomic
from pipelines import image_codec
from pipelines import records

STATE_DIR = ".prepare"
TEMP_SUFFIX = atomic.TEMP_SUFFIX
PIXEL_BATCH = 512


@dataclasses.dataclass
class ShardTask:
    split: str
    index: int
    total: int
    items: list
    fingerprint: str

    @property
    def name(self) -> str:
        return records.shard_name(self.split, self.index, self.total)


@dataclasses.dataclass
class ShardResult:
    name: str
    num_examples: int
    skipped: list  # "where: reason"
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class Encoding:
    policy: str
    size: int
    quality: int
    label_offset: int
    classes: tuple  # (synset, text) in label order


def summary_path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, STATE_DIR, name + ".json")


def read_summary(data_dir: str, name: str):
    """The ShardResult of a complete shard, or None when the shard or its summary is missing."""
    path = summary_path(data_dir, name)
    if not os.path.isfile(os.path.join(data_dir, name)) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return ShardResult(**json.load(f))
    except (ValueError, TypeError):
        return None


def make_example(jpeg: bytes, height: int, width: int, label: int, synset: str, text: str, filename: str) -> bytes:
    """A serialized `tf.train.Example` with the keys of `records` (tensorflow/models' build_imagenet_data)."""
    import tensorflow as tf

    def b(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def i(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        records.ENCODED: b(jpeg),
        records.FORMAT: b(b"JPEG"),
        records.HEIGHT: i(height),
        records.WIDTH: i(width),
        records.CHANNELS: i(3),
        records.COLORSPACE: b(b"RGB"),
        records.LABEL: i(label),
        records.SYNSET: b(synset.encode("utf-8")),
        records.TEXT: b(text.encode("utf-8")),
        records.FILENAME: b(filename.encode("utf-8", "surrogateescape")),  # the OS's bytes of the name
    }
    # deterministic: map keys sorted, so the bytes do not depend on the process (string hash seed).
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _converted(items: list, encoding: Encoding, skipped: list):
    """Yields (item, jpeg, height, width) for the items that decode; failures go to `skipped`."""
    i = 0
    while i < len(items):
        if items[i].pixels is not None:
            batch = [items[i]]
            while (i + len(batch) < len(items) and len(batch) < PIXEL_BATCH and items[i + len(batch)].pixels is not None
                   and items[i + len(batch)].pixels.shape == batch[0].pixels.shape):
                batch.append(items[i + len(batch)])
            converted = image_codec.convert_pixels(np.stack([it.pixels for it in batch]), encoding.policy,
                                                   encoding.size, encoding.quality)
            for item, (jpeg, height, width) in zip(batch, converted):
                yield item, jpeg, height, width
            i += len(batch)
            continue
        item = items[i]
        i += 1
        try:
            data = item.read()
            jpeg, height, width = image_codec.convert(data, encoding.policy, encoding.size, encoding.quality)
        except image_codec.DecodeError as error:
            skipped.append(f"{item.where}: {error}")
            yield item, None, 0, 0
            continue
        except OSError as error:
            skipped.append(f"{item.where}: {error.strerror or error}")
            yield item, None, 0, 0
            continue
        yield item, jpeg, height, width


def write_shard(data_dir: str, task: ShardTask, encoding: Encoding, advance=None) -> ShardResult:
    """Converts and writes the items of `task` to `data_dir/<shard>`; `advance(n)` reports progress."""
    import tensorflow as tf

    skipped = []
    written = 0
    pending = 0
    with atomic.replacing_path(os.path.join(data_dir, task.name)) as temp:  # renamed after the summary is saved
        with tf.io.TFRecordWriter(temp) as writer:
            for item, jpeg, height, width in _converted(task.items, encoding, skipped):
                if jpeg is not None:
                    synset, text = encoding.classes[item.label]
                    writer.write(make_example(jpeg, height, width, item.label + encoding.label_offset, synset, text,
                                              item.filename))
                    written += 1
                pending += 1
                if advance is not None and pending >= 16:
                    advance(pending)
                    pending = 0
        if advance is not None and pending:
            advance(pending)
        result = ShardResult(name=task.name, num_examples=written, skipped=skipped, fingerprint=task.fingerprint)
        path = summary_path(data_dir, task.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic.write_json(path, dataclasses.asdict(result))
    return result
