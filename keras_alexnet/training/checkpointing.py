"""Checkpoints that let a killed run resume as if uninterrupted.

A `tf.train.Checkpoint` holds the model's variables (weights and random-generator states), the optimizer (momentum buffers, iteration count, learning
rate), the epoch and step-in-epoch counters, the running sums of the epoch's training metrics and the
callbacks' state (the plateau schedule of AlexNet §5) as a JSON string variable — so every piece is
written in one atomic save. `CheckpointManager` keeps the last few. Under `MultiWorkerMirroredStrategy`
every worker saves (as TensorFlow requires), non-chief workers into a scratch folder they remove
(`keras_alexnet.scratch`: one a killed worker leaves is removed at the next start); only
the chief reads its checkpoint folder to resume, and sends every restored value to the other workers
(`share_from_chief`), so they need no access to it (separate hosts, separate disks). The
`ckpt-N_temp` folders a save killed midway leaves are removed when the run starts again. A save that
fails (no space left, a read-only or removed folder) removes its partial files and stops the run with
one line naming the folder, the reason and the last good checkpoint, which is kept: the same command
resumes from it once the cause is fixed.
"""

import json
import os
import re
import shutil

import tensorflow as tf

from keras_alexnet import outputs, runs, scratch
from keras_alexnet.errors import UserError
from keras_alexnet.training.strategy import num_workers


class RunState:
    """The counters and sidecar state saved with the model."""

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        # Sums over the epoch so far: loss, top-1 misses, top-5 misses, examples.
        self.train_sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name="train_sums")
        self.finished = tf.Variable(False, trainable=False, name="finished")  # stopped by the schedule
        self.callbacks_json = tf.Variable("{}", dtype=tf.string, trainable=False, name="callbacks")

    def callback_states(self) -> dict:
        return json.loads(self.callbacks_json.numpy().decode("utf-8"))

    def store_callback_states(self, callbacks) -> None:
        states = {type(cb).__name__: cb.get_state() for cb in callbacks if hasattr(cb, "get_state")}
        self.callbacks_json.assign(json.dumps(states))

    def load_callback_states(self, callbacks) -> None:
        states = self.callback_states()
        for cb in callbacks:
            if hasattr(cb, "set_state") and type(cb).__name__ in states:
                cb.set_state(states[type(cb).__name__])


class Checkpointer:
    """Saves and restores model + optimizer + RunState in `directory` (chief) or a temporary folder."""

    def __init__(self, directory, model, optimizer, state: RunState, is_chief=True, max_to_keep=3):
        self.is_chief = is_chief
        self.directory = directory if is_chief else scratch.make(runs.CHECKPOINTS_DIR)
        # Keras 3 models are not tracked by tf.train.Checkpoint themselves: their variables are listed
        # here, so the non-trainable ones (the dropout layers' random-generator states) are saved and a
        # resumed run draws the same dropout masks as an uninterrupted one.
        self.state = state
        # Every value a checkpoint holds, in one order on every worker (what `share_from_chief` sends).
        self.variables = list(model.variables) + list(optimizer.variables) + [
            state.epoch, state.step_in_epoch, state.train_sums, state.finished]
        self.checkpoint = tf.train.Checkpoint(model_variables=list(model.variables), optimizer=optimizer,
                                              epoch=state.epoch,
                                              step_in_epoch=state.step_in_epoch,
                                              train_sums=state.train_sums, finished=state.finished,
                                              callbacks=state.callbacks_json)
        # The chief's manager finds the checkpoint to resume from; the other workers get its values.
        if is_chief:
            remove_partial_saves(directory)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=max_to_keep)
        self.source = directory

    def latest(self):
        return tf.train.latest_checkpoint(self.source)

    def restore_latest(self, strategy=None):
        """Restores the newest checkpoint if there is one; returns its path or None. With a multi-worker
        `strategy` the chief restores and every other worker takes the chief's values and path."""
        path = self.latest() if self.is_chief else None
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        if strategy is not None and num_workers(strategy) > 1:
            path = text_from_chief(strategy, path or "", self.is_chief) or None
            if path:  # a fresh start needs nothing: the strategy gave every worker the chief's initial values
                share_from_chief(strategy, self.variables, self.state.callbacks_json, self.is_chief)
        return path

    def save(self, global_step: int):
        last = self.latest()
        try:
            path = self.manager.save(checkpoint_number=global_step)
        except Exception as error:  # noqa: BLE001 - narrowed by io_error_reason, re-raised otherwise
            reason = outputs.io_error_reason(error)
            if reason is None:
                raise
            remove_partial_saves(self.directory)
            kept = f"the last good checkpoint {last} is kept" if last else "no earlier checkpoint exists"
            raise UserError(f"{self.directory}: cannot write checkpoint {global_step} "
                            f"({reason.replace(chr(9), ' ')}); {kept}: fix this and rerun the same command "
                            "to resume") from None
        return path if self.is_chief else None

    def close(self):
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def from_chief(strategy, value, is_chief):
    """The chief's `value` (a tensor of the same shape and dtype on every worker) on every worker: an
    all-reduce sum to which the chief's first replica gives its value and every other replica zeros."""
    given = [not is_chief]

    def contribution(context):
        del context
        give = not given[0]
        given[0] = True
        return value if give else tf.zeros_like(value)

    return strategy.reduce(tf.distribute.ReduceOp.SUM,
                           strategy.experimental_distribute_values_from_function(contribution), axis=None)


def text_from_chief(strategy, text: str, is_chief) -> str:
    """The chief's `text` on every worker (the others' `text` is not used): its length, then its bytes."""
    codes = tf.constant(list(text.encode("utf-8")) if is_chief else [], tf.int32)
    length = int(from_chief(strategy, tf.size(codes), is_chief))
    codes = codes if is_chief else tf.zeros([length], tf.int32)
    return bytes(from_chief(strategy, codes, is_chief).numpy().astype("uint8").tolist()).decode("utf-8")


def share_from_chief(strategy, variables, text_variable, is_chief) -> None:
    """Sets `variables` and the string `text_variable` on every worker to the chief's values: the workers
    of `MultiWorkerMirroredStrategy` resume from the one checkpoint only the chief reads."""
    for variable in variables:
        value = tf.convert_to_tensor(variable)
        if value.dtype == tf.bool:
            variable.assign(tf.cast(from_chief(strategy, tf.cast(value, tf.int32), is_chief), tf.bool))
        else:
            variable.assign(from_chief(strategy, value, is_chief))
    text_variable.assign(text_from_chief(strategy, text_variable.numpy().decode("utf-8"), is_chief))


def remove_partial_saves(directory: str) -> list:
    """Removes the `<prefix>-N_temp` folders of saves that never finished (TensorFlow writes a sharded
    save there and renames its files into place at the end); returns their paths."""
    if not os.path.isdir(directory):
        return []
    stale = [os.path.join(directory, n) for n in os.listdir(directory) if re.fullmatch(r".+-\d+_temp", n)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def restore_model_weights(model, checkpoint_path):
    """Initialises `model` from another run's checkpoint (model only, no optimizer/counters): VGG §3.1
    trains S=384 from the S=256 model. `checkpoint_path` is a checkpoint prefix or a run's folder."""
    if os.path.isdir(checkpoint_path):
        for candidate in (checkpoint_path, os.path.join(checkpoint_path, runs.CHECKPOINTS_DIR)):
            latest = tf.train.latest_checkpoint(candidate)
            if latest:
                checkpoint_path = latest
                break
        else:
            raise FileNotFoundError(f"no checkpoint in {checkpoint_path}")
    tf.train.Checkpoint(model_variables=list(model.variables)).restore(checkpoint_path).expect_partial()
    return checkpoint_path
