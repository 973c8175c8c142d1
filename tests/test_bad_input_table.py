"""A hostile user's bad input through `main.py`, as a table (no traceback over the
CLI cases): every case ends in exactly one `main.py COMMAND: error: ...` line naming what is wrong, with a
non-zero exit code.

Each case is (command, argv, expected text of the error line); `{p}` in either stands for the module's
folder of inputs (`place`). Every refusal happens in the command's `validate()`, before TensorFlow is
imported, so the cases of one command run in one process (`test_bad_input_cli.DRIVER`).
"""

import dataclasses
import os

import numpy as np
import pytest

from keras_alexnet import runs
from keras_alexnet.training.config import ModelConfig
from pipelines import records
from tests.image_fixtures import image_bytes, make_folder
from tests.test_bad_input_cli import _assert_one_line, _driver_command, _run

# Inputs in `place`: a_file (text), empty/ (an empty folder), images/ (class folders), photo.jpg,
# notes.txt (text, not a model), model.keras (stands in for a model: validate() does not load it),
# saved/ (a SavedModel folder), data/ (dataset.json and stats.npz, no shards), run/ (a run folder),
# vgg16.h5 (stands in for a weight file), pipes/ (a FIFO named b_pipe.jpg), vgg16_run/ (the run.json of
# imported VGG16 weights, a stand-in model).
M = "--model={p}/model.keras"
DATA = "--data_dir={p}/data"
TRAIN = [DATA, "--runs_dir={p}/runs"]
IMPORT = ["--weights={p}/vgg16.h5", "--architecture=vgg_d"]

CASES = [
    # prepare: the output folder, the sources, sizes and contradictory sources
    ("prepare", [], "--data_dir is required"),
    ("prepare", ["--data_dir="], "--data_dir is required"),
    ("prepare", ["--data_dir={p}/out"], "pass --train=PATH"),
    ("prepare", ["--data_dir={p}/a_file", "--train={p}/images"], "--data_dir={p}/a_file: not a folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/missing"], "--train: {p}/missing: no such file or folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--validation={p}/missing"],
     "--validation: {p}/missing: no such file or folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--test={p}/missing"],
     "--test: {p}/missing: no such file or folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--class_names={p}/missing"],
     "--class_names: {p}/missing: no such file or folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--validation_labels={p}/a_file"],
     "--validation_labels goes with --validation"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--validation={p}/a_file",
                 "--validation_labels={p}/missing"], "--validation_labels: {p}/missing: no such file or folder"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--validation={p}/a_file",
                 "--validation_labels={p}/empty"], "--validation_labels={p}/empty: a folder, expected a file"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--synsets={p}/a_file"], "--synsets goes with"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/empty"], "{p}/empty: no class folders"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/a_file"], "--train={p}/a_file: neither a folder of class folders nor a tar file"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--test={p}/notes.txt"],
     "--test={p}/notes.txt: neither a folder of class folders nor a tar file"),
    ("prepare", ["--data_dir={p}/out", "--dataset=fashion_mnist", "--train={p}/images"], "replaces --train"),
    ("prepare", ["--data_dir={p}/out", "--dataset=cifar10"], "--dataset=cifar10"),
    ("prepare", ["--data_dir={p}/out", "--dataset=fashion_mnist", "--fashion_mnist_dir={p}/a_file"],
     "--fashion_mnist_dir={p}/a_file: no train-images-idx3-ubyte.gz"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--jpeg_quality=0"], "--jpeg_quality=0"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--jpeg_quality=101"], "--jpeg_quality=101"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--train_shards=-1"], "--train_shards=-1"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--num_workers=abc"], "--num_workers=abc"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--stored_size=-256"], "--stored_size=-256"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--image_policy=none", "--stored_size=256"],
     "--stored_size has no effect"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--image_policy=resnet"], "--image_policy=resnet"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--validation={p}/images", "--validation_holdout=5"],
     "--validation_holdout and --validation"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--label_offset=2"], "--label_offset=2"),
    ("prepare", ["--data_dir={p}/out", "--train={p}/images", "--progress_interval=-1"], "--progress_interval=-1"),
    # stats and verify: the data folder
    ("stats", [], "--data_dir is required"),
    ("stats", ["--data_dir={p}/missing"], "--data_dir: {p}/missing: no such folder"),
    ("stats", ["--data_dir={p}/a_file"], "--data_dir: {p}/a_file: no such folder"),
    ("stats", ["--data_dir={p}/empty"], "{p}/empty: no train shards (run `python main.py prepare` first)"),
    ("stats", [DATA, "--max_images=-1"], "--max_images=-1"),
    ("stats", [DATA, "--max_images=abc"], "--max_images=abc"),
    ("verify", [], "--data_dir is required"),
    ("verify", ["--data_dir={p}/missing"], "--data_dir: {p}/missing: no such folder"),
    ("verify", ["--data_dir={p}/a_file"], "--data_dir: {p}/a_file: no such folder"),
    ("verify", [DATA], "--data_dir={p}/data: no shards"),
    ("verify", [DATA, "extra"], "unexpected argument 'extra'"),
    # summary: the model flags
    ("summary", ["--architecture=alexnet9"], "alexnet9"),
    ("summary", ["--width=0"], "--width=0.0: must be positive"),
    ("summary", ["--width=abc"], "--width=abc"),
    ("summary", ["--image_size=0"], "--image_size=0"),
    ("summary", ["--image_size=50"], "--image_size must be at least"),
    ("summary", ["--num_classes=0"], "--num_classes=0"),
    ("summary", ["--dense", "--image_size=200"], "at least 224 with --dense"),
    ("summary", ["--architecture=vgg_a", "--pooling=non_overlapping"], "AlexNet options"),
    ("summary", ["--architecture=alexnet_torchvision", "--pooling=non_overlapping"],
     "AlexNet options; alexnet_torchvision has neither"),
    ("summary", ["--dropout=1.5"], "--dropout=1.5: must be in [0, 1)"),
    ("summary", ["--dropout=-0.1"], "--dropout=-0.1: must be in [0, 1)"),
    ("summary", ["--lrn=maybe"], "--lrn=maybe"),
    # train: the recipe's numbers, sources and outputs
    ("train", TRAIN + ["--batch_size=abc"], "--batch_size=abc"),
    ("train", TRAIN + ["--batch_size=-5"], "--batch_size=-5: must be positive"),
    ("train", ["--runs_dir={p}/runs", "--default_data_root={p}/default", "--batch_size=-5"],
     "--batch_size=-5: must be positive"),
    ("train", TRAIN + ["--learning_rate=0"], "--learning_rate=0.0: must be positive"),
    ("train", TRAIN + ["--learning_rate=fast"], "--learning_rate=fast"),
    ("train", TRAIN + ["--momentum=1.5"], "--momentum=1.5: must be in [0, 1)"),
    ("train", TRAIN + ["--weight_decay=-1"], "--weight_decay=-1.0: must be >= 0"),
    ("train", TRAIN + ["--epochs=-1"], "--epochs and --steps_per_epoch must be >= 0"),
    ("train", TRAIN + ["--width=0"], "--width=0.0: must be positive"),
    ("train", TRAIN + ["--dropout=1"], "--dropout=1.0: must be in [0, 1)"),
    ("train", TRAIN + ["--image_size=10"], "--image_size=10"),
    ("train", TRAIN + ["--image_size=224", "--resize_size=100"], "--resize_size=100 must be at least"),
    ("train", TRAIN + ["--architecture=resnet50"], "--architecture=resnet50"),
    ("train", TRAIN + ["--strategy=tpu"], "--strategy=tpu"),
    ("train", TRAIN + ["--data_service=localhost:1"], "--data_service=localhost:1: expected grpc://HOST:PORT"),
    ("train", TRAIN + ["--strategy=towers", "--architecture=vgg_a"], "--strategy=towers"),
    ("train", TRAIN + ["--architecture=vgg_a", "--pooling=non_overlapping"], "AlexNet options"),
    ("train", TRAIN + ["--architecture=vgg_b", "--warm_start={p}/run", "--init_from={p}/run"],
     "--warm_start or --init_from, not both"),
    ("train", TRAIN + ["--architecture=vgg_b", "--warm_start={p}/missing"], "--warm_start={p}/missing: no such"),
    ("train", TRAIN + ["--warm_start={p}/run"], "--warm_start initialises a deeper VGG net"),
    ("train", TRAIN + ["--init_from={p}/missing"], "--init_from={p}/missing: no such"),
    ("train", TRAIN + ["--architecture=alexnet", "--init_from={p}/vgg16_run"],
     "--architecture=alexnet: --init_from={p}/vgg16_run was built with --architecture=vgg_d; leave --architecture out"),
    ("train", TRAIN + ["--init_from={p}/vgg16_run", "--width=0.5"],
     "--width=0.5: --init_from={p}/vgg16_run was built with --width=1.0"),
    ("train", TRAIN + ["--freeze_through=conv5"],
     "--freeze_through=conv5 keeps copied layers fixed: it needs --init_from"),
    ("train", TRAIN + ["--init_from={p}/vgg16_run", "--freeze_through=conv5"],
     "--freeze_through=conv5: vgg_d has no such layer below fc8 (choose from: conv1_1, conv1_2,"),
    ("train", TRAIN + ["--init_from={p}/vgg16_run", "--freeze_through=fc8"], "--freeze_through=fc8: vgg_d has no such"),
    ("train", ["--data_dir={p}/missing", "--runs_dir={p}/runs"], "--data_dir={p}/missing: no such directory"),
    ("train", ["--data_dir={p}/a_file", "--runs_dir={p}/runs"], "--data_dir={p}/a_file"),
    ("train", ["--data_dir={p}/empty", "--runs_dir={p}/runs"], "{p}/empty: no train shards (run `python main.py prepare` first)"),
    ("train", TRAIN + ["--tfds=imagenette"], "give one data source"),
    ("train", TRAIN + ["--scale_jitter=abc"], "--scale_jitter=abc: expected S or Smin,Smax"),
    ("train", TRAIN + ["--scale_jitter=512,256"], "Smin <= Smax"),
    ("train", TRAIN + ["--scale_jitter=256,512", "--mean=image"], "--mean=image needs the fixed AlexNet framing"),
    ("train", TRAIN + ["--run_name=a/b"], "--run_name=a/b: a folder name"),
    ("train", ["--data_dir={p}/data", "--runs_dir={p}/a_file"], "--runs_dir={p}/a_file: not a folder"),
    ("train", TRAIN + ["--steps_per_call=0"], "--steps_per_call=0: must be >= 1"),
    ("train", TRAIN + ["--lr_patience=0"], "--lr_patience must be >= 1"),
    ("train", TRAIN + ["--input_scale=0"], "--input_scale=0.0: must be positive"),
    ("train", TRAIN + ["--pca_jitter_std=-1"], "--pca_jitter_std=-1.0: must be >= 0"),
    ("train", TRAIN + ["--num_classes=-3"], "--num_classes=-3"),
    ("train", TRAIN + ["--mixed_precision=maybe"], "--mixed_precision=maybe"),
    ("train", TRAIN + ["--stats_path={p}/missing.npz"], "--stats_path={p}/missing.npz: no such file"),
    ("train", TRAIN + ["--shuffle_buffer=-1"], "--shuffle_buffer=-1: must be >= 1"),
    ("train", TRAIN + ["--shuffle_buffer=0"], "--shuffle_buffer=0: must be >= 1"),
    ("train", TRAIN + ["--log_every_steps=-1"], "--log_every_steps=-1: must be >= 0"),
    ("train", TRAIN + ["--seed=-1"], "--seed=-1: must be in [0, 2**32)"),
    ("train", TRAIN + ["--seed=4294967296"], "--seed=4294967296: must be in [0, 2**32)"),
    ("train", TRAIN + ["--run_name=.."], "--run_name=..: a folder name under --runs_dir"),
    # evaluate: models, data, protocols and scales
    ("evaluate", [], "--model is required"),
    ("evaluate", ["--model={p}/missing", DATA], "--model={p}/missing: no such file or folder"),
    ("evaluate", ["--model={p}/empty", DATA], "--model={p}/empty: holds no SavedModel"),
    ("evaluate", ["--model={p}/notes.txt", DATA], "--model={p}/notes.txt: not a .keras model file"),
    ("evaluate", [M + ",{p}/missing", DATA], "--model={p}/missing: no such file or folder"),
    ("evaluate", [M, "--data_dir={p}/missing"], "--data_dir={p}/missing: no such directory"),
    ("evaluate", [M, "--data_dir={p}/a_file"], "--data_dir={p}/a_file: no such directory"),
    ("evaluate", [M, "--data_dir="], "--data_dir is required"),
    ("evaluate", [M, DATA, "--protocols=five_crop"], "--protocols: unknown 'five_crop'"),
    ("evaluate", [M, DATA, "--protocols="], "--protocols: unknown ''"),
    ("evaluate", [M, DATA, "--ensemble"], "--ensemble needs at least two --model"),
    ("evaluate", [M, DATA, "--test_scale=256", "--train_scale=256"], "--test_scale and --train_scale are exclusive"),
    ("evaluate", [M, DATA, "--test_scale=abc"], "--test_scale=abc: expected integers"),
    ("evaluate", [M, DATA, "--test_scale=-5"], "--test_scale=-5: scales must be positive"),
    ("evaluate", [M, DATA, "--train_scale=256,384,512"], "--train_scale: one value (fixed S) or two"),
    ("evaluate", [M, DATA, "--batch_size=0"], "--batch_size=0"),
    ("evaluate", [M, DATA, "--max_examples=0"], "--max_examples=0"),
    ("evaluate", [M, DATA, "--output_dir={p}/a_file"], "--output_dir={p}/a_file: not a folder"),
    # export
    ("export", [], "--model is required"),
    ("export", ["--model={p}/missing"], "--model={p}/missing: no such file or folder"),
    ("export", ["--model={p}/empty"], "--model={p}/empty: holds no SavedModel"),
    ("export", ["--model={p}/saved"], "--model={p}/saved is already a SavedModel"),
    ("export", [M, "--test_scale=256,384"], "this command takes one scale"),
    ("export", [M, "--base_dir={p}/a_file"], "--base_dir={p}/a_file: not a folder"),
    ("export", [M, "--base_dir="], "--base_dir: empty path"),
    ("export", [M, "--max_pixels=0"], "--max_pixels=0"),
    ("export", [M, "--version=0"], "--version=0"),
    ("export", [M, "--crops=twenty"], "--crops=twenty"),
    ("export", [M, "--base_dir={p}/exports", "--name=../../escaped_model"],
     "--name=../../escaped_model: a folder name under --base_dir, without '/'"),
    ("export", [M, "--base_dir={p}/exports", "--name=a/b"], "--name=a/b: a folder name under --base_dir"),
    ("export", [M, "--base_dir={p}/exports", "--name=.."], "--name=..: a folder name under --base_dir"),
    ("export", [M, "--base_dir={p}/exports", "--name="], "--name=: a folder name under --base_dir"),
    # predict
    ("predict", ["{p}/photo.jpg"], "--model (SavedModel or checkpoint) or --server (TF Serving) is required"),
    ("predict", [M, "--server=http://localhost:8501", "{p}/photo.jpg"], "--server and --model are exclusive"),
    ("predict", ["--server=http://localhost:8501", "{p}/photo.jpg"], "--model_name is required with --server"),
    ("predict", ["--model={p}/missing", "{p}/photo.jpg"], "--model={p}/missing: no such file or folder"),
    ("predict", ["--model={p}/notes.txt", "{p}/photo.jpg"], "--model={p}/notes.txt: not a .keras model file"),
    ("predict", [M], "name at least one image file or folder"),
    ("predict", [M, "{p}/missing.jpg"], "{p}/missing.jpg: no such image file or folder"),
    ("predict", [M, "{p}/empty"], "{p}/empty: holds no image (.jpg/.jpeg/.jpe/.png/.gif/.bmp/.webp)"),
    ("predict", [M, "{p}/pipes"], "{p}/pipes/b_pipe.jpg: skipped, a FIFO (named pipe) (only regular files"),
    ("predict", [M, "{p}/pipes/b_pipe.jpg"], "{p}/pipes/b_pipe.jpg: skipped, a FIFO (named pipe)"),
    ("predict", [M, "{p}/pipes/b_pipe.jpg", "{p}/pipes/b_pipe.jpg"],
     "no regular image file among the 2 named (FIFOs, sockets, devices, ...)"),
    ("predict", ["--model={p}/saved", "--crops=ten_crop", "{p}/photo.jpg"],
     "--crops: --model={p}/saved is a SavedModel, whose export fixed its crops, test scale and mean"),
    ("predict", ["--model={p}/saved", "--crops=center", "--test_scale=300", "{p}/photo.jpg"],
     "--crops, --test_scale: --model={p}/saved is a SavedModel"),
    ("predict", ["--model={p}/saved", "--mean=rgb", "{p}/photo.jpg"], "--mean: --model={p}/saved is a SavedModel"),
    ("predict", ["--server=http://localhost:8501", "--model_name=alexnet", "--crops=ten_crop", "{p}/photo.jpg"],
     "--crops: --server=http://localhost:8501 serves a SavedModel, whose export fixed"),
    ("predict", [M, "--batch_size=0", "{p}/photo.jpg"], "--batch_size=0"),
    ("predict", [M, "--batch_size=abc", "{p}/photo.jpg"], "--batch_size=abc"),
    ("predict", [M, "--crops=five", "{p}/photo.jpg"], "--crops=five"),
    ("predict", [M, "--test_scale=0", "{p}/photo.jpg"], "--test_scale=0: scales must be positive"),
    ("predict", [M, "--output_csv={p}/empty", "{p}/photo.jpg"], "--output_csv={p}/empty: is a folder"),
    ("predict", [M, "--output_csv={p}/a_file/out.csv", "{p}/photo.jpg"], "{p}/a_file is not a folder"),
    ("predict", ["--server=http://localhost:8501", "--model_name=alexnet", "--model_version=abc", "{p}/photo.jpg"],
     "--model_version=abc"),
    # neighbors
    ("neighbors", [], "--model is required"),
    ("neighbors", ["--model={p}/missing"], "--model={p}/missing: no such file or folder"),
    ("neighbors", ["--model={p}/empty"], "--model={p}/empty: holds no SavedModel"),
    ("neighbors", ["--model={p}/saved", DATA], "--model={p}/saved is a SavedModel"),
    ("neighbors", [M, DATA, "--k=0"], "--k=0"),
    ("neighbors", [M, DATA, "--num_queries=0"], "--num_queries=0"),
    ("neighbors", [M, DATA, "--tile=4"], "--tile=4"),
    ("neighbors", [M, DATA, "--max_train=0"], "--max_train=0"),
    ("neighbors", [M, DATA, "--test_scale=256,384"], "this command takes one scale"),
    ("neighbors", [M, DATA, "--output_dir={p}/a_file"], "--output_dir={p}/a_file: not a folder"),
    ("neighbors", [M, "--data_dir={p}/missing", "--output_dir={p}/n"], "--data_dir={p}/missing: no such directory"),
    ("neighbors", [M, "--output_dir={p}/n"], "--data_dir is required"),
    # figures
    ("figures", [], "--model is required"),
    ("figures", ["--model={p}/notes.txt"], "--model={p}/notes.txt: not a .keras model file"),
    ("figures", ["--model={p}/saved", DATA], "--model={p}/saved is a SavedModel"),
    ("figures", [M, DATA, "--num_images=0"], "--num_images=0"),
    ("figures", [M, DATA, "--tile=1"], "--tile=1"),
    ("figures", [M, DATA, "--kernel_scale=0"], "--kernel_scale=0"),
    ("figures", [M, DATA, "--mean=bgr"], "--mean=bgr"),
    ("figures", [M, DATA, "--output_dir={p}/a_file"], "--output_dir={p}/a_file: not a folder"),
    ("figures", [M, DATA, "--output_dir={p}/f", "--logdir={p}/a_file"], "--logdir={p}/a_file: not a folder"),
    ("figures", [M, "--data_dir={p}/missing", "--output_dir={p}/f"], "--data_dir={p}/missing: no such directory"),
    # import_weights
    ("import_weights", [], "--weights is required"),
    ("import_weights", ["--weights={p}/vgg16.h5", "--run_dir={p}/new"], "--architecture is required"),
    ("import_weights", IMPORT, "--run_dir is required"),
    ("import_weights", ["--weights={p}/missing.h5", "--architecture=vgg_d", "--run_dir={p}/new"],
     "--weights={p}/missing.h5: no such file"),
    ("import_weights", ["--weights={p}/empty", "--architecture=vgg_d", "--run_dir={p}/new"],
     "--weights={p}/empty: no such file"),
    ("import_weights", ["--weights={p}/notes.txt", "--architecture=vgg_d", "--run_dir={p}/new"],
     "--weights={p}/notes.txt: expected a keras.applications"),
    ("import_weights", ["--weights={p}/vgg16.h5", "--architecture=vgg_a", "--run_dir={p}/new"], "--architecture=vgg_a"),
    ("import_weights", ["--weights={p}/vgg16.h5", "--architecture=alexnet", "--run_dir={p}/new"],
     "--weights={p}/vgg16.h5: expected Caffe's bvlc_alexnet .caffemodel for --architecture=alexnet"),
    ("import_weights", ["--weights={p}/vgg16.h5", "--architecture=vgg_d", "--mean_file={p}/vgg16.h5", "--run_dir={p}/new"],
     "--mean_file is for Caffe's alexnet"),
    ("import_weights", IMPORT + ["--run_dir={p}/run"], "--run_dir={p}/run: already holds a run"),
    ("import_weights", IMPORT + ["--run_dir={p}/a_file"], "--run_dir={p}/a_file: not a folder"),
    # data_service: the role and the addresses
    ("data_service", [], "expected one of: dispatcher, worker"),
    ("data_service", ["dispatcher", "--work_dir={p}/wd"], "--port is required"),
    ("data_service", ["dispatcher", "--port=70000", "--work_dir={p}/wd"], "--port=70000: the port must be in 1..65535"),
    ("data_service", ["dispatcher", "--port=5050"], "--work_dir is required"),
    ("data_service", ["dispatcher", "--port=5050", "--work_dir={p}/a_file/wd"], "{p}/a_file is not a folder"),
    ("data_service", ["dispatcher", "--port=5050", "--work_dir={p}/wd", "--dispatcher=a:1"],
     "--dispatcher is not a dispatcher flag"),
    ("data_service", ["worker"], "--dispatcher is required"),
    ("data_service", ["worker", "--dispatcher=localhost"], "--dispatcher=localhost: expected HOST:PORT"),
    ("data_service", ["worker", "--dispatcher=http://localhost:5050"], "the protocol is grpc://"),
    ("data_service", ["worker", "--dispatcher=localhost:0"], "the port must be in 1..65535"),
    # study
    ("study", [], "give one study name: alexnet, vgg or precision"),
    ("study", ["resnet"], "unknown study 'resnet'"),
    ("study", ["alexnet", "vgg"], "give one study name: alexnet, vgg or precision"),
    ("study", ["--seeds=0", "alexnet"], "--seeds=0"),
    ("study", ["--scale=gpu", "alexnet"], "--scale=gpu"),
    ("study", ["--scale=paper", "alexnet"], "--scale=paper needs --data_dir"),
    ("study", ["--epochs=-1", "alexnet"], "--epochs=-1"),
    ("study", ["--steps_per_epoch=-1", "alexnet"], "--steps_per_epoch=-1"),
    ("study", ["--shard=2/2", "alexnet"], "--shard=2/2: the shard index i must be 0 to 1"),
    ("study", ["--data_dir={p}/missing", "alexnet"], "--data_dir={p}/missing: no such folder"),
    ("study", ["--data_dir={p}/empty", "alexnet"], "{p}/empty: no train shards (run `python main.py prepare` first)"),
    ("study", ["--studies_dir={p}/a_file", "alexnet"], "--studies_dir={p}/a_file: not a folder"),
]


def _case_id(case) -> str:
    command, argv, _ = case
    return " ".join([command, *argv]).replace("{p}/", "") or command


def make_inputs(base):
    """The inputs the cases name (see the comment above `CASES`) in the folder `base`."""
    (base / "a_file").write_text("not a folder")
    (base / "notes.txt").write_text("not a model")
    (base / "empty").mkdir()
    make_folder(str(base / "images"), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    (base / "photo.jpg").write_bytes(image_bytes("rgb_jpeg", 1))
    (base / "model.keras").write_bytes(b"")
    (base / "vgg16.h5").write_bytes(b"")
    (base / "saved").mkdir()
    (base / "saved" / "saved_model.pb").write_bytes(b"")
    classes = [records.ClassInfo(i, f"n{i:08d}", f"thing {i}") for i in range(3)]
    records.write_metadata(str(base / "data"), records.DatasetInfo(classes=classes, splits={}))
    np.savez(base / "data" / records.STATS_FILE, mean_rgb=np.array([120.0, 110.0, 100.0], np.float32))
    (base / "run").mkdir()
    (base / "run" / "run.json").write_text("{}")
    (base / "run" / "model.keras").write_bytes(b"")
    runs.write_record(str(base / "vgg16_run"), runs.RunRecord(
        architecture="vgg_d", num_classes=1000, class_names=[str(i) for i in range(1000)], image_size=224,
        test_scale=256, mean="rgb", origin="import",
        model_config=dataclasses.asdict(ModelConfig("vgg_d", lrn=False))))
    (base / "vgg16_run" / "model.keras").write_bytes(b"")
    (base / "pipes").mkdir()
    os.mkfifo(base / "pipes" / "b_pipe.jpg")  # a FIFO named like an image: never opened (it would block)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_table")
    make_inputs(base)
    return base


@pytest.fixture(scope="module")
def results(place):
    """The driver's result of every case, by its index in `CASES`: one process per command."""
    by_command = {}
    for index, (command, argv, _) in enumerate(CASES):
        by_command.setdefault(command, []).append((index, [arg.replace("{p}", str(place)) for arg in argv]))
    line = " ; ".join(_driver_command(command, [argv for _, argv in cases]) for command, cases in by_command.items())
    outcome = _run(line)
    indices = [index for cases in by_command.values() for index, _ in cases]
    assert len(outcome) == len(indices), "a driver process stopped early"
    return dict(zip(indices, outcome))


def test_the_table_covers_every_command():
    from keras_alexnet.cli.commands import COMMANDS

    assert len(CASES) >= 80
    assert {command for command, _, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(case) for case in CASES])
def test_bad_input_is_one_line(place, results, index):
    command, argv, expected = CASES[index]
    result = results[index]
    assert result["code"] not in (0, None, "traceback"), result
    _assert_one_line(result, command, expected.replace("{p}", str(place)))
