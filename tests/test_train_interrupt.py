"""Ctrl-C (SIGINT) to `main.py train` in its 10-crop validation, then the printed resume command; and the
same command again once the run has finished.

The signal is sent when the 10-crop progress line appears on stdout: the line is printed as the phase
starts, before its first batch is traced (seconds), so the signal lands inside the evaluation.
"""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys

from keras_alexnet import export
from tests.test_train_cli import ROOT, make_fashion_dir

TEN_CROP_LINE = "validation (10 crops)"


def _train(args, cwd, interrupt_on=None):
    """(exit code, stdout and stderr merged) of `main.py train ARGS`; SIGINT once a line holds `interrupt_on`."""
    return _run([sys.executable, os.path.join(ROOT, "main.py"), "train"] + args, cwd, interrupt_on)


def _run(command, cwd, interrupt_on=None):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, sent = [], False
    try:
        for line in proc.stdout:
            lines.append(line)
            if interrupt_on and not sent and interrupt_on in line:
                proc.send_signal(signal.SIGINT)
                sent = True
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert interrupt_on is None or sent, "".join(lines)[-3000:]
    return proc.returncode, "".join(lines)


def _resume_command(output):
    line = [line for line in output.splitlines() if "resume with: " in line][-1]
    return shlex.split(line.split("resume with: ", 1)[1])


def _common(tmp_path, data_dir, name):
    return [f"--data_dir={data_dir}", "--width=0.125", "--image_size=63", "--resize_size=72", "--batch_size=32",
            "--pca_jitter_std=0", "--noprogress", f"--run_name={name}", f"--export_dir={tmp_path / 'saved_models'}"]


def test_ctrl_c_in_an_epochs_ten_crop_validation_saves_and_resumes(tmp_path):
    """The 10-crop pass of epoch 1 (of 2) is stopped: a checkpoint is saved, and the printed command
    resumes with epoch 1's end (its 10-crop again), then epoch 2: both epochs' rows are complete."""
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 64, "validation": 160, "test": 8})
    args = _common(tmp_path, data_dir, "periodic") + ["--epochs=2", "--ten_crop_every=1", "--noexport"]
    code, out = _train(args, tmp_path, interrupt_on=TEN_CROP_LINE)
    assert code == 130, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("main.py train: error: SIGINT: stopped during the 10-crop validation at step 2, "
                           "checkpoint saved: "), last
    assert "Traceback" not in out and "epoch 1/2 |" not in out  # stopped inside epoch 1's end
    code, out = _run(_resume_command(out), tmp_path)  # the printed command, as it is
    assert code == 0, out[-3000:]
    assert "Resuming from" in out and "epoch 1/2 |" in out and "epoch 2/2 |" in out and "Done in" in out
    with open(tmp_path / "runs" / "periodic" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["ten_crop_top1_error"] for r in rows), rows


def test_ctrl_c_in_the_final_ten_crop_validation_then_a_finished_run_does_nothing(tmp_path):
    """Stopped in the final 10-crop pass: the last checkpoint is current, and resuming runs the end of the
    run (10-crop, model, test, export). The same command on the finished run then says so, at once,
    and exports no second version."""
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 64, "validation": 160, "test": 8})
    args = _common(tmp_path, data_dir, "final") + ["--epochs=1", "--ten_crop_every=0", "--test_split=test"]
    code, out = _train(args, tmp_path, interrupt_on=TEN_CROP_LINE)
    assert code == 130, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert "SIGINT: stopped during the final 10-crop validation at step 2, the last checkpoint is current: " in last
    assert not os.path.exists(tmp_path / "saved_models" / "final")
    code, out = _run(_resume_command(out), tmp_path)
    assert code == 0, out[-3000:]
    assert "10-crop validation [AlexNet §4.1]" in out and "SavedModel:" in out
    model_dir = str(tmp_path / "saved_models" / "final")
    assert export.list_versions(model_dir) == [1]

    code, again = _train(args, tmp_path)
    assert code == 0, again[-3000:]
    with open(tmp_path / "runs" / "final" / "run.json") as f:
        finished = json.load(f)["finished"]
    said = [line for line in again.splitlines() if line.startswith("This run finished on")]
    assert len(said) == 1 and "after 1 epoch." in said[0], again[-3000:]
    assert f"10-crop test: top-1 error {finished['test']['ten_crop']['top1_error']:.4f}" in said[0]
    assert f"SavedModel: {os.path.join(model_dir, '1')}." in said[0] and "--epochs above 1 trains on" in said[0]
    assert "Epoch" not in again and "Done in" not in again
    assert export.list_versions(model_dir) == [1]  # nothing new for TF Serving to switch to



def test_a_finished_run_trains_on_only_with_more_epochs(tmp_path):
    """`train` (the library call) on a finished run returns its record and exports nothing; a larger
    epoch cap trains the epochs added and exports a new version."""
    from keras_alexnet.training import config_from_values, train

    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 64, "validation": 32, "test": 8})
    values = {"data_dir": data_dir, "width": 0.125, "image_size": 63, "resize_size": 72, "batch_size": 32,
              "pca_jitter_std": 0.0, "progress": False, "ten_crop_every": 0, "epochs": 1,
              "runs_dir": str(tmp_path / "runs"), "run_name": "more", "export_dir": str(tmp_path / "saved_models")}
    first = train(config_from_values(values), printer=lambda message: None)
    said = []
    again = train(config_from_values(values), printer=said.append)
    assert again.finished_before and again.export_path == first.export_path and again.epochs_run == 1
    assert again.validation == first.validation and len(said) == 1 and said[0].startswith("This run finished")
    more = train(config_from_values(dict(values, epochs=2)), printer=lambda message: None)
    assert more.finished_before is None and more.epochs_run == 2 and list(more.history) and more.history["loss"]
    assert export.list_versions(str(tmp_path / "saved_models" / "more")) == [1, 2]
    assert train(config_from_values(dict(values, epochs=2)), printer=said.append).finished_before
