"""The training input pipeline through the tf.data service against the same pipeline in the trainer's
process (AlexNet §4.1 augmentation, the trainer's uint8 crop batches: `crops=True`).

On generated ImageNet-like shards (256x256 JPEGs, random 224 crops, flips, PCA jitter; see
`bench_pipeline.write_data`), in one run:
- in-process: `build_train_dataset(..., crops=True)` read by this process;
- through the service: a dispatcher and 1, then 2, workers started as `main.py data_service ...`
  processes on this machine, the batches read by this process (`distributed_train_dataset`).

Two numbers each: wall-clock images/s, and this (the consuming, i.e. training) process's CPU-seconds
per image (`time.process_time`), which is what the service takes off the trainer's host. Ratios
against in-process. The first batch of each pass (the iterator's set-up, the shuffle buffer's fill,
the job's creation) is left out. Local workers share this machine's cores with the consumer, so the
images/s through the service here measure its overhead, not the speed-up of workers on other machines.

    .venv/bin/python bench/bench_data_service.py [--images 2000] [--batch 128] [--epochs 2]
"""

import os

# Before anything can import tensorflow or absl: TensorFlow's C++ start-up logging reads this once.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_pipeline import CROP, SIZE, write_data  # noqa: E402
from hardware import describe  # noqa: E402


def _config(data_dir, batch, seed):
    from pipelines.input_pipeline import InputConfig

    return InputConfig(data_dir=data_dir, image_size=CROP, resize_size=SIZE, batch_size=batch, mean="image",
                       split="train", deterministic=True, seed=seed)


def _rate(make_dataset, epochs):
    """(img/s, consumer CPU-s per image) over `epochs` passes, each pass's first batch left out."""
    images, wall, cpu = 0, 0.0, 0.0
    for epoch in range(epochs):
        iterator = iter(make_dataset(epoch))
        next(iterator)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for _, labels in iterator:
            images += int(labels.shape[0])
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
    return images / wall, cpu / max(images, 1)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(args, log_dir, name, ready):
    log = open(os.path.join(log_dir, f"{name}.log"), "w")
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), "data_service", *args], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(log.name) as f:
            if ready in f.read():
                return process
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    with open(log.name) as f:
        raise SystemExit(f"{name} did not start: {f.read()}")


def service_rate(data_dir, batch, epochs, workers, folder):
    from pipelines.data_service import distributed_train_dataset
    from pipelines.record_parser import DropCounter

    port = _free_port()
    started = [_start(["dispatcher", f"--port={port}", f"--work_dir={os.path.join(folder, f'journal{workers}')}"],
                      folder, f"dispatcher{workers}", "listening on port")]
    try:
        for index in range(workers):
            started.append(_start(["worker", f"--dispatcher=localhost:{port}", "--host=localhost"], folder,
                                  f"worker{workers}_{index}", "worker listening at"))
        dropped, lost = DropCounter(), DropCounter("lost_records")
        return _rate(lambda epoch: distributed_train_dataset(_config(data_dir, batch, epoch),
                                                             f"grpc://localhost:{port}", dropped, lost), epochs)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(describe())
    from pipelines.input_pipeline import build_train_dataset

    with tempfile.TemporaryDirectory() as folder:
        _, data_dir, _ = write_data(folder, args.images)
        rows = [("in-process", _rate(lambda epoch: build_train_dataset(_config(data_dir, args.batch, epoch),
                                                                       crops=True), args.epochs))]
        for workers in (1, 2):
            rows.append((f"service, {workers} local worker{'s' if workers > 1 else ''}",
                         service_rate(data_dir, args.batch, args.epochs, workers, folder)))
    print(f"{args.images} images of {SIZE}x{SIZE} in 8 shards, {CROP}x{CROP} uint8 crop batches of {args.batch}, "
          f"{args.epochs} epochs each (first batch of each left out)")
    reference_rate, reference_cpu = rows[0][1]
    print(f"{'pipeline':<26} {'img/s':>8} {'x in-process':>13} {'trainer CPU-ms/img':>19} {'x in-process':>13}")
    for name, (rate, cpu) in rows:
        print(f"{name:<26} {rate:>8.0f} {rate / reference_rate:>13.2f} {cpu * 1000:>19.3f} "
              f"{cpu / reference_cpu:>13.2f}")


if __name__ == "__main__":
    main()
