"""Per-op CPU time of the full AlexNet training step (AlexNet §3.5, §5), float32 or mixed_bfloat16.

    .venv/bin/python bench/profile_step.py [--policy mixed_bfloat16] [--batch 128] [--steps 2] [--top 25]

Builds `build_model("alexnet")` under the Keras dtype policy, runs ``--warmup`` untimed training steps
(forward, cross-entropy, backward, AlexNet §5's update with `PaperSGD`) in one `tf.function`, then
traces ``--steps`` steps with `tf.profiler.experimental` and prints, from the trace's host plane, the
ops' summed time grouped by op type (Conv2DBackpropFilter, _MklCast, LRNGrad, ...) and by the layer
that owns them, each with its share of all op time. Op times are wall time of each op on its inter-op
thread, so on two cores the sum can exceed the step's wall time. The img/s and img/cpu-s of the
untraced steps are printed first.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_step(model, optimizer):
    """A `tf.function` training step: mean cross-entropy on the float32 softmax, gradients, update."""
    import keras
    import tensorflow as tf

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return train_step


def op_times(logdir):
    """{(op type, op name): total microseconds} over the TF op events of the trace's host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TF op events are named "op_name:OpType" (the executor's activity), others are not.
                if ":" not in name or name.startswith(("Iterator", "$")) or " " in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                totals[(op_type, op_name)] += event.duration_ps / 1e6
    return totals


def layer_of(op_name):
    """The Keras layer an op belongs to: the first path component after the model's name scopes."""
    parts = [p for p in op_name.split("/") if p not in ("alexnet", "gradient_tape", "train_step")]
    return parts[0] if parts else op_name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="mixed_bfloat16", help="Keras dtype policy (float32, mixed_bfloat16)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps, then the same number traced")
    parser.add_argument("--top", type=int, default=25, help="rows of the per-op-type table")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from keras_alexnet.registry import build_model
    from keras_alexnet.training.optimizer import PaperSGD

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(0)
    model = build_model("alexnet")
    optimizer = PaperSGD(0.01)
    step = make_step(model, optimizer)
    x = tf.random.normal([args.batch, 224, 224, 3], stddev=50.0)
    y = tf.random.uniform([args.batch], 0, 1000, dtype=tf.int32)
    for _ in range(args.warmup):
        step(x, y).numpy()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step(x, y).numpy()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    import hardware

    print(hardware.describe())
    print(f"{args.policy}, batch {args.batch}: {args.batch * args.steps / wall:.1f} img/s, "
          f"{args.batch * args.steps / cpu:.1f} img/cpu-s (load average {os.getloadavg()[0]:.1f})")

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            step(x, y).numpy()
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    all_us = sum(totals.values())
    by_type, by_layer = collections.Counter(), collections.Counter()
    for (op_type, op_name), us in totals.items():
        by_type[op_type] += us
        by_layer[layer_of(op_name)] += us
    print(f"op time per step {all_us / args.steps / 1e3:.0f} ms over {len(totals)} ops")
    print(f"{'op type':32s} {'ms/step':>9s} {'share':>6s}")
    for op_type, us in by_type.most_common(args.top):
        print(f"{op_type:32s} {us / args.steps / 1e3:9.1f} {us / all_us:6.1%}")
    print(f"{'layer':32s} {'ms/step':>9s} {'share':>6s}")
    for layer, us in by_layer.most_common(args.top):
        print(f"{layer:32s} {us / args.steps / 1e3:9.1f} {us / all_us:6.1%}")


if __name__ == "__main__":
    main()
