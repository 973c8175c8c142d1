"""Off the happy path with real runs: two tiny runs (AlexNet and VGG-A, a few steps on real Fashion-MNIST
images) trained through `main.py train` from their project folder with relative paths, then used from
elsewhere and with awkward inputs.

- `run.json` records its paths absolute: `evaluate --model=ABSOLUTE` from another folder needs no
  --data_dir; a relative path an older run.json holds is resolved against the folder `train` ran in
  (the run folder's place under the recorded --runs_dir), then the current folder, else named in one line.
- `evaluate --ensemble` of the AlexNet (Q=67, mean image) and the VGG net (Q=72, mean RGB): each model at
  its own settings, softmax averaged.
- `neighbors --layer=conv1`: feature maps compared as flattened vectors.
- `train --batch_size` larger than the data with --steps_per_epoch: one line, exit 2.
- a byte-flipped `.keras` and a zip that is not a model: one line in every command that loads a model.
- `predict` on a folder holding a FIFO named like an image, mixed-case extensions, GIF/BMP/WebP.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from keras_alexnet import runs
from tests.image_fixtures import image_bytes
from tests.test_bad_input_cli import _assert_one_line, _driver_command, _run
from tests.test_train_cli import ROOT, make_fashion_dir

TINY = ["--width=0.125", "--image_size=63", "--epochs=1", "--steps_per_epoch=2", "--batch_size=16",
        "--pca_jitter_std=0", "--ten_crop_every=0", "--noprogress", "--shuffle_buffer=64"]


def _main(command, args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), command] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`project/data` and two runs trained in `project/` with relative --data_dir and --runs_dir:
    runs/tiny (AlexNet, Q=67, exported to saved_models/tiny) and runs/vgg (VGG-A, Q=72)."""
    project = tmp_path_factory.mktemp("project")
    make_fashion_dir(str(project / "data"), counts={"train": 64, "validation": 16, "test": 16}, size=72)
    _ok(_main("train", ["--data_dir=data", "--runs_dir=runs", "--run_name=tiny", "--resize_size=67"] + TINY,
              cwd=project))
    _ok(_main("train", ["--data_dir=data", "--runs_dir=runs", "--run_name=vgg", "--architecture=vgg_a",
                        "--resize_size=72", "--noexport"] + TINY, cwd=project))
    return project


def test_run_json_records_absolute_paths(project):
    record = runs.read_record(str(project / "runs" / "tiny"))
    assert record.data_source == str(project / "data")
    assert record.config["data"]["data_dir"] == str(project / "data")
    assert record.config["runs_dir"] == str(project / "runs")
    assert record.config["export_dir"] == str(project / "saved_models")
    assert record.config["data"]["stats_path"] is None  # not given: the data folder's, copied into the run
    assert record.config["run_name"] == "tiny"  # a name, not a path


def test_evaluate_from_another_folder_without_data_dir(project, tmp_path):
    _ok(_main("evaluate", [f"--model={project / 'runs' / 'tiny'}", f"--output_dir={tmp_path / 'out'}",
                           "--max_examples=8"], cwd=tmp_path))
    assert (tmp_path / "out" / "errors.csv").is_file()


def test_an_older_relative_record_is_resolved_or_named(project, tmp_path):
    """run.json as the previous version wrote it: the data folder relative to where train ran."""
    moved = tmp_path / "copy"
    shutil.copytree(project / "runs" / "tiny", moved / "runs" / "tiny")  # the project moved elsewhere
    shutil.copytree(project / "data", moved / "data")
    run = moved / "runs" / "tiny"
    run_json = run / runs.RUN_FILE
    values = json.loads(run_json.read_text())
    values["data_source"] = "data"
    values["config"]["data"]["data_dir"] = "data"
    values["config"]["runs_dir"] = "runs"
    run_json.write_text(json.dumps(values))
    assert runs.resolve_recorded_path(str(run), runs.read_record(str(run)), "data") == str(moved / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _ok(_main("evaluate", [f"--model={run}", f"--output_dir={tmp_path / 'out'}", "--max_examples=8"], cwd=elsewhere))

    values["config"]["runs_dir"] = "somewhere/else"  # the folder train ran in cannot be told
    run_json.write_text(json.dumps(values))
    result = _main("evaluate", [f"--model={run}"], cwd=elsewhere)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"main.py evaluate: error: --data_dir is required: {run_json} records the "
                                     "data folder data relative to the folder train ran in (an older run.json), "
                                     "not found from here")
    # ...but found relative to the current folder, as before
    _ok(_main("evaluate", [f"--model={run}", f"--output_dir={tmp_path / 'out2'}", "--max_examples=8"], cwd=moved))


def test_resolve_recorded_path(tmp_path):
    run = tmp_path / "proj" / "runs" / "a"
    (tmp_path / "proj" / "d").mkdir(parents=True)
    run.mkdir(parents=True)
    record = runs.RunRecord("alexnet", 2, ["a", "b"], 63, 67, "image", config={"runs_dir": "runs", "run_name": "a"})
    assert runs.resolve_recorded_path(str(run), record, "d") == str(tmp_path / "proj" / "d")
    assert runs.resolve_recorded_path(str(run), record, str(tmp_path / "proj" / "d")) == str(tmp_path / "proj" / "d")
    assert runs.resolve_recorded_path(str(run), record, "missing") is None
    assert runs.resolve_recorded_path(str(run), record, "") is None
    record.config = {"runs_dir": "../runs", "run_name": "a"}  # cannot be told: only the current folder is tried
    assert runs.resolve_recorded_path(str(run), record, "d") is None
    absolute = runs.absolute_paths({"runs_dir": "r", "warm_start": None, "init_from": "",
                                    "data": {"data_dir": "x", "cache": True, "stats_path": "s.npz"}})
    assert absolute == {"runs_dir": os.path.abspath("r"), "warm_start": None, "init_from": "",
                        "data": {"data_dir": os.path.abspath("x"), "cache": True,
                                 "stats_path": os.path.abspath("s.npz")}}
    assert runs.recorded_source("tfds:imagenette") == "tfds:imagenette"
    assert runs.recorded_source("d") == os.path.abspath("d")


def test_ensemble_of_an_alexnet_and_a_vgg_run(project, tmp_path):
    """Each model at its own test scale and mean (AlexNet §6, VGG §4.4); the fusion row names both scales."""
    tiny, vgg = project / "runs" / "tiny", project / "runs" / "vgg"
    _ok(_main("evaluate", [f"--model={tiny},{vgg}", "--ensemble", "--split=test", f"--output_dir={tmp_path}"],
              cwd=tmp_path))
    with open(tmp_path / "errors.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["test scale Q"]) for r in rows] == [("alexnet", "67"), ("vgg_a", "72"),
                                                               ("alexnet + vgg_a", "67 / 72")]


def test_neighbors_of_a_conv_layer(project, tmp_path):
    result = _ok(_main("neighbors", [f"--model={project / 'runs' / 'tiny'}", "--layer=conv1", "--num_queries=2",
                                     "--k=3", "--max_train=32", f"--output_dir={tmp_path}"], cwd=tmp_path))
    assert "neighbors.png" in result.stdout
    text = (tmp_path / "neighbors.md").read_text()
    assert "conv1 activations" in text and text.count("\n| ") == 4  # header, rule and two query rows


def test_a_batch_larger_than_the_data_with_steps_per_epoch(project):
    result = _main("train", ["--data_dir=data", "--runs_dir=runs", "--run_name=big_batch", "--resize_size=67",
                             "--batch_size=5000"] + [a for a in TINY if not a.startswith("--batch_size")], cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == ("main.py train: error: --batch_size=5000 is larger than the "
                                                      "64 training examples")


def test_damaged_keras_files_are_one_line_in_every_command(project, tmp_path):
    good = (project / "runs" / "tiny" / runs.MODEL_FILE).read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside the weights: zipfile's CRC check fails
    (tmp_path / "flipped.keras").write_bytes(bytes(flipped))
    with zipfile.ZipFile(tmp_path / "not_a_model.keras", "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a Keras model")
    (tmp_path / "photo.jpg").write_bytes(image_bytes("rgb_jpeg", 1))
    data, out = f"--data_dir={project / 'data'}", tmp_path / "out"
    extra = {"evaluate": [data, f"--output_dir={out}"], "export": [f"--base_dir={out}"],
             "predict": [str(tmp_path / "photo.jpg")], "figures": [data, f"--output_dir={out}"],
             "neighbors": [data, f"--output_dir={out}"]}
    line = " ; ".join(_driver_command(command, [[f"--model={tmp_path / name}"] + args
                                                for name in ("flipped.keras", "not_a_model.keras")])
                      for command, args in extra.items())
    results = _run(line)
    assert len(results) == 2 * len(extra)
    for result in results:
        command, name = result["argv"][0], os.path.basename(result["argv"][1])
        expected = (f"{tmp_path / name}: cannot load the model (Bad CRC-32 for file 'model.weights.h5')"
                    if name == "flipped.keras" else f"{tmp_path / name}: cannot load the model (not a Keras model "
                    "archive: There is no item named 'config.json' in the archive)")
        _assert_one_line(result, command, expected, code=1)


def _webp(seed):
    from PIL import Image

    from tests.image_fixtures import pixels

    out = io.BytesIO()
    Image.fromarray(pixels(seed)).save(out, "WEBP")
    return out.getvalue()


def test_predict_reads_only_regular_files_in_any_case_and_format(project, tmp_path):
    """A FIFO named b_pipe.jpg (opening it would block forever) is skipped in one line; `three.Jpg` and the
    GIF/BMP/WebP that prepare accepts are predicted, from the SavedModel and from the run folder alike."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(image_bytes("rgb_jpeg", 1))
    os.mkfifo(folder / "b_pipe.jpg")
    (folder / "three.Jpg").write_bytes(image_bytes("rgb_jpeg", 2))
    (folder / "four.GIF").write_bytes(image_bytes("gif", 3))
    (folder / "five.bmp").write_bytes(image_bytes("bmp", 4))
    (folder / "six.webp").write_bytes(_webp(5))
    (folder / "notes.txt").write_text("not an image")
    expected = sorted(str(folder / n) for n in ("a_good.jpg", "three.Jpg", "four.GIF", "five.bmp", "six.webp"))
    for model in (project / "saved_models" / "tiny", project / "runs" / "tiny"):
        csv_path = tmp_path / f"{model.parent.name}.csv"
        result = _main("predict", [f"--model={model}", f"--output_csv={csv_path}", str(folder)], cwd=tmp_path,
                       timeout=120)
        _ok(result)
        assert (f"main.py predict: {folder / 'b_pipe.jpg'}: skipped, a FIFO (named pipe) (only regular files are "
                "read)") in result.stderr.splitlines()
        with open(csv_path, newline="", encoding="utf-8") as f:
            assert sorted({row["file"] for row in csv.DictReader(f)}) == expected
