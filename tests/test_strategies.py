"""The one training loop under MirroredStrategy (two logical CPUs), MultiWorkerMirroredStrategy (two
worker processes on 127.0.0.1) and the two-tower placement; each run in fresh processes because
device configuration is fixed at TensorFlow start-up. Data-parallel training of a global batch must
equal one-device training on it (VGG §3.3)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, os, sys
import numpy as np
strategy_name, out = sys.argv[1], sys.argv[2]
import tensorflow as tf
from keras_alexnet.training.strategy import configure_logical_cpus, make_strategy, is_chief
if strategy_name in ("mirrored", "towers"):
    configure_logical_cpus(2)
import keras
from keras_alexnet.training.optimizer import PaperSGD
from keras_alexnet.training.trainer import Trainer
from callbacks.lr_schedules import PlateauDecay

strategy, options = make_strategy(strategy_name)
rng = np.random.default_rng(0)
y = rng.integers(0, 4, 64).astype("int32")
x = rng.normal(size=(64, 8, 8, 3)).astype("float32") + y[:, None, None, None] * 0.2

def model():
    from keras_alexnet.towers import TowerConv2D
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(i)
    h = TowerConv2D(4, 3, groups=2, tower_devices=options.get("tower_devices"), name="conv2")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(4, name="fc8")(h)
    return keras.Model(i, keras.layers.Activation("softmax", name="softmax")(h))

def train_fn(ctx, epoch):
    # Every global batch of 16 is split between the input pipelines, then between their replicas.
    share, p = 16 // ctx.num_input_pipelines, ctx.input_pipeline_id
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16, drop_remainder=True)
    ds = ds.map(lambda a, b: (a[p * share:(p + 1) * share], b[p * share:(p + 1) * share])).unbatch()
    return ds.batch(ctx.get_per_replica_batch_size(16), drop_remainder=True)

def val_fn(ctx):
    ds = tf.data.Dataset.from_tensor_slices((x[:40], y[:40]))
    if ctx.num_input_pipelines > 1:
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.batch(ctx.get_per_replica_batch_size(16))

trainer = Trainer(strategy, model, lambda: PaperSGD(0.05), train_fn, steps_per_epoch=4, epochs=2,
                  global_batch_size=16, val_dataset_fn=val_fn, val_examples=40, is_chief=is_chief(strategy),
                  checkpoint_dir=os.path.join(os.path.dirname(out), "ckpt"), checkpoint_every_steps=3)
history = trainer.fit([PlateauDecay(printer=lambda m: None)])
if is_chief(strategy):
    np.savez(out, *trainer.model.get_weights())
    with open(out + ".json", "w") as f:
        json.dump({k: [float(v) for v in vs] for k, vs in history.history.items()}
                  | {"replicas": strategy.num_replicas_in_sync}, f)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script, name, out, extra_env=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, str(script), name, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc):
    output, _ = proc.communicate(timeout=420)
    assert proc.returncode == 0, output[-3000:]


def load(out):
    with np.load(str(out)) as data:
        weights = [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]
    with open(str(out) + ".json") as f:
        return weights, json.load(f)


def run_one(tmp_path, name):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    (tmp_path / name).mkdir()
    out = tmp_path / name / "weights.npz"
    finish(launch(script, name, out))
    return load(out)


def assert_same_training(a, b):
    (wa, ha), (wb, hb) = a, b
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    for key in ("loss", "val_loss", "val_top1_error"):
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-4)


def test_mirrored_two_logical_cpus_equals_one_device(tmp_path):
    single = run_one(tmp_path, "default")
    mirrored = run_one(tmp_path, "mirrored")
    assert mirrored[1]["replicas"] == 2
    assert_same_training(single, mirrored)


def test_two_towers_on_two_logical_cpus_equals_one_device(tmp_path):
    single = run_one(tmp_path, "default")
    towers = run_one(tmp_path, "towers")
    assert_same_training(single, towers)


def test_multi_worker_two_local_processes(tmp_path):
    single = run_one(tmp_path, "default")
    script = tmp_path / "train.py"
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        (tmp_path / f"worker{index}").mkdir()
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(launch(script, "multi_worker", tmp_path / f"worker{index}" / "weights.npz",
                            {"TF_CONFIG": tf_config}))
    for proc in procs:
        finish(proc)
    multi = load(tmp_path / "worker0" / "weights.npz")
    assert multi[1]["replicas"] == 2
    assert not os.path.exists(tmp_path / "worker1" / "weights.npz")  # only the chief writes
    assert_same_training(single, multi)


def test_main_py_train_multi_worker_two_local_processes(tmp_path):
    """`main.py train --strategy=multi_worker` on real Fashion-MNIST images: two workers on 127.0.0.1
    train together, each in a working folder of its own (as on two hosts, the same --data_dir); only the
    chief writes run files, the other removes its temporary ones."""
    import csv

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_train_cli import make_fashion_dir

    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 64, "test": 64})
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    for index in range(2):
        for folder in (f"host{index}", f"tmp{index}"):
            (tmp_path / folder).mkdir()

    def train_on_both():
        procs = []
        for index in range(2):
            env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                       TMPDIR=str(tmp_path / f"tmp{index}"),
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "main.py"), "train", f"--data_dir={data_dir}",
                 "--strategy=multi_worker", "--width=0.125", "--image_size=64", "--resize_size=72",
                 "--epochs=2", "--steps_per_epoch=3", "--batch_size=32", "--pca_jitter_std=0", "--noexport",
                 "--noprogress", "--run_name=mw", "--checkpoint_every_steps=2"],
                cwd=tmp_path / f"host{index}", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = []
        for proc in procs:
            try:
                output, _ = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"worker still running after 600 s (killed): {proc.communicate()[0][-3000:]}")
            outputs.append(output)
            assert proc.returncode == 0, output[-3000:]
        return outputs

    outputs = train_on_both()
    assert "2 replica(s) (multi_worker)" in outputs[0] and "epoch 2/2 |" in outputs[0]
    assert "epoch 2/2 |" not in outputs[1]  # the other worker trains silently
    run_dir = tmp_path / "host0" / "runs" / "mw"
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    assert {"run.json", "stats.npz", "checkpoints", "logs", "metrics.csv", "model.keras"} <= set(os.listdir(run_dir))
    assert any(name.startswith("ckpt-") for name in os.listdir(run_dir / "checkpoints"))
    assert os.listdir(tmp_path / "host1") == [] and os.listdir(tmp_path / "tmp1") == []
    # The same commands again: the chief's run finished, which the other worker learns from it (its own
    # folder holds no run), so both stop at once
    chief, other = train_on_both()
    assert "This run finished on" in chief and "epoch 1/2 |" not in chief + other
    assert os.listdir(tmp_path / "host1") == [] and os.listdir(tmp_path / "tmp1") == []
