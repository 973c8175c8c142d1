"""`python main.py prepare` / `stats` as users run them: help, one-line errors, progress lines, and a
prepare killed mid-run (SIGKILL to its process group) that resumes to the same bytes as a clean run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipelines import prepare, records
from pipelines.sources import load
from tests.image_fixtures import make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600, **kw)


def test_help_lists_the_flags():
    result = _main("prepare", "--helpfull")
    assert result.returncode == 0
    for flag in ("--train", "--validation_labels", "--image_policy", "--label_offset", "--train_shards", "--seed"):
        assert flag in result.stdout
    assert _main("prepare", "--help").returncode == 0


@pytest.mark.parametrize("args, code, message", [
    (["--image_policy=squash", "--data_dir=x", "--train=x"], 2, "main.py prepare: error: flag --image_policy="),
    (["--nonsense=1"], 2, "main.py prepare: error: Unknown command line flag 'nonsense'"),
    (["--data_dir=/tmp/x"], 2, "main.py prepare: error: pass --train=PATH"),
    (["--data_dir=/tmp/x", "--train=/no/such/ILSVRC2012_img_train.tar"], 1,
     "main.py prepare: error: --train: /no/such/ILSVRC2012_img_train.tar: no such file or folder"),
])
def test_bad_flags_and_paths_are_one_line(args, code, message):
    result = _main("prepare", *args)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_stats_without_shards_is_one_line(tmp_path):
    result = _main("stats", f"--data_dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"main.py stats: error: {tmp_path}: no train shards (run `python main.py prepare` first)"]


def _big_folder(root):
    make_folder(root, classes=("a", "b", "c", "d"), kinds=("rgb_jpeg", "cmyk_jpeg", "png_as_jpeg", "grey_jpeg"),
                per_class=50, size=(160, 220))


def _shards(data_dir):
    return {os.path.basename(p): open(p, "rb").read() for s in records.SPLITS for p in records.list_shards(data_dir, s)}


def test_killed_prepare_resumes_to_the_same_bytes(tmp_path, capsys):
    images = str(tmp_path / "images")
    _big_folder(images)
    flags = ["--image_policy=vgg", "--stored_size=192", "--train_shards=20", "--seed=3", "--num_workers=2",
             "--progress_interval=0.5"]
    out = str(tmp_path / "out")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), "prepare", f"--train={images}",
                                f"--data_dir={out}", *flags], cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and len(records.list_shards(out, "train")) < 2:
        time.sleep(0.05)
    killed_while_running = process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stderr = process.stderr.read()
    assert killed_while_running, "prepare finished before it could be killed: " + stderr[-300:]
    complete_before = set(_shards(out))
    assert 2 <= len(complete_before) < 20
    assert not os.path.exists(os.path.join(out, records.METADATA_FILE))  # only a finished run writes it
    assert "images/s" in stderr and "ETA" in stderr

    config = dict(image_policy="vgg", image_size=192, seed=3, num_shards={"train": 20})
    source = load.from_paths(images)
    info = prepare.prepare(source, prepare.PrepareConfig(data_dir=out, num_workers=1, **config))
    # 20 training shards and one of the validation images held out by default (10% of the folder)
    assert f"{len(complete_before)} of 21 shards already complete" in capsys.readouterr().err

    reference = str(tmp_path / "reference")
    prepare.prepare(source, prepare.PrepareConfig(data_dir=reference, num_workers=1, **config))
    assert _shards(out) == _shards(reference)
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert info.splits == records.read_metadata(reference).splits


def test_prepare_and_stats_commands(tmp_path):
    images = str(tmp_path / "images")
    make_folder(images, per_class=2, size=(30, 40))
    out = str(tmp_path / "out")
    result = _main("prepare", f"--train={images}", f"--data_dir={out}", "--stored_size=16", "--label_offset=1",
                   "--num_workers=1")
    assert result.returncode == 0, result.stderr
    assert "train 6 images in 1 shards (0 skipped)" in result.stderr
    assert records.read_metadata(out).label_offset == 1
    result = _main("stats", f"--data_dir={out}", "--max_images=4")
    assert result.returncode == 0, result.stderr
    assert "4 images" in result.stdout and "stats: mean image, mean RGB" in result.stdout  # its progress line
    assert np.load(os.path.join(out, records.STATS_FILE))["mean_image"].shape == (16, 16, 3)
