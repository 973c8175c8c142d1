"""Kill -9 a training run mid-epoch, run the same command again: it resumes from the last checkpoint
(model, optimizer, dropout random state, epoch/step, learning rate, plateau state) and ends bitwise where
an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, os, sys, time
import numpy as np
import keras, tensorflow as tf
tf.config.experimental.enable_op_determinism()
from callbacks.lr_schedules import PlateauDecay
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer

run_dir, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
y = rng.integers(0, 4, 64).astype("int32")
x = rng.normal(size=(64, 8, 8, 3)).astype("float32") + y[:, None, None, None] * 0.2

def model():
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(i)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dropout(0.5, name="drop7")(h)
    h = keras.layers.Dense(4, name="fc8")(h)
    return keras.Model(i, keras.layers.Activation("softmax", name="softmax")(h))

def train_fn(ctx, epoch):
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=epoch).batch(8, drop_remainder=True)

def val_fn(ctx):
    return tf.data.Dataset.from_tensor_slices((x[:24], y[:24])).batch(8)

class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print("STEP", int(self.model.optimizer.iterations.numpy()), flush=True)
        time.sleep(0.15)

plateau = PlateauDecay(patience=1, min_delta=0.05, printer=lambda m: print(m, flush=True))
trainer = Trainer(tf.distribute.get_strategy(), model, lambda: PaperSGD(0.05), train_fn,
                  steps_per_epoch=8, epochs=5, global_batch_size=8, val_dataset_fn=val_fn, val_examples=24,
                  checkpoint_dir=os.path.join(run_dir, "checkpoints"), checkpoint_every_steps=3)
trainer.fit([Slow(), plateau])
np.savez(out, *trainer.model.get_weights(), *[v.numpy() for v in trainer.optimizer.variables])
with open(out + ".json", "w") as f:
    json.dump({"lr": float(trainer.optimizer.learning_rate.numpy()), "plateau": plateau.get_state(),
               "iterations": int(trainer.optimizer.iterations.numpy())}, f)
'''


def run(script, run_dir, out, kill_at=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-u", script, str(run_dir), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if kill_at is not None and line.strip() == f"STEP {kill_at}":
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=300)
    return proc.returncode, "".join(lines)


def load(out):
    with np.load(str(out)) as data:
        arrays = [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]
    with open(str(out) + ".json") as f:
        return arrays, json.load(f)


def test_kill_9_then_resume_matches_uninterrupted(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    code, log = run(script, tmp_path / "reference", tmp_path / "reference.npz")
    assert code == 0, log
    # Killed at step 20: epoch 3, step 4 of 8; the last checkpoint is at step 18 (every 3 steps).
    code, log = run(script, tmp_path / "killed", tmp_path / "killed.npz", kill_at=20)
    assert code == -signal.SIGKILL, log
    assert not os.path.exists(tmp_path / "killed.npz")
    code, log = run(script, tmp_path / "killed", tmp_path / "killed.npz")
    assert code == 0, log
    assert "Resuming from" in log and "at epoch 3, step 2 of 8" in log, log
    reference, ref_info = load(tmp_path / "reference.npz")
    resumed, info = load(tmp_path / "killed.npz")
    assert info == ref_info
    assert ref_info["plateau"]["reductions"] >= 1  # the learning rate did change along the way
    assert len(reference) == len(resumed)
    for a, b in zip(reference, resumed):  # bitwise, dropout included
        np.testing.assert_array_equal(a, b)


def test_kill_9_a_real_cli_run_then_the_same_command_finishes(tmp_path):
    """`main.py train` on real Fashion-MNIST images, killed with SIGKILL once a mid-epoch checkpoint
    exists; the same command resumes (epoch/step, learning rate restored) and writes every epoch."""
    import csv
    import glob

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_train_cli import FASHION, make_fashion_dir  # noqa: E402

    assert os.path.isdir(FASHION), f"{FASHION} missing: setup.sh installs Debian's dataset-fashion-mnist"
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 1024, "validation": 128, "test": 128})
    command = [sys.executable, os.path.join(ROOT, "main.py"), "train", f"--data_dir={data_dir}",
               "--width=0.125", "--image_size=64", "--resize_size=72", "--init=glorot",
               "--learning_rate=0.02", "--epochs=3", "--batch_size=32", "--pca_jitter_std=0",
               "--ten_crop_every=0", "--checkpoint_every_steps=5", "--run_name=killed", "--noexport",
               "--noprogress", "--lr_patience=1"]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    checkpoints = tmp_path / "runs" / "killed" / "checkpoints"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    # Epoch 1 has 32 steps; kill once the step-40 checkpoint (epoch 2, step 8) is written.
    while time.time() < deadline and not glob.glob(str(checkpoints / "ckpt-40.index")):
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Resuming from" in result.stdout and "at epoch 2, step" in result.stdout, result.stdout
    assert "epoch 1/3 |" not in result.stdout and "epoch 3/3 |" in result.stdout
    with open(tmp_path / "runs" / "killed" / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    assert tf_latest_step(checkpoints) == 96


def tf_latest_step(directory):
    import tensorflow as tf

    return int(tf.train.latest_checkpoint(str(directory)).rsplit("-", 1)[1])
