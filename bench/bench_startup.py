"""Start-up: seconds from process start to the end of the first training step of full AlexNet, by phase.

    .venv/bin/python bench/bench_startup.py [--batch 128] [--policy float32] [--trainer [--records 512]]

Times each phase of what `main.py train` does before its first step, in the order it does it (AlexNet
§3.5 at 224x224x3, 1000 classes, AlexNet §5's `PaperSGD`): the interpreter and this script's own start
(process start to the first line, from /proc), ``import tensorflow`` and keras, the project's modules,
building the model (layers and the initial weights), building the optimizer's slots, an in-memory input
dataset (the real pipeline's own start is in bench_pipeline.py), tracing the training step (Python ->
graph, `get_concrete_function`), the first step (graph optimisation, oneDNN kernel creation, and the step
itself), and a second step for the steady-state step time. The step mirrors the trainer's: one
`tf.function` taking the iterator, `strategy.run` under the default strategy, the summed metrics read
back on the host. Prints each phase's seconds and share, and the total.

`--trainer` times the real command instead: `main.py train` (full AlexNet, batch `--batch`, 1 epoch of 2
steps, no export) in a fresh process on generated records (`--records` 256x256 JPEGs of 1000 classes,
written first, outside the timing), from process start to the end of its first training step, by phase:
the imports (main.py, absl, TensorFlow), the run's setup (settings, records' metadata, run folder,
statistics), the `Trainer` (model, optimizer, checkpoint restore, step functions), the callbacks and
evaluation inputs, the callbacks' `on_train_begin`, the training input pipeline, and the first step
(tracing, graph optimisation, the input pipeline's first batch, the step: until the step returns);
then, after the total, the callbacks' work after the first step (the TensorBoard preview of augmented
inputs, built then so that it does not delay the first step) and the second step for the steady-state
step time. Each phase with its wall
seconds, its CPU seconds (user + system, all threads) and its wall seconds minus the time the main thread
waited for a CPU (Linux schedstat): the last two stay comparable when other processes share the machine,
and wall - wait approaches the idle machine's wall time where the main thread does the work (imports,
building, tracing; not where the step's worker threads wait for CPUs).
"""

import os
import sys
import time

# Before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def since_process_start():
    """Seconds since this process started (Linux /proc, 10 ms resolution)."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds():
    """User + system CPU seconds of this process so far (all threads)."""
    times = os.times()
    return times.user + times.system


def waited_seconds():
    """Seconds this process's main thread has spent runnable but waiting for a CPU (Linux schedstat):
    the time other processes took from it."""
    with open(f"/proc/self/task/{os.getpid()}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def write_records(folder, count, classes=1000):
    """`count` training and count/4 validation records of 256x256 JPEGs (bench_pipeline's images) with
    dataset.json and stats.npz, as `prepare` writes them, into `folder`."""
    import numpy as np
    import tensorflow as tf

    from bench_pipeline import SIZE, _jpeg, _stats
    from pipelines import records

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    distinct = [_jpeg(i) for i in range(64)]
    splits = {}
    for split, n in (("train", count), ("validation", max(1, count // 4))):
        with tf.io.TFRecordWriter(os.path.join(folder, records.shard_name(split, 0, 1))) as writer:
            for i in range(n):
                feature = {records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[distinct[i % 64]])),
                           records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[i % classes])),
                           records.HEIGHT: tf.train.Feature(int64_list=tf.train.Int64List(value=[SIZE])),
                           records.WIDTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[SIZE]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        splits[split] = records.SplitInfo(n, 1)
    names = [records.ClassInfo(i, f"n{i:08d}", str(i)) for i in range(classes)]
    records.write_metadata(folder, records.DatasetInfo(names, splits, "alexnet", SIZE))
    np.savez(os.path.join(folder, records.STATS_FILE), **_stats())


def trainer_child(train_flags):
    """In the timed process: `main.py train train_flags`, phases marked through the training code's own
    entry points, the table printed at the end of the second step, then exit."""
    start = time.perf_counter() - since_process_start()
    marks = [("process start", since_process_start(), cpu_seconds(), waited_seconds())]

    def mark(name):
        marks.append((name, time.perf_counter() - start, cpu_seconds(), waited_seconds()))

    import keras_alexnet.training.run as run_module
    from keras_alexnet.cli import dispatch

    train = run_module.train

    def timed_train(config, printer=print, callbacks=()):
        mark("imports: main.py, absl, TensorFlow")
        import keras

        from keras_alexnet.training import trainer

        def wrap(name, method, before, after=None):
            def wrapped(self, *args, **kwargs):
                if before:
                    mark(before)
                result = method(self, *args, **kwargs)
                if after:
                    mark(after)
                return result
            setattr(trainer.Trainer, name, wrapped)

        wrap("__init__", trainer.Trainer.__init__, "run setup: settings, records, run folder, stats",
             "Trainer: model, optimizer, checkpoint, steps")
        wrap("fit", trainer.Trainer.fit, "callbacks and evaluation inputs")
        wrap("_train_iterator", trainer.Trainer._train_iterator, "callbacks' on_train_begin",
             "training input pipeline")
        make_train_step = trainer.Trainer._make_train_step
        steps = iter(["first step: trace, optimise, first batch, run", "second step (steady state)"])

        def timed_make_train_step(self):
            step = make_train_step(self)

            def timed_step(iterator, count):
                result = step(iterator, count)  # returns when the step has run (CPU)
                mark(next(steps))
                return result
            return timed_step
        trainer.Trainer._make_train_step = timed_make_train_step

        class FirstSteps(keras.callbacks.Callback):
            """Last in the callback list: marks the end of the other callbacks' first batch end
            (the TensorBoard preview of augmented inputs is written there), and prints at the second."""

            def on_train_batch_end(self, batch, logs=None):
                if batch == 0:
                    return mark("callbacks after the first step (input preview)")
                print(f"main.py train, AlexNet 224x224x3, {' '.join(train_flags)}; load average "
                      f"{os.getloadavg()[0]:.1f}")
                print(f"  {'phase':48s} {'wall':>8s} {'share':>6s} {'cpu':>8s} {'wall-wait':>10s}")
                origin = ("", 0.0, 0.0, 0.0)
                rows = [(current[0], *(now - then for now, then in zip(current[1:], previous[1:])))
                        for previous, current in zip([origin] + marks, marks)]
                first_step = ("process start -> end of first step", *marks[-3][1:])
                for name, wall, cpu, waited in rows[:-2] + [first_step] + rows[-2:]:
                    share = f"{wall / first_step[1]:6.1%}" if name not in [row[0] for row in rows[-2:]] else ""
                    print(f"  {name:48s} {wall:6.2f} s {share:>6s} {cpu:6.2f} s {wall - waited:8.2f} s")
                print("  (cpu: user + system seconds of all threads; wall-wait: wall minus the main thread's "
                      "wait for a CPU)", flush=True)
                os._exit(0)

        return train(config, printer, list(callbacks) + [FirstSteps()])

    run_module.train = timed_train
    dispatch.main(["main.py", "train"] + train_flags)


def trainer_startup(args):
    """Writes the records, then times `main.py train` on them in a fresh process (`trainer_child`)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data_dir = os.path.join(folder, "data")
        os.makedirs(data_dir)
        write_records(data_dir, args.records)
        train_flags = [f"--data_dir={data_dir}", f"--batch_size={args.batch}", "--epochs=1", "--steps_per_epoch=2",
                       "--noexport", "--noprogress", "--run_name=startup"]
        if args.policy == "mixed_bfloat16":
            train_flags.append("--mixed_precision")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child"] + train_flags, cwd=folder, check=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, ROOT)
        return trainer_child(sys.argv[2:])
    phases = [("interpreter start", since_process_start())]
    mark = time.perf_counter()

    def phase(name):
        nonlocal mark
        now = time.perf_counter()
        phases.append((name, now - mark))
        mark = now

    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--policy", default="float32", help="Keras dtype policy (float32, mixed_bfloat16)")
    parser.add_argument("--trainer", action="store_true", help="time main.py train instead of a plain loop")
    parser.add_argument("--records", type=int, default=512, help="training records for --trainer")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    if args.trainer:
        return trainer_startup(args)

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

    import hardware

    print(f"AlexNet 224x224x3, batch {args.batch}, {args.policy}; {hardware.describe()}; load average "
          f"{os.getloadavg()[0]:.1f}")
    for name, seconds in phases[:-1]:
        print(f"  {name:48s} {seconds:6.2f} s  {seconds / to_first_step:6.1%}")
    print(f"  {'process start -> end of first step':48s} {to_first_step:6.2f} s")
    name, seconds = phases[-1]
    print(f"  {name:48s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
