"""The tf.data input pipelines for training and evaluation (AlexNet §2, §4.1; VGG §3.1, §3.2).

Training (`build_train_dataset`):
  shard list -> [per-worker shard] -> [file shuffle] -> parallel interleave (records tagged with their
  shard and index) -> [cache] -> shuffle -> chunks of 32 records -> per-chunk parse + check and
  per-image seeds -> per image, inside the chunked decode that drops and counts undecodable records:
  decode of the crop window only, augmentation (resize to the crop if needed, flip, PCA colour jitter,
  AlexNet §4.1) and mean subtraction -> batch (drop remainder) -> prefetch, with AUTOTUNE
  parallelism. Yields `(images float32 [B, H, W, 3], labels int32 [B])`, labels 0-based, B the
  per-replica batch. One pass over the data per iteration (an epoch): call `.repeat()` for more; the
  order and the augmentation draws change every iteration.
  Performance notes: parsing, the record checks and the seed draws are done once per chunk of 32
  records (`record_parser.parse_batch`), and the whole per-image work runs in the chunked decode's
  parallel nested datasets (no separate per-record map stages). Crops stay uint8 until the float
  work and are mirrored as uint8, the mean image window then taken from a pre-mirrored copy of the
  mean image at the mirrored position (the same values as mirroring the float result); the float
  work is done per image on cache-sized tensors with the colour shift and the mean colour folded
  into one add (measured faster here than the same arithmetic on whole batches, whose 77 MB
  temporaries cost page faults); a window that needs resizing (stored images not at resize_size,
  VGG scale jitter) is rounded back to uint8.

Evaluation (`build_eval_dataset`): the shards read in order (record order preserved) without
shuffling or augmentation, then one of the test protocols:

- "center": `[B, s, s, 3]`, the central crop of the image rescaled to shorter side Q.
- "ten_crop": `[B, 10, s, s, 3]`, AlexNet §4.1's ten patches of the central Q x Q square, in
  `eval_crops.TEN_CROP_ORDER` (4 corners + centre, then their mirrors in that order).
- "multi_crop": `[B, 50, s, s, 3]`, VGG §3.2's 5x5 grid with flips over the whole image at scale Q
  (order in `eval_crops.grid_crops`).
- "dense": `[1, H', W', 3]`, the whole image rescaled to shorter side Q (VGG §3.2 dense evaluation).
  Batches of one image, as sizes differ between images; the fully convolutional net averages its
  class score map and the caller the flipped image's, per image.

Q is `scale` when given, else `test_scale(config)`: resize_size (AlexNet, 256), the fixed S, or
0.5 (Smin + Smax) for jittered S (VGG §3.2, single scale). Evaluation never drops a remainder.

Mean subtraction (`mean`): "image" subtracts the per-pixel mean image (AlexNet §2), lined up with the
crop (the same window of the resize_size x resize_size frame, mirrored with the image; for eval the
mean image rescaled to Q x Q if it is another size, and its mean colour for "multi_crop" and "dense"
whose frames are not square); "rgb" subtracts the mean colour (VGG §2.1); "none" keeps 0..255.

Distribution: pass the `tf.distribute.InputContext` (from `distribute_datasets_from_function`): with
at least as many shards as input pipelines each pipeline reads shards `id::n`; otherwise all read
every shard in the same order and keep records `id::n`. The batch is
`input_context.get_per_replica_batch_size(config.batch_size)` (config.batch_size is global).

Bad input (see record_parser): undecodable images are dropped and counted in the `DropCounter` given
as `drop_counter` (a new one otherwise, available as `dataset.drop_counter` on the returned object
only: keep the counter, not the attribute, across further transformations); read it with
`counter.take()` at the end of each epoch (exact once the epoch's records have all gone through).
Records missing a key or with an out-of-range label raise `tf.errors.InvalidArgumentError` naming the
shard while iterating: run the loop inside `record_parser.user_errors()` to get a one-line
`UserError`. A missing or empty data directory, a missing split, a missing statistics file are
`UserError`s when the dataset is built; impossible settings are `FlagError`s.
"""

import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_alexnet.errors import FlagError, UserError
from pipelines import augment, eval_crops, records, record_parser
from pipelines.input_config import MEANS, InputConfig, scale_range, test_scale  # noqa: F401  (re-exported)
from pipelines.stats import read_stats

AUTOTUNE = tf.data.AUTOTUNE
PROTOCOLS = ("center", "ten_crop", "multi_crop", "dense")
CHUNK = 32  # records per chunk of the training pipeline's parse and decode
STATS_KEYS = ("mean_image", "mean_rgb", "eigenvalues", "eigenvectors")


@dataclasses.dataclass
class DataInfo:
    """What is known about a source: classes, examples per split (when recorded), label offset."""

    num_classes: Optional[int]
    num_examples: dict
    label_offset: int
    source: str
    files: list
    record_spec: record_parser.RecordSpec
    default_stats_path: Optional[str]


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
    spec = record_parser.RecordSpec(records.ENCODED, records.LABEL, offset, num_classes)
    stats = os.path.join(data_dir, records.STATS_FILE)
    return DataInfo(num_classes, num_examples, offset, data_dir, files, spec, stats)


def count_examples(config: InputConfig, split: Optional[str] = None) -> int:
    """Examples in `split` (default config.split): from `dataset.json` / TFDS when recorded, else
    counted by reading every shard once (tensorflow/models shards; takes a while on ImageNet)."""
    split = split or config.split
    info = dataset_info(config, split)
    if split in info.num_examples:
        return int(info.num_examples[split])
    files = tf.data.Dataset.from_tensor_slices(info.files)
    counts = files.map(lambda f: tf.data.TFRecordDataset(f).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
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
    """Dict elements {record, shard, index}, sharded per input pipeline: for training, shards shuffled
    and interleaved record by record; for evaluation, shards read one after the other in order."""
    files = list(info.files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        count, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= count:
            files = files[index::count]
        else:
            shard_records = True
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and not shard_records:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(path):
        shard = tf.data.TFRecordDataset(path)
        return shard.enumerate().map(lambda index, record: {"record": record, "shard": path, "index": index})

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


def _options(dataset, deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    return dataset.with_options(options)


def _counter(drop_counter):
    return drop_counter if drop_counter is not None else record_parser.DropCounter()


def build_train_dataset(config: InputConfig, input_context=None, drop_counter=None) -> tf.data.Dataset:
    """The training pipeline of the module docstring (AlexNet §4.1 or VGG §3.1 augmentation)."""
    info = dataset_info(config)
    stats, stats_path = _load_needed_stats(config, info, need_pca=config.pca_jitter_std > 0)
    batch = _per_replica_batch(config, input_context)
    counter = _counter(drop_counter)
    size = config.image_size
    deterministic = bool(config.deterministic)
    seed = _seed(config)
    jitter = config.scale_jitter
    center_square = jitter is None

    mean_image = None
    if config.mean == "image":
        mean_image = _stat(stats, "mean_image", stats_path)
        if mean_image.shape[:2] != (config.resize_size, config.resize_size):
            raise UserError(
                f"{stats_path}: mean_image is {mean_image.shape[0]}x{mean_image.shape[1]}, "
                f"expected {config.resize_size}x{config.resize_size} (--resize_size)"
            )
        mean_image = tf.constant(mean_image)
    mean_rgb = tf.constant(_stat(stats, "mean_rgb", stats_path)) if config.mean == "rgb" else None
    if config.pca_jitter_std > 0:
        eigenvalues = tf.constant(_stat(stats, "eigenvalues", stats_path))
        eigenvectors = tf.constant(_stat(stats, "eigenvectors", stats_path))

    dataset = _read_records(info, config, input_context, shuffle=True, seed=seed, deterministic=deterministic)
    if config.cache:
        dataset = dataset.cache(config.cache if isinstance(config.cache, str) else "")
    dataset = dataset.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Records go on in chunks of CHUNK from here: one parse and one seed draw per chunk, then the
    # chunked decode (record_parser.map_dropping_undecodable), cheaper than per-record stages.
    dataset = dataset.batch(CHUNK)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2 * CHUNK, drop_remainder=True)
    dataset = tf.data.Dataset.zip(dataset, seeds)

    def parse(chunk, chunk_seeds):
        encoded, label = record_parser.parse_batch(chunk["record"], chunk["shard"], chunk["index"], info.record_spec)
        element_seeds = tf.reshape(chunk_seeds, [CHUNK, 2])[: tf.shape(label)[0]]
        return {"encoded": encoded, "label": label, "shard": chunk["shard"], "index": chunk["index"], "seed": element_seeds}

    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)

    if mean_image is not None:
        # The mirror image of a crop at frame column x is the crop of the mirrored frame at column
        # resize_size - size - x: a pre-mirrored mean image lines up with a crop mirrored as uint8.
        mean_images = tf.stack([mean_image, tf.reverse(mean_image, [1])])

    def finish_image(window, frame, seeds):
        # AlexNet §4.1 per image: crop (uint8), reflection (uint8; the mean image window mirrored to
        # match), mean image window (AlexNet §2), PCA colour shift and mean colour folded into one add.
        image = augment.resize_window(window, size, dtype=tf.uint8)
        frame_x = frame[1]
        if config.flip:
            flipped = augment.flip_coin(seeds[2])
            image = tf.cond(flipped, lambda: eval_crops.flip_left_right(image), lambda: image)
            if mean_image is not None:
                frame_x = tf.where(flipped, config.resize_size - size - frame_x, frame_x)
        else:
            flipped = tf.constant(False)
        image = tf.cast(image, tf.float32)
        if mean_image is not None:
            which = tf.cast(flipped, tf.int32)
            image = image - tf.slice(mean_images, tf.stack([which, frame[0], frame_x, 0]), [1, size, size, 3])[0]
        shift = None
        if config.pca_jitter_std > 0:
            shift = augment.pca_shift(eigenvalues, eigenvectors, augment.pca_alphas(config.pca_jitter_std, seeds[3]))
        if mean_rgb is not None:
            shift = shift - mean_rgb if shift is not None else -mean_rgb
        if shift is not None:
            image = image + shift
        return image

    def decode(element):
        seeds = augment.split_seed(element["seed"], 4)
        scale = config.resize_size if jitter is None else augment.sample_scale(jitter, seeds[0])

        def plan(height, width):
            return augment.crop_window(height, width, scale, size, seeds[1], center_square, config.random_crop)

        window, frame_y, frame_x = augment.decode_window(element["encoded"], plan)
        return {"image": finish_image(window, tf.stack([frame_y, frame_x]), seeds)}

    dataset = record_parser.map_dropping_undecodable(dataset, decode, counter, chunk=CHUNK, batched=True)

    dataset = dataset.map(lambda element: (element["image"], element["label"]))
    dataset = dataset.batch(batch, drop_remainder=config.drop_remainder, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    dataset = _options(dataset.prefetch(AUTOTUNE), deterministic)
    dataset.drop_counter = counter
    return dataset


def build_eval_dataset(
    config: InputConfig, protocol: str = "center", scale: Optional[int] = None, input_context=None, drop_counter=None
) -> tf.data.Dataset:
    """An evaluation pipeline (AlexNet §4.1 test patches, VGG §3.2 test scale Q; module docstring)."""
    if protocol not in PROTOCOLS:
        raise FlagError(f"--protocol={protocol}: expected one of {', '.join(PROTOCOLS)}")
    info = dataset_info(config)
    stats, stats_path = _load_needed_stats(config, info, need_pca=False)
    q = int(scale or test_scale(config))
    size = config.image_size
    if q < size:
        raise FlagError(f"test scale {q} is smaller than --image_size={size}")
    counter = _counter(drop_counter)

    mean = None
    if config.mean == "image" and protocol in ("center", "ten_crop"):
        mean_image = _stat(stats, "mean_image", stats_path)
        if mean_image.shape[:2] != (q, q):
            mean_image = tf.image.resize(mean_image, [q, q], method="bilinear", antialias=True).numpy()
        mean = tf.constant(mean_image)
    elif config.mean != "none":
        mean = tf.constant(_stat(stats, "mean_rgb", stats_path))

    def subtract(image):
        return eval_crops.subtract_mean(image, mean) if mean is not None else image

    dataset = _read_records(info, config, input_context, shuffle=False, seed=None, deterministic=True)

    def parse(element):
        encoded, label = record_parser.parse(element["record"], element["shard"], element["index"], info.record_spec)
        return {"encoded": encoded, "label": label, "shard": element["shard"], "index": element["index"]}

    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)

    def decode(element):
        return {"image": tf.io.decode_image(element["encoded"], channels=3, expand_animations=False)}

    dataset = record_parser.map_dropping_undecodable(dataset, decode, counter)

    def view(element):
        image = eval_crops.resize_shorter_side(element["image"], q)
        if protocol == "center":
            image = subtract(eval_crops.center_crop(image, size))
        elif protocol == "ten_crop":
            image = eval_crops.ten_crop(subtract(eval_crops.center_square(image)), size)
        elif protocol == "multi_crop":
            image = eval_crops.grid_crops(subtract(image), size, grid=5, flip=True)
        else:
            image = subtract(image)
        return image, element["label"]

    dataset = dataset.map(view, num_parallel_calls=AUTOTUNE, deterministic=True)
    batch = 1 if protocol == "dense" else _per_replica_batch(config, input_context)
    dataset = dataset.batch(batch, drop_remainder=False, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = _options(dataset.prefetch(AUTOTUNE), True)
    dataset.drop_counter = counter
    return dataset
