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
TF's training step is a `tf.function` (``--policy mixed_bfloat16``: under that Keras dtype policy);
``--jit`` also compiles it with XLA. PyTorch runs in four forms (``--forms``), so the anchor is its best
CPU form and not only the one a user writes first: eager ``Conv2d(groups=2)`` (NCHW), eager with the
towers as two convolutions over channel halves (as this project does), the same in channels_last, and
split + ``torch.compile`` (inductor). PyTorch is a bench-only dependency (``pip install torch==2.13.0``,
the CPU build); without it only the TF numbers are printed.
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


def tf_worker(batch, warmup, steps, jit, policy="float32", modes=("forward", "train")):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import keras
    import tensorflow as tf

    from keras_alexnet.registry import build_model

    keras.mixed_precision.set_global_policy(policy)
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
    for mode in modes:
        step = (lambda: forward(x).numpy()) if mode == "forward" else (lambda: train_step(x, y).numpy())
        results[mode] = rates(step, batch, warmup, steps)
    results["seconds"] = time.perf_counter() - start
    return results


TORCH_FORMS = ("groups2", "split", "split_cl", "split_compile")
TORCH_FORM_NAMES = {"groups2": "eager Conv2d(groups=2)", "split": "eager split convs",
                    "split_cl": "eager split convs, channels_last", "split_compile": "split convs + torch.compile"}


def torch_alexnet(split):
    """The two-tower AlexNet in PyTorch; ``split``: the towers as two convolutions over channel halves
    (as this project does) instead of one ``Conv2d(groups=2)``."""
    import torch
    from torch import nn

    class Towers(nn.Module):
        def __init__(self, cin, cout, kernel, padding):
            super().__init__()
            self.towers = nn.ModuleList(nn.Conv2d(cin // 2, cout // 2, kernel, padding=padding) for _ in range(2))

        def forward(self, x):
            parts = torch.chunk(x, 2, dim=1)
            return torch.cat([tower(part) for tower, part in zip(self.towers, parts)], dim=1)

    def towered(cin, cout, kernel, padding):
        return Towers(cin, cout, kernel, padding) if split else nn.Conv2d(cin, cout, kernel, padding=padding, groups=2)

    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        towered(96, 256, 5, 2), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        towered(384, 384, 3, 1), nn.ReLU(inplace=True),
        towered(384, 256, 3, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 1000),
    )
    assert sum(p.numel() for p in model.parameters()) == 60_965_224
    return model


def torch_worker(batch, warmup, steps, form="groups2", modes=("forward", "train")):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = torch_alexnet(split=form != "groups2")
    x = torch.randn(batch, 3, 224, 224) * 50.0
    if form == "split_cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    y = torch.randint(0, 1000, (batch,))
    net = torch.compile(model) if form == "split_compile" else model

    def forward():
        model.eval()
        with torch.no_grad():
            net(x).softmax(dim=1)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    results = {}
    start = time.perf_counter()
    for mode in modes:
        results[mode] = rates(forward if mode == "forward" else train_step, batch, warmup, steps)
    results["seconds"] = time.perf_counter() - start
    return results


def run_worker(framework, batch, warmup, steps, form="groups2", policy="float32", jit=False,
               modes=("forward", "train")):
    """Runs one measurement in a fresh subprocess; {mode: (img/s, img/cpu-s), "seconds": ...}.

    ``framework`` "tf" (``policy``: Keras dtype policy, ``jit``: XLA) or "torch" (``form``: one of
    `TORCH_FORMS`)."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--batch_sizes", str(batch),
               "--warmup", str(warmup), "--steps", str(steps), "--form", form, "--policy", policy,
               "--modes", ",".join(modes)] + (["--jit"] if jit else [])
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        raise SystemExit(f"bench_models: the {framework} {form if framework == 'torch' else policy} worker "
                         f"failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_version():
    """PyTorch's version string, or None when it is not installed (it is a bench-only dependency)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", default="128,32", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--jit", action="store_true", help="compile the TF steps with XLA (jit_compile=True)")
    parser.add_argument("--policy", default="float32", help="the TF side's Keras dtype policy (e.g. mixed_bfloat16)")
    parser.add_argument("--forms", default=",".join(TORCH_FORMS),
                        help=f"PyTorch forms to measure, comma-separated from {', '.join(TORCH_FORMS)}")
    parser.add_argument("--modes", default="forward,train", help="forward, train or both")
    parser.add_argument("--worker", choices=("tf", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--form", default="groups2", choices=TORCH_FORMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    modes = tuple(args.modes.split(","))

    if args.worker:
        batch = batches[0]
        results = tf_worker(batch, args.warmup, args.steps, args.jit, args.policy, modes) \
            if args.worker == "tf" else torch_worker(batch, args.warmup, args.steps, args.form, modes)
        print(json.dumps(results))
        return

    version = torch_version()
    forms = [f for f in args.forms.split(",") if f] if version else []
    import hardware

    print(f"AlexNet 224x224x3, 1000 classes; {hardware.describe()}; "
          f"TF {args.policy} {'XLA' if args.jit else 'graph'} vs PyTorch {version or '(not installed: pip install torch==2.13.0)'}")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    header = ["batch", "mode", "PyTorch form", "TF img/s", "PyTorch img/s", "TF/PyTorch", "TF img/cpu-s",
              "PyTorch img/cpu-s", "TF/PyTorch (cpu)", "load"]
    widths = [5, 7, 34, 8, 13, 10, 12, 17, 16, 4]
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    for batch in batches:
        tf_results = run_worker("tf", batch, args.warmup, args.steps, policy=args.policy, jit=args.jit, modes=modes)
        torch_results = {form: run_worker("torch", batch, args.warmup, args.steps, form=form, modes=modes)
                         for form in forms}
        load = os.getloadavg()[0]
        for mode in modes:
            tf_wall, tf_cpu = tf_results[mode]
            for form in forms or [None]:
                cells = [str(batch), mode]
                if form:
                    torch_wall, torch_cpu = torch_results[form][mode]
                    cells += [TORCH_FORM_NAMES[form], f"{tf_wall:.1f}", f"{torch_wall:.1f}",
                              f"{tf_wall / torch_wall:.2f}x", f"{tf_cpu:.1f}", f"{torch_cpu:.1f}",
                              f"{tf_cpu / torch_cpu:.2f}x"]
                else:
                    cells += ["-", f"{tf_wall:.1f}", "-", "-", f"{tf_cpu:.1f}", "-", "-"]
                print("  ".join(f"{c:>{w}}" for c, w in zip(cells + [f"{load:.1f}"], widths)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
