"""`main.py import_weights` (VGG §2): keras.applications / torchvision VGG weights as a run folder that the
project's own commands use with the weights' own preprocessing, checked on real photos against the source
models (randomly initialised, saved by the test; nothing is downloaded)."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import keras

from keras_alexnet import runs
from keras_alexnet.cli import import_weights
from keras_alexnet.errors import FlagError, UserError
from tests.real_photos import PHOTOS, square_frame
from tests.test_weight_import import assert_same_predictions, sharpen, torch_predict, torch_vgg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_py(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def square_photos(folder, size=256, names=PHOTOS[:3]):
    """Real photos as size x size PNG files (centre square): `predict` at test scale 256 reads them as they
    are and takes the central 224x224 crop. Returns (paths, the 224x224 crops as float32 RGB)."""
    os.makedirs(folder, exist_ok=True)
    paths, crops = [], []
    for name in names:
        image = square_frame(name, size)
        path = os.path.join(folder, os.path.splitext(name)[0] + ".png")
        image.save(path)
        paths.append(path)
        offset = (size - 224) // 2
        crops.append(np.asarray(image, np.float32)[offset:offset + 224, offset:offset + 224])
    return paths, np.stack(crops)


def read_predictions(path, num_images):
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    ids = np.array([int(r["class"]) for r in rows]).reshape(num_images, 5)
    probabilities = np.array([float(r["probability"]) for r in rows]).reshape(num_images, 5)
    names = [r["name"] for r in rows]
    return ids, probabilities, names


def test_keras_applications_vgg16_file_through_import_and_predict(tmp_path):
    keras.utils.set_random_seed(1)
    source = keras.applications.VGG16(weights=None)
    sharpen(source.get_layer("predictions"))
    weights = str(tmp_path / "vgg16.weights.h5")
    source.save_weights(weights)
    files, crops = square_photos(str(tmp_path / "photos"))
    want = keras.ops.convert_to_numpy(source(keras.applications.vgg16.preprocess_input(crops.copy())))
    del source
    keras.backend.clear_session()

    run_dir = str(tmp_path / "runs" / "vgg16")
    done = main_py("import_weights", f"--weights={weights}", "--architecture=vgg_d", f"--run_dir={run_dir}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = runs.read_record(run_dir)
    assert (record.architecture, record.num_classes, record.mean, record.test_scale, record.image_size) == (
        "vgg_d", 1000, "rgb", 256, 224)
    assert record.origin == "import" and record.class_names[:2] == ["n01440764", "n01443537"]
    np.testing.assert_allclose(np.load(os.path.join(run_dir, "stats.npz"))["mean_rgb"], [123.68, 116.779, 103.939],
                               rtol=1e-6)

    out = str(tmp_path / "predictions.csv")
    done = main_py("predict", f"--model={run_dir}", f"--output_csv={out}", *files)
    assert done.returncode == 0, done.stderr[-2000:]
    ids, probabilities, names = read_predictions(out, len(files))
    np.testing.assert_array_equal(ids, np.argsort(-want, axis=1)[:, :5])
    np.testing.assert_allclose(probabilities, np.take_along_axis(want, ids, axis=1), rtol=0, atol=1e-4)
    assert names[0] == record.class_names[ids[0, 0]]

    again = main_py("import_weights", f"--weights={weights}", "--architecture=vgg_d", f"--run_dir={run_dir}")
    assert again.returncode == 2 and "already holds a run" in again.stderr.strip().splitlines()[-1]

    # The other commands that take a run, on data labelled so the errors are known: photo 0's label is
    # its most probable class, photo 1's its least, photo 2's its third (top-1 2/3 wrong, top-5 1/3).
    ranked = np.argsort(-want, axis=1)
    data_dir = imagenet_like_data(str(tmp_path / "data"), files, [ranked[0, 0], ranked[1, -1], ranked[2, 2]],
                                  record.class_names)
    out_dir = str(tmp_path / "evaluation")
    done = main_py("evaluate", f"--model={run_dir}", f"--data_dir={data_dir}", "--protocols=center",
                   f"--output_dir={out_dir}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "224px crops, Q=256, mean rgb" in done.stdout
    row = list(csv.DictReader(open(os.path.join(out_dir, "errors.csv"), encoding="utf-8")))[0]
    assert float(row["top-1 val. error (%)"]) == pytest.approx(200 / 3, abs=0.01) and float(row["top-5 val. error (%)"]) == \
        pytest.approx(100 / 3, abs=0.01)
    done = main_py("figures", f"--model={run_dir}", f"--data_dir={data_dir}", "--num_images=3",
                   f"--output_dir={tmp_path / 'figures'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.exists(tmp_path / "figures" / "conv1.png") and os.path.exists(tmp_path / "figures" / "top5.png")
    done = main_py("export", f"--model={run_dir}", f"--base_dir={tmp_path / 'saved_models'}")
    assert done.returncode == 0, done.stderr[-2000:]
    served = str(tmp_path / "served.csv")
    done = main_py("predict", f"--model={tmp_path / 'saved_models' / 'vgg16'}", f"--output_csv={served}", *files)
    assert done.returncode == 0, done.stderr[-2000:]
    served_ids, served_probabilities, _ = read_predictions(served, len(files))
    np.testing.assert_array_equal(served_ids, ids)
    np.testing.assert_allclose(served_probabilities, probabilities, rtol=0, atol=1e-4)


def imagenet_like_data(data_dir, files, labels, class_names):
    """The image files as a validation (and train) split with the given labels and the 1000 classes of
    an imported run, in the records.py layout."""
    import tensorflow as tf

    from pipelines import records

    os.makedirs(data_dir, exist_ok=True)
    splits = {}
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name(split, 0, 1))) as writer:
            for path, label in zip(files, labels):
                feature = {
                    records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[open(path, "rb").read()])),
                    records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        splits[split] = records.SplitInfo(num_examples=len(files), num_shards=1)
    classes = [records.ClassInfo(i, name, "") for i, name in enumerate(class_names)]
    records.write_metadata(data_dir, records.DatasetInfo(classes=classes, splits=splits, image_policy="none"))
    return data_dir


def test_wrong_file_refused_in_one_line(tmp_path):
    keras.utils.set_random_seed(0)
    vgg19_notop = str(tmp_path / "vgg19_notop.weights.h5")
    keras.applications.VGG19(weights=None, include_top=False).save_weights(vgg19_notop)
    keras.backend.clear_session()
    with pytest.raises(UserError, match="vgg19_notop.weights.h5: cannot load it into VGG16"):
        import_weights.import_run(vgg19_notop, "vgg_d", str(tmp_path / "a"))
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(FlagError, match="expected a keras.applications .h5"):
        import_weights.import_run(str(text), "vgg_d", str(tmp_path / "b"))
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n broken")
    with pytest.raises(UserError, match="broken.h5"):
        import_weights.import_run(str(broken), "vgg_e", str(tmp_path / "c"))
    assert not os.path.exists(tmp_path / "a" / runs.RUN_FILE)
    done = main_py("import_weights", f"--weights={tmp_path / 'missing.pth'}", "--architecture=vgg_d",
                   f"--run_dir={tmp_path / 'd'}")
    assert done.returncode == 2 and "missing.pth: no such file" in done.stderr.strip().splitlines()[-1]


def test_torchvision_state_dict_file(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional reference (pip install torch==2.13.0)")
    torch.manual_seed(0)
    source = torch_vgg(torch, "E", 1.0, num_classes=1000, pool_side=7)
    for module in source.modules():  # torchvision's VGG initialisation
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, 0, 0.01)
            torch.nn.init.zeros_(module.bias)
    with torch.no_grad():
        source.classifier[6].weight.mul_(40.0)
    weights = str(tmp_path / "vgg19.pth")
    torch.save(source.state_dict(), weights)
    _, crops = square_photos(str(tmp_path / "photos"))
    want = torch_predict(torch, source, crops)
    del source

    with pytest.raises(UserError, match="vgg19.pth: the state dict has 16 conv layers but"):
        import_weights.import_run(weights, "vgg_d", str(tmp_path / "wrong"))
    run_dir = str(tmp_path / "run")
    record = import_weights.import_run(weights, "vgg_e", run_dir)
    assert record.architecture == "vgg_e" and "torchvision vgg19" in record.mean_note
    from keras_alexnet.evaluation.models import load_keras_model

    model = load_keras_model(run_dir)
    mean = runs.eval_settings(run_dir, 224).mean_values
    np.testing.assert_allclose(mean, 255 * np.array([0.485, 0.456, 0.406]), rtol=1e-6)
    assert_same_predictions(keras.ops.convert_to_numpy(model(crops - mean)), want)
