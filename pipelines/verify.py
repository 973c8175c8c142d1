"""Checks prepared shards once, so that training need not (AlexNet §2's data, as `prepare` writes it).

`verify_shard` reads one TFRecord shard record by record with TensorFlow's own reader (every record's
length and data CRCs) and checks each record as the input pipeline reads it: a `tf.train.Example` with
the image and the label (`pipelines/records.py` keys), the label inside [0, num_classes) after the
offset, the image decodable by TensorFlow (`tf.io.decode_image`, RGB). `verify_data_dir` checks every
shard of every split (shards in parallel, one thread per core: TensorFlow's reader and decoders release
the GIL) and the example counts `dataset.json` records against the records the shards hold.

A damaged shard is described in one line: the first problem and how many records have one, e.g.
`/data/train-00003-of-00128: corrupted record at byte 1650317 (record 15); 985 record(s) from there
unreadable` or `/data/validation-00001-of-00004: 2 bad record(s), first: record 17: image does not
decode`; re-run `prepare` for just those shards, or remove them. The records lost to a shard's damage
are counted as training counts them (`pipelines/record_parser.py`): the shard's records as
`dataset.json` records them (`records.SplitInfo.records_per_shard`) minus those read before the
damage; a folder prepared before per-shard counts names the bytes left unread instead.
"""

import concurrent.futures
import dataclasses
import os
import re
from typing import Optional

import tensorflow as tf

from pipelines import records

_DATA_LOSS_RE = re.compile(r"(corrupted|truncated) record at")
_FRAME = 16  # TFRecord bytes around a record's data: length (8), its CRC (4), the data's CRC (4)


@dataclasses.dataclass
class ShardReport:
    """One shard's result: `records` read whole, `bad` of them unusable, `damage` the file's own damage
    (CRC mismatch, truncation: "" when the whole file reads), `lost` the records behind the damage
    (None when `dataset.json` records no count for the shard: then `unread_bytes` says what is lost),
    `first` the first bad record's line."""

    path: str
    records: int = 0
    bad: int = 0
    damage: str = ""
    first: str = ""
    lost: Optional[int] = None
    unread_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.damage and not self.bad

    def line(self) -> str:
        """The one line naming the shard's problems ("" for a sound shard)."""
        parts = []
        if self.damage:
            if self.lost is not None:
                parts.append(f"{self.damage}; {self.lost} record(s) from there unreadable")
            else:
                parts.append(f"{self.damage}; {self.unread_bytes} byte(s) from there unreadable (dataset.json "
                             "records no record count for this shard)")
        if self.bad:
            parts.append(f"{self.bad} bad record(s), first: {self.first}")
        return f"{self.path}: {'; '.join(parts)}" if parts else ""


def _record_problem(serialized: bytes, label_offset: int, num_classes: Optional[int]) -> str:
    """What is wrong with one record, as the pipeline would find it ("" when nothing)."""
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; any parse failure is the record's problem
        return "not a tf.train.Example"
    feature = example.features.feature
    for key, kind in ((records.ENCODED, "bytes_list"), (records.LABEL, "int64_list")):
        if key in feature and (feature[key].WhichOneof("kind") != kind or len(getattr(feature[key], kind).value) != 1):
            return f"{key} is not one {kind.split('_')[0]} value"  # tf.io.parse_single_example fails on it
    image = feature[records.ENCODED].bytes_list.value if records.ENCODED in feature else []
    label = feature[records.LABEL].int64_list.value if records.LABEL in feature else []
    if not image or not image[0]:
        return f"missing (or empty) {records.ENCODED}"
    if not label:
        return f"missing key {records.LABEL}"
    value = label[0] - label_offset
    if value < 0 or (num_classes is not None and value >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else "[0, ...)"
        return f"label {value} outside {bound}" + (f" (stored {label_offset}-based)" if label_offset else "")
    try:
        tf.io.decode_image(image[0], channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return "image does not decode"
    return ""


def verify_shard(path: str, label_offset: int = 0, num_classes: Optional[int] = None, held: int = -1) -> ShardReport:
    """Reads and checks every record of the shard at `path` (see the module docstring); `held`: the
    records it holds as `dataset.json` records them, -1 when unknown."""
    report = ShardReport(path)
    iterator = iter(tf.data.TFRecordDataset(path))
    offset = 0  # of the next record's frame (TensorFlow's message may name its data's offset instead)
    while True:
        try:
            serialized = next(iterator).numpy()
        except StopIteration:
            break
        except tf.errors.DataLossError as error:
            found = _DATA_LOSS_RE.search(error.message)
            kind = found.group(1) if found else "damaged"
            report.damage = f"{kind} record at byte {offset} (record {report.records})"
            if held >= report.records:
                report.lost = held - report.records
            else:
                report.unread_bytes = os.path.getsize(path) - offset
            break
        problem = _record_problem(serialized, label_offset, num_classes)
        if problem:
            report.bad += 1
            report.first = report.first or f"record {report.records}: {problem}"
        report.records += 1
        offset += len(serialized) + _FRAME
    return report


@dataclasses.dataclass
class DataReport:
    """Every shard's report (in file order) and the splits whose recorded example count differs from
    the records their shards hold (one line each)."""

    shards: list
    count_lines: list

    @property
    def damaged(self) -> list:
        return [shard for shard in self.shards if not shard.ok]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.count_lines


def _splits(data_dir: str, metadata) -> list:
    found = {name.split("-", 1)[0] for name in os.listdir(data_dir) if records.is_shard_name(name)}
    recorded = set(metadata.splits) if metadata else set()
    return sorted(found | recorded, key=lambda split: (records.SPLITS + (split,)).index(split))


def verify_data_dir(data_dir: str, workers: Optional[int] = None, on_shard=None) -> DataReport:
    """Checks every shard of every split in `data_dir` (`on_shard(report)` after each, in completion
    order) and the counts in `dataset.json`; labels are checked with its offset and class count (a
    folder without it: tensorflow/models' 1-based labels, no upper bound)."""
    metadata = records.read_metadata(data_dir)
    offset = metadata.label_offset if metadata else records.TF_MODELS_LABEL_OFFSET
    num_classes = metadata.num_classes if metadata else None
    splits = _splits(data_dir, metadata)
    paths, held = [], []
    for split in splits:
        files = records.list_shards(data_dir, split)
        counts = metadata.splits[split].records_per_shard() if metadata and split in metadata.splits else []
        paths += files
        held += counts if len(counts) == len(files) else [-1] * len(files)  # -1: the shard's count is unknown
    workers = workers or os.cpu_count() or 1
    reports = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(verify_shard, path, offset, num_classes, count): path
                   for path, count in zip(paths, held)}
        for future in concurrent.futures.as_completed(futures):
            report = future.result()
            reports[report.path] = report
            if on_shard is not None:
                on_shard(report)
    shards = [reports[path] for path in paths]
    count_lines = []
    for split in splits:
        expected = metadata.splits[split].num_examples if metadata and split in metadata.splits else None
        split_shards = [s for s in shards if os.path.basename(s.path).startswith(f"{split}-")]
        held = sum(s.records for s in split_shards)
        if expected is not None and expected != held and all(not s.damage for s in split_shards):
            metadata_path = os.path.join(data_dir, records.METADATA_FILE)
            count_lines.append(f"{metadata_path}: {split}: {expected} examples recorded, the shards hold {held}")
    return DataReport(shards, count_lines)
