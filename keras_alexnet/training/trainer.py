"""One training loop for every strategy (default, mirrored, multi-worker, two towers).

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (PerReplica conversion error, measured
here), so training runs a custom loop: a `tf.function` step under `strategy.run`, datasets made per
replica by `strategy.distribute_datasets_from_function`, and a `keras.callbacks.CallbackList` driven
exactly as `model.fit` drives it (`on_epoch_begin/end` with the same log keys, `on_train_batch_end`,
`model.stop_training`), so every callback works with both.

The loss is the mean cross-entropy over the global batch (per-replica sums divided by the global
batch size, so summing the replicas' gradients equals one-device training, VGG §3.3); the update is
AlexNet §5's SGD rule (`optimizer.py`). Checkpoints are written every epoch and every
`checkpoint_every_steps` steps; a resumed run restores model, optimizer, counters, learning rate and
callback state, and skips the steps of the interrupted epoch it already took (the same per-epoch
dataset order, see `train_dataset_fn`).

Several steps per call (`steps_per_call` N > 1, Keras' `steps_per_execution`): one `tf.function` call
runs up to N optimizer steps in a `tf.range` loop over the distributed iterator and returns the summed
metrics of its steps, so Python, the call's launch and the host sync of reading the metrics are paid
once per call instead of once per step. A call never crosses the end of an epoch nor a multiple of
`checkpoint_every_steps` (it is shortened to the remaining steps; its length is a tensor argument, so
a shorter call does not retrace), so epochs and step checkpoints end where they do with N = 1. The
callbacks see each call as one batch, as `model.fit` with `steps_per_execution` shows them:
`on_train_batch_begin(first step)` and `on_train_batch_end(last step, running epoch metrics)`. So
everything a callback does per batch happens once per call: the learning rate a callback sets (the
warm-up/decay schedule, `callbacks/lr_schedules.py`) is set from the optimizer's iteration count at the
call's first step and held for its steps (a piecewise-constant curve over blocks of N steps; the
plateau division, AlexNet §5, acts at epoch ends and is unchanged); the learning rate is logged once
per call; the stop event (SIGINT/SIGTERM) is seen after the running call, at most N - 1 steps later
(with several workers, by all of them through the next call's all-reduce: see `Trainer`).
With a constant learning rate, N steps per call give the weights of N = 1 (tested).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from callbacks.nan_guard import NonFiniteLoss
from keras_alexnet.evaluation.protocols import EvaluationStopped
from keras_alexnet.training.checkpointing import Checkpointer, RunState
from keras_alexnet import metric_names
from keras_alexnet.metrics import error_metrics, topk_wrong
from keras_alexnet.training.strategy import num_workers


def _sums(labels, probabilities, weights=None):
    """Per-replica [loss sum, top-1 misses, top-5 misses, count] for a batch; `weights` (1 for real
    examples, 0 for padding) leave padding out."""
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    probabilities = tf.cast(probabilities, tf.float32)
    per_example = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    if weights is None:
        weights = tf.ones_like(per_example)
    return per_example, tf.stack([tf.reduce_sum(per_example * weights),
                                  topk_wrong(labels, probabilities, 1, weights),
                                  topk_wrong(labels, probabilities, 5, weights), tf.reduce_sum(weights)])


def _logs(sums, prefix=""):
    """The epoch logs of `_sums` added up: mean loss, top-1 and top-5 error, each key after `prefix`."""
    loss, top1_misses, top5_misses, count = (float(value) for value in sums)
    count = max(count, 1.0)
    return {prefix + metric_names.LOSS: loss / count, prefix + metric_names.TOP1_ERROR: top1_misses / count,
            prefix + metric_names.TOP5_ERROR: top5_misses / count}


class _Interrupted(Exception):
    """Raised inside `fit` when the stop event is set, with the phase it stops; caught there after saving a
    checkpoint."""


class Trainer:
    """Builds the model and optimizer under `strategy` and trains with callbacks and checkpoints.

    Args:
        strategy: a `tf.distribute.Strategy` (see `strategy.make_strategy`).
        build_model: () -> Keras model whose output is softmax probabilities (built under the scope).
        build_optimizer: () -> Keras optimizer (built under the scope).
        train_dataset_fn: (input_context, epoch) -> tf.data.Dataset of per-replica batches
            (inputs, labels), inputs the model's images or what `prepare_inputs` takes, whose order
            depends only on `epoch`, so a resumed epoch sees the same batches; it is repeated and
            `skip`ped here to resume an epoch (unless `replays_epochs` is False).
        steps_per_epoch: training steps in an epoch (equal on every worker).
        epochs: the epoch cap.
        global_batch_size: examples per step over all replicas.
        val_dataset_fn: (input_context) -> finite per-replica dataset, or None.
        val_examples: the number of validation examples (needed with `val_dataset_fn`).
        checkpoint_dir: where checkpoints go; None disables them.
        checkpoint_every_steps: also save every this many steps (0: epoch ends only).
        steps_per_call: optimizer steps run by one call of the compiled step (see the module
            docstring; 1: a call per step).
        jit_compile: compile the forward/backward pass with XLA.
        loss_scale: wrap the optimizer in a `LossScaleOptimizer` (float16 mixed precision).
        initial_weights: callable(model) run once on a fresh start (warm start, init from another run).
        prepare_inputs: callable(per-replica inputs) -> the model's input batch, run inside the
            training step on each replica's device (and in its XLA cluster with `jit_compile`): the
            training batches' float work (`input_pipeline.train_batch_finisher`) when the dataset
            yields uint8 crops; None when it yields the model's inputs.
        replays_epochs: whether `train_dataset_fn` gives an epoch's batches again in the same order; if
            not (the tf.data service), a resumed epoch takes its remaining steps from a new pass
            instead of reading and discarding the batches it already trained on.
        stop_event: a `threading.Event`; once set (SIGINT/SIGTERM), `fit` saves a checkpoint after the
            current step (or validation batch, or 10-crop batch of an epoch's end; before the first
            step when it was set before `fit`) and returns, with `interrupted_at` its path. Set during
            the 10-crop evaluation at the end of training, `fit` returns with `interrupted_at` the
            last checkpoint, which is current (every epoch is saved). With several workers a signal
            may reach one of them only: each training call carries every worker's stop vote in the
            all-reduce of its sums, so all stop after the same call (the one after the call the signal
            came in) and save together, `stopped_by_another_worker` True on those not
            signalled; the other phases (set-up, validation) then do not stop on their own.
    """

    def __init__(self, strategy, build_model, build_optimizer, train_dataset_fn, steps_per_epoch,
                 epochs, global_batch_size, val_dataset_fn=None, val_examples=None, checkpoint_dir=None,
                 checkpoint_every_steps=0, jit_compile=False, loss_scale=False, is_chief=True,
                 initial_weights=None, printer=print, stop_event=None, steps_per_call=1, prepare_inputs=None,
                 replays_epochs=True):
        self.strategy = strategy
        self.train_dataset_fn = train_dataset_fn
        self.val_dataset_fn = val_dataset_fn
        if val_dataset_fn is not None and not val_examples:
            raise ValueError("val_dataset_fn needs val_examples (the validation set size)")
        self.val_examples = val_examples
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.global_batch_size = int(global_batch_size)
        self.checkpoint_every_steps = int(checkpoint_every_steps or 0)
        self.steps_per_call = int(steps_per_call)
        if self.steps_per_call < 1:
            raise ValueError(f"steps_per_call={steps_per_call}: must be >= 1")
        self.jit_compile = jit_compile
        self.prepare_inputs = prepare_inputs
        self.replays_epochs = replays_epochs
        self.is_chief = is_chief
        self.printer = printer
        self.stop_event = stop_event
        self.interrupted_at = None
        self.stopped_in = None  # the phase the stop event stopped: "set-up", "training", ...
        self.saved_on_stop = False  # whether `interrupted_at` was saved then (else the last one is current)
        self.several_workers = num_workers(strategy) > 1
        self.stopped_by_another_worker = False  # a multi-worker run stopped by a signal to another worker
        self._in_epochs = False  # inside `fit`'s epochs (where several workers stop only together)
        with strategy.scope():
            self.model = build_model()
            optimizer = build_optimizer()
            if loss_scale:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            # Compiling only attaches the optimizer, loss and metrics, so callbacks (and `model.fit`
            # users) find them where Keras puts them; the loop below does not call `fit`.
            self.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                               metrics=error_metrics())
            self.optimizer.build(self.model.trainable_variables)
        self.state = RunState()
        self.checkpointer = None
        if checkpoint_dir:
            self.checkpointer = Checkpointer(checkpoint_dir, self.model, self.optimizer, self.state,
                                             is_chief=is_chief)
        self.resumed_from = None
        if self.checkpointer is not None:
            self.resumed_from = self.checkpointer.restore_latest(strategy)
        if self.resumed_from is None and initial_weights is not None:
            initial_weights(self.model)
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    # -- steps -----------------------------------------------------------------------------------
    def _make_train_step(self):
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        global_batch = float(self.global_batch_size)
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        prepare_inputs = self.prepare_inputs

        def gradients(inputs, labels):
            images = prepare_inputs(inputs) if prepare_inputs is not None else inputs
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                per_example, sums = _sums(labels, probabilities)
                loss = tf.reduce_sum(per_example) / global_batch
                if model.losses:
                    loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
                if scaled:
                    loss = optimizer.scale_loss(loss)
            return tape.gradient(loss, model.trainable_variables), sums

        if self.jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def replica_step(inputs, labels, stop_vote):
            grads, sums = gradients(inputs, labels)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return tf.concat([sums, tf.reshape(stop_vote, [1])], 0)  # the vote rides the sums' all-reduce

        def train_step(iterator, stop_vote):
            inputs, labels = next(iterator)
            per_replica = strategy.run(replica_step, args=(inputs, labels, stop_vote))
            return tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None), tf.float64)

        def vote(stop):
            return tf.constant(1.0 if stop else 0.0, tf.float32)

        if self.steps_per_call == 1:
            one_step = tf.function(train_step)
            return lambda iterator, steps, stop: one_step(iterator, vote(stop))

        @tf.function
        def train_steps(iterator, steps, stop_vote):
            sums = tf.zeros([5], tf.float64)
            for _ in tf.range(steps):
                sums += train_step(iterator, stop_vote)
            return sums

        return lambda iterator, steps, stop: train_steps(iterator, tf.constant(steps, tf.int64), vote(stop))

    def _make_eval_step(self):
        model, strategy = self.model, self.strategy

        def replica_step(images, labels, weights):
            return _sums(labels, model(images, training=False), weights)[1]

        @tf.function
        def eval_step(iterator):
            per_replica = strategy.run(replica_step, args=next(iterator))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        return eval_step

    # -- data ------------------------------------------------------------------------------------
    def _train_iterator(self, epoch, skip):
        """The epoch's iterator, its input pipeline started at once (tf.data's warm start): the first
        batches are read and decoded while the step is traced and optimised, not after."""
        def dataset_fn(input_context):
            dataset = self.train_dataset_fn(input_context, epoch).repeat()
            options = tf.data.Options()
            options.experimental_warm_start = True
            return (dataset.skip(skip) if skip and self.replays_epochs else dataset).with_options(options)

        options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn, options))

    def _val_steps(self):
        """Steps that cover every input pipeline's share of the validation set, assuming it is split
        by example (at most ceil(n / pipelines) each), plus one for file-level splits."""
        pipelines = num_workers(self.strategy)
        per_pipeline = math.ceil(self.val_examples / pipelines)
        return math.ceil(per_pipeline * pipelines / self.global_batch_size) + (1 if pipelines > 1 else 0)

    def evaluate(self, callbacks=None):
        """Validation loss and top-1/top-5 error over the whole validation set (`val_` keys); `callbacks`
        (a `CallbackList`) get `on_test_begin`, `on_test_batch_end` per step and `on_test_end`, as
        `model.fit` drives them (the progress display of the validation pass).

        Every replica gets full batches: each pipeline's examples are followed by zero-weight padding
        (Keras convolutions fail on the empty batches `tf.distribute` gives replicas without data),
        and a fixed number of steps covers the largest share. The padding is zeros of the examples'
        static shape: the validation data is read once per pass (a damaged shard named, its lost
        records counted, once).
        """
        def dataset_fn(input_context):
            examples = self.val_dataset_fn(input_context).unbatch()
            image_spec, label_spec = examples.element_spec
            examples = examples.map(tf.autograph.experimental.do_not_convert(lambda x, y: (x, y, tf.constant(1.0))))
            padding = tf.data.Dataset.from_tensors((tf.zeros(image_spec.shape, image_spec.dtype),
                                                    tf.zeros(label_spec.shape, label_spec.dtype), tf.constant(0.0)))
            return examples.concatenate(padding.repeat()).batch(
                input_context.get_per_replica_batch_size(self.global_batch_size), drop_remainder=True)

        if callbacks is not None:
            callbacks.on_test_begin()  # before the iterator: making it takes a while on a loaded machine
        iterator = iter(self.strategy.distribute_datasets_from_function(dataset_fn))
        sums = np.zeros(4)
        for step in range(self._val_steps()):
            if self.stop_requested():
                return None
            sums += self._eval_step(iterator).numpy()
            if callbacks is not None:
                callbacks.on_test_batch_end(step)
        del iterator  # its pipeline's shutdown is part of the pass
        if callbacks is not None:
            callbacks.on_test_end(_logs(sums, metric_names.VALIDATION_PREFIX))
        return _logs(sums, metric_names.VALIDATION_PREFIX)

    def stop_requested(self) -> bool:
        """Whether this process stops now on its own stop event (the callbacks' `should_stop` too): with
        several workers, not during `fit`'s epochs, where only the training calls' vote stops (every
        worker at the same step, none left waiting in a collective operation for one that stopped)."""
        alone = not (self.several_workers and self._in_epochs)
        return self.stop_event is not None and self.stop_event.is_set() and alone

    # -- checkpoints -----------------------------------------------------------------------------
    def _save(self, callbacks):
        if self.checkpointer is None:
            return None
        self.state.store_callback_states(callbacks)
        return self.checkpointer.save(int(self.optimizer.iterations.numpy()))

    def _nan_message(self, error):
        last = self.checkpointer.latest() if self.checkpointer else None
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        return f"{error}; {kept} (lower --learning_rate or check the data)"

    # -- the loop --------------------------------------------------------------------------------
    def _call_length(self, step):
        """Steps of the call starting at `step` of the epoch: at most `steps_per_call`, ending at the
        epoch's end or at the next multiple of `checkpoint_every_steps`, whichever comes first."""
        count = min(self.steps_per_call, self.steps_per_epoch - step)
        if self.checkpoint_every_steps:
            done = int(self.optimizer.iterations.numpy())
            count = min(count, self.checkpoint_every_steps - done % self.checkpoint_every_steps)
        return count

    def fit(self, callbacks=()):
        """Trains to the epoch cap or until a callback stops training; returns the History callback.
        A worker's temporary checkpoint folder (not the chief's) is removed however `fit` ends."""
        try:
            return self._fit(callbacks)
        finally:
            if self.checkpointer is not None:
                self.checkpointer.close()

    def _fit(self, callbacks):
        history = keras.callbacks.History()
        callbacks = list(callbacks) + [history]
        if self.resumed_from:
            self.state.load_callback_states(callbacks)
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_history=False, add_progbar=False, model=self.model,
            epochs=self.epochs, steps=self.steps_per_epoch, verbose=0,
            validation_steps=self._val_steps() if self.val_dataset_fn is not None else None)
        model = self.model
        model.stop_training = False
        start_epoch = int(self.state.epoch.numpy())
        start_step = int(self.state.step_in_epoch.numpy())
        if self.resumed_from:
            self.printer(f"Resuming from {self.resumed_from} at epoch {start_epoch + 1}, "
                         f"step {start_step} of {self.steps_per_epoch}.")
        if bool(self.state.finished.numpy()):
            self.printer("This run was stopped by its learning-rate schedule; nothing left to train.")
            start_epoch = self.epochs
        elif start_epoch >= self.epochs:
            self.printer(f"This run has trained its {start_epoch} epochs; a larger epoch cap trains on.")
        callback_list.on_train_begin()
        logs = {}
        try:
            if self.stop_requested():  # a signal while the run was being set up
                raise _Interrupted("set-up")
            self._in_epochs = True
            for epoch in range(start_epoch, self.epochs):
                skip = start_step if epoch == start_epoch else 0
                if not skip:
                    self.state.train_sums.assign(tf.zeros([4], tf.float64))
                sums = self.state.train_sums.numpy()
                callback_list.on_epoch_begin(epoch)
                # None when the epoch's steps are all done (stopped in its validation or 10-crop pass).
                iterator = self._train_iterator(epoch, skip) if skip < self.steps_per_epoch else None
                step = skip
                while step < self.steps_per_epoch:
                    count = self._call_length(step)
                    callback_list.on_train_batch_begin(step)
                    wanted = self.stop_event is not None and self.stop_event.is_set()
                    summed = self._train_step(iterator, count, wanted).numpy()
                    sums = sums + summed[:4]
                    step += count
                    callback_list.on_train_batch_end(step - 1, _logs(sums))
                    self.state.train_sums.assign(sums)
                    self.state.step_in_epoch.assign(step)
                    if (self.checkpoint_every_steps and step < self.steps_per_epoch
                            and int(self.optimizer.iterations.numpy()) % self.checkpoint_every_steps == 0):
                        self._save(callbacks)
                    if model.stop_training:
                        break
                    if summed[4] > 0 and not wanted:  # another worker's signal: every worker stops here
                        self.stopped_by_another_worker = True
                    if summed[4] > 0 or self.stop_requested():
                        raise _Interrupted("training")
                del iterator  # its pipeline's shutdown is part of the epoch (whose progress line is open)
                logs = _logs(sums)
                if self.val_dataset_fn is not None:
                    val_logs = self.evaluate(callback_list)
                    if val_logs is None:
                        raise _Interrupted("the centre-crop validation")
                    logs.update(val_logs)
                try:
                    callback_list.on_epoch_end(epoch, logs)
                except EvaluationStopped:  # the 10-crop callback comes first: no other epoch end ran
                    raise _Interrupted("the 10-crop validation") from None
                self.state.epoch.assign(epoch + 1)
                self.state.step_in_epoch.assign(0)
                if model.stop_training:  # the schedule's end (AlexNet §5); an epoch cap may be raised
                    self.state.finished.assign(True)
                self._save(callbacks)
                if model.stop_training:
                    break
        except NonFiniteLoss as error:
            raise NonFiniteLoss(self._nan_message(error)) from None
        except _Interrupted as stopped:
            self.stopped_in, self.saved_on_stop = str(stopped), True
            self.interrupted_at = self._save(callbacks)
            return history
        finally:
            self._in_epochs = False
        try:
            callback_list.on_train_end(logs)
        except EvaluationStopped:  # the final 10-crop evaluation: every epoch is saved already
            self.stopped_in = "the final 10-crop validation"
            self.interrupted_at = self.checkpointer.latest() if self.checkpointer is not None else None
        return history
