"""Start-up: seconds from process start to the end of the first training step of full AlexNet, by phase.

    .venv/bin/python bench/bench_startup.py [--batch 128] [--policy float32]

Times each phase of what `main.py train` does before its first step, in the order it does it (AlexNet
§3.5 at 224x224x3, 1000 classes, AlexNet §5's `PaperSGD`): the interpreter and this script's own start
(process start to the first line, from /proc), ``import tensorflow`` and keras, the project's modules,
building the model (layers and the initial weights), building the optimizer's slots, an in-memory input
dataset (the real pipeline's own start is in bench_pipeline.py), tracing the training step (Python ->
graph, `get_concrete_function`), the first step (graph optimisation, oneDNN kernel creation, and the step
itself), and a second step for the steady-state step time. The step mirrors the trainer's: one
`tf.function` taking the iterator, `strategy.run` under the default strategy, the summed metrics read
back on the host. Prints each phase's seconds and share, and the total.
"""

import os
import time

# Before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def since_process_start():
    """Seconds since this process started (Linux /proc, 10 ms resolution)."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def main():
    phases = [("interpreter start", since_process_start())]
    mark = time.perf_counter()

    def phase(name):
        nonlocal mark
        now = time.perf_counter()
        phases.append((name, now - mark))
        mark = now

    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--policy", default="float32", help="Keras dtype policy (float32, mixed_bfloat16)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    import keras
    import tensorflow as tf

    phase("import tensorflow, keras")
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.optimizer import PaperSGD

    phase("import keras_alexnet")
    keras.mixed_precision.set_global_policy(args.policy)
    strategy = tf.distribute.get_strategy()
    model = build_model("alexnet")
    phase("build model (layers, initial weights)")
    optimizer = PaperSGD(0.01)
    optimizer.build(model.trainable_variables)
    phase("build optimizer slots")
    images = tf.random.normal([args.batch, 224, 224, 3], stddev=50.0)
    labels = tf.random.uniform([args.batch], 0, 1000, dtype=tf.int32)
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    next(iterator)
    phase("in-memory input dataset")

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, probs)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.stack([tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)])

    @tf.function
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    train_step.get_concrete_function(iterator)
    phase("trace the training step")
    train_step(iterator).numpy()
    phase("first step (graph optimisation, kernels, step)")
    to_first_step = sum(seconds for _, seconds in phases)
    train_step(iterator).numpy()
    phase("second step (steady state)")

    print(f"AlexNet 224x224x3, batch {args.batch}, {args.policy}; load average {os.getloadavg()[0]:.1f}")
    for name, seconds in phases[:-1]:
        print(f"  {name:48s} {seconds:6.2f} s  {seconds / to_first_step:6.1%}")
    print(f"  {'process start -> end of first step':48s} {to_first_step:6.2f} s")
    name, seconds = phases[-1]
    print(f"  {name:48s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
