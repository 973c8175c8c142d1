"""Leftovers of killed runs: the hidden `.tmp-export-*` folders of killed exports
(but not those of exports still running) and the `ckpt-N_temp` folders of checkpoint saves killed
midway are removed at the next start, and so are the scratch folders in $TMPDIR of killed processes
(`keras_alexnet.scratch`, named with their pid); the workers of a killed `prepare` stop with it. (prepare's `.tmp`
files: tests/test_prepare_real_folders.py.)"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import keras

from keras_alexnet import export, scratch
from keras_alexnet.training import checkpointing
from pipelines import records
from tests.image_fixtures import make_folder
from tests.test_export import CLASSES, NAMES, RESIZE, SIZE, tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_export_removes_temporaries_of_killed_exports_only(tmp_path):
    model_dir = tmp_path / "tiny"
    stale = [model_dir / f".tmp-export-{_dead_pid()}-0123abcd", model_dir / ".tmp-export-5f2c9e"]  # old naming
    live = model_dir / f".tmp-export-{os.getpid()}-feedbeef"  # an export running beside this one
    for folder in stale + [live]:
        os.makedirs(folder / "variables")
        (folder / "saved_model.pb").write_bytes(b"half written")
    path = export.export_saved_model(tiny_model(), str(tmp_path), "tiny", class_names=NAMES, image_size=SIZE,
                                     resize_size=RESIZE)
    assert path == str(model_dir / "1")
    assert sorted(os.listdir(model_dir)) == sorted(["1", live.name])


def test_a_checkpoint_save_killed_midway_is_removed_when_the_run_starts(tmp_path):
    directory = tmp_path / "checkpoints"
    partial = directory / "ckpt-40_temp"
    os.makedirs(partial)
    (partial / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 1024)
    (directory / "keep_me_temp").write_text("not a checkpoint save")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(CLASSES)])
    optimizer = keras.optimizers.SGD()
    checkpointer = checkpointing.Checkpointer(str(directory), model, optimizer, checkpointing.RunState())
    assert sorted(os.listdir(directory)) == ["keep_me_temp"]
    assert checkpointer.save(3).endswith("ckpt-3")  # and saving still works
    assert checkpointer.restore_latest() == str(directory / "ckpt-3")


def _children(pid: int) -> list:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may stay unreaped in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_workers_of_a_killed_prepare_stop_with_it(tmp_path):
    """SIGKILL to `prepare` alone (not its process group): its workers stop mid-shard instead of
    finishing their shards for nobody; the next start removes the `.tmp` they leave."""
    images, data = tmp_path / "images", tmp_path / "data"
    make_folder(str(images), classes=("a", "b"), kinds=("rgb_jpeg",), per_class=600, size=(200, 200))  # shards of seconds
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "main.py"), "prepare", f"--train={images}", f"--data_dir={data}",
         "--num_workers=2", "--train_shards=2", "--validation_holdout=0", "--progress_interval=0.2"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for line in process.stderr:
        if line.startswith("prepare: ") and not line.startswith("prepare: 0/"):
            break  # the workers are writing their shards
    workers = _children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    complete_at_kill = records.list_shards(str(data), "train")  # a fast worker may have finished one
    process.wait()
    process.stderr.close()
    for _ in range(1200):  # at most 2 minutes; the workers stop within a fraction of a second
        if not any(_running(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert not any(_running(pid) for pid in workers)
    assert records.list_shards(str(data), "train") == complete_at_kill  # none completed after the parent died


def test_scratch_folders_of_dead_processes_are_removed_when_one_is_made(tmp_path, monkeypatch):
    """A multi-worker worker killed with SIGKILL leaves its scratch folders in $TMPDIR: the next one made
    removes them; those of live processes (another worker on the host) and other programs' are kept."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = _dead_pid()
    stale = [tmp_path / f"keras_alexnet_stats_{dead}-ab_12cd", tmp_path / f"keras_alexnet_checkpoints_{dead}-x9"]
    kept = [tmp_path / f"keras_alexnet_stats_{os.getpid()}-live", tmp_path / f"other_tool_{dead}-x",
            tmp_path / "keras_alexnet_stats_nopid-x"]
    for folder in stale + kept:
        os.makedirs(folder / "checkpoints")
        (folder / "stats.npz").write_bytes(b"left behind")
    made = scratch.make("checkpoints")
    assert os.path.dirname(made) == str(tmp_path)
    assert re.fullmatch(rf"keras_alexnet_checkpoints_{os.getpid()}-\w+", os.path.basename(made))
    assert sorted(os.listdir(tmp_path)) == sorted([f.name for f in kept] + [os.path.basename(made)])
    assert os.listdir(made) == []
