"""Every speed ratio of this project side by side, in one run, each with the load average it was taken at.

    .venv/bin/python bench/run_all.py            # full sizes (about 10-15 min on the 2-core machine)
    .venv/bin/python bench/run_all.py --quick    # smaller batches and fewer steps (about 5 min)

Rows, each a ratio against a reference measured in the same run:
1. AlexNet training step (AlexNet §3.5, §5), TF float32 against PyTorch eager ``Conv2d(groups=2)`` and
   against PyTorch's best CPU form here (split towers + ``torch.compile``), img/cpu-s (bench_models.py);
   without torch (bench-only: ``pip install torch==2.13.0``) those rows say so and are skipped.
2. The same step under ``mixed_bfloat16`` against float32, img/cpu-s.
3. The training input pipeline against the PIL decode bound, per CPU-second, in the trainer's form
   (uint8 crops) and as float batches (bench_pipeline.py).
4. Dense against 150-crop evaluation, VGG-A (VGG §3.2), per image (bench_eval.py).
5. The serving signature against a direct model call, AlexNet, batch 1 and 32 (bench_eval.py).
6. 1 vs N training steps per `tf.function` call at a small AlexNet, steps/s (bench_steps_per_call.py).
7. Process start to the end of the first full-AlexNet training step (bench_startup.py), seconds.
The model measurements run in subprocesses (one library per process); the others in this process.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_models  # noqa: E402
import hardware  # noqa: E402


def load():
    return os.getloadavg()[0]


def row(what, value, reference, ratio, note=""):
    print(f"{what:58s} {value:>24s} {reference:>26s} {ratio:>8s}  load {load():4.1f}  {note}", flush=True)


def training_rows(args):
    batch, warmup, steps = (32, 1, 2) if args.quick else (128, 2, 3)
    f32 = bench_models.run_worker("tf", batch, warmup, steps, policy="float32", modes=("train",))["train"][1]
    bf16 = bench_models.run_worker("tf", batch, warmup, steps, policy="mixed_bfloat16", modes=("train",))["train"][1]
    if bench_models.torch_version() is None:
        print("PyTorch rows skipped: torch is not installed (bench-only: pip install torch==2.13.0)")
    else:
        for form in ("groups2", "split_compile"):
            torch_cpu = bench_models.run_worker("torch", batch, warmup, steps, form=form, modes=("train",))["train"][1]
            row(f"AlexNet train step b{batch}: TF f32 / PyTorch {bench_models.TORCH_FORM_NAMES[form]}",
                f"{f32:.1f} img/cpu-s", f"{torch_cpu:.1f} img/cpu-s", f"{f32 / torch_cpu:.2f}x")
    row(f"AlexNet train step b{batch}: TF mixed_bfloat16 / float32", f"{bf16:.1f} img/cpu-s", f"{f32:.1f} img/cpu-s",
        f"{bf16 / f32:.2f}x")


def pipeline_row(args):
    import bench_pipeline

    images, epochs = (600, 1) if args.quick else (2000, 2)
    with tempfile.TemporaryDirectory() as folder:
        paths, data_dir, _ = bench_pipeline.write_data(folder, images)
        _, decode_cpu = bench_pipeline.pil_decode_rate(paths, os.cpu_count() or 1, epochs)
        _, crops_cpu, _ = bench_pipeline.tf_rate(data_dir, 128, epochs, crops=True)
        _, floats_cpu, _ = bench_pipeline.tf_rate(data_dir, 128, epochs)
    row("input pipeline, the trainer's uint8 crops (crop+flip+PCA draws) / PIL decode bound",
        f"{crops_cpu:.0f} img/cpu-s", f"{decode_cpu:.0f} img/cpu-s", f"{crops_cpu / decode_cpu:.2f}x")
    row("input pipeline, float batches (+ flip, mean, colour shift) / PIL decode bound",
        f"{floats_cpu:.0f} img/cpu-s", f"{decode_cpu:.0f} img/cpu-s", f"{floats_cpu / decode_cpu:.2f}x")


def eval_rows(args):
    import bench_eval

    options = argparse.Namespace(vgg_width=0.125 if args.quick else 0.25, alexnet_width=0.5 if args.quick else 1.0,
                                 images=1, repeats=1 if args.quick else 2)
    dense_s, crops_s = bench_eval.dense_vs_multi_crop(options)
    row(f"VGG-A w{options.vgg_width} 150-crop / dense evaluation, per image", f"{crops_s * 1e3:.0f} ms",
        f"{dense_s * 1e3:.0f} ms", f"{crops_s / dense_s:.2f}x")
    for label, serve_s, call_s in bench_eval.serving_vs_direct(options):
        row(f"AlexNet w{options.alexnet_width} serving signature / direct call, {label}", f"{serve_s * 1e3:.0f} ms",
            f"{call_s * 1e3:.0f} ms", f"{serve_s / call_s:.2f}x")


def steps_per_call_rows(args):
    import bench_steps_per_call

    counts = (1, 16) if args.quick else (1, 4, 16, 64)
    results = bench_steps_per_call.measure(counts, total_steps=256 if args.quick else 640, repeats=2)
    base_wall, _ = results[1]
    for n in counts[1:]:
        wall, _ = results[n]
        row(f"small AlexNet train, {n} / 1 steps per tf.function call", f"{wall:.0f} steps/s",
            f"{base_wall:.0f} steps/s", f"{wall / base_wall:.2f}x")


def startup_row(args):
    batch = 32 if args.quick else 128
    start = time.perf_counter()
    result = subprocess.run([sys.executable, os.path.join(HERE, "bench_startup.py"), "--batch", str(batch)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"run_all: bench_startup.py failed:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    total = next(line for line in lines if "process start -> end of first step" in line).split()[-2]
    step = lines[-1].split()[-2]
    row(f"start-up to end of first AlexNet step, batch {batch}", f"{total} s", f"steady step {step} s",
        f"{float(total) / float(step):.2f}x", f"(subprocess {time.perf_counter() - start:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer steps and images")
    args = parser.parse_args()
    print(f"run_all {'--quick ' if args.quick else ''}{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{hardware.describe()}, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'ratio':58s} {'value':>24s} {'reference':>26s} {'ratio':>8s}")
    training_rows(args)
    pipeline_row(args)
    steps_per_call_rows(args)
    startup_row(args)
    eval_rows(args)


if __name__ == "__main__":
    main()
