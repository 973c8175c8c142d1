"""Export to TF Serving's layout: versions, atomic publishing, signatures, fresh-process reload, bad bytes."""

import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_alexnet import export

SIZE, RESIZE, CLASSES = 16, 20, 7
NAMES = [f"class_{i}" for i in range(CLASSES)]
MEAN_RGB = np.array([120.0, 110.0, 100.0], np.float32)


@keras.saving.register_keras_serializable(package="test_export")
class _LRN(keras.layers.Layer):
    """Stand-in for the project's LRN layer (AlexNet §3.3): must be saved as the core LRN op."""

    def call(self, x):
        return tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = _LRN(name="lrn1")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="fc7")(x)
    x = keras.layers.Dense(CLASSES, name="fc8")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="softmax")(x))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("saved_models"))
    path = export.export_saved_model(
        model, base, "tiny", class_names=NAMES, mean=MEAN_RGB, image_size=SIZE, resize_size=RESIZE,
        crops="ten_crop",
    )
    return base, path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])


def _png(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return tf.io.encode_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).numpy()


def _numpy_ten_crop(image, size):
    h, w = image.shape[:2]
    c_top, c_left = (h - size) // 2, (w - size) // 2
    crops = [image[:size, :size], image[:size, w - size:], image[h - size:, :size],
             image[h - size:, w - size:], image[c_top:c_top + size, c_left:c_left + size]]
    return np.stack(crops + [c[:, ::-1] for c in crops])


def test_versions_increase_in_serving_layout(model, tmp_path):
    first = export.export_saved_model(model, str(tmp_path), "tiny", image_size=SIZE, resize_size=RESIZE)
    second = export.export_saved_model(model, str(tmp_path), "tiny", image_size=SIZE, resize_size=RESIZE)
    assert first == str(tmp_path / "tiny" / "1") and second == str(tmp_path / "tiny" / "2")
    assert sorted(os.listdir(tmp_path / "tiny")) == ["1", "2"]  # no temporary folder left
    for path in (first, second):
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
        assert os.path.exists(os.path.join(path, "variables", "variables.index"))
    assert export.read_description(second) == {
        "model": model.name, "num_classes": CLASSES, "image_size": SIZE, "resize_size": RESIZE,
        "crops": "center", "max_pixels": export.DEFAULT_MAX_PIXELS, "max_side": export.DEFAULT_MAX_SIDE,
        "max_batch_images": export.DEFAULT_MAX_BATCH_IMAGES, "max_batch_pixels": export.DEFAULT_MAX_BATCH_PIXELS,
        "mean": "none"}
    with pytest.raises(FileExistsError):
        export.export_saved_model(model, str(tmp_path), "tiny", image_size=SIZE, resize_size=RESIZE,
                                  version=2)


def test_reader_never_sees_a_partial_version(model, tmp_path):
    """A poller (TF Serving's view) only ever finds complete versions while exports run."""
    seen_incomplete, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            for version in export.list_versions(str(tmp_path / "tiny")):
                folder = tmp_path / "tiny" / str(version)
                if not (folder / "saved_model.pb").exists() or not (folder / "variables").exists():
                    seen_incomplete.append(version)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(3):
            export.export_saved_model(model, str(tmp_path), "tiny", image_size=SIZE, resize_size=RESIZE)
    finally:
        stop.set()
        reader.join()
    assert export.list_versions(str(tmp_path / "tiny")) == [1, 2, 3]
    assert seen_incomplete == []


def test_failed_export_leaves_no_version(model, tmp_path, monkeypatch):
    def write_half_then_fail(self, path, **kwargs):
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "wb").close()
        raise OSError("disk full")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(model, str(tmp_path), "tiny", image_size=SIZE, resize_size=RESIZE)
    assert os.listdir(tmp_path / "tiny") == []


def test_publish_takes_next_version_when_raced(tmp_path):
    """Another exporter publishing the version we picked makes us take the following one."""
    model_dir = tmp_path / "m"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "saved_model.pb").write_bytes(b"other")
    tmp = model_dir / ".tmp-export-x"
    tmp.mkdir()
    (tmp / "saved_model.pb").write_bytes(b"ours")
    real_list = export.list_versions
    calls = []

    def stale_list(path):
        calls.append(path)
        return [] if len(calls) == 1 else real_list(path)  # first look misses version 1

    export.list_versions = stale_list
    try:
        target = export._publish(str(tmp), str(model_dir))
    finally:
        export.list_versions = real_list
    assert target == str(model_dir / "2")
    assert (model_dir / "1" / "saved_model.pb").read_bytes() == b"other"
    assert (model_dir / "2" / "saved_model.pb").read_bytes() == b"ours"


def test_bytes_signature_matches_numpy_ten_crop(model, exported):
    """Ten crops by NumPy slicing, the model's softmax averaged: same top-5 (AlexNet §4.1)."""
    _, path = exported
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (2, RESIZE, RESIZE, 3), dtype=np.uint8)  # already at resize size
    data = [tf.io.encode_png(p).numpy() for p in pixels]
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(data))
    for i in range(2):
        crops = _numpy_ten_crop(pixels[i].astype(np.float32) - MEAN_RGB, SIZE)
        probs = model.predict(crops, verbose=0).mean(axis=0)
        order = np.argsort(-probs)[:5]
        np.testing.assert_array_equal(out["classes"].numpy()[i], order)
        np.testing.assert_allclose(out["probabilities"].numpy()[i], probs[order], rtol=1e-4, atol=1e-6)
        assert [n.decode() for n in out["class_names"].numpy()[i]] == [NAMES[j] for j in order]


def test_center_crop_with_mean_image(model, tmp_path):
    """A per-pixel mean image (AlexNet §2) is subtracted before the centre crop; JPEG input decodes."""
    rng = np.random.default_rng(2)
    mean_image = rng.uniform(0, 255, (RESIZE, RESIZE, 3)).astype(np.float32)
    path = export.export_saved_model(model, str(tmp_path), "c", class_names=NAMES, mean=mean_image,
                                     image_size=SIZE, resize_size=RESIZE, crops="center")
    pixels = rng.integers(0, 256, (RESIZE, RESIZE, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([tf.io.encode_png(pixels).numpy()]))
    off = (RESIZE - SIZE) // 2
    crop = (pixels.astype(np.float32) - mean_image)[off:off + SIZE, off:off + SIZE]
    probs = model.predict(crop[None], verbose=0)[0]
    np.testing.assert_allclose(out["probabilities"].numpy()[0], np.sort(probs)[::-1][:5], rtol=1e-4, atol=1e-6)
    jpeg = tf.io.encode_jpeg(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).numpy()
    assert loaded.signatures["serving_default"](image_bytes=tf.constant([jpeg]))["classes"].shape == (1, 5)


def test_preprocessed_signature_is_the_model(model, exported):
    _, path = exported
    loaded = tf.saved_model.load(path)
    x = np.random.default_rng(3).normal(0, 50, (3, SIZE, SIZE, 3)).astype(np.float32)
    out = loaded.signatures["serving_preprocessed"](images=tf.constant(x))
    np.testing.assert_allclose(out["all_probabilities"].numpy(), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _huge_png_header(width, height):
    good = _png(4, 4)
    return good[:16] + int(width).to_bytes(4, "big") + int(height).to_bytes(4, "big") + good[24:]


def _huge_jpeg_header(height, width):
    data = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
    sof = data.index(b"\xff\xc0")  # baseline SOF0: marker, length (2), precision (1), height, width
    data[sof + 5:sof + 7] = int(height).to_bytes(2, "big")
    data[sof + 7:sof + 9] = int(width).to_bytes(2, "big")
    return bytes(data)


def _png_claiming(height, width, data=None):
    """A valid-CRC PNG whose IHDR claims `height` x `width` over the pixel data of a small image."""
    import struct
    import zlib

    data = data or _png(16, 16)
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]


def _corrupt_png():
    data = bytearray(_png(RESIZE, RESIZE, seed=5))
    data[60] ^= 0xFF  # inside the IDAT chunk: the header reads, the data fails its CRC
    return bytes(data)


@pytest.mark.parametrize("data, message", [
    (b"this is not an image", "^image bytes are neither JPEG nor PNG$"),
    (b"", "neither JPEG nor PNG"),
    (b"GIF89a" + bytes(40), "neither JPEG nor PNG"),
    (_png(8, 8)[:20], "PNG bytes are truncated"),
    (b"\xff\xd8\xff" + bytes(30), "JPEG header is malformed"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG bytes are truncated"),
    (_huge_png_header(200_000, 200_000), "claims 200000x200000 pixels, a side outside 1..16384 .max_side."),
    (_huge_png_header(16_000, 16_000), "claims 16000x16000 pixels, more than max_pixels=40000000"),
    (_huge_jpeg_header(65_000, 65_000), "max_side"),
    (_huge_jpeg_header(0, 8), "claims 0x8 pixels, a side outside"),
    # Exactly max_pixels over 8x8 pixels of data: libjpeg would fill the rest with grey (120 MB). At least
    # one bit per 8x8 block: 625 x 1000 blocks.
    (_huge_jpeg_header(5_000, 8_000), r"claims 5000x8000 pixels but the file holds \d+ bytes, fewer than any "
                                      rf"complete JPEG of that size \({625 * 1000 // 8}\)"),
    # 5000 scanlines of a filter byte and 8000 RGB pixels, deflated at most 1032:1.
    (_png_claiming(5_000, 8_000), r"claims 5000x8000 pixels but the file holds \d+ bytes, fewer than any "
                                  rf"complete PNG of that size \({5_000 * (1 + 8_000 * 3) // 1032}\)"),
    (_corrupt_png(), "^image data could not be decoded"),
])
def test_bad_images_get_their_status_and_the_good_ones_their_answer(loaded, data, message):
    """A bad image in a batch costs only its row: the good images get what they get alone."""
    serve = loaded.signatures["serving_default"]
    good = [_png(RESIZE, RESIZE), _png(25, 33, seed=1)]
    alone = serve(image_bytes=tf.constant(good))
    out = serve(image_bytes=tf.constant([good[0], data, good[1]]))
    status = [s.decode() for s in out["status"].numpy()]
    assert status[0] == status[2] == "ok" and re.search(message, status[1]), status
    for name, bad_row in (("classes", [-1] * 5), ("probabilities", [0.0] * 5), ("class_names", [b""] * 5)):
        assert out[name].dtype == alone[name].dtype and out[name].shape == (3, 5)
        assert out[name].numpy()[1].tolist() == bad_row
    np.testing.assert_array_equal(out["classes"].numpy()[[0, 2]], alone["classes"].numpy())
    np.testing.assert_array_equal(out["class_names"].numpy()[[0, 2]], alone["class_names"].numpy())
    np.testing.assert_allclose(out["probabilities"].numpy()[[0, 2]], alone["probabilities"].numpy(), rtol=1e-6)


def test_least_bytes_bound_passes_complete_images(exported):
    """The bytes bound refuses no complete image: a flat 5000x8000 JPEG (the smallest such file libjpeg
    writes) and flat 1-bit and RGB PNGs pass their header check (here at max_pixels 40 Mpx, read and
    refused only by the request's pixel budget)."""
    headers = tf.function(lambda data: export._header_problem(data, export.DEFAULT_MAX_PIXELS,
                                                              export.DEFAULT_MAX_SIDE))
    flat_jpeg = tf.io.encode_jpeg(np.zeros((5_000, 8_000, 3), np.uint8), quality=1,
                                  chroma_downsampling=True).numpy()
    flat_png = tf.io.encode_png(np.zeros((5_000, 8_000, 1), np.uint8)).numpy()
    for data in (flat_jpeg, flat_png):
        shape, problem = headers(tf.constant(data))
        assert problem.numpy() == b"" and shape.numpy().tolist() == [5_000, 8_000], (len(data), problem)


@pytest.mark.parametrize("which", ["exported", "exported_alexnet"])
def test_empty_request_gets_empty_outputs(which, request):
    """AlexNet's grouped convolutions cannot run on an empty batch: the model is not called on one."""
    serve = tf.saved_model.load(request.getfixturevalue(which)[1]).signatures["serving_default"]
    out = serve(image_bytes=tf.constant([], tf.string))
    assert {name: (tuple(v.shape), v.dtype) for name, v in out.items()} == {
        "classes": ((0, 5), tf.int32), "probabilities": ((0, 5), tf.float32), "class_names": ((0, 5), tf.string),
        "status": ((0,), tf.string)}


FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
try:
    import keras_alexnet
    sys.exit("project code is importable")
except ImportError:
    pass
path, png = sys.argv[1], open(sys.argv[2], "rb").read()
loaded = tf.saved_model.load(path)
out = loaded.signatures["serving_default"](image_bytes=tf.constant([png]))
ops = {n.op for f in loaded.signatures["serving_default"].graph.as_graph_def().library.function
       for n in f.node_def}
print(json.dumps({"signatures": sorted(loaded.signatures), "classes": out["classes"].numpy().tolist(),
                  "names": [n.decode() for n in out["class_names"].numpy()[0]], "lrn": "LRN" in ops}))
"""


@pytest.fixture(scope="module")
def exported_alexnet(tmp_path_factory):
    """The project's two-tower AlexNet (LRN, tower convolutions), small: the real layers must export."""
    from keras_alexnet.registry import build_model

    keras.utils.set_random_seed(10)
    model = build_model("alexnet", num_classes=CLASSES, input_shape=(67, 67, 3), width=0.125)
    path = export.export_saved_model(model, str(tmp_path_factory.mktemp("alexnet")), "alexnet",
                                     class_names=NAMES, mean=np.full((76, 76, 3), 117.0, np.float32),
                                     image_size=67, resize_size=76, crops="ten_crop")
    return None, path


@pytest.mark.parametrize("which", ["exported", "exported_alexnet"])
def test_fresh_process_reload_without_project_code(which, request, tmp_path):
    base, path = request.getfixturevalue(which)
    png = tmp_path / "x.png"
    png.write_bytes(_png(25, 33))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-c", FRESH_PROCESS, path, str(png)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["signatures"] == ["serving_default", "serving_preprocessed"]
    assert report["lrn"]  # the LRN layer went into the graph as the core op
    expected = tf.saved_model.load(path).signatures["serving_default"](image_bytes=tf.constant([png.read_bytes()]))
    assert report["classes"] == expected["classes"].numpy().tolist()
    assert report["names"] == [NAMES[i] for i in report["classes"][0]]


def test_saved_model_cli_shows_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", exported[1], "--tag_set", "serve", "--signature_def",
                             "serving_default"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "image_bytes" in result.stdout and "DT_STRING" in result.stdout
    for output in ("classes", "probabilities", "class_names", "status"):
        assert f"outputs['{output}']" in result.stdout


def test_export_best_callback_writes_a_version_per_improvement(tmp_path):
    from callbacks.export_best import ExportBest

    model = tiny_model(seed=4)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    callback = ExportBest(str(tmp_path), "run", monitor="val_loss", class_names=NAMES, mean=MEAN_RGB,
                          image_size=SIZE, resize_size=RESIZE)
    for loss in (2.0, 1.5, 1.7, 1.0):  # improvements at epochs 0, 1 and 3
        callback.set_model(model)
        callback.on_epoch_end(0, {"val_loss": loss})
    assert export.list_versions(str(tmp_path / "run")) == [1, 2, 3]
    assert callback.versions[-1] == str(tmp_path / "run" / "3")

    x = np.zeros((4, SIZE, SIZE, 3), np.float32)
    y = np.zeros((4,), np.int32)
    fit_callback = ExportBest(str(tmp_path), "fit", monitor="val_loss", image_size=SIZE, resize_size=RESIZE)
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[fit_callback])
    assert export.list_versions(str(tmp_path / "fit")) == [1]  # LR 0: the loss never improves again

    worker = ExportBest(str(tmp_path), "worker", is_chief=False, image_size=SIZE, resize_size=RESIZE)
    worker.set_model(model)
    worker.on_epoch_end(0, {"val_loss": 1.0})
    assert worker.best == 1.0 and not os.path.exists(tmp_path / "worker")

    resumed = ExportBest(str(tmp_path), "run", image_size=SIZE, resize_size=RESIZE)
    resumed.set_state(json.loads(json.dumps(callback.get_state())))  # as the trainer's checkpoint keeps it
    resumed.set_model(model)
    resumed.on_epoch_end(0, {"val_loss": 1.2})  # worse than the best before the interruption
    assert export.list_versions(str(tmp_path / "run")) == [1, 2, 3]


def _main(*args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, os.path.join(root, "main.py"), *args], capture_output=True,
                          text=True, cwd=root, timeout=600)


def test_export_and_predict_commands_from_a_run_folder(tmp_path):
    """`main.py export` of a run's model.keras; `predict` from it and from the checkpoint agree."""
    from keras_alexnet.registry import build_model
    from pipelines import records

    data = tmp_path / "data"
    classes = [records.ClassInfo(i, f"n{i:08d}", f"thing {i}") for i in range(CLASSES)]
    records.write_metadata(str(data), records.DatasetInfo(classes=classes, splits={}))
    np.savez(data / records.STATS_FILE, mean_image=np.full((40, 40, 3), 118.0, np.float32), mean_rgb=MEAN_RGB)
    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(8)
    build_model("vgg_a", num_classes=CLASSES, input_shape=(32, 32, 3), width=0.125).save(run / "model.keras")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(tf.io.encode_jpeg(np.random.default_rng(9).integers(0, 256, (50, 70, 3), np.uint8)).numpy())

    base = tmp_path / "saved_models"
    exported = _main("export", f"--model={run}", f"--data_dir={data}", f"--base_dir={base}", "--crops=ten_crop",
                     "--test_scale=40", "--mean=rgb")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert exported.stdout.strip() == str(base / "vgg_a" / "1")
    again = _main("export", f"--model={run}", f"--data_dir={data}", f"--base_dir={base}", "--test_scale=40",
                  "--mean=rgb", "--version=1")
    assert again.returncode == 2 and "version 1 already exists" in again.stderr

    served = _main("predict", f"--model={base / 'vgg_a'}", str(photo))
    local = _main("predict", f"--model={run}", f"--data_dir={data}", "--crops=ten_crop", "--test_scale=40",
                  "--mean=rgb", str(photo))
    assert served.returncode == 0 and local.returncode == 0, served.stderr[-2000:] + local.stderr[-2000:]
    assert served.stdout == local.stdout and "thing" in served.stdout
    assert len(served.stdout.splitlines()) == 6

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    refused = _main("predict", f"--model={base / 'vgg_a'}", str(bad), str(photo))  # the bad file first
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"main.py predict: error: {bad}: not an image (not JPEG, PNG, GIF, BMP or WebP)",
        "main.py predict: error: 1 of 2 images could not be predicted (each named above)"]
    assert refused.stdout == served.stdout  # the good file is still predicted


def test_export_best_folds_the_training_input_scale(tmp_path):
    """A model trained on inputs x·s (`train --input_scale=s`) is exported taking plain x."""
    from callbacks.export_best import ExportBest

    model = tiny_model(seed=5)
    callback = ExportBest(str(tmp_path), "scaled", monitor="val_loss", input_scale=0.25,
                          image_size=SIZE, resize_size=RESIZE)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    x = np.random.default_rng(6).normal(0, 60, (3, SIZE, SIZE, 3)).astype(np.float32)
    loaded = tf.saved_model.load(callback.versions[-1])
    served = loaded.signatures["serving_preprocessed"](images=tf.constant(x))["all_probabilities"].numpy()
    np.testing.assert_allclose(served, model.predict(0.25 * x, verbose=0), rtol=1e-4, atol=1e-6)
    assert model.get_layer("conv1").get_weights()[0].std() > 0  # the training model is left as it was
    np.testing.assert_allclose(model.predict(x, verbose=0), tiny_model(seed=5).predict(x, verbose=0))
