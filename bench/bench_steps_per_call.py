"""Training steps/s with 1 vs N steps per `tf.function` call, at a small model where the overhead shows.

    .venv/bin/python bench/bench_steps_per_call.py [--steps_per_call 1,4,16,64] [--steps 640] [--repeats 2]
                                                   [--trainer]

Each call of a `tf.function` costs a fixed amount of host work: Python, argument handling, launching the
graph, pulling the next batch from the iterator, and the host sync of reading the step's result (the
training loop reads per-batch metrics, as `keras_alexnet.training.trainer` does). With a small model the
step itself is short and that fixed cost caps steps/s; running N steps inside one call (a `tf.range`
loop over the iterator, the `steps_per_execution` idea) pays it once per N steps. The step is a full
training step: forward, mean cross-entropy, backward, AlexNet §5's update (`PaperSGD`), top-1 misses
summed over the call. The model: AlexNet at width 1/16 on 63x63 inputs (the smallest AlexNet input),
batch 16, inputs from a repeated in-memory tf.data batch. Rates are steps/s (wall) and steps per
CPU-second, the ratio is against 1 step per call in the same run. `--trainer` measures the same through
the real training loop (`Trainer(steps_per_call=N)` with its per-step callbacks), an epoch of `--steps`
steps per repeat after one that traces.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build(batch, image_size=63, width=1 / 16, classes=10):
    """(model, optimizer, dataset iterator) for the small AlexNet."""
    import keras
    import tensorflow as tf

    from keras_alexnet.registry import build_model
    from keras_alexnet.training.optimizer import PaperSGD

    keras.utils.set_random_seed(0)
    model = build_model("alexnet", num_classes=classes, width=width, input_shape=(image_size, image_size, 3))
    optimizer = PaperSGD(0.01)
    optimizer.build(model.trainable_variables)
    images = tf.random.normal([batch, image_size, image_size, 3], stddev=50.0)
    labels = tf.random.uniform([batch], 0, classes, dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)
    return model, optimizer, iter(dataset)


def make_multi_step(model, optimizer, steps_per_call):
    """A `tf.function(iterator) -> top-1 misses` that runs ``steps_per_call`` training steps."""
    import keras
    import tensorflow as tf

    def one_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return tf.reduce_sum(tf.cast(predicted != labels, tf.float32))

    @tf.function
    def multi_step(iterator):
        misses = tf.constant(0.0)
        for _ in tf.range(steps_per_call):
            misses += one_step(*next(iterator))
        return misses

    return multi_step


def steps_per_second(steps_per_call, total_steps, repeats, batch):
    """Best-of-``repeats`` (steps/s, steps/cpu-s) for ``total_steps`` steps run ``steps_per_call`` a call."""
    model, optimizer, iterator = build(batch)
    multi_step = make_multi_step(model, optimizer, steps_per_call)
    multi_step(iterator).numpy()  # tracing
    calls = max(1, total_steps // steps_per_call)
    best = (0.0, 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            multi_step(iterator).numpy()  # the host reads each call's result, as a training loop does
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        steps = calls * steps_per_call
        best = max(best, (steps / wall, steps / cpu))
    return best


def trainer_steps_per_second(steps_per_call, total_steps, repeats, batch):
    """Best-of-``repeats`` (steps/s, steps/cpu-s) of the real `Trainer(steps_per_call=N)`: epochs of
    ``total_steps`` steps with the run's per-step callbacks (NaN guard, throughput), each epoch timed
    from its begin to its end after a first epoch that traces."""
    import keras
    import tensorflow as tf

    from callbacks.nan_guard import NanGuard
    from callbacks.throughput import Throughput
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.optimizer import PaperSGD
    from keras_alexnet.training.trainer import Trainer

    images = tf.random.normal([batch, 63, 63, 3], stddev=50.0)
    labels = tf.random.uniform([batch], 0, 10, dtype=tf.int32)

    def model():
        keras.utils.set_random_seed(0)
        return build_model("alexnet", num_classes=10, width=1 / 16, input_shape=(63, 63, 3))

    def dataset(input_context, epoch):
        return tf.data.Dataset.from_tensors((images, labels)).prefetch(2)

    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            times.append((time.perf_counter() - self.start[0], time.process_time() - self.start[1]))

    trainer = Trainer(tf.distribute.get_strategy(), model, lambda: PaperSGD(0.01), dataset, total_steps,
                      repeats + 1, batch, steps_per_call=steps_per_call, checkpoint_every_steps=0)
    trainer.fit([NanGuard(), Throughput(batch), Clock()])
    return max((total_steps / wall, total_steps / cpu) for wall, cpu in times[1:])


def measure(steps_per_call=(1, 4, 16, 64), total_steps=640, repeats=2, batch=16, trainer=False):
    """{N: (steps/s, steps/cpu-s)} for each N steps per call (through `Trainer` if ``trainer``)."""
    rate = trainer_steps_per_second if trainer else steps_per_second
    return {n: rate(n, total_steps, repeats, batch) for n in steps_per_call}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps_per_call", default="1,4,16,64", help="comma-separated N")
    parser.add_argument("--steps", type=int, default=640, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per N (the best is kept)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--trainer", action="store_true",
                        help="through keras_alexnet.training.trainer.Trainer(steps_per_call=N) and its callbacks")
    args = parser.parse_args()
    counts = [int(n) for n in args.steps_per_call.split(",")]
    loop = "Trainer" if args.trainer else "bare tf.function"
    import hardware

    print(f"AlexNet width 1/16, 63x63x3, batch {args.batch}, {loop}; {hardware.describe()}; load average "
          f"{os.getloadavg()[0]:.1f}")
    results = measure(counts, args.steps, args.repeats, args.batch, args.trainer)
    base_wall, base_cpu = results[counts[0]]
    for n, (wall, cpu) in results.items():
        print(f"  {n:4d} steps/call: {wall:7.1f} steps/s ({wall / base_wall:5.2f}x), "
              f"{cpu:7.1f} steps/cpu-s ({cpu / base_cpu:5.2f}x)")


if __name__ == "__main__":
    main()
