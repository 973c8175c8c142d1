"""Leftovers of killed runs removed at the next start (issue 13, part 7): the hidden `.tmp-export-*`
folders of killed exports (but not those of exports still running) and the `ckpt-N_temp` folders of
checkpoint saves killed midway. (prepare's `.tmp` files: tests/test_prepare_real_folders.py.)"""

import os
import subprocess
import sys

import keras

from keras_alexnet import export
from keras_alexnet.training import checkpointing
from tests.test_export import CLASSES, NAMES, RESIZE, SIZE, tiny_model


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
