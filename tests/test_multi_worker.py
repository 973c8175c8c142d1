"""Several machines: `main.py train --strategy=multi_worker` with two worker processes on 127.0.0.1, each in
a working folder of its own (as on separate hosts, with the same --data_dir): only the chief writes run
files; a worker killed with SIGKILL stops the other with one line, and the same two commands started again
resume from the chief's last checkpoint, which only the chief reads (`checkpointing.share_from_chief`), and the
scratch folders the killed worker left in its TMPDIR are removed."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from tests.test_strategies import ROOT, free_port

SHARE_SCRIPT = r'''
import json, os, sys
import numpy as np
mode, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
import tensorflow as tf
from keras_alexnet.training.strategy import make_strategy, is_chief
strategy, _ = make_strategy("default" if mode == "save" else "multi_worker")
import keras
from keras_alexnet.training.checkpointing import Checkpointer, RunState
from keras_alexnet.training.optimizer import PaperSGD

with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3, name="conv1"),
                              keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(5, name="fc8")])
    optimizer = PaperSGD(0.01)
    optimizer.build(model.trainable_variables)
state = RunState()
checkpointer = Checkpointer(folder, model, optimizer, state, is_chief=is_chief(strategy))
if mode == "save":  # a checkpoint unlike a fresh start in every value it holds
    rng = np.random.default_rng(7)
    for variable in model.variables + optimizer.variables:
        if "float" in variable.dtype:
            variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))
        else:
            variable.assign(variable + 1234)
    state.epoch.assign(3), state.step_in_epoch.assign(2), state.train_sums.assign([1.5, 2.0, 3.0, 64.0])
    state.finished.assign(True), state.callbacks_json.assign('{"PlateauDecay": {"wait": 2, "best": 0.25}}')
    path = checkpointer.save(17)
else:
    path = checkpointer.restore_latest(strategy)
    checkpointer.close()
values = {v.path: np.asarray(v.numpy()).tolist() for v in model.variables + optimizer.variables}
values.update(epoch=int(state.epoch.numpy()), step=int(state.step_in_epoch.numpy()),
              sums=state.train_sums.numpy().tolist(), finished=bool(state.finished.numpy()),
              callbacks=state.callbacks_json.numpy().decode(), path=path)
with open(out, "w") as f:
    json.dump(values, f)
'''


def _env(tmp_dir, task=None, cluster=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", TMPDIR=str(tmp_dir))
    env.pop("TF_CONFIG", None)
    if cluster is not None:
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}})
    os.makedirs(tmp_dir, exist_ok=True)
    return env


def test_the_other_workers_resume_from_the_checkpoint_only_the_chief_can_read(tmp_path):
    script = tmp_path / "share.py"
    script.write_text(SHARE_SCRIPT)
    saved = subprocess.run([sys.executable, str(script), "save", str(tmp_path / "ckpt"), str(tmp_path / "saved.json")],
                           env=_env(tmp_path / "tmp"), capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr[-3000:]
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    procs = []
    for task in range(2):  # the second worker's folder has no checkpoint: a host of its own
        folder = tmp_path / ("ckpt" if task == 0 else "worker1_ckpt")
        procs.append(subprocess.Popen([sys.executable, str(script), "restore", str(folder),
                                       str(tmp_path / f"restored{task}.json")],
                                      env=_env(tmp_path / f"tmp{task}", task, cluster),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    expected = json.loads((tmp_path / "saved.json").read_text())
    assert expected["path"].endswith("ckpt-17") and expected["epoch"] == 3
    for task in range(2):
        restored = json.loads((tmp_path / f"restored{task}.json").read_text())
        assert sorted(restored) == sorted(expected)
        for key, value in expected.items():
            if isinstance(value, list):
                np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(value), err_msg=key)
            else:
                assert restored[key] == value, key
    assert not (tmp_path / "worker1_ckpt").exists() and os.listdir(tmp_path / "tmp1") == []


def _train_command(data_dir):
    return [sys.executable, os.path.join(ROOT, "main.py"), "train", f"--data_dir={data_dir}",
            "--strategy=multi_worker", "--width=0.125", "--image_size=64", "--resize_size=72", "--epochs=3",
            "--steps_per_epoch=4", "--batch_size=32", "--pca_jitter_std=0", "--noexport", "--noprogress",
            "--run_name=mw", "--checkpoint_every_steps=2", "--ten_crop_every=0"]


def _start(tmp_path, data_dir, cluster, extra=()):
    """Both workers, each in its own folder host<k>/ with its own TMPDIR tmp<k>/ (kept between attempts, as a
    host's); the same commands every attempt."""
    procs = []
    for task in range(2):
        host = tmp_path / f"host{task}"
        host.mkdir(exist_ok=True)
        procs.append(subprocess.Popen(_train_command(data_dir) + list(extra), cwd=host,
                                      env=_env(tmp_path / f"tmp{task}", task, cluster),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _scratch_folders(tmp_dir):
    return sorted(name for name in os.listdir(tmp_dir) if name.startswith("keras_alexnet_"))


def _finish(proc, timeout):
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()
        raise AssertionError(f"worker still running after {timeout} s (killed): {output[0][-2000:]}")


def test_kill_9_of_a_worker_then_the_same_commands_resume_from_the_chiefs_checkpoint(tmp_path):
    """MultiWorkerMirroredStrategy is not elastic: SIGKILL of worker 1 after the checkpoint of step 6 stops
    the chief (its next collective fails) with one line; both commands again resume and finish the run."""
    from tests.test_train_cli import make_fashion_dir

    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 32, "test": 32})
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    checkpoints = tmp_path / "host0" / "runs" / "mw" / "checkpoints"
    chief, other = _start(tmp_path, data_dir, cluster)
    deadline = time.time() + 240
    while not (checkpoints / "ckpt-6.index").exists():  # epoch 2, step 2 of 4
        assert chief.poll() is None and other.poll() is None and time.time() < deadline, _finish(chief, 5)
        time.sleep(0.1)
    other.kill()
    other.wait()
    left = _scratch_folders(tmp_path / "tmp1")  # SIGKILL: no cleanup; named with the pid, removed at the next start
    assert [re.sub(r"-\w+$", "", name) for name in left] == [f"keras_alexnet_checkpoints_{other.pid}",
                                                           f"keras_alexnet_stats_{other.pid}"], left
    _, error = _finish(chief, timeout=120)
    assert chief.returncode == 1
    last = error.strip().splitlines()[-1]
    assert last.startswith("main.py train: error: --strategy=multi_worker: a worker of the cluster stopped or "
                           "cannot be reached (") and "Traceback" not in error
    resumable = re.search(r"start every worker again with its same command to resume from "
                          r"runs/mw/checkpoints/ckpt-(\d+)$", last)
    assert resumable and int(resumable.group(1)) >= 6, last

    chief, other = _start(tmp_path, data_dir, cluster)
    (output, error), (other_output, other_error) = _finish(chief, 300), _finish(other, 60)
    assert chief.returncode == 0 and other.returncode == 0, (error + other_error)[-3000:]
    assert "Resuming from runs/mw/checkpoints/ckpt-" in output and "epoch 3/3 |" in output
    assert "Resuming" not in other_output and "epoch 3/3 |" not in other_output  # the other trains silently
    with open(checkpoints.parent / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    assert {"run.json", "stats.npz", "checkpoints", "logs", "metrics.csv", "model.keras"} <= set(
        os.listdir(checkpoints.parent))
    assert os.listdir(tmp_path / "host1") == []  # the other worker's folder: nothing written
    assert _scratch_folders(tmp_path / "tmp1") == []  # its scratch folders, and those the killed worker left
    # (TensorFlow's own __autograph_generated_file*.py of the killed process stay: not ours to remove)


def test_a_signal_to_one_worker_stops_every_worker_at_the_same_step_with_a_fresh_checkpoint(tmp_path):
    """SIGTERM to worker 1 only: its stop vote rides the next step's all-reduce, so both stop after that
    same step (none waits for the other in a collective operation), the chief saves a checkpoint of it,
    and both exit 130 with one line naming that step."""
    from tests.test_train_cli import make_fashion_dir

    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 32, "test": 32})
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    checkpoints = tmp_path / "host0" / "runs" / "mw" / "checkpoints"
    procs = _start(tmp_path, data_dir, cluster, extra=["--epochs=40"])  # far more steps than the test waits for
    chief, other = procs
    deadline = time.time() + 240
    while not (checkpoints / "ckpt-2.index").exists():
        assert chief.poll() is None and other.poll() is None and time.time() < deadline, _finish(chief, 5)
        time.sleep(0.1)
    other.send_signal(signal.SIGTERM)
    (_, error), (_, other_error) = _finish(chief, 120), _finish(other, 60)
    assert (chief.returncode, other.returncode) == (130, 130), (error + other_error)[-3000:]
    assert "Traceback" not in error + other_error
    chief_line, other_line = error.strip().splitlines()[-1], other_error.strip().splitlines()[-1]
    stopped = re.fullmatch(r"main\.py train: error: a signal to another worker: stopped during training at step "
                           r"(\d+), checkpoint saved: runs/mw/checkpoints/ckpt-(\d+); resume with: .+", chief_line)
    assert stopped and stopped.group(1) == stopped.group(2), chief_line
    step = int(stopped.group(1))
    assert step > 2 and step < 160  # after the signal, long before the run's end
    assert re.fullmatch(rf"main\.py train: error: SIGTERM: stopped during training at step {step}, the chief's last "
                        r"checkpoint is the one to resume from; resume with: .+", other_line), other_line
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(checkpoints)) == str(checkpoints / f"ckpt-{step}")
