"""The evaluation engine and the protocol table (`evaluation.engine`, `pipelines.eval_protocols`).

- a protocol is added in one place: an entry registered in the table (here, in a test) is accepted by
  `main.py evaluate --protocols`, built by the input pipeline, evaluated by `evaluate()`, named in the
  error table, measurable by a study and servable by an export, with no other edit;
- `evaluate()` against an independent NumPy reference: the views sliced by hand from the rescaled
  images, the model's softmax averaged over them, top-1/top-5 by the counting rule in NumPy;
- the 10-crop callback, the engine and `main.py evaluate` give the same numbers on the same model and data.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from callbacks.ten_crop import TenCropEvaluation
from keras_alexnet import runs
from keras_alexnet.evaluation import engine
from keras_alexnet.study.definitions import Arm, Study
from pipelines import eval_crops, eval_protocols, records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES, SIZE, SCALE = 10, 32, 40
SHAPES = [(40, 52), (52, 40), (40, 40), (45, 61), (64, 48), (41, 43), (50, 50), (40, 71), (77, 42), (44, 46),
          (60, 41), (48, 64)]
MEAN_RGB = np.array([125.0, 115.0, 105.0], np.float32)
# The entry a test registers: the four corner crops and the centre crop of the central square, no flips.
FIVE_CROP = eval_protocols.Protocol("five_crop", "5 crops", "AlexNet §4.1 without reflections",
                                    eval_protocols.CORNERS_AND_CENTER, frame=eval_protocols.SQUARE)
REGISTER = ("from pipelines import eval_protocols as t; t.PROTOCOLS['five_crop'] = t.Protocol('five_crop', "
            "'5 crops', 'AlexNet §4.1 without reflections', t.CORNERS_AND_CENTER, frame=t.SQUARE)")


def _images():
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for shape in SHAPES]


def _labels():
    return np.random.default_rng(8).integers(0, CLASSES, len(SHAPES))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("data"))
    with tf.io.TFRecordWriter(os.path.join(folder, records.shard_name("validation", 0, 1))) as writer:
        for image, label in zip(_images(), _labels()):
            encoded = tf.io.encode_png(image).numpy()
            feature = {
                records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    classes = [records.ClassInfo(i, f"n{i:08d}", f"thing {i}") for i in range(CLASSES)]
    records.write_metadata(folder, records.DatasetInfo(
        classes=classes, splits={"validation": records.SplitInfo(len(SHAPES), 1)}, label_offset=0))
    np.savez(os.path.join(folder, records.STATS_FILE), mean_rgb=MEAN_RGB,
             mean_image=np.broadcast_to(MEAN_RGB, (SCALE, SCALE, 3)).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from keras_alexnet.registry import build_model

    keras.utils.set_random_seed(3)
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model = build_model("vgg_a", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3), width=0.125)
    rng = np.random.default_rng(4)
    last = model.get_layer("fc8").kernel
    for weight in model.weights:  # He-scaled kernels (VGG's N(0, 0.01) gives every class 1/10), fc8 damped
        if len(weight.shape) > 1:
            std = np.sqrt(2.0 / np.prod(weight.shape[:-1])) * (0.02 if weight is last else 1.0)
            weight.assign(rng.normal(0.0, std, weight.shape).astype(np.float32))
    model.save(path)
    return path


def _config(model_path, data_dir, protocols, **overrides):
    return engine.EvalConfig(models=(model_path,), data_dir=data_dir, protocols=tuple(protocols), scales=(SCALE,),
                             mean="rgb", batch_size=5, progress=False, **overrides)


def _numpy_views(image, protocol):
    """The views sliced by hand from the image rescaled to SCALE (TensorFlow's antialiased bilinear
    resize, then the training mean colour subtracted)."""
    rescaled = eval_crops.resize_shorter_side(image, SCALE).numpy() - MEAN_RGB
    h, w, s = rescaled.shape[0], rescaled.shape[1], SIZE
    if protocol == "center":
        return rescaled[None, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rescaled[top:top + side, left:left + side]
    b = side - s
    crops = np.stack([square[:s, :s], square[:s, b:], square[b:, :s], square[b:, b:],
                      square[b // 2:b // 2 + s, b // 2:b // 2 + s]])
    return crops if protocol == "five_crop" else np.concatenate([crops, crops[:, :, ::-1]])  # ten_crop


def _numpy_errors(model, protocol):
    """Top-1 / top-5 error (fractions) of the softmax averaged over each image's views, in NumPy: a label is
    a hit at k iff at most k classes score at least as high as it (ties count against it)."""
    probabilities = np.stack([model.predict(_numpy_views(image, protocol), verbose=0).mean(axis=0)
                              for image in _images()])
    labels = _labels()
    at_least = (probabilities >= probabilities[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    return {f"top{k}_error": float(np.mean(at_least > k)) for k in (1, 5)}, probabilities


@pytest.mark.parametrize("protocol", ["center", "ten_crop"])
def test_evaluate_matches_a_numpy_reference(model_path, data_dir, protocol):
    result = engine.evaluate(_config(model_path, data_dir, [protocol]), printer=lambda line: None)
    expected, probabilities = _numpy_errors(keras.saving.load_model(model_path), protocol)
    [run] = result.runs
    np.testing.assert_array_equal(run.labels, _labels())
    np.testing.assert_allclose(run.probabilities, probabilities, rtol=1e-4, atol=1e-6)
    errors = result.errors("vgg_a", protocol)
    assert errors["count"] == len(SHAPES)
    assert errors["top1_error"] == pytest.approx(expected["top1_error"])
    assert errors["top5_error"] == pytest.approx(expected["top5_error"])
    assert 0 < expected["top5_error"] < expected["top1_error"] < 1  # neither bound: the comparison can fail
    [row] = result.rows
    assert row["evaluation method"] == eval_protocols.PROTOCOLS[protocol].method
    assert row["top-1 val. error (%)"] == pytest.approx(100 * expected["top1_error"], abs=0.005)


def test_a_protocol_registered_in_the_table_is_evaluated_everywhere(model_path, data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(eval_protocols.PROTOCOLS, "five_crop", FIVE_CROP)
    # the input pipeline builds its views
    settings = runs.eval_settings(model_path, SIZE, test_scale=SCALE, mean="rgb", data_dir=data_dir)
    views, labels = next(iter(engine.protocol_dataset(engine.eval_input(settings, "validation", 5, data_dir),
                                                      "five_crop")))
    assert views.shape == (5, 5, SIZE, SIZE, 3)
    for i, image in enumerate(_images()[:5]):
        np.testing.assert_allclose(views[i], _numpy_views(image, "five_crop"), atol=1e-3)
    # evaluate() runs it and the table names it
    result = engine.evaluate(_config(model_path, data_dir, ["center", "five_crop"]), printer=lambda line: None)
    expected, _ = _numpy_errors(keras.saving.load_model(model_path), "five_crop")
    errors = result.errors("vgg_a", "five_crop")
    assert errors["top1_error"] == pytest.approx(expected["top1_error"])
    assert errors["top5_error"] == pytest.approx(expected["top5_error"])
    assert [row["evaluation method"] for row in result.rows] == ["centre crop", "5 crops"]
    # a study may measure it; an export may serve it (its views lie in the central square)
    Study("s", "", (Arm("a", "", measure="five_crop"),), {}, protocols=("five_crop",)).validate()
    assert "five_crop" in eval_protocols.servable()
    from keras_alexnet.export import make_preprocess

    preprocess = make_preprocess(mean=MEAN_RGB, image_size=SIZE, resize_size=SCALE, crops="five_crop")
    assert preprocess(tf.io.encode_png(_images()[3])).shape == (5, SIZE, SIZE, 3)
    # main.py evaluate accepts it: the table entry registered before the command starts, nothing else
    out = tmp_path / "eval"
    argv = ["main.py", "evaluate", f"--model={model_path}", f"--data_dir={data_dir}", "--protocols=five_crop",
            f"--test_scale={SCALE}", "--mean=rgb", "--batch_size=5", f"--output_dir={out}"]
    code = f"import sys; sys.path.insert(0, {ROOT!r}); {REGISTER}; from keras_alexnet.cli import dispatch; " \
           f"dispatch.main({argv!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "errors.csv")
    assert table["evaluation method"].tolist() == ["5 crops"]
    assert table["top-1 val. error (%)"].item() == pytest.approx(100 * expected["top1_error"], abs=0.005)
    # without the entry, the same command is refused in one line naming the flag and the choices
    refused = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv[1:]], capture_output=True,
                             text=True, cwd=ROOT, timeout=600)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "main.py evaluate: error: --protocols: unknown 'five_crop' (choose from center, ten_crop, multi_crop, dense)"]


def test_callback_engine_and_evaluate_command_agree(model_path, data_dir, tmp_path):
    """The 10-crop callback (on the model in memory), `evaluate()` and `main.py evaluate` give the same
    top-1/top-5 errors."""
    config = _config(model_path, data_dir, ["ten_crop"])
    from_engine = engine.evaluate(config, printer=lambda line: None).errors("vgg_a", "ten_crop")

    model = keras.saving.load_model(model_path)
    settings = runs.eval_settings(model_path, SIZE, test_scale=SCALE, mean="rgb", data_dir=data_dir)
    callback = TenCropEvaluation(engine.protocol_dataset(engine.eval_input(settings, "validation", 4, data_dir),
                                                         "ten_crop"), printer=lambda line: None, interactive=False)
    callback.set_model(model)
    callback.on_train_end()
    assert callback.final["ten_crop_top1_error"] == pytest.approx(from_engine["top1_error"])
    assert callback.final["ten_crop_top5_error"] == pytest.approx(from_engine["top5_error"])

    out = tmp_path / "eval"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "evaluate", f"--model={model_path}",
                           f"--data_dir={data_dir}", "--protocols=ten_crop", f"--test_scale={SCALE}", "--mean=rgb",
                           "--batch_size=3", f"--output_dir={out}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    row = pd.read_csv(out / "errors.csv").iloc[0]
    assert row["top-1 val. error (%)"] == pytest.approx(100 * from_engine["top1_error"], abs=0.005)
    assert row["top-5 val. error (%)"] == pytest.approx(100 * from_engine["top5_error"], abs=0.005)
    assert 0 < from_engine["top5_error"] < from_engine["top1_error"] < 1


def test_the_table_refuses_inconsistent_entries():
    with pytest.raises(ValueError, match="grid size goes with grid positions"):
        eval_protocols.Protocol("bad", "bad", "", eval_protocols.GRID)
    with pytest.raises(ValueError, match="positions must be one of"):
        eval_protocols.Protocol("bad", "bad", "", "everywhere")
    table = {name: (p.views, p.dense, p.in_central_square) for name, p in eval_protocols.PROTOCOLS.items()}
    assert table == {"center": (1, False, True), "ten_crop": (10, False, True), "multi_crop": (50, False, False),
                     "dense": (0, True, False)}
