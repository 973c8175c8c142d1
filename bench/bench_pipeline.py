"""Training input pipeline throughput (AlexNet §4.1 augmentation), as ratios against references.

On the same generated 256x256 JPEGs (written to a temporary folder as files and as shards):
- tf.data: `build_train_dataset` with random 224 crops, flips, PCA jitter and mean-image subtraction,
  in both forms: float batches, and the trainer's uint8 crops with each image's flip, crop position
  and colour shift beside them (`crops=True`: the float work runs in the training step, on the device);
- (a) the machine's decode bound: PIL full decodes per second on all cores (one process per core);
- (b) an equivalent PyTorch DataLoader (2 workers: PIL decode, random crop, flip, PCA jitter, mean
  image), when torch is installed (bench-only: `pip install torch==2.13.0`, never a requirement).

    .venv/bin/python bench/bench_pipeline.py [--images 2000] [--batch 128] [--epochs 2] [--rounds 2]

Two rates each: wall-clock images/s, and images per CPU-second of the processes doing the work (this
process for tf.data; the pool workers for PIL; the main process and the workers for PyTorch), which
stays comparable when other processes take the CPUs. Rounds alternate the three measurements. Each
reference's start is left out of its rate (PIL: the pool's start and a warm-up; PyTorch: the workers'
start and first batch; tf.data: the iterator's set-up and first batch, printed as "set-up").
"""

import os

# Before anything can import tensorflow or absl: TensorFlow's C++ start-up logging reads this once.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import io  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZE, CROP = 256, 224


def _jpeg(seed):
    """A 256x256 JPEG with natural-image-like content (smooth structure plus texture), quality 90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    phase = rng.uniform(0, 6, 3)
    base = np.stack(
        [np.sin(x / rng.uniform(8, 40) + phase[0]), np.cos(y / rng.uniform(8, 40) + phase[1]), np.sin((x + y) / 30 + phase[2])],
        -1,
    )
    image = np.clip(128 + 90 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_data(folder, count, shards=8):
    """JPEG files `folder/jpeg/*.jpg` and the same bytes as our shards with dataset.json and stats.npz."""
    import tensorflow as tf

    from pipelines import records

    distinct = [_jpeg(i) for i in range(min(count, 200))]
    jpeg_dir = os.path.join(folder, "jpeg")
    data_dir = os.path.join(folder, "records")
    os.makedirs(jpeg_dir)
    os.makedirs(data_dir)
    paths = []
    writers = [tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name("train", s, shards))) for s in range(shards)]
    for i in range(count):
        data = distinct[i % len(distinct)]
        path = os.path.join(jpeg_dir, f"{i:06d}.jpg")
        with open(path, "wb") as f:
            f.write(data)
        paths.append((path, i % 10))
        feature = {
            records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
            records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 10])),
        }
        writers[i % shards].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    for writer in writers:
        writer.close()
    classes = [records.ClassInfo(i, f"n{i:08d}", str(i)) for i in range(10)]
    records.write_metadata(data_dir, records.DatasetInfo(classes, {"train": records.SplitInfo(count, shards)}, "alexnet", SIZE))
    stats = _stats()
    np.savez(os.path.join(data_dir, records.STATS_FILE), **stats)
    return paths, data_dir, stats


def _stats():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    return {
        "mean_image": np.full((SIZE, SIZE, 3), 115.0, np.float32),
        "mean_rgb": np.array([120.0, 115.0, 100.0], np.float32),
        "eigenvalues": np.array([55.5, 4.8, 1.1], np.float32),  # ImageNet's, 0..255 scale
        "eigenvectors": q.astype(np.float32),
    }


def _cpu_seconds(pids):
    """User + system CPU seconds used so far by processes `pids` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _decode_chunk(paths):
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").load()
    return len(paths)


def pil_decode_rate(paths, processes, passes=1):
    """Full PIL decodes per second (and per CPU-second) with one process per core: the decode bound.
    `passes` over the files, as many as the pipeline's epochs: one pass is about a CPU-second here,
    too short for a stable rate."""
    files = [p for p, _ in paths] * passes
    chunks = [files[i::processes] for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_decode_chunk, [c[:20] for c in chunks])  # warm up
        pids = [worker.pid for worker in pool._pool]
        cpu, start = _cpu_seconds(pids), time.perf_counter()
        done = sum(pool.map(_decode_chunk, chunks))
        wall, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
    return done / wall, done / max(cpu, 1e-9)


def tf_rate(data_dir, batch, epochs, crops=False):
    """(img/s, img/cpu-s, set-up seconds) of `build_train_dataset` (the trainer's uint8 crops with
    `crops`) over `epochs` passes read through one iterator, as the trainer reads an epoch (one
    iterator per epoch: 1.28M images on ImageNet). The iterator's set-up (tf.data's graph rewrites and
    function instantiation, 0.3-0.4 CPU-s here, and the first batch with its shuffle-buffer fill) is
    timed apart: in 2,000-image passes, an iterator per pass would make it ~15% of the rate."""
    from pipelines import input_pipeline

    config = input_pipeline.InputConfig(data_dir=data_dir, batch_size=batch, shuffle_buffer=2048)
    dataset = input_pipeline.build_train_dataset(config, crops=crops).repeat(epochs)
    start = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)
    setup = time.perf_counter() - start
    images, start, cpu = 0, time.perf_counter(), time.process_time()
    for _, labels in iterator:
        images += int(labels.shape[0])
    return images / (time.perf_counter() - start), images / (time.process_time() - cpu), setup


def torch_rate(paths, stats, batch, epochs, workers):
    import torch
    from PIL import Image

    mean_image = torch.from_numpy(stats["mean_image"])
    eigenvalues = torch.from_numpy(stats["eigenvalues"])
    eigenvectors = torch.from_numpy(stats["eigenvectors"])

    class JpegFiles(torch.utils.data.Dataset):
        """The same augmentation: random 224 crop, flip, PCA jitter (α ~ N(0, 0.1)), mean image."""

        def __len__(self):
            return len(paths)

        def __getitem__(self, index):
            path, label = paths[index]
            with Image.open(path) as image:
                pixels = torch.from_numpy(np.array(image.convert("RGB"))).float()
            y, x = np.random.randint(0, SIZE - CROP + 1, 2)
            crop = pixels[y : y + CROP, x : x + CROP] - mean_image[y : y + CROP, x : x + CROP]
            if np.random.rand() < 0.5:
                crop = crop.flip(1)
            alphas = torch.randn(3) * 0.1
            crop = crop + eigenvectors @ (alphas * eigenvalues.sqrt())  # α_i·sqrt(λ_i), as pipelines/augment.py
            return crop, label

    def init(_):
        torch.set_num_threads(1)

    loader = torch.utils.data.DataLoader(
        JpegFiles(), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, worker_init_fn=init,
        persistent_workers=True, prefetch_factor=4,
    )
    iterator = iter(loader)  # worker start-up
    next(iterator)
    pids = [os.getpid()] + [worker.pid for worker in iterator._workers]
    images, start, cpu = 0, time.perf_counter(), _cpu_seconds(pids)
    for _ in range(epochs):
        for x, _ in loader:
            images += int(x.shape[0])
    wall, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
    return images / wall, images / max(cpu, 1e-9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="passes over the images per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (the machine's load drifts)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
        print("(b) PyTorch DataLoader: skipped, torch is not installed (bench-only: pip install torch==2.13.0)")
    with tempfile.TemporaryDirectory() as folder:
        paths, data_dir, stats = write_data(folder, args.images)
        import hardware

        print(f"{args.images} JPEGs {SIZE}x{SIZE}, batch {args.batch}; {hardware.describe()}; img/s per round, "
              "ratios per round")
        for round_ in range(args.rounds):
            decode, decode_cpu = pil_decode_rate(paths, cores, args.epochs)
            crops_images, crops_cpu, crops_setup = tf_rate(data_dir, args.batch, args.epochs, crops=True)
            tf_images, tf_cpu, tf_setup = tf_rate(data_dir, args.batch, args.epochs)
            print(
                f"round {round_ + 1}: (a) PIL decode bound {decode:6.0f} img/s ({decode_cpu:4.0f}/cpu-s)\n"
                f"         tf.data uint8 crops (the trainer's) {crops_images:5.0f} img/s ({crops_cpu:4.0f}/cpu-s) = "
                f"{crops_images / decode:.2f}x (a) wall, {crops_cpu / decode_cpu:.2f}x (a) per cpu-s; "
                f"set-up {crops_setup:.2f} s\n"
                f"         tf.data float batches         {tf_images:5.0f} img/s ({tf_cpu:4.0f}/cpu-s) = "
                f"{tf_images / decode:.2f}x (a) wall, {tf_cpu / decode_cpu:.2f}x (a) per cpu-s; set-up {tf_setup:.2f} s",
                flush=True,
            )
            if torch is not None:
                torch_images, torch_cpu = torch_rate(paths, stats, args.batch, args.epochs, workers=2)
                print(
                    f"         (b) PyTorch DataLoader, 2 workers {torch_images:5.0f} img/s ({torch_cpu:4.0f}/cpu-s); "
                    f"tf.data float batches / (b) = {tf_images / torch_images:.2f}x wall, "
                    f"{tf_cpu / torch_cpu:.2f}x per cpu-s",
                    flush=True,
                )

if __name__ == "__main__":
    main()
