"""Reading `tf.train.Example` records in tf.data: parsing, label offset, bad-record handling.

Bad input never crashes the pipeline with an anonymous TensorFlow error:

- A damaged shard (a CRC mismatch from flipped bytes, a truncated file) is read up to the damage
  (`read_shard`, which marks it) and, per batch downstream (`handle_damage`), named in one line with
  the byte offset and index of the first unreadable record and the records from there counted in a
  `DropCounter`: the shard's records as `dataset.json` records them (`records.SplitInfo.shard_examples`)
  minus those read before the damage (the records behind the damage cannot be told from the bytes
  left: a truncated file holds no trace of them); a shard whose count is not recorded is named with
  the bytes skipped instead, and not counted. Or, strictly, the pipeline stops with that line.
- A record that does not parse (not a `tf.train.Example`, an image or label of another type or count)
  or whose image fails to decode is dropped and counted in a `DropCounter` (a tf.Variable updated
  inside the pipeline): the training pipeline counts the gaps that `ignore_errors()` leaves
  (input_pipeline.py); evaluation (`decode_records`: parsing and decoding in small nested datasets
  with `ignore_errors()`) names each on stderr with its shard and record index. No py_function anywhere.
- A record missing its label, or whose label (after the offset) is outside [0, num_classes), fails a
  `tf.debugging.Assert` whose message names the shard and the record's index in it (`check_labels`,
  for a vector of records, naming the first bad one). The error
  reaches the caller as `tf.errors.InvalidArgumentError` from the iterator (or from `model.fit`);
  `user_errors()` / `as_user_error()` turn it (and a strict damaged-shard stop) into a one-line
  `keras_alexnet.errors.UserError`:

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

NO_LABEL = -(2**62)  # parse default marking a missing label
# How a pass's counts read, after the number (train's epoch lines, `main.py stats`).
LOST_NOTE = "record(s) lost in damaged shard(s) (named above; main.py verify lists them)"
DROPPED_NOTE = "record(s) dropped: their image could not be decoded (main.py verify names them)"
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
    """How many records were dropped because their image failed to decode (or lost to damaged shards).

    The count lives in an int64 `tf.Variable` that the pipeline increments; read it from Python
    between epochs (`count()`, or `take()` to read and reset it). One counter may be shared by several
    datasets (pass it to the builders). Create it eagerly; under a `tf.distribute` strategy scope it
    becomes a mirrored variable, which works too.

    The training pipeline counts one pass over the data between resets: `passes` (another variable)
    holds the passes it ended since, and only while it is 0 are records counted (and damaged shards
    named). An epoch that reads into the next pass (the trainer repeats its dataset when the steps
    outrun the records left) or prefetches from it so reports the losses of one pass, each once.
    """

    def __init__(self, name="dropped_records"):
        self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
        self.passes = tf.Variable(0, dtype=tf.int64, trainable=False, name=name + "_passes")

    def count(self) -> int:
        return int(tf.convert_to_tensor(self.variable).numpy())

    def reset(self) -> None:
        self.variable.assign(0)
        self.passes.assign(0)

    def take(self) -> int:
        """The count so far, then zero (call at the end of each epoch)."""
        value = self.count()
        self.reset()
        return value


def _bad_record(condition, shard, index, *parts):
    """An assertion whose message reads `<shard>: record <index>: <parts...>` (formatted only on failure)."""
    return tf.debugging.Assert(condition, [_BEGIN, shard, ": record ", index, ": ", *parts, _END], summarize=1)


def bad_data(condition, *parts):
    """An assertion whose message, `parts` joined (strings and scalar tensors), `user_errors()` turns
    into a one-line UserError."""
    return tf.debugging.Assert(condition, [_BEGIN, *parts, _END], summarize=1)


def parse_unchecked(serialized, spec: RecordSpec):
    """(encoded bytes, stored int64 label) of one record, without any check: a missing image is "", a
    missing label `NO_LABEL` (see `check_labels`). A record that is not an Example with one bytes image
    and one int64 label fails with TensorFlow's error (call it where `ignore_errors()` drops and counts
    the element: TensorFlow's message names no record and may not even be UTF-8)."""
    features = tf.io.parse_single_example(
        serialized,
        {
            spec.image_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            spec.label_key: tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
        },
    )
    return features[spec.image_key], features[spec.label_key]


def check_labels(stored_label, shards, indices, spec: RecordSpec, ignore=None):
    """0-based int32 labels of a vector of records, asserting each has a label in [0, num_classes)
    after the offset (the first failing record names itself); `ignore` (bool vector) exempts entries."""

    def check(ok, *parts):
        if ignore is not None:
            ok = tf.logical_or(ok, ignore)
        first = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int32)  # the first failing record
        parts = [p(first) if callable(p) else p for p in parts]
        return _bad_record(tf.reduce_all(ok), shards[first], indices[first], *parts)

    with tf.control_dependencies([check(tf.not_equal(stored_label, NO_LABEL), f"missing key {spec.label_key}")]):
        label = stored_label - spec.label_offset
    in_range = label >= 0
    bound = f"[0, {spec.num_classes})" if spec.num_classes is not None else "[0, ...)"
    if spec.num_classes is not None:
        in_range = tf.logical_and(in_range, label < spec.num_classes)
    offset = f" (stored {spec.label_offset}-based)" if spec.label_offset else ""
    range_check = check(in_range, "label ", lambda first: label[first], f" outside {bound}{offset}")
    with tf.control_dependencies([range_check]):
        return tf.cast(label, tf.int32)


def decode_records(dataset, spec: RecordSpec, counter: DropCounter, decode_image, view=None, chunk=32,
                   cycle_length=None):
    """Evaluation's records {record, shard, index} -> {image, label, shard, index}: each record parsed
    (`parse_unchecked`), its image decoded by `decode_image(encoded)` and, when given, turned into the
    evaluation's input by `view(image)`. A record that does not parse or whose image does not decode is
    dropped, counted in `counter` and named on stderr; a missing label or one outside [0, num_classes)
    stops the pass with the one-line record error (`check_labels`).

    Records go in chunks of `chunk`, each decoded in its own small dataset
    (`from_tensor_slices(chunk).map(decode).ignore_errors()`: only the decode errors are swallowed, not
    the input's own checks), whose survivors come back as one padded batch with their positions and
    shapes, followed by an empty marker so that a chunk whose records all fail still comes back. Chunks
    run in parallel (`cycle_length` at once, default twice the cores) through an ordered interleave;
    per chunk, in order, the positions that did not come back are counted and named and the labels
    checked, all as vectors; per record only the decode and the unpadding (with `view`) run.
    """
    cycle_length = cycle_length or max(2, 2 * (os.cpu_count() or 1))

    @tf.autograph.experimental.do_not_convert
    def decode(position, element):
        encoded, stored_label = parse_unchecked(element["record"], spec)
        image = decode_image(encoded)
        return {"image": image, "shape": tf.shape(image), "stored_label": stored_label, "position": position}

    @tf.autograph.experimental.do_not_convert
    def decode_chunk(batch):
        items = tf.data.Dataset.from_tensor_slices((tf.range(tf.size(batch["index"])), batch))
        decoded = items.map(decode).ignore_errors()
        image = decoded.element_spec["image"]
        marker = {"image": tf.zeros([1] * image.shape.rank, image.dtype),
                  "shape": tf.ones([image.shape.rank], tf.int32),
                  "stored_label": tf.constant(NO_LABEL, tf.int64), "position": tf.constant(-1, tf.int32)}
        survivors = decoded.concatenate(tf.data.Dataset.from_tensors(marker)).padded_batch(chunk + 1)
        names = {"shard": batch["shard"], "index": batch["index"]}  # the records' bytes stay behind
        return survivors.map(lambda survivor: (survivor, names))

    @tf.autograph.experimental.do_not_convert
    def account(survivors, names):
        kept = survivors["position"] >= 0
        positions = tf.boolean_mask(survivors["position"], kept)
        arrived = tf.reduce_any(tf.equal(tf.range(tf.size(names["index"]))[:, None], positions[None, :]), axis=1)
        missing = tf.logical_not(arrived)
        dropped = tf.reduce_sum(tf.cast(missing, tf.int64))
        shards, indices = tf.gather(names["shard"], positions), tf.gather(names["index"], positions)
        done = [counter.variable.assign_add(dropped),
                tf.cond(dropped > 0, lambda: _report(names["shard"], names["index"], missing), tf.no_op)]
        with tf.control_dependencies(done):
            labels = check_labels(tf.boolean_mask(survivors["stored_label"], kept), shards, indices, spec)
        return {"image": tf.boolean_mask(survivors["image"], kept), "shape": tf.boolean_mask(survivors["shape"], kept),
                "label": labels, "shard": shards, "index": indices}

    @tf.autograph.experimental.do_not_convert
    def unpad(element):
        image = tf.slice(element["image"], tf.zeros_like(element["shape"]), element["shape"])
        return {"image": view(image) if view is not None else image, "label": element["label"],
                "shard": element["shard"], "index": element["index"]}

    dataset = dataset.batch(chunk).interleave(decode_chunk, cycle_length=cycle_length, block_length=1,
                                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(account).unbatch()
    return dataset.map(unpad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _report(shards, indices, missing):
    """Prints the dropped records of a chunk (`missing` positions) on stderr, one line each."""
    names = tf.strings.join(
        [
            tf.boolean_mask(shards, missing),
            ": record ",
            tf.strings.as_string(tf.boolean_mask(indices, missing)),
            ": image does not decode (or the record does not parse), record dropped",
        ]
    )
    return tf.print(tf.strings.reduce_join(names, separator="\n"), output_stream=sys.stderr)


# The bytes of the marker element `read_shard` may add after a damaged shard's records (index -1):
# protobuf field tag 0 is invalid, so no Example serializes to them.
DAMAGE_MARKER = b"\x00damaged shard"
_HEADER, _FRAME = 12, 16  # TFRecord: uint64 length + masked CRC32C of it, data, masked CRC32C of the data
_SHARD_CHUNK = 64  # records per step of a shard's byte count
_NOTE_SEPARATOR = "\t"  # between a damage note's fields (a path holding tabs still reads back: the last four are numbers)


def damage_kind(path, offset, size):
    """How the TFRecord file `path` (`size` bytes) reads at byte `offset`, where reading stopped:
    "truncated record" when that record's frame runs past the end of the file, else "corrupted
    record" (its CRC does not match: TensorFlow's two DataLoss kinds). Graph ops, usable in tf.data
    and eagerly; reads the file, so only called for a damaged shard."""
    content = tf.io.read_file(path)
    offset, size = tf.cast(offset, tf.int64), tf.cast(size, tf.int64)
    has_header = offset + _HEADER <= size
    length = tf.cond(
        has_header,
        lambda: tf.io.decode_raw(tf.strings.substr(content, offset, 8), tf.int64, little_endian=True)[0],
        lambda: tf.constant(-1, tf.int64),
    )
    fits = tf.logical_and(has_header, tf.logical_and(length >= 0, length <= size - offset - _FRAME))
    return tf.where(fits, "corrupted record", "truncated record")


def read_shard(path, size, held=-1):
    """The records of one TFRecord shard (`size`: its length in bytes, from the file system; `held`:
    the records it holds as `dataset.json` records them, -1 when unknown) as dict elements
    {record, shard, index, damage} (damage "": a record).

    A damaged shard (CRC mismatch, truncated file) is read up to the damage. Found from the bytes read
    (the records' frames) falling short of `size`, so a whole shard costs one running sum per chunk of
    records; reading stops at the same record every time, so a resumed run gets past it the same way.
    The shard's records are then followed by a marker element: record `DAMAGE_MARKER`, index -1 and
    damage a note of where (path, byte offset, record index, size, records held), which the consumer hands to
    `handle_damage` (per batch: naming it, counting or stopping). The per-shard function stays this
    small because it is instantiated for every shard of every pass: the damage's description,
    which reads the file again, is built only by `handle_damage`.
    """
    stream = tf.data.TFRecordDataset(path).ignore_errors()  # an error ends the file's stream
    stream = stream.concatenate(tf.data.Dataset.from_tensors(tf.constant(DAMAGE_MARKER))).batch(_SHARD_CHUNK)

    @tf.autograph.experimental.do_not_convert
    def step(state, chunk):
        index, consumed = state
        last = tf.equal(chunk, DAMAGE_MARKER)  # the end of the stream (the marker appended above)
        is_record = tf.logical_not(last)
        frames = tf.cast(tf.strings.length(chunk), tf.int64) + _FRAME
        consumed = consumed + tf.reduce_sum(tf.where(is_record, frames, tf.zeros_like(frames)))
        count = tf.reduce_sum(tf.cast(is_record, tf.int64))
        damaged = tf.logical_and(tf.reduce_any(last), consumed < size)
        note = tf.strings.join([path, tf.strings.as_string(consumed), tf.strings.as_string(index + count),
                                tf.strings.as_string(size), tf.strings.as_string(held)], separator=_NOTE_SEPARATOR)
        keep = tf.logical_or(is_record, tf.logical_and(last, damaged))
        indices = tf.where(is_record, index + tf.range(tf.size(chunk, out_type=tf.int64)), -1)
        element = {
            "record": tf.boolean_mask(chunk, keep),
            "index": tf.boolean_mask(indices, keep),
            "damage": tf.boolean_mask(tf.where(last, note, ""), keep),
        }
        element["shard"] = tf.fill(tf.shape(element["index"]), path)
        return (index + count, consumed), element

    return stream.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), step).unbatch()


_STRICT_HINT = " (strict_records: prepare the shard again, or read without --strict_records to skip the rest of it)"


def _describe_damage(note):
    """A damage note (`read_shard`) -> (`<path>: <kind> at byte <offset> (record <index>)`, what was
    skipped from there, the records lost: the shard's records as `dataset.json` records them minus
    those read before the damage; without that count, the bytes left unread and 0 records counted)."""
    fields = tf.strings.split(note, _NOTE_SEPARATOR)
    path = tf.strings.reduce_join(fields[:-4], separator=_NOTE_SEPARATOR)
    offset, index, size, held = (tf.strings.to_number(fields[i], tf.int64) for i in (-4, -3, -2, -1))
    line = tf.strings.join([path, ": ", damage_kind(path, offset, size), " at byte ", fields[-4], " (record ",
                            fields[-3], ")"])
    known = held >= index
    lost = tf.where(known, held - index, 0)
    skipped = tf.where(known, tf.strings.join([tf.strings.as_string(lost), " record(s) from there skipped"]),
                       tf.strings.join([tf.strings.as_string(size - offset), " byte(s) from there skipped "
                                        f"({records.METADATA_FILE} records no record count for this shard)"]))
    return line, skipped, lost


def damage_lost(damage, strict=False, report=True):
    """The records lost to the damaged shards among `damage` (a batch's string vector of damage notes,
    "" for records; `read_shard`), as an int64 tensor: with `strict`, fails with the first damaged
    shard's one line (`user_errors()` turns it into that UserError); otherwise, when `report` (a bool
    tensor or Python bool: False for a pass whose damage was already named and counted), prints
    `<path>: corrupted record at byte <offset> (record <index>); <n> record(s) from there skipped` on
    stderr for each and counts the n (the shard's records in `dataset.json` minus those read; a shard
    without that count is named with the bytes skipped, and counts 0). 0 without damage; the
    description is built only for a damaged shard."""
    damage = tf.reshape(damage, [-1])
    bad = tf.strings.length(damage) > 0

    def describe_all():
        notes = tf.boolean_mask(damage, bad)
        lines, skipped, records = tf.map_fn(_describe_damage, notes,
                                            fn_output_signature=(tf.string, tf.string, tf.int64))
        if strict:
            done = [tf.debugging.Assert(False, [_BEGIN, lines[0], _STRICT_HINT, _END], summarize=1)]
        else:
            text = tf.strings.reduce_join(tf.strings.join([lines, skipped], separator="; "), separator="\n")
            done = [tf.print(text, output_stream=sys.stderr)]
        with tf.control_dependencies(done):
            return tf.reduce_sum(records)

    if strict:
        report = True
    return tf.cond(tf.logical_and(tf.reduce_any(bad), report), describe_all, lambda: tf.constant(0, tf.int64))


def handle_damage(damage, lost: DropCounter, strict=False, report=True):
    """`damage_lost` with the count added to `lost`: an op to run as a control dependency (a bool
    tensor: whether there was damage)."""
    added = lost.variable.assign_add(damage_lost(damage, strict, report))
    with tf.control_dependencies([added]):
        return tf.reduce_any(tf.strings.length(tf.reshape(damage, [-1])) > 0)


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
