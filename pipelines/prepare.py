"""`main.py prepare`: images -> TFRecord shards, `dataset.json` and `labels.txt` (records.py's contract).

Images are stored per the chosen policy (AlexNet §2: shorter side 256, central 256x256 crop; VGG §3.1:
shorter side S_max = 512, aspect kept, for scale jitter) as RGB JPEGs. The file order is shuffled with
a seed, split into shards, and the shards are written by worker processes (one per core). Each shard is
written under a temporary name and renamed when complete; a rerun skips complete shards whose
fingerprint (settings + the exact images they hold) matches, so an interrupted run resumes without
redoing or corrupting work; the temporaries a killed run left are removed at the next start. Images
that cannot be decoded are skipped, logged and counted. A failed write (no space left, read-only file
system) is one line naming the file, with the run's temporaries removed.
"""

import collections
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from typing import Optional

import numpy as np

from keras_alexnet import outputs
from keras_alexnet.errors import UserError
from pipelines import image_codec
from pipelines import records
from pipelines import shard_writer
from pipelines.shard_writer import ShardTask

MAX_AUTO_SHARDS = 1024
IMAGES_PER_AUTO_SHARD = 1024
AUTO_HOLDOUT_MAX = 10_000
MAX_IGNORED_LINES = 20  # then one line counting the rest


@dataclasses.dataclass
class PrepareConfig:
    data_dir: str
    image_policy: str = "alexnet"
    image_size: int = 0  # 0: the policy's default (256 AlexNet, 512 VGG)
    jpeg_quality: int = 95
    label_offset: int = 0
    seed: int = 0
    num_workers: int = 0  # 0: one per core
    num_shards: dict = dataclasses.field(default_factory=dict)  # split -> count; missing or 0: automatic
    # Images moved from train to validation when the source has none; None: `auto_holdout` of them.
    validation_holdout: Optional[int] = None
    overwrite: bool = False
    progress_interval: float = 0.0  # seconds between progress lines; 0: 0.5 on a terminal, else 10

    @property
    def size(self) -> int:
        return self.image_size or image_codec.DEFAULT_SIZE[self.image_policy]


def auto_shards(num_images: int) -> int:
    """About 1,024 images per shard, at most 1,024 shards (tensorflow/models: 1,024 for ImageNet train)."""
    return max(1, min(MAX_AUTO_SHARDS, math.ceil(num_images / IMAGES_PER_AUTO_SHARD)))


def auto_holdout(splits: dict) -> int:
    """The validation images held out of a source without a validation split: 10% of its training
    images, at most 10,000 (the plateau schedule and 10-crop evaluation need one, AlexNet §5); none when
    the source has a validation split."""
    if "validation" in splits:
        return 0
    return min(AUTO_HOLDOUT_MAX, len(splits.get("train", [])) // 10)


def hold_out(splits: dict, count: Optional[int], seed: int) -> dict:
    """Moves `count` training items (None: `auto_holdout`), chosen with `seed`, to a new validation
    split (deterministic)."""
    if count is None:
        count = auto_holdout(splits)
    if count <= 0:
        return splits
    if "validation" in splits:
        raise UserError("--validation_holdout needs a source without a validation split")
    train = splits["train"]
    if count >= len(train):
        raise UserError(f"--validation_holdout={count} is not smaller than the {len(train)} training images")
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    held = set(order[:count].tolist())
    out = dict(splits)
    out["train"] = [item for i, item in enumerate(train) if i not in held]
    out["validation"] = [train[i] for i in sorted(held)]
    return out


def _item_digest(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.where}\t{item.label}\n".encode("utf-8", "surrogateescape"))  # names as the OS gave them
        if item.pixels is not None:
            h.update(np.ascontiguousarray(item.pixels).tobytes())
    return h.hexdigest()


def plan(splits: dict, config: PrepareConfig, encoding: shard_writer.Encoding) -> list:
    """The shard tasks: each split shuffled with the seed, then cut into contiguous shards."""
    tasks = []
    settings = json.dumps(dataclasses.asdict(encoding), sort_keys=True)
    for split in records.SPLITS:
        items = splits.get(split)
        if not items:
            continue
        order = np.random.default_rng([config.seed, records.SPLITS.index(split)]).permutation(len(items))
        shuffled = [items[i] for i in order]
        total = config.num_shards.get(split) or auto_shards(len(items))
        total = max(1, min(total, len(items)))
        bounds = np.linspace(0, len(items), total + 1).astype(int)
        for index in range(total):
            chunk = shuffled[bounds[index] : bounds[index + 1]]
            fingerprint = hashlib.sha256(f"{settings}\n{split}\n{index}\n{total}\n{_item_digest(chunk)}".encode()).hexdigest()
            tasks.append(ShardTask(split, index, total, chunk, fingerprint))
    return tasks


def _clear(data_dir: str) -> None:
    """Removes what an earlier `prepare` wrote to `data_dir` (--overwrite)."""
    for split in records.SPLITS:
        for path in records.list_shards(data_dir, split):
            os.remove(path)
    for name in (records.METADATA_FILE, records.LABELS_FILE, records.STATS_FILE):
        if os.path.exists(os.path.join(data_dir, name)):
            os.remove(os.path.join(data_dir, name))
    state = os.path.join(data_dir, shard_writer.STATE_DIR)
    if os.path.isdir(state):
        for name in os.listdir(state):
            os.remove(os.path.join(state, name))


def _check_existing(data_dir: str, tasks: list) -> dict:
    """{shard name: ShardResult} of complete matching shards; UserError on shards from other settings."""
    done = {}
    planned = {t.name: t for t in tasks}
    for split in records.SPLITS:
        for path in records.list_shards(data_dir, split):
            name = os.path.basename(path)
            task = planned.get(name)
            summary = shard_writer.read_summary(data_dir, name)
            if task is None or summary is None or summary.fingerprint != task.fingerprint:
                raise UserError(
                    f"{path}: made with other settings or images (or by another tool); pass --overwrite "
                    "or choose another --data_dir"
                )
            done[name] = summary
    return done


def remove_temporaries(data_dir: str) -> None:
    """Removes the `.tmp` files an interrupted or failed run left: half-written shards and shard summaries."""
    state = os.path.join(data_dir, shard_writer.STATE_DIR)
    temps = [os.path.join(data_dir, name) for name in os.listdir(data_dir)
             if name.endswith(shard_writer.TEMP_SUFFIX) and records.is_shard_name(name[: -len(shard_writer.TEMP_SUFFIX)])]
    if os.path.isdir(state):
        temps += [os.path.join(state, name) for name in os.listdir(state) if name.endswith(shard_writer.TEMP_SUFFIX)]
    outputs.remove_partial(temps)


class Progress:
    """Prints `prepare: done/total images (p%)  N images/s  ETA h:mm:ss` to stderr while shards are written.

    One updating line on a terminal, otherwise a line every `interval` seconds.
    """

    def __init__(self, total: int, counter, interval: float, stream=None):
        self.total = total
        self.counter = counter
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = interval or (0.5 if self.tty else 10.0)
        self.start = time.monotonic()
        self.samples = collections.deque()  # (time, images done)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def line(self) -> str:
        """The rate is over the last ~30 s since the first image (worker start-up is not counted)."""
        done, now = self.counter.value, time.monotonic()
        if done and (not self.samples or self.samples[-1][1] != done):
            self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] > 30:
            self.samples.popleft()
        if len(self.samples) >= 2 and now > self.samples[0][0]:
            rate = (done - self.samples[0][1]) / (now - self.samples[0][0])
        else:
            rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "--:--:--"
        percent = 100.0 * done / self.total if self.total else 100.0
        return f"prepare: {done:,}/{self.total:,} images ({percent:.1f}%)  {rate:,.0f} images/s  ETA {eta_text}"

    def _loop(self):
        while not self.stop_event.wait(self.interval):
            self.emit()

    def emit(self, final: bool = False):
        if self.tty:
            self.stream.write("\r" + self.line().ljust(79) + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.emit(final=True)


_WORKER = {}


def _init_worker(counter, data_dir, encoding, parent):
    """Starts TensorFlow in a worker: one thread per op (a worker per core), start-up notices muted
    when the parent asked for quiet (TF_CPP_MIN_LOG_LEVEL, as `main.py` sets it); first, a watch that
    ends the worker with its parent (the process `parent`)."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")
    saved = os.dup(2) if quiet else None
    if quiet:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.constant(0).numpy()  # device discovery prints its notices now, not mid-run
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
    _WORKER.update(counter=counter, data_dir=data_dir, encoding=encoding)


def _exit_with_parent(parent: int) -> None:
    """Ends this worker within 0.2 s of its parent's death (also during its start-up): a `prepare`
    killed with SIGKILL cannot stop its pool, whose workers would otherwise finish the shards already
    handed to them; the `.tmp` a worker leaves is removed at the next start."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _advance(counter, n):
    with counter.get_lock():
        counter.value += n


def _run_task(task: ShardTask) -> shard_writer.ShardResult:
    """Writes one shard; a failed write is a UserError naming the file (it pickles back to the parent)."""
    counter, data_dir = _WORKER["counter"], _WORKER["data_dir"]
    temp = os.path.join(data_dir, task.name + shard_writer.TEMP_SUFFIX)
    with outputs.writing(temp, partial=[temp, shard_writer.summary_path(data_dir, task.name) + shard_writer.TEMP_SUFFIX]):
        return shard_writer.write_shard(data_dir, task, _WORKER["encoding"], lambda n: _advance(counter, n))


def _log(message: str) -> None:
    """A line to stderr; on a terminal it first clears the updating progress line."""
    clear = "\r\x1b[K" if getattr(sys.stderr, "isatty", lambda: False)() else ""
    sys.stderr.write(clear + message + "\n")
    sys.stderr.flush()


def prepare(source, config: PrepareConfig) -> records.DatasetInfo:
    """Writes the shards and metadata of `source` (a `sources.SourceData`) to `config.data_dir`."""
    if config.image_policy not in image_codec.POLICIES:
        raise UserError(f"unknown image policy '{config.image_policy}'")
    splits = hold_out(source.splits, config.validation_holdout, config.seed)
    encoding = shard_writer.Encoding(
        policy=config.image_policy,
        size=config.size if config.image_policy != "none" else 0,
        quality=config.jpeg_quality,
        label_offset=config.label_offset,
        classes=tuple((c.synset, c.text) for c in source.classes),
    )
    with outputs.writing(config.data_dir):
        os.makedirs(config.data_dir, exist_ok=True)
        remove_temporaries(config.data_dir)
        if config.overwrite:
            _clear(config.data_dir)
    for line in source.ignored[:MAX_IGNORED_LINES]:
        _log(f"prepare: ignored {line}")
    if len(source.ignored) > MAX_IGNORED_LINES:
        _log(f"prepare: ignored {len(source.ignored) - MAX_IGNORED_LINES:,} more files or folders")
    tasks = plan(splits, config, encoding)
    done = _check_existing(config.data_dir, tasks)
    todo = [t for t in tasks if t.name not in done]
    if done:
        _log(f"prepare: {len(done)} of {len(tasks)} shards already complete in {config.data_dir}; resuming")
    results = dict(done)
    start = time.monotonic()
    results.update(_write(todo, config, encoding))
    elapsed = time.monotonic() - start
    written = sum(len(t.items) for t in todo)

    split_infos = {}
    for split in records.SPLITS:
        names = [t.name for t in tasks if t.split == split]
        if names:
            skipped = sum(len(results[n].skipped) for n in names)
            split_infos[split] = records.SplitInfo(
                num_examples=sum(results[n].num_examples for n in names), num_shards=len(names), skipped=skipped,
                shard_examples=[results[n].num_examples for n in names],
            )
    info = records.DatasetInfo(
        classes=list(source.classes),
        splits=split_infos,
        image_policy=config.image_policy,
        image_size=encoding.size,
        label_offset=config.label_offset,
        source=source.description,
    )
    with outputs.writing(config.data_dir, partial=[os.path.join(config.data_dir, name + shard_writer.TEMP_SUFFIX)
                                                   for name in (records.METADATA_FILE, records.LABELS_FILE)]):
        records.write_metadata(config.data_dir, info)
    summary = ", ".join(f"{s} {i.num_examples:,} images in {i.num_shards} shards ({i.skipped} skipped)"
                        for s, i in split_infos.items())
    _log(f"prepare: {config.data_dir}: {summary}; {written:,} images processed in {elapsed:.1f} s "
         f"({written / max(elapsed, 1e-9):,.0f} images/s)")
    return info


def _write(todo: list, config: PrepareConfig, encoding) -> dict:
    """Runs the shard tasks on `num_workers` processes (in this process for one), with progress."""
    if not todo:
        return {}
    workers = config.num_workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(todo)))
    total = sum(len(t.items) for t in todo)
    results = {}
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)

    def collect(result):
        results[result.name] = result
        for line in result.skipped:
            _log(f"prepare: skipped {line}")

    try:
        with Progress(total, counter, config.progress_interval):
            if workers == 1:
                _WORKER.update(counter=counter, data_dir=config.data_dir, encoding=encoding)
                for task in todo:
                    collect(_run_task(task))
            else:
                with ctx.Pool(workers, initializer=_init_worker,
                              initargs=(counter, config.data_dir, encoding, os.getpid())) as pool:
                    for result in pool.imap_unordered(_run_task, todo):
                        collect(result)
    except UserError:
        remove_temporaries(config.data_dir)  # the other workers' shards, stopped mid-write
        raise
    return results

