"""The tf.data input pipelines for training and evaluation (AlexNet §2, §4.1; VGG §3.1, §3.2).

Training (`build_train_dataset`):
  shard list -> [per-worker shard] -> [file shuffle] -> parallel interleave of the shards' records
  (`record_parser.read_shard`: tagged with their shard and index, a damaged shard read up to the
  damage and marked) -> [cache] -> shuffle -> per record, in one ordered parallel map: parse, decode
  of the crop window only (uint8, resized to the crop if needed), the draws of flip and PCA colour
  jitter (AlexNet §4.1) -> batch -> per batch: count the records whose image did not decode, name and
  count a damaged shard's lost records, check the labels -> [drop the remainder] -> per batch, one
  XLA-fused pass: flip, float, mean subtraction, colour shift -> prefetch, with AUTOTUNE parallelism.
  Yields `(images float32 [B, H, W, 3], labels int32 [B])`, labels 0-based, B the per-replica batch;
  with `crops=True` the last pass is left to the caller (`train_batch_finisher`): the trainer runs it
  inside the training step, on the device, and the batches carry uint8 crops (see
  `build_train_dataset`). One pass over the data per iteration (an epoch): call `.repeat()` for more;
  the order and the augmentation draws change every iteration.
  Performance notes: the per-record path is that one map (records are checked once by `prepare` or
  `main.py verify`, not per record here): a record that does not parse or whose image does not
  decode fails its element, which `ignore_errors()` drops, and the batch stage counts the gaps in the
  records' positions (an end element after the pass counts those at the very end). Crops stay uint8
  until the float work, which is one XLA-fused pass per batch (reflection, float, the mean image window
  at the mirrored position of a pre-mirrored copy of the mean image, colour shift with the mean colour
  folded in): separate TensorFlow ops would each go over the images with 77 MB temporaries per batch,
  and one XLA call per image cost twice as much CPU per image as one per batch. In the
  trainer's form it leaves the host altogether: 4x fewer bytes to the device, ~12% less host CPU per
  image here. A window that needs resizing (stored images not at resize_size, VGG scale jitter) is
  rounded back to uint8. Labels are checked per batch, the shards' byte counts per chunk of 64
  records, and a damaged shard is described (its file read again) only where its marker is handled.
  The functions given to tf.data here and in record_parser are plain TensorFlow ops (`tf.cond`, no
  Python control flow on tensors) marked `do_not_convert`: AutoGraph's source conversion of them cost
  about 2 CPU-seconds of every start.

Through the tf.data service (`pipelines/data_service.py`), workers run `build_worker_train_dataset`:
the same per-record work and batches, arranged for dynamic sharding (the shard list its only source,
the decode per shard) and capturing no variable: each batch carries its dropped and lost record counts
for the trainer to add up.

Evaluation (`build_eval_dataset`): the shards read in order (record order preserved) without
shuffling or augmentation, then the views of one of the test protocols (`pipelines.eval_protocols`,
made by `eval_crops.protocol_views` from the image rescaled to shorter side Q):

- one crop ("center"): `[B, s, s, 3]`;
- K crops: `[B, K, s, s, 3]`, e.g. "ten_crop", AlexNet §4.1's ten patches of the central Q x Q square
  in `eval_crops.TEN_CROP_ORDER` (4 corners + centre, then their mirrors in that order), and
  "multi_crop", VGG §3.2's 5x5 grid with flips over the whole image (order in `eval_crops.grid_crops`);
- dense ("dense"): `[1, H', W', 3]`, the whole rescaled image (VGG §3.2 dense evaluation). Batches of
  one image, as sizes differ between images; the fully convolutional net averages its class score
  map and the caller the flipped image's, per image.

Q is `scale` when given, else `test_scale(config)`: resize_size (AlexNet, 256), the fixed S, or
0.5 (Smin + Smax) for jittered S (VGG §3.2, single scale). Evaluation never drops a remainder.

Mean subtraction (`mean`): "image" subtracts the per-pixel mean image (AlexNet §2), lined up with the
crop (the same window of the resize_size x resize_size frame, mirrored with the image; for eval the
mean image rescaled to Q x Q if it is another size, and its mean colour for views outside the central
square, "multi_crop" and "dense": `Protocol.in_central_square`); "rgb" subtracts the mean colour (VGG
§2.1); "none" keeps 0..255.

Distribution: pass the `tf.distribute.InputContext` (from `distribute_datasets_from_function`): with
at least as many shards as input pipelines each pipeline reads shards `id::n`; otherwise all read
every shard in the same order and keep records `id::n`. The batch is
`input_context.get_per_replica_batch_size(config.batch_size)` (config.batch_size is global).

Bad input (see record_parser): records that do not parse and undecodable images are dropped and
counted in the `DropCounter` given as `drop_counter` (a new one otherwise, available as
`dataset.drop_counter` on the returned object only: keep the counter, not the attribute, across
further transformations); read it with
`counter.take()` at the end of each epoch (exact once the epoch's records have all gone through).
Evaluation names each dropped record on stderr, training prints how many (`main.py verify` names them).
A damaged shard (CRC mismatch, truncated file) is read up to the damage, named in one line
on stderr with the byte offset and record index where it starts, and the records from there (its
`dataset.json` count minus the records read) counted in `lost_counter` (`dataset.lost_counter`) when
its marker reaches the batch stage; with `config.strict_records` the pass stops with that line
instead. The training pipeline names and counts (lost and dropped records) one pass between the
counters' resets (`take()` at each epoch's end; `DropCounter`): the trainer repeats an epoch's dataset
when its steps outrun the records left, and each damaged shard is still named once per epoch, the
epoch's counts one pass's losses. Evaluation reads one pass. An evaluation pass over every shard whose shards hold another
number of records than `dataset.json` records (and no damaged shard) stops with a one-line error
naming both counts. Records missing the label or with an out-of-range label raise
`tf.errors.InvalidArgumentError` naming the shard while iterating: run the loop inside
`record_parser.user_errors()` to get a one-line `UserError` (for all the errors above). A missing or
empty data directory, a missing split, a missing statistics file are `UserError`s when the dataset is
built; impossible settings are `FlagError`s.
"""

import dataclasses
import os
import sys
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_alexnet.errors import FlagError, UserError
from pipelines import augment, eval_crops, eval_protocols, records, record_parser
from pipelines.input_config import MEANS, InputConfig, scale_range, test_scale  # noqa: F401  (re-exported)
from pipelines.stats import read_stats, resize_mean_image

AUTOTUNE = tf.data.AUTOTUNE
_SHARED_DATA = "workers read the data at the paths the trainer reads (a shared file system, see docs/data_service.md)"
UNSEEN_SHARD = f": not found by a tf.data service worker: {_SHARED_DATA}"
UNREADABLE_SHARD = f": found but not readable by a tf.data service worker (permission denied?): {_SHARED_DATA}, " \
                   "with permission to read them"
DROPPED_LINE = (" record(s) dropped: image does not decode or record does not parse "
                "(`main.py verify` names them)")


@dataclasses.dataclass
class DataInfo:
    """What is known about a source: classes, examples and shards per split (when recorded), label offset."""

    num_classes: Optional[int]
    num_examples: dict
    label_offset: int
    source: str
    files: list
    record_spec: record_parser.RecordSpec
    default_stats_path: Optional[str]
    num_shards: dict = dataclasses.field(default_factory=dict)  # dataset.json's shards per split
    shard_examples: list = dataclasses.field(default_factory=list)  # records per file of `files`, when recorded


def dataset_info(config: InputConfig, split: Optional[str] = None) -> DataInfo:
    """Resolves the source of `config` (for `split`, default config.split) without reading records.

    UserError for a missing or empty data directory, a split without shards, an unknown TFDS dataset.
    """
    config.validate()
    split = split or config.split
    if config.tfds_name:
        from pipelines import tfds_source

        src = tfds_source.source(config.tfds_name, split, config.tfds_data_dir, config.tfds_manual_dir)
        offset = config.label_offset or 0
        num_classes = config.num_classes or src.num_classes
        spec = record_parser.RecordSpec(src.image_key, src.label_key, offset, num_classes)
        return DataInfo(num_classes, src.num_examples, offset, f"tfds:{config.tfds_name}", src.files, spec, None)
    data_dir = config.data_dir
    if not os.path.isdir(data_dir):
        raise UserError(f"{data_dir}: data directory does not exist")
    files = records.list_shards(data_dir, split)
    if not files:
        pattern = records.shard_name(split, 0, 1).replace("00000-of-00001", "NNNNN-of-NNNNN")
        what = "is empty" if not os.listdir(data_dir) else f"has no {split} shards ({pattern})"
        raise UserError(f"{data_dir}: data directory {what}")
    metadata = records.read_metadata(data_dir)
    if config.label_offset is not None:
        offset = config.label_offset
    else:
        offset = metadata.label_offset if metadata else records.TF_MODELS_LABEL_OFFSET
    num_classes = config.num_classes or (metadata.num_classes if metadata else None)
    num_examples = {name: s.num_examples for name, s in metadata.splits.items()} if metadata else {}
    num_shards = {name: s.num_shards for name, s in metadata.splits.items()} if metadata else {}
    held = metadata.splits[split].records_per_shard() if metadata and split in metadata.splits else []
    spec = record_parser.RecordSpec(records.ENCODED, records.LABEL, offset, num_classes)
    stats = os.path.join(data_dir, records.STATS_FILE)
    return DataInfo(num_classes, num_examples, offset, data_dir, files, spec, stats, num_shards,
                    held if len(held) == len(files) else [])


def count_examples(config: InputConfig, split: Optional[str] = None) -> int:
    """Examples in `split` (default config.split): from `dataset.json` / TFDS when recorded (UserError when
    dataset.json records another number of shards than the folder holds), else counted by reading every
    shard once (tensorflow/models shards; takes a while on ImageNet)."""
    split = split or config.split
    info = dataset_info(config, split)
    if split in info.num_examples:
        recorded = info.num_shards.get(split, len(info.files))
        if recorded != len(info.files):
            raise UserError(
                f"{os.path.join(config.data_dir, records.METADATA_FILE)}: {split}: {recorded} shards recorded, "
                f"{len(info.files)} found in the folder (prepare again, or fix {records.METADATA_FILE})"
            )
        return int(info.num_examples[split])
    files = tf.data.Dataset.from_tensor_slices(info.files)
    # The records up to any damage (the pipelines name a damaged shard when they read it).
    counts = files.map(lambda f: tf.data.TFRecordDataset(f).ignore_errors().reduce(tf.constant(0, tf.int64),
                                                                                  lambda n, _: n + 1))
    return int(counts.reduce(tf.constant(0, tf.int64), lambda a, b: a + b).numpy())


def _stat(stats, key, path):
    """`stats[key]` as float32 (`mean_rgb` derived from `mean_image` when absent)."""
    if key == "mean_rgb" and key not in stats and "mean_image" in stats:
        return stats["mean_image"].mean(axis=(0, 1)).astype(np.float32)
    if key not in stats:
        raise UserError(f"{path}: no {key} in the statistics file")
    return np.asarray(stats[key], np.float32)


def _load_needed_stats(config, info, need_pca):
    if config.mean == "none" and not need_pca:
        return {}, None
    path = config.stats_path or info.default_stats_path
    if not path:
        raise UserError(f"--tfds={config.tfds_name}: no statistics file: pass --stats_path (or --mean=none --pca_jitter_std=0)")
    return read_stats(path), path


def _per_replica_batch(config, input_context):
    if input_context is None:
        return config.batch_size
    try:
        return input_context.get_per_replica_batch_size(config.batch_size)
    except ValueError as error:
        raise FlagError(f"--batch_size={config.batch_size}: {error}") from None


def _seed(config):
    if config.seed is not None:
        return config.seed
    return 0 if config.deterministic else None


def _read_records(info, config, input_context, shuffle, seed, deterministic):
    """Dict elements {record, shard, index, damage} (`record_parser.read_shard`: a damaged shard read up
    to the damage and followed by a marker element for `record_parser.handle_damage`), sharded per
    input pipeline: for training, shards shuffled and interleaved record by record; for evaluation,
    shards read one after the other in order."""
    files = list(info.files)
    held = list(info.shard_examples) or [-1] * len(files)  # -1: the shard's record count is unknown
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        count, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= count:
            files, held = files[index::count], held[index::count]
        else:
            shard_records = True
    sizes = [tf.io.gfile.stat(path).length for path in files]
    dataset = tf.data.Dataset.from_tensor_slices((files, tf.constant(sizes, tf.int64), tf.constant(held, tf.int64)))
    if shuffle and not shard_records:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    @tf.autograph.experimental.do_not_convert
    def read(path, size, records_held):
        return record_parser.read_shard(path, size, records_held)

    dataset = dataset.interleave(
        read,
        cycle_length=max(1, min(len(files), config.cycle_length)) if shuffle else 1,
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic or shard_records,
    )
    if shard_records:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset


def _end_element():
    """The element put after a pass's records (index -1, no damage)."""
    return {"record": tf.constant(record_parser.DAMAGE_MARKER), "index": tf.constant(-1, tf.int64),
            "damage": tf.constant(""), "shard": tf.constant("")}


def _options(dataset, deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    return dataset.with_options(options)


def _counter(counter, name="dropped_records"):
    return counter if counter is not None else record_parser.DropCounter(name)


def build_train_dataset(config: InputConfig, input_context=None, drop_counter=None,
                        lost_counter=None, crops=False, report=True) -> tf.data.Dataset:
    """The training pipeline of the module docstring (AlexNet §4.1 or VGG §3.1 augmentation).

    `crops=True` leaves out the last stage, the float work: the batches are `(crops, labels)` with
    `crops` the dict {"image": uint8 [B, s, s, 3], "flipped": bool [B], "frame": int32 [B, 2] (the
    crop's corner in the mean image's frame, mirrored with the image), "shift": float32 [B, 3] (colour
    shift, minus the mean colour for `mean="rgb"`)}, which `train_batch_finisher(config)` turns into
    the same float images on the device that trains (4x fewer bytes to move there, and the host's
    CPUs spared the pass over the float images: what the trainer uses).

    `report=False` names and counts nothing (a look at a few batches, not a pass: the preview).
    """
    info = dataset_info(config)
    stats, stats_path = _load_needed_stats(config, info, need_pca=config.pca_jitter_std > 0)
    batch = _per_replica_batch(config, input_context)
    counter = _counter(drop_counter)
    lost = _counter(lost_counter, "lost_records")
    deterministic = bool(config.deterministic)
    seed = _seed(config)
    spec = info.record_spec
    decode = _crop_decoder(config, info, stats, stats_path)

    dataset = _read_records(info, config, input_context, shuffle=True, seed=seed, deterministic=deterministic)
    if config.cache:
        dataset = dataset.cache(config.cache if isinstance(config.cache, str) else "")
    dataset = dataset.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # An end element after the pass: its position counts the undecodable records at the very end.
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(_end_element())).enumerate()
    dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True))

    # The hot path: parse, windowed decode and the per-image draws in one ordered parallel map (uint8
    # crops). An undecodable image fails its element, which ignore_errors() drops; the gaps in the
    # positions count them.
    plain = tf.autograph.experimental.do_not_convert
    dataset = dataset.map(plain(lambda indexed, draw: decode(indexed[0], indexed[1], draw)),
                          num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()
    dataset = dataset.batch(batch, num_parallel_calls=AUTOTUNE, deterministic=True)

    stopped = tf.Variable(False, trainable=False) if config.strict_records else None

    @tf.autograph.experimental.do_not_convert
    def account(expected, chunk):
        # Per batch: the records dropped since the previous batch (missing positions), the damaged
        # shards' markers (named and counted, or the strict stop), the label checks; elements that are
        # not records are left out.
        positions, is_record = chunk["position"], chunk["index"] >= 0
        # Only the first pass since the counters' last reset counts (`DropCounter`).
        count_dropped = tf.logical_and(tf.equal(counter.passes.read_value(), 0), report)
        count_lost = tf.logical_and(tf.equal(lost.passes.read_value(), 0), report)
        dropped = positions[-1] + 1 - expected - tf.size(positions, out_type=tf.int64)
        dropped = tf.where(count_dropped, dropped, tf.constant(0, tf.int64))
        if config.strict_records:
            # From the batch that stops the pass on: nothing counted (prefetching may go on after the
            # error, from the state of before the failed batch).
            damaged = tf.reduce_any(tf.strings.length(chunk["damage"]) > 0)
            dropped = tf.where(stopped.assign(tf.logical_or(stopped, damaged)), tf.constant(0, tf.int64), dropped)
        line = tf.strings.join([tf.strings.as_string(dropped), DROPPED_LINE])
        checks = [counter.variable.assign_add(dropped),
                  tf.cond(dropped > 0, lambda: tf.print(line, output_stream=sys.stderr), tf.no_op),
                  record_parser.handle_damage(chunk["damage"], lost, strict=config.strict_records,
                                              report=count_lost)]
        with tf.control_dependencies(checks):  # the pass's end element (no record, no damage) ends it
            ended = tf.reduce_sum(tf.cast(tf.logical_and(tf.logical_not(is_record), tf.equal(chunk["damage"], "")),
                                          tf.int64))
            checks += [counter.passes.assign_add(ended), lost.passes.assign_add(ended)]
        with tf.control_dependencies(checks):
            return positions[-1] + 1, _records_of_batch(chunk, spec)

    dataset = dataset.scan(tf.constant(0, tf.int64), account)
    finish = None if crops else _finisher(config, _mean_image(config, stats, stats_path))
    dataset = finish_train_batches(dataset, config, batch, finish)
    dataset.drop_counter = counter
    dataset.lost_counter = lost
    return dataset


def _records_of_batch(chunk, spec):
    """(crops, labels) of a batch of decoded elements: the labels checked (`check_labels`), the
    elements that are not records (end elements, damage markers) left out."""
    is_record = chunk["index"] >= 0
    labels = record_parser.check_labels(chunk["stored_label"], chunk["shard"], chunk["index"], spec,
                                        ignore=tf.logical_not(is_record))
    batch_crops = {key: chunk[key] for key in ("image", "flipped", "frame", "shift")}
    return tf.cond(
        tf.reduce_all(is_record),
        lambda: (batch_crops, labels),
        lambda: tf.nest.map_structure(lambda values: tf.boolean_mask(values, is_record), (batch_crops, labels)),
    )


def finish_train_batches(dataset, config: InputConfig, batch=None, finish=None) -> tf.data.Dataset:
    """The last stages of training, on `(crops, labels)` batches: batches not full left out with
    `config.drop_remainder` (else the empty ones), then `finish` (the float work) when given, static
    batch shapes, prefetch. `batch`: the per-replica batch (default `config.batch_size`)."""
    batch = batch or config.batch_size
    plain = tf.autograph.experimental.do_not_convert
    if config.drop_remainder:
        dataset = dataset.filter(plain(lambda batch_crops, labels: tf.equal(tf.shape(labels)[0], batch)))
    else:
        dataset = dataset.filter(plain(lambda batch_crops, labels: tf.shape(labels)[0] > 0))
    if finish is not None:
        dataset = dataset.map(plain(lambda batch_crops, labels: (finish(batch_crops), labels)),
                              num_parallel_calls=AUTOTUNE, deterministic=True)
    if config.drop_remainder:  # static batch shapes
        dataset = dataset.map(plain(lambda inputs, labels: (
            tf.nest.map_structure(lambda x: tf.ensure_shape(x, [batch] + x.shape[1:]), inputs),
            tf.ensure_shape(labels, [batch]))))
    return _options(dataset.prefetch(AUTOTUNE), bool(config.deterministic))


def _readable(path, size):
    """Whether the worker can read the first byte of the `size`-byte file `path` (True when empty): graph
    ops (a dataset sent to the service runs no Python), one small read per shard and pass. The read
    fails inside the one element's map, which `ignore_errors` drops (on a reader dataset itself it
    would retry the open for ever)."""
    def first_bytes(file):
        first = tf.data.FixedLengthRecordDataset(file, 1, footer_bytes=tf.maximum(size - 1, 0), buffer_size=1)
        return first.take(1).reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)

    read = tf.data.Dataset.from_tensors(path).map(tf.autograph.experimental.do_not_convert(first_bytes))
    read = read.ignore_errors().reduce(tf.constant(0, tf.int64), lambda total, count: total + count)
    return tf.logical_or(read > 0, size == 0)


def build_worker_train_dataset(config: InputConfig) -> tf.data.Dataset:
    """The training pipeline as tf.data service workers run it (`pipelines/data_service.py`), for one
    epoch: batches `(crops, labels, counts)`, crops and labels as `build_train_dataset(...,
    crops=True)` makes them (AlexNet §4.1 or VGG §3.1 augmentation), `counts` int64 [2] the records
    dropped (undecodable) and lost (damaged shards) in the batch's stretch of the pass, for the trainer
    to add up; remainder batches are kept (the trainer drops them after counting).

    Made for dynamic sharding (`distributed_epoch`): the one source is the list of shards (shuffled
    by the seed here), which the dispatcher hands out one at a time; everything else is per shard or
    per element and captures no variable (a dataset sent to the service cannot). Per shard: its
    records (`read_shard`, a damaged one marked) and an end element, positions, the decode
    (`_crop_decoder`, draws from the seed, the shard's name and the position: which worker reads a
    shard changes nothing), the gaps the undecodable records leave counted on the next element that
    arrives (the end element counts those at the shard's end); a shard the worker does not find stops
    the pass with a one-line error naming it (`UNSEEN_SHARD`), and so does one it cannot open
    (`UNREADABLE_SHARD`: no permission to read it). Then the shards' elements are
    interleaved and shuffled (decoded crops: ~150 kB each at 224 px), batched, and per batch the counts
    summed, damaged shards named on the worker's stderr (or, strictly, the stop), labels checked.
    """
    info = dataset_info(config)
    stats, stats_path = _load_needed_stats(config, info, need_pca=config.pca_jitter_std > 0)
    batch = config.batch_size
    seed = _seed(config) or 0
    spec = info.record_spec
    decode = _crop_decoder(config, info, stats, stats_path)
    plain = tf.autograph.experimental.do_not_convert
    held = list(info.shard_examples) or [-1] * len(info.files)  # -1: the shard's record count is unknown
    order = np.random.default_rng(seed).permutation(len(info.files))
    files = [info.files[i] for i in order]
    sizes = [tf.io.gfile.stat(path).length for path in files]
    shards = tf.data.Dataset.from_tensor_slices((files, tf.constant(sizes, tf.int64),
                                                 tf.constant([held[i] for i in order], tf.int64)))

    def gaps(previous, element):
        return element["position"], dict(element, dropped=element["position"] - previous - 1)

    @plain
    def shard_elements(path, size, records_held):
        # A worker without the trainer's files (no shared file system) would find no records in them; one
        # without permission to read them would retry opening them for ever (`ignore_errors`, `read_shard`).
        found = tf.size(tf.io.matching_files(path)) > 0
        with tf.control_dependencies([record_parser.bad_data(found, path, UNSEEN_SHARD)]):
            path = tf.identity(path)
        with tf.control_dependencies([record_parser.bad_data(_readable(path, size), path, UNREADABLE_SHARD)]):
            path = tf.identity(path)
        draw = tf.bitwise.bitwise_xor(tf.strings.to_hash_bucket_fast(path, 2**62), tf.constant(seed, tf.int64))
        elements = record_parser.read_shard(path, size, records_held)
        elements = elements.concatenate(tf.data.Dataset.from_tensors(_end_element())).enumerate()
        elements = elements.map(plain(lambda position, element: decode(position, element, draw))).ignore_errors()
        return elements.scan(tf.constant(-1, tf.int64), plain(gaps))

    dataset = shards.interleave(shard_elements, cycle_length=max(1, min(len(files), config.cycle_length)),
                                block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch, num_parallel_calls=AUTOTUNE, deterministic=True)

    @plain
    def account(chunk):
        dropped = tf.reduce_sum(chunk["dropped"])
        line = tf.strings.join([tf.strings.as_string(dropped), DROPPED_LINE])
        lost = record_parser.damage_lost(chunk["damage"], strict=config.strict_records)
        checks = [tf.cond(dropped > 0, lambda: tf.print(line, output_stream=sys.stderr), tf.no_op), lost]
        with tf.control_dependencies(checks):
            batch_crops, labels = _records_of_batch(chunk, spec)
        return batch_crops, labels, tf.stack([dropped, lost])

    dataset = dataset.map(account, num_parallel_calls=AUTOTUNE, deterministic=True)
    return _options(dataset.prefetch(AUTOTUNE), bool(config.deterministic))


def _crop_decoder(config, info, stats, stats_path):
    """The per-record hot path of training: `decode(position, element, draw)` -> a dict of one record's
    uint8 crop (window-only decode, resized to the crop if needed), its flip, frame position and colour
    shift (AlexNet §4.1; VGG §3.1's scale jitter), stored label, `position`, shard, index and damage.
    Its draws are stateless from (`draw`, `position`). An element that is not a record (index -1: an
    end element or a damage marker) gets a zero crop; a record that does not parse or decode fails."""
    size = config.image_size
    jitter = config.scale_jitter
    center_square = jitter is None
    spec = info.record_spec
    mean_rgb = tf.constant(_stat(stats, "mean_rgb", stats_path)) if config.mean == "rgb" else None
    if config.pca_jitter_std > 0:
        eigenvalues = tf.constant(_stat(stats, "eigenvalues", stats_path))
        eigenvectors = tf.constant(_stat(stats, "eigenvectors", stats_path))

    def plan_image(seeds):
        # AlexNet §4.1 per image: reflection (the mean image window's column mirrored to match), PCA
        # colour shift with the mean colour folded in.
        flipped = augment.flip_coin(seeds[2]) if config.flip else tf.constant(False)
        shift = tf.zeros([3], tf.float32)
        if config.pca_jitter_std > 0:
            shift = augment.pca_shift(eigenvalues, eigenvectors, augment.pca_alphas(config.pca_jitter_std, seeds[3]))
        if mean_rgb is not None:
            shift = shift - mean_rgb
        return flipped, shift

    @tf.autograph.experimental.do_not_convert
    def decode(position, element, draw):

        def image_and_label():
            encoded, stored_label = record_parser.parse_unchecked(element["record"], spec)
            seeds = augment.split_seed(tf.stack([draw, position]), 4)
            scale = config.resize_size if jitter is None else augment.sample_scale(jitter, seeds[0])

            def plan(height, width):
                return augment.crop_window(height, width, scale, size, seeds[1], center_square, config.random_crop)

            window, frame_y, frame_x = augment.decode_window(encoded, plan)
            flipped, shift = plan_image(seeds)
            frame_x = tf.where(flipped, config.resize_size - size - frame_x, frame_x)
            return (augment.resize_window(window, size, dtype=tf.uint8), flipped, tf.stack([frame_y, frame_x]),
                    shift, stored_label)

        def no_image():  # the end element or a damage marker: left out after the batch
            return (tf.zeros([size, size, 3], tf.uint8), tf.constant(False), tf.zeros([2], tf.int32),
                    tf.zeros([3], tf.float32), tf.constant(record_parser.NO_LABEL, tf.int64))

        image, flipped, frame, shift, stored_label = tf.cond(element["index"] >= 0, image_and_label, no_image)
        return {"image": image, "flipped": flipped, "frame": frame, "shift": shift, "stored_label": stored_label,
                "position": position, "shard": element["shard"], "index": element["index"],
                "damage": element["damage"]}

    return decode


def train_batch_finisher(config: InputConfig, scale: float = 1.0):
    """The float work of a training batch, `crops` (`build_train_dataset(..., crops=True)`) -> float32
    images [B, s, s, 3], times `scale`: reflection (AlexNet §4.1), float, minus the mean image's
    window at the crop's position (AlexNet §2), plus the colour shift (AlexNet §4.1). One XLA-fused
    `tf.function`, to call inside the training step (or anywhere)."""
    if config.mean != "image":  # the mean colour, if any, is in the shifts already
        return _finisher(config, None, scale)
    stats, stats_path = _load_needed_stats(config, dataset_info(config), need_pca=False)
    return _finisher(config, _mean_image(config, stats, stats_path), scale)


def _mean_image(config, stats, stats_path):
    """The per-pixel mean image (AlexNet §2) as a constant, for `mean="image"` (else None); UserError
    when it is not resize_size x resize_size, the frame the crops are planned in."""
    if config.mean != "image":
        return None
    mean_image = _stat(stats, "mean_image", stats_path)
    if mean_image.shape[:2] != (config.resize_size, config.resize_size):
        raise UserError(
            f"{stats_path}: mean_image is {mean_image.shape[0]}x{mean_image.shape[1]}, "
            f"expected {config.resize_size}x{config.resize_size} (--resize_size)"
        )
    return tf.constant(mean_image)


def _finisher(config, mean_image, scale=1.0):
    """`train_batch_finisher`'s function, from the mean image constant (or None)."""
    pixels = tf.range(config.image_size)
    if mean_image is not None:
        # The mirror image of a crop at frame column x is the crop of the mirrored frame at column
        # resize_size - size - x: a pre-mirrored mean image lines up with a mirrored crop.
        mean_images = tf.stack([mean_image, tf.reverse(mean_image, [1])])

    @tf.function(jit_compile=True, autograph=False)
    def finish(crops):
        # Separate TensorFlow ops would each go over the images with 77 MB temporaries per batch.
        flipped = crops["flipped"]
        images = tf.where(flipped[:, None, None, None], eval_crops.flip_left_right(crops["image"]), crops["image"])
        images = tf.cast(images, tf.float32)
        if mean_image is not None:
            frames = tf.gather(mean_images, tf.cast(flipped, tf.int32))
            windows = tf.gather(frames, crops["frame"][:, :1] + pixels, axis=1, batch_dims=1)
            images = images - tf.gather(windows, crops["frame"][:, 1:] + pixels, axis=2, batch_dims=1)
        images = images + crops["shift"][:, None, None, :]
        return images * scale if scale != 1.0 else images

    return finish


def build_eval_dataset(
    config: InputConfig, protocol: str = "center", scale: Optional[int] = None, input_context=None, drop_counter=None,
    lost_counter=None,
) -> tf.data.Dataset:
    """An evaluation pipeline (AlexNet §4.1 test patches, VGG §3.2 test scale Q; module docstring) of
    `protocol`, a name in `pipelines.eval_protocols.PROTOCOLS` (FlagError naming --protocols otherwise)."""
    chosen = eval_protocols.get(protocol)
    info = dataset_info(config)
    stats, stats_path = _load_needed_stats(config, info, need_pca=False)
    q = int(scale or test_scale(config))
    size = config.image_size
    if q < size:
        raise FlagError(f"test scale {q} is smaller than --image_size={size}")
    counter = _counter(drop_counter)
    lost = _counter(lost_counter, "lost_records")

    mean = None
    if config.mean == "image" and chosen.in_central_square:
        mean_image = _stat(stats, "mean_image", stats_path)
        if mean_image.shape[:2] != (q, q):
            mean_image = resize_mean_image(mean_image, q)
        mean = tf.constant(mean_image)
    elif config.mean != "none":
        mean = tf.constant(_stat(stats, "mean_rgb", stats_path))

    def subtract(image):
        return eval_crops.subtract_mean(image, mean) if mean is not None else tf.cast(image, tf.float32)

    def view(image):
        return eval_crops.protocol_views(chosen, eval_crops.resize_shorter_side(image, q), size, subtract)

    dataset = decoded_records(config, info, view, counter, lost, input_context)
    batch = 1 if chosen.dense else _per_replica_batch(config, input_context)
    dataset = dataset.batch(batch, drop_remainder=False, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(lambda batched: (batched["image"], batched["label"])))
    dataset = _options(dataset.prefetch(AUTOTUNE), True)
    dataset.drop_counter = counter
    dataset.lost_counter = lost
    return dataset


def decode_image(encoded):
    """An RGB uint8 image [H, W, 3] from JPEG/PNG/... bytes (what evaluation and `stats` read)."""
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def decoded_records(config: InputConfig, info: DataInfo, view, drop_counter: record_parser.DropCounter,
                    lost_counter: record_parser.DropCounter, input_context=None) -> tf.data.Dataset:
    """`config.split`'s records in shard and record order as {image: view(decoded RGB image), label,
    shard, index}: evaluation's reader, also `main.py stats`'s. A damaged shard is named on stderr and
    its lost records counted in `lost_counter` (or, strictly, stops the pass); a record that does not
    parse or decode is named, dropped and counted in `drop_counter`; labels are checked; a pass over
    every shard must find `dataset.json`'s count (module docstring)."""
    whole = input_context is None or input_context.num_input_pipelines == 1
    expected = info.num_examples.get(config.split) if whole and config.data_dir else None
    dataset = _read_records(info, config, input_context, shuffle=False, seed=None, deterministic=True)
    dataset = _checked_pass(dataset, config, expected, lost_counter)
    return record_parser.decode_records(dataset, info.record_spec, drop_counter, decode_image, view)


def _checked_pass(dataset, config, expected, lost):
    """Evaluation's records without marker elements, checking on the way (64 records at a time): a
    damaged shard's marker is named and its lost records counted in `lost` (`handle_damage`), or stops
    the pass with its line in strict mode; with `expected` (dataset.json's
    count, for a pass that reads every shard) a pass over whole shards must find that many records, else
    the one-line UserError naming both counts (validation would otherwise pad the missing images, slowly)."""
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(_end_element())).batch(64)
    metadata = os.path.join(config.data_dir or "", records.METADATA_FILE)
    mismatch = f"{metadata}: {config.split}: {expected} examples recorded, the shards hold "

    @tf.autograph.experimental.do_not_convert
    def check(state, batch):
        count, damaged = state
        is_record = batch["index"] >= 0
        count = count + tf.reduce_sum(tf.cast(is_record, tf.int64))
        found = record_parser.handle_damage(batch["damage"], lost, strict=config.strict_records)
        damaged = tf.logical_or(damaged, found)
        checks = [found]
        if expected is not None:
            # The end element (no record, no damage) comes last: by then every record is counted.
            ended = tf.reduce_any(tf.logical_and(tf.logical_not(is_record), tf.equal(batch["damage"], "")))
            ok = tf.logical_or(tf.logical_not(ended), tf.logical_or(damaged, tf.equal(count, expected)))
            checks.append(record_parser.bad_data(ok, mismatch, count, " (prepare the split again)"))
        with tf.control_dependencies(checks):
            kept = {key: tf.boolean_mask(value, is_record) for key, value in batch.items()}
        return (count, damaged), kept

    return dataset.scan((tf.constant(0, tf.int64), tf.constant(False)), check).unbatch()
