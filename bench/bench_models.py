"""AlexNet throughput, TensorFlow/Keras (this project) vs the same network in PyTorch, printed as ratios.

    .venv/bin/python bench/bench_models.py                      # batch 128 and 32, forward and training
    .venv/bin/python bench/bench_models.py --batch_sizes 32 --steps 2

Each (framework, batch size) runs in its own subprocess so the two libraries' thread pools never compete,
TF and PyTorch alternate, and every number is images/second over ``--steps`` timed steps after
``--warmup`` untimed ones (the first TF steps build the graph and oneDNN primitives: tens of seconds).
Two rates per measurement: wall-clock images/s, and images per CPU-second of the process (user + system
time of all its threads). On a machine shared with other work the wall-clock rate mostly measures the
neighbours; the CPU-time rate measures the work each library does per image and stays comparable. The
load average at the start is printed with the table.

The network is AlexNet §3.5 at 224x224x3 and 1000 classes in both: conv2/conv4/conv5 in two towers, LRN
after conv1 and conv2 (paper constants; PyTorch's `LocalResponseNorm` divides alpha by n, so it gets
5e-4 for the same function), overlapping pooling, dropout 0.5. A training step is forward, cross-entropy,
backward and an SGD-with-momentum update (AlexNet §5), on a batch already in memory (no input pipeline).
TF's training step is a `tf.function`; ``--jit`` also compiles it with XLA. PyTorch runs eagerly (NCHW,
default threads), as a PyTorch user would write it. PyTorch is a bench-only dependency
(``pip install torch==2.13.0``, the CPU build); without it only the TF numbers are printed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rates(step, batch, warmup, steps):
    """(wall-clock images/s, images per CPU-second) over ``steps`` calls of ``step`` after ``warmup``."""
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batch * steps / wall, batch * steps / cpu


def tf_worker(batch, warmup, steps, jit):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import keras
    import tensorflow as tf

    from keras_alexnet.registry import build_model

    keras.utils.set_random_seed(0)
    model = build_model("alexnet")
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    x = tf.random.normal([batch, 224, 224, 3], stddev=50.0)
    y = tf.random.uniform([batch], 0, 1000, dtype=tf.int32)

    @tf.function(jit_compile=jit)
    def forward(images):
        return model(images, training=False)

    @tf.function(jit_compile=jit)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    results = {}
    start = time.perf_counter()
    results["forward"] = rates(lambda: forward(x).numpy(), batch, warmup, steps)
    results["train"] = rates(lambda: train_step(x, y).numpy(), batch, warmup, steps)
    results["seconds"] = time.perf_counter() - start
    return results


def torch_worker(batch, warmup, steps):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 1000),
    )
    assert sum(p.numel() for p in model.parameters()) == 60_965_224
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 224, 224) * 50.0
    y = torch.randint(0, 1000, (batch,))

    def forward():
        model.eval()
        with torch.no_grad():
            model(x).softmax(dim=1)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    results = {}
    start = time.perf_counter()
    results["forward"] = rates(forward, batch, warmup, steps)
    results["train"] = rates(train_step, batch, warmup, steps)
    results["seconds"] = time.perf_counter() - start
    return results


def run_worker(framework, batch, args):
    command = [sys.executable, __file__, "--worker", framework, "--batch_sizes", str(batch),
               "--warmup", str(args.warmup), "--steps", str(args.steps)] + (["--jit"] if args.jit else [])
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        raise SystemExit(f"bench_models: the {framework} worker failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", default="128,32", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--jit", action="store_true", help="compile the TF steps with XLA (jit_compile=True)")
    parser.add_argument("--worker", choices=("tf", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]

    if args.worker:
        batch = batches[0]
        results = tf_worker(batch, args.warmup, args.steps, args.jit) if args.worker == "tf" else \
            torch_worker(batch, args.warmup, args.steps)
        print(json.dumps(results))
        return

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    import platform

    print(f"AlexNet 224x224x3, 1000 classes; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"TF {'XLA' if args.jit else 'graph'} vs PyTorch {torch_version or '(not installed)'} eager")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    header = ["batch", "mode", "TF img/s", "PyTorch img/s", "TF/PyTorch", "TF img/cpu-s", "PyTorch img/cpu-s",
              "TF/PyTorch (cpu)"]
    print("  ".join(f"{h:>{max(len(h), 5)}}" for h in header))
    for batch in batches:
        tf_results = run_worker("tf", batch, args)
        torch_results = run_worker("torch", batch, args) if torch_version else None
        for mode in ("forward", "train"):
            (tf_wall, tf_cpu), cells = tf_results[mode], [str(batch), mode]
            if torch_results:
                torch_wall, torch_cpu = torch_results[mode]
                cells += [f"{tf_wall:.1f}", f"{torch_wall:.1f}", f"{tf_wall / torch_wall:.2f}x",
                          f"{tf_cpu:.1f}", f"{torch_cpu:.1f}", f"{tf_cpu / torch_cpu:.2f}x"]
            else:
                cells += [f"{tf_wall:.1f}", "-", "-", f"{tf_cpu:.1f}", "-", "-"]
            print("  ".join(f"{c:>{max(len(h), 5)}}" for c, h in zip(cells, header)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
