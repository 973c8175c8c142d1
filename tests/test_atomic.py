"""`keras_alexnet.atomic`: a file is replaced whole or left as it was; the temporary never stays behind."""

import json
import os

import numpy as np
import pytest

from keras_alexnet import atomic
from keras_alexnet.errors import UserError


def test_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("old")
    atomic.write_text(str(text), "new ü")
    assert text.read_text(encoding="utf-8") == "new ü"
    data = {"x": [1, 2.5], "y": "z"}
    atomic.write_json(str(tmp_path / "b.json"), data)
    assert json.loads((tmp_path / "b.json").read_text()) == data
    arrays = {"mean_rgb": np.array([1.5, 2.0, 3.25], np.float32), "num_images": np.int64(7)}
    path = atomic.write_npz(str(tmp_path / "stats.npz"), arrays)
    with np.load(path) as loaded:
        assert sorted(loaded.files) == ["mean_rgb", "num_images"]
        np.testing.assert_array_equal(loaded["mean_rgb"], arrays["mean_rgb"])
        assert loaded["num_images"] == 7
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json", "stats.npz"]


def test_a_failing_block_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("epoch\n1\n")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic.replacing(str(target), newline="") as f:
            f.write("epoch\n1\n2\n")
            raise RuntimeError("midway")
    assert target.read_text() == "epoch\n1\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_an_os_error_is_one_line_naming_the_file_and_what_it_holds(tmp_path):
    target = tmp_path / "run.json"
    with pytest.raises(UserError) as failed:
        with atomic.replacing(str(target), what="the run record") as f:
            f.write("{")
            raise OSError(28, "No space left on device")
    assert str(failed.value) == f"{target}: cannot write the run record (No space left on device)"
    assert os.listdir(tmp_path) == []
    with pytest.raises(OSError):  # without `what` the error reaches the caller's own handling
        atomic.write_text(str(tmp_path / "missing" / "x.txt"), "x")


def test_replacing_path_hands_the_temporary_name_to_other_writers(tmp_path):
    final = tmp_path / "train-00000-of-00001"
    with atomic.replacing_path(str(final)) as temp:
        assert temp == str(final) + atomic.TEMP_SUFFIX
        with open(temp, "wb") as f:
            f.write(b"records")
        assert not final.exists()
    assert final.read_bytes() == b"records" and not os.path.exists(temp)
