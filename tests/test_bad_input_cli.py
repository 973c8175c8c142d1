"""Bad input through `main.py`: every case ends in one line on stderr,
`main.py <command>: error: ...`, and no traceback.

Refusals happen in `validate()`, before TensorFlow is imported, so the cases of one command run in one
process (`DRIVER` calls `dispatch.main` once per case, flags reset in between). Output locations that are
files, under files, or on a read-only file system (a read-only tmpfs in a private mount namespace,
`unshare -m`); writes that fail midway (full tmpfs mounts); a garbage `saved_model.pb`; a
folder of good and bad images for `predict`; a `--fashion_mnist_dir` without the IDX files.
"""

import csv
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from pipelines import records
from tests.image_fixtures import image_bytes, make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = 3
# Runs the cases of one command in one process; prints one JSON object per case.
DRIVER = r"""
import contextlib, io, json, sys, traceback
sys.path.insert(0, sys.argv[1])
from absl import flags
from keras_alexnet.cli import dispatch
for argv in json.loads(sys.argv[2]):
    flags.FLAGS.unparse_flags()
    err, code = io.StringIO(), 0
    with contextlib.redirect_stderr(err):
        try:
            dispatch.main(["main.py", *argv])
        except SystemExit as done:
            code = done.code
        except BaseException:
            traceback.print_exc()
            code = "traceback"
    print(json.dumps({"argv": argv, "code": code, "stderr": err.getvalue()}), flush=True)
"""


def _driver_command(command, cases) -> str:
    argvs = [[command, *case] for case in cases]
    return shlex.join([sys.executable, "-c", DRIVER, ROOT, json.dumps(argvs)])


def _run(shell_line: str) -> list:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(["sh", "-c", shell_line], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert results, done.stderr[-3000:]
    return results


def _assert_one_line(result, command, message, code=None):
    """One error line and no traceback; the command's own progress lines (`prepare: 0/24 images ...`) may
    come before it."""
    lines = [line for line in result["stderr"].strip().splitlines() if not line.startswith(f"{command}: ")]
    assert "Traceback" not in result["stderr"], result
    assert len(lines) == 1 and lines[0].startswith(f"main.py {command}: error: "), result
    assert message in lines[0], result
    if code is not None:
        assert result["code"] == code, result


def _mount_namespace_or_skip(folder):
    """Read-only and full file systems are tmpfs mounts in a private mount namespace (root only)."""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {shlex.quote(str(folder))}"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip("needs a private mount namespace (unshare -m, as root) for read-only and full file systems")


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A file, an empty folder, class folders of images, a weight file name, a stand-in model path."""
    base = tmp_path_factory.mktemp("bad_input")
    (base / "a_file").write_text("not a folder")
    (base / "empty").mkdir()
    make_folder(str(base / "images"), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=4)
    (base / "vgg16.h5").write_bytes(b"")
    (base / "model.keras").write_bytes(b"")
    (base / "photo.jpg").write_bytes(image_bytes("rgb_jpeg", 1))
    return base


def _refusals(place, out):
    """(command, flags, expected text) of the output-location refusals, `out` the output root."""
    model, photo = f"--model={place / 'model.keras'}", str(place / "photo.jpg")
    return [
        ("prepare", [f"--data_dir={out}/data", f"--train={place / 'images'}"]),
        ("stats", [f"--data_dir={out}"]),
        ("evaluate", [model, f"--data_dir={place / 'empty'}", f"--output_dir={out}/evaluation"]),
        ("export", [model, f"--base_dir={out}/saved_models"]),
        ("predict", [model, f"--output_csv={out}/predictions.csv", photo]),
        ("neighbors", [model, f"--output_dir={out}/neighbors"]),
        ("figures", [model, f"--output_dir={out}/figures"]),
        ("train", [f"--runs_dir={out}/runs"]),
        ("import_weights", [f"--weights={place / 'vgg16.h5'}", "--architecture=vgg_d", f"--run_dir={out}/run"]),
    ]


def test_output_under_a_file_is_refused_before_work(place):
    """Every writing command, its output below a regular file (`a_file/...`): refused in validate()."""
    out = place / "a_file"
    line = " && ".join(_driver_command(command, [flags]) for command, flags in _refusals(place, out))
    results = _run(line)
    assert [r["argv"][0] for r in results] == [command for command, _ in _refusals(place, out)]
    for result in results:
        expected = f"{out} is not a folder" if result["argv"][0] != "stats" else f"{out}: no such folder"
        _assert_one_line(result, result["argv"][0], expected)


def test_outputs_that_are_files_or_folders_of_the_wrong_kind(place):
    model, photo, a_file = f"--model={place / 'model.keras'}", str(place / "photo.jpg"), place / "a_file"
    cases = {
        "prepare": ([f"--data_dir={a_file}", f"--train={place / 'images'}"], f"--data_dir={a_file}: not a folder"),
        "export": ([model, f"--base_dir={a_file}"], f"--base_dir={a_file}: not a folder"),
        "predict": ([model, f"--output_csv={place / 'empty'}", photo], "is a folder, expected a file name"),
        "figures": ([model, f"--output_dir={place / 'empty'}/f", f"--logdir={a_file}"], f"--logdir={a_file}: not a folder"),
        "train": ([f"--runs_dir={place}", "--run_name=a_file"], f"--run_name=a_file: {a_file} is not a folder"),
    }
    results = _run(" && ".join(_driver_command(c, [flags]) for c, (flags, _) in cases.items()))
    for result in results:
        command = result["argv"][0]
        _assert_one_line(result, command, cases[command][1], code=2)


def test_a_read_only_file_system_is_refused_before_work(place, tmp_path):
    ro = tmp_path / "read_only"
    ro.mkdir()
    _mount_namespace_or_skip(ro)
    # the outputs below the read-only mount, and a run folder that is one inside a writable --runs_dir
    refusals = _refusals(place, ro) + [("train", [f"--runs_dir={tmp_path}", "--run_name=read_only"])]
    line = f"mount -t tmpfs -o ro tmpfs {shlex.quote(str(ro))} && " + " && ".join(
        _driver_command(command, [flags]) for command, flags in refusals)
    results = _run(f"unshare -m sh -c {shlex.quote(line)}")
    assert [r["argv"][0] for r in results] == [command for command, _ in refusals]
    for result in results:
        _assert_one_line(result, result["argv"][0], "is not writable (read-only file system)", code=2)


def test_prepare_on_a_full_disk_is_one_line_without_partial_files(place, tmp_path):
    full = tmp_path / "small_disk"
    full.mkdir()
    _mount_namespace_or_skip(full)
    big = tmp_path / "big_images"
    make_folder(str(big), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=12, size=(300, 300))
    listing = tmp_path / "left_behind.txt"
    line = (f"mount -t tmpfs -o size=16k tmpfs {shlex.quote(str(full))} && "
            + _driver_command("prepare", [[f"--data_dir={full}/data", f"--train={big}", "--num_workers=1",
                                           "--train_shards=1", "--validation_holdout=0", "--jpeg_quality=100"]])
            + f" ; ls -a {shlex.quote(str(full))}/data > {shlex.quote(str(listing))}")
    [result] = _run(f"unshare -m sh -c {shlex.quote(line)}")
    _assert_one_line(result, "prepare", "cannot write (No space left on device)", code=1)
    assert not [name for name in listing.read_text().split() if name.endswith(".tmp")]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny trained-model folder (model.keras) and its data folder (dataset.json, stats.npz)."""
    import keras

    from keras_alexnet.registry import build_model

    base = tmp_path_factory.mktemp("run")
    data = base / "data"
    classes = [records.ClassInfo(i, f"n{i:08d}", f"thing {i}") for i in range(CLASSES)]
    records.write_metadata(str(data), records.DatasetInfo(classes=classes, splits={}))
    np.savez(data / records.STATS_FILE, mean_rgb=np.array([120.0, 110.0, 100.0], np.float32))
    run = base / "run"
    run.mkdir()
    keras.utils.set_random_seed(3)
    build_model("vgg_a", num_classes=CLASSES, input_shape=(32, 32, 3), width=0.125).save(run / "model.keras")
    garbage = base / "garbage_model"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"\x08\x01 this is not a SavedModel protocol buffer")
    return run, data, garbage


def test_predict_goes_on_past_bad_files_and_tells_each(place, run_folder, tmp_path):
    run, data, garbage = run_folder
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a_good.jpg", "d_good.png"):
        (folder / name).write_bytes(image_bytes("rgb_jpeg" if name.endswith("jpg") else "png_as_jpeg", 2))
    (folder / "b_text.jpg").write_bytes(b"just some text")
    (folder / "c_cut.jpg").write_bytes(image_bytes("rgb_jpeg", 3)[:60])
    (folder / "e_empty.png").write_bytes(b"")
    output = tmp_path / "predictions.csv"
    checkpoint = [f"--model={run}", f"--data_dir={data}", "--test_scale=40", "--mean=rgb", "--batch_size=4"]
    results = _run(_driver_command("predict", [
        checkpoint + [f"--output_csv={output}", str(folder)],
        [f"--model={garbage}", str(folder / "a_good.jpg")],
    ]))
    bad_files, garbage_model = results

    lines = bad_files["stderr"].strip().splitlines()
    assert bad_files["code"] == 1 and "Traceback" not in bad_files["stderr"]
    assert lines[-2] == f"wrote {output}"
    lines = lines[:-2] + lines[-1:]
    assert [line.split(": ")[2] for line in lines[:-1]] == [str(folder / n) for n in ("b_text.jpg", "c_cut.jpg",
                                                                                       "e_empty.png")]
    assert all(line.startswith("main.py predict: error: ") and len(line) < 200 for line in lines)
    assert "File \"" not in bad_files["stderr"] and "Graph execution error" not in bad_files["stderr"]
    assert lines[-1] == "main.py predict: error: 3 of 5 images could not be predicted (each named above)"
    with open(output, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    assert sorted({row[0] for row in rows}) == [str(folder / "a_good.jpg"), str(folder / "d_good.png")]
    assert len(rows) == 2 * CLASSES  # top-5 of 3 classes: 3 rows each

    _assert_one_line(garbage_model, "predict", f"{garbage}: cannot load the SavedModel", code=1)


def test_predict_csv_on_a_full_disk_is_one_line_without_the_partial_file(run_folder, tmp_path):
    run, data, _ = run_folder
    full = tmp_path / "full_disk"
    full.mkdir()
    _mount_namespace_or_skip(full)
    csv_path = full / "predictions.csv"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("rgb_jpeg", 4))
    line = (f"mount -t tmpfs -o size=4k tmpfs {shlex.quote(str(full))} && "
            f"(dd if=/dev/zero of={shlex.quote(str(full / 'filler'))} bs=1k count=64 2>/dev/null; true) && "
            + _driver_command("predict", [[f"--model={run}", f"--data_dir={data}", "--test_scale=40", "--mean=rgb",
                                           f"--output_csv={csv_path}", str(photo)]])
            + f" && ls -a {shlex.quote(str(full))} > {shlex.quote(str(tmp_path / 'listing.txt'))}")
    [result] = _run(f"unshare -m sh -c {shlex.quote(line)}")
    _assert_one_line(result, "predict", f"{csv_path}: cannot write (No space left on device)", code=1)
    assert csv_path.name not in (tmp_path / "listing.txt").read_text().split()


def test_evaluate_a_garbage_saved_model_is_one_line(place, run_folder, tmp_path):
    _, data, garbage = run_folder
    [result] = _run(_driver_command("evaluate", [[f"--model={garbage}", f"--data_dir={data}",
                                                  f"--output_dir={tmp_path}"]]))
    _assert_one_line(result, "evaluate", f"{garbage}: cannot load the SavedModel", code=1)
    [result] = _run(_driver_command("evaluate", [[f"--model={place / 'model.keras'}", f"--data_dir={data}",
                                                  f"--output_dir={tmp_path}"]]))  # an empty .keras file
    _assert_one_line(result, "evaluate", "model.keras: cannot load the model (not a .keras archive", code=1)


def test_prepare_source_refusals_are_one_line_before_work(place, tmp_path):
    """A named --fashion_mnist_dir without the IDX files (never a download), class folders linking to
    the root or to another class: refused in validate(), nothing written."""
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    os.symlink(".", root / "everything")
    other = tmp_path / "validation"
    make_folder(str(other), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=1)
    os.symlink("cat", other / "kitten")
    fashion, linked, twice = _run(_driver_command("prepare", [
        ["--dataset=fashion_mnist", f"--data_dir={tmp_path}/out", f"--fashion_mnist_dir={place / 'empty'}"],
        [f"--data_dir={tmp_path}/out", f"--train={root}"],
        [f"--data_dir={tmp_path}/out", f"--train={place / 'images'}", f"--validation={other}"],
    ]))
    _assert_one_line(fashion, "prepare", "no train-images-idx3-ubyte.gz", code=2)
    _assert_one_line(linked, "prepare", f"{root / 'everything'}: a symlink to {root}", code=1)
    _assert_one_line(twice, "prepare", f"{other / 'kitten'}: the same folder as class 'cat'", code=1)
    assert not os.path.exists(tmp_path / "out")


def test_train_sizes_beyond_the_machines_memory_are_refused_before_anything_is_built(tmp_path):
    """`--width=1e6` or a 100000-pixel crop: one line with the estimate (`keras_alexnet.memory_fit`), exit 2,
    before the default run's data is prepared or a model built (was a ResourceExhaustedError)."""
    common = [f"--runs_dir={tmp_path}/runs", f"--default_data_root={tmp_path}/default"]
    wide, large = _run(_driver_command("train", [common + ["--width=1e6"],
                                                 common + ["--image_size=100000", "--resize_size=100000"]]))
    _assert_one_line(wide, "train", "--width=1e+06 --image_size=64 --batch_size=64: training alexnet needs at least",
                     code=2)
    _assert_one_line(large, "train", "--image_size=100000 --batch_size=64: training alexnet needs at least", code=2)
    assert "more than this machine's" in large["stderr"] and "parameters x 12 bytes" in large["stderr"]
    assert not os.path.exists(tmp_path / "default") and not os.path.exists(tmp_path / "runs" / "alexnet")
