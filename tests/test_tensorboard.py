"""A short run's logs read through a real TensorBoard's HTTP data API, as the browser reads them.

One tiny `main.py train` run (two epochs, 10-crop validation and test) is shared by the tests; a
TensorBoard server is started on its `logs/` folder on a free port and stopped after them. The tests
ask it what a user sees: the `epoch` tag group (loss, top-1 and top-5 error with train and validation
on one chart, AlexNet §6's measures), the learning rate at every step (AlexNet §5's schedule), the
hparams table with its metrics and the run name as the trial, and the conv1 kernels (AlexNet Figure 3).
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.test_train_cli import main_py, make_fashion_dir

TRIAL = "tb"
EPOCHS, STEPS = 2, 8  # 256 training images in batches of 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tensorboard")
    data_dir = make_fashion_dir(str(tmp / "data"), {"train": 256, "validation": 64, "test": 64})
    result = main_py([f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
                      "--init=glorot", "--learning_rate=0.02", "--lr_schedule=linear", "--warmup_epochs=0.5",
                      f"--epochs={EPOCHS}", "--batch_size=32", "--pca_jitter_std=0", "--ten_crop_every=1",
                      "--test_split=test", f"--run_name={TRIAL}", "--noexport", "--noprogress",
                      "--log_every_steps=1"], cwd=tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp / "runs" / TRIAL


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class TensorBoard:
    """A TensorBoard server on `logdir`; `get(path)` and `post(path, body)` return decoded JSON."""

    def __init__(self, logdir):
        self.port = _free_port()
        tool = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        assert os.path.exists(tool), f"{tool} missing: requirements.txt installs tensorboard"
        self.process = subprocess.Popen(
            [tool, f"--logdir={logdir}", f"--port={self.port}", "--host=localhost", "--load_fast=false",
             "--reload_interval=1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))

    def raw(self, path, body=None):
        request = urllib.request.Request(f"http://localhost:{self.port}{path}",
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def get(self, path, **query):
        return json.loads(self.raw(path + ("?" + urllib.parse.urlencode(query) if query else "")))

    def post(self, path, body):
        return json.loads(self.raw(path, body))

    def wait(self, ready, timeout=120):
        """Polls until the server answers and `ready(self)` is true (the logs are loaded)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.process.stderr.read().decode()[-3000:]
            try:
                if ready(self):
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            assert time.monotonic() < deadline, f"TensorBoard on port {self.port} not ready after {timeout} s"
            time.sleep(0.5)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()


def _loaded(board):
    runs = board.get("/data/runs")
    return f"{TRIAL}/test_10crop" in runs and f"{TRIAL}" in board.get("/data/plugin/images/tags")


@pytest.fixture(scope="module")
def board(run_dir):
    server = TensorBoard(str(run_dir / "logs"))
    try:
        server.wait(_loaded)
        yield server
    finally:
        server.stop()


def test_runs_are_the_trials_sources_and_nothing_stray(board):
    runs = set(board.get("/data/runs"))
    assert {f"{TRIAL}/train", f"{TRIAL}/validation", f"{TRIAL}/validation_10crop", f"{TRIAL}/test_10crop"} <= runs
    assert "." not in runs and not any(run.endswith("ten_crop") for run in runs), runs


def test_epoch_group_holds_loss_and_errors_of_train_and_validation(board):
    tags = board.get("/data/plugin/scalars/tags")
    for run in ("train", "validation"):
        assert {"epoch/loss", "epoch/top1_error", "epoch/top5_error"} <= set(tags[f"{TRIAL}/{run}"]), tags
    for run in ("validation_10crop", "test_10crop"):
        assert {"epoch/top1_error", "epoch/top5_error"} <= set(tags[f"{TRIAL}/{run}"]), tags
    assert "[AlexNet §6]" in tags[f"{TRIAL}/train"]["epoch/top5_error"]["description"]
    # One chart per quantity: the same tag in several runs (TensorBoard draws a line per run).
    for tag in ("epoch/loss", "epoch/top1_error", "epoch/top5_error"):
        for run in ("train", "validation"):
            points = board.get("/data/plugin/scalars/scalars", run=f"{TRIAL}/{run}", tag=tag)
            assert [step for _, step, _ in points] == list(range(1, EPOCHS + 1)), (run, tag, points)
            assert all(np.isfinite(value) and value >= 0 for _, _, value in points)
    test = board.get("/data/plugin/scalars/scalars", run=f"{TRIAL}/test_10crop", tag="epoch/top1_error")
    assert [step for _, step, _ in test] == [EPOCHS] and 0 <= test[0][2] <= 1
    flat = {tag for run_tags in tags.values() for tag in run_tags}
    assert "epoch/dropped_records" not in flat  # no chart of zeros


def test_learning_rate_has_one_point_per_step(board):
    points = board.get("/data/plugin/scalars/scalars", run=f"{TRIAL}/train", tag="training/learning_rate")
    steps = [step for _, step, _ in points]
    assert steps == list(range(1, EPOCHS * STEPS + 1)), steps
    values = [value for _, _, value in points]
    warmup = int(0.5 * STEPS)
    assert values[0] < values[warmup - 1] and values[-1] < values[warmup]  # warm-up visible, then decay
    assert max(values) == pytest.approx(0.02, rel=1e-5)
    images_per_sec = board.get("/data/plugin/scalars/scalars", run=f"{TRIAL}/train", tag="training/images_per_sec")
    assert images_per_sec and all(value > 0 for _, _, value in images_per_sec)


def test_hparams_have_metrics_and_the_run_name_as_trial(board):
    experiment = board.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert {"architecture", "learning_rate", "batch_size", "width", "image_size", "lrn", "epochs"} <= set(infos)
    # Typed columns: a boolean is a boolean, counts and rates are numbers, choices strings.
    assert infos["lrn"]["type"] == "DATA_TYPE_BOOL" and infos["extra_conv"]["type"] == "DATA_TYPE_BOOL"
    assert infos["batch_size"]["type"] == infos["learning_rate"]["type"] == "DATA_TYPE_FLOAT64"
    assert infos["architecture"]["type"] == infos["scale_jitter"]["type"] == "DATA_TYPE_STRING"
    # The dashboard ticks the first five columns, in this order (the flagged first): for a run alone, the
    # model, its width and the recipe's learning rate, batch size and epochs.
    first = [info["name"] for info in experiment["hparamInfos"][:5]]
    assert first == ["architecture", "batch_size", "epochs", "learning_rate", "width"], first
    assert all(infos[name].get("differs") for name in first) and not infos["activation"].get("differs")
    # Metrics in column order, the first five ticked: test and validation errors first.
    metrics = [(m["name"]["group"], m["name"]["tag"], m.get("displayName")) for m in experiment["metricInfos"]]
    assert metrics[:5] == [("test_10crop", "epoch/top1_error", "test top-1 error (10-crop)"),
                           ("test_10crop", "epoch/top5_error", "test top-5 error (10-crop)"),
                           ("validation_10crop", "epoch/top1_error", "validation top-1 error (10-crop)"),
                           ("validation_10crop", "epoch/top5_error", "validation top-5 error (10-crop)"),
                           ("validation", "epoch/top1_error", "validation top-1 error (centre)")], metrics
    assert {("validation", "epoch/top5_error"), ("train", "epoch/top1_error")} <= {m[:2] for m in metrics}
    groups = board.post("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_RUNNING"],
        "colParams": [], "startIndex": 0, "sliceSize": 100})
    assert [group["name"] for group in groups["sessionGroups"]] == [TRIAL], groups
    group = groups["sessionGroups"][0]
    assert group["hparams"]["architecture"] == "alexnet" and group["hparams"]["learning_rate"] == pytest.approx(0.02)
    assert group["hparams"]["lrn"] is True and group["hparams"]["batch_size"] == 32
    assert group["hparams"]["scale_jitter"] == "none"
    session = group["sessions"][0]
    assert session["name"] == TRIAL and session["status"] == "STATUS_SUCCESS", session
    values = {(m["name"]["group"], m["name"]["tag"]): m for m in session["metricValues"]}
    for key in (("validation", "epoch/top1_error"), ("validation_10crop", "epoch/top5_error"),
                ("test_10crop", "epoch/top1_error")):
        assert 0 <= values[key]["value"] <= 1 and values[key]["trainingStep"] == EPOCHS, (key, values)


def test_hparams_shown_first_are_those_that_differ_between_the_runs_beside(tmp_path):
    from keras_alexnet import runs
    from keras_alexnet.training.callbacks import KEY_HPARAMS, hparams, hparams_shown_first
    from keras_alexnet.training.presets import default_run_config

    def run(name, **overrides):
        config = default_run_config(str(tmp_path / "data"), dict(runs_dir=str(tmp_path / "study"),
                                                                   run_name=name, **overrides)).resolve()
        return config, hparams(config, 1)

    alone, values = run("baseline_seed0")
    assert hparams_shown_first(alone, values) == list(KEY_HPARAMS)  # nothing to tell it apart from
    for name, overrides in (("baseline_seed0", {}), ("baseline_seed1", {"seed": 1}), ("no_lrn_seed0", {"lrn": False})):
        config, _ = run(name, **overrides)
        runs.write_record(config.run_dir, runs.RunRecord("alexnet", 10, [], 64, 72, "image", config=config.to_dict()))
    os.makedirs(tmp_path / "study" / "not_a_run")  # passed over, as is a run.json that is not a training run's
    runs.write_record(str(tmp_path / "study" / "imported"), runs.RunRecord("vgg16", 10, [], 224, 256, "rgb"))
    config, values = run("dropout_seed0", dropout=0.0)
    assert values["lrn"] is True and isinstance(values["batch_size"], int) and isinstance(values["width"], float)
    assert hparams_shown_first(config, values) == ["dropout", "lrn", "seed"]


def test_conv1_kernels_image_is_large_and_per_epoch(board):
    from PIL import Image

    tags = board.get("/data/plugin/images/tags")
    assert "weights/conv1_kernels" in tags[TRIAL], tags
    assert "training_inputs/augmented" in tags[f"{TRIAL}/train"], tags
    samples = board.get("/data/plugin/images/images", run=TRIAL, tag="weights/conv1_kernels", sample=0)
    assert [s["step"] for s in samples] == list(range(0, EPOCHS + 1)), samples  # at the start, then each epoch
    picture = Image.open(io.BytesIO(board.raw("/data/plugin/images/individualImage?" + samples[-1]["query"])))
    assert picture.width >= 600, picture.size
    pixels = np.asarray(picture.convert("RGB"), np.float32)
    assert pixels.std() > 10  # kernels and titles, not a blank card
    inputs = board.get("/data/plugin/images/images", run=f"{TRIAL}/train", tag="training_inputs/augmented", sample=0)
    shown = Image.open(io.BytesIO(board.raw("/data/plugin/images/individualImage?" + inputs[0]["query"])))
    assert np.asarray(shown.convert("RGB"), np.float32).std() > 10
