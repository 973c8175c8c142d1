"""Reading `tf.train.Example` records in tf.data: parsing, label offset, bad-record handling.

Bad input never crashes the pipeline with an anonymous TensorFlow error:

- A record whose image fails to decode is dropped and counted in a `DropCounter` (a tf.Variable
  updated inside the pipeline) and reported on stderr with its shard and record index
  (`map_dropping_undecodable`: decoding in small nested datasets with `ignore_errors()`, so only
  decode errors are swallowed; no py_function anywhere).
- A record missing a required key, or whose label (after the offset) is outside [0, num_classes),
  fails a `tf.debugging.Assert` whose message names the shard and the record's index in it (`parse`
  per record; `parse_batch` for a chunk of records, naming the chunk's first bad record). The error
  reaches the caller as `tf.errors.InvalidArgumentError` from the iterator (or from `model.fit`);
  `user_errors()` / `as_user_error()` turn it into a one-line `keras_alexnet.errors.UserError`:

      with record_parser.user_errors():
          model.fit(train_dataset, ...)   # or: for images, labels in dataset: ...

  which raises e.g. `UserError("/data/train-00003-of-00128: record 17: label 1000 outside [0, 1000)")`.

Label offsets (pipelines/records.py): tensorflow/models' ImageNet scripts write 1-based labels; the
offset is subtracted so the pipeline always yields 0-based labels.
"""

import contextlib
import dataclasses
import os
import re
import sys

import tensorflow as tf

from keras_alexnet.errors import UserError
from pipelines import records

_NO_LABEL = -(2**62)  # parse default marking a missing label
_BEGIN = "<<keras-alexnet bad record>>"
_END = "<</keras-alexnet bad record>>"
# tf.debugging.Assert prints its data items as "[item] [item] ...", strings with quotes escaped.
_MESSAGE_RE = re.compile(re.escape(f"[{_BEGIN}] [") + r"(.*?)" + re.escape(f"] [{_END}]"), re.DOTALL)


@dataclasses.dataclass(frozen=True)
class RecordSpec:
    """Where the image and label are in a record, and how to map the label to 0-based.

    `num_classes` None skips the upper bound of the label check (tensorflow/models shards carry no
    class count).
    """

    image_key: str = records.ENCODED
    label_key: str = records.LABEL
    label_offset: int = 0
    num_classes: object = None


class DropCounter:
    """How many records were dropped because their image failed to decode.

    The count lives in an int64 `tf.Variable` that the pipeline increments; read it from Python
    between epochs (`count()`, or `take()` to read and reset it). One counter may be shared by several
    datasets (pass it to the builders). Create it eagerly; under a `tf.distribute` strategy scope it
    becomes a mirrored variable, which works too.
    """

    def __init__(self, name="dropped_records"):
        self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name=name)

    def count(self) -> int:
        return int(tf.convert_to_tensor(self.variable).numpy())

    def reset(self) -> None:
        self.variable.assign(0)

    def take(self) -> int:
        """The count so far, then zero (call at the end of each epoch)."""
        value = self.count()
        self.reset()
        return value


def _bad_record(condition, shard, index, *parts):
    """An assertion whose message reads `<shard>: record <index>: <parts...>` (formatted only on failure)."""
    return tf.debugging.Assert(condition, [_BEGIN, shard, ": record ", index, ": ", *parts, _END], summarize=1)


def parse(serialized, shard, index, spec: RecordSpec):
    """One serialized Example -> (encoded image bytes, 0-based int32 label), checked (see module doc).

    `shard` (the file path) and `index` (the record's position in it) only name the record in errors.
    """
    encoded, label = parse_batch(serialized[None], shard[None], index[None], spec)
    return encoded[0], label[0]


def parse_batch(serialized, shards, indices, spec: RecordSpec):
    """`parse` for a vector of records at once (one `parse_example` call, one check per kind): the
    first failing record of the batch names itself in the error, as `parse` would."""
    features = tf.io.parse_example(
        serialized,
        {
            spec.image_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            spec.label_key: tf.io.FixedLenFeature([], tf.int64, default_value=_NO_LABEL),
        },
    )
    encoded = features[spec.image_key]
    stored_label = features[spec.label_key]

    def check(ok, *parts):
        first = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int32)  # the first failing record
        return _bad_record(tf.reduce_all(ok), shards[first], indices[first], *[p(first) if callable(p) else p for p in parts])

    checks = [
        check(tf.strings.length(encoded) > 0, f"missing (or empty) {spec.image_key}"),
        check(tf.not_equal(stored_label, _NO_LABEL), f"missing key {spec.label_key}"),
    ]
    with tf.control_dependencies(checks):
        label = stored_label - spec.label_offset
    in_range = label >= 0
    bound = f"[0, {spec.num_classes})" if spec.num_classes is not None else "[0, ...)"
    if spec.num_classes is not None:
        in_range = tf.logical_and(in_range, label < spec.num_classes)
    offset = f" (stored {spec.label_offset}-based)" if spec.label_offset else ""
    range_check = check(in_range, "label ", lambda first: label[first], f" outside {bound}{offset}")
    with tf.control_dependencies([range_check]):
        return tf.identity(encoded), tf.cast(label, tf.int32)


def map_dropping_undecodable(dataset, decode, counter: DropCounter, chunk=32, cycle_length=None, batched=False):
    """Adds `decode(element)` (a dict of new values) to dict elements, dropping and counting failures.

    Elements are grouped in chunks of `chunk`; each chunk is decoded in its own small dataset
    (`from_tensor_slices(chunk).map(decode).ignore_errors()`, so only decode errors are swallowed, not
    the input's own errors such as failed record checks or corrupt TFRecord files) followed by an
    end-of-chunk marker listing the chunk's records. Chunks run in parallel (`cycle_length` at once,
    default twice the cores) through an ordered interleave, which keeps each chunk's outputs together;
    a sequential `scan` notes which positions came out and, at the marker, counts the missing ones in
    `counter` and names them (shard, record index) on stderr. Nested datasets per chunk rather than
    per record keep the cost low. `batched`: the elements are already chunks (batches of at most
    `chunk` records, e.g. parsed with `parse_batch`). Needs `element["shard"]` and `element["index"]`; the output elements
    also carry the bookkeeping keys `_pos`, `_end`, `_shards`, `_indices` (ignore them).
    """
    if not 1 <= chunk <= 63:
        raise ValueError(f"chunk={chunk}: must be in [1, 63]")
    cycle_length = cycle_length or max(2, 2 * (os.cpu_count() or 1))
    if not batched:
        dataset = dataset.batch(chunk)

    def decode_chunk(batch):
        size = tf.shape(batch["index"])[0]
        items = tf.data.Dataset.from_tensor_slices((tf.range(size), batch))
        no_names = {"_shards": tf.zeros([0], tf.string), "_indices": tf.zeros([0], tf.int64)}
        decoded = items.map(lambda pos, e: dict(e, **decode(e), _pos=pos, _end=tf.constant(False), **no_names))
        decoded = decoded.ignore_errors()
        marker = {}
        for key, spec in decoded.element_spec.items():
            marker[key] = tf.zeros([d if d is not None else 1 for d in spec.shape.as_list()], spec.dtype)
        marker.update(_pos=size, _end=tf.constant(True), _shards=batch["shard"], _indices=batch["index"])
        return decoded.concatenate(tf.data.Dataset.from_tensors(marker))

    dataset = dataset.interleave(
        decode_chunk,
        cycle_length=cycle_length,
        block_length=chunk + 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )

    def note(seen, element):
        # `seen`: bit i set when position i of the current chunk came out (chunk <= 63).
        position = tf.cast(element["_pos"], tf.int64)

        def chunk_done():
            bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(seen, tf.range(position)), 1)
            missing = tf.equal(bits, 0)
            dropped = tf.reduce_sum(tf.cast(missing, tf.int64))
            count = counter.variable.assign_add(dropped)
            report = tf.cond(dropped > 0, lambda: _report(element, missing), tf.no_op)
            with tf.control_dependencies([count, report]):
                return tf.constant(0, tf.int64)

        def arrived():
            return tf.bitwise.bitwise_or(seen, tf.bitwise.left_shift(tf.constant(1, tf.int64), position))

        return tf.cond(element["_end"], chunk_done, arrived), element

    dataset = dataset.scan(tf.constant(0, tf.int64), note)
    return dataset.filter(lambda element: tf.logical_not(element["_end"]))


def _report(element, missing):
    """Prints the dropped records of a chunk (`missing` positions) on stderr, one line each."""
    names = tf.strings.join(
        [
            tf.boolean_mask(element["_shards"], missing),
            ": record ",
            tf.strings.as_string(tf.boolean_mask(element["_indices"], missing)),
            ": image does not decode, record dropped",
        ]
    )
    return tf.print(tf.strings.reduce_join(names, separator="\n"), output_stream=sys.stderr)


def as_user_error(error: Exception):
    """The `UserError` a failed record check carries, or None for any other error."""
    message = getattr(error, "message", None) or str(error)
    match = _MESSAGE_RE.search(message)
    if match is None:
        return None
    text = "".join(match.group(1).split("] ["))
    text = text.replace('\\"', '"').replace("\\\\", "\\")
    return UserError(text)


@contextlib.contextmanager
def user_errors():
    """Turns failed record checks raised inside the block into a one-line `UserError`."""
    try:
        yield
    except tf.errors.OpError as error:
        converted = as_user_error(error)
        if converted is None:
            raise
        raise converted from None
