"""`main.py import_weights --architecture=alexnet`: Caffe's bvlc_alexnet (AlexNet §3.5 as Caffe trained it)
read from its .caffemodel by protobuf's wire format, checked on real photos against an independent Caffe
reader, OpenCV's `cv2.dnn.readNetFromCaffe`, fed Caffe's own preprocessing (BGR, the 227 centre crop of
the 256 frame minus the mean image). The caffemodel is written by the test (`tests/caffe_writer.py`,
bvlc_alexnet's exact layer list and shapes, random weights); nothing is downloaded."""

import os

import cv2
import numpy as np
import pytest

import keras

from keras_alexnet import caffe_import, runs
from keras_alexnet.caffemodel import read_blob, read_net
from keras_alexnet.cli import import_weights
from keras_alexnet.errors import UserError
from keras_alexnet.registry import build_model
from tests import caffe_writer
from tests.real_photos import PHOTOS, square_frame

FRAME, CROP = 256, 227
OFFSET = (FRAME - CROP) // 2  # Caffe's test-phase crop: (256 - 227) / 2


def framed_photos(folder):
    """The photos as 256x256 PNGs (central square, resized): the frame both Caffe's preprocessing and this
    project's read as it is. Returns (paths, uint8 RGB frames)."""
    os.makedirs(folder, exist_ok=True)
    paths, frames = [], []
    for name in PHOTOS:
        image = square_frame(name, FRAME)
        paths.append(os.path.join(folder, os.path.splitext(name)[0] + ".png"))
        image.save(paths[-1])
        frames.append(np.asarray(image))
    return paths, np.stack(frames)


def opencv_probabilities(prototxt, caffemodel, frames, mean_bgr_chw):
    """OpenCV's Caffe net on Caffe's preprocessing: BGR, the centre 227 crop, minus the mean's same crop."""
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    crops = frames[:, OFFSET:OFFSET + CROP, OFFSET:OFFSET + CROP, ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    mean = np.broadcast_to(mean_bgr_chw, (3, FRAME, FRAME))[:, OFFSET:OFFSET + CROP, OFFSET:OFFSET + CROP]
    out = []
    for crop in crops:
        net.setInput(np.ascontiguousarray((crop - mean)[None], np.float32))
        out.append(net.forward().reshape(-1))
    return np.stack(out)


@pytest.fixture(scope="module")
def bvlc(tmp_path_factory):
    """bvlc_alexnet with random weights, its deploy.prototxt, a mean image and synset_words.txt, imported
    through the command's function; OpenCV's probabilities on the photos."""
    folder = tmp_path_factory.mktemp("bvlc")
    weights = caffe_writer.random_weights(fc8_scale=0.15)
    model_file = caffe_writer.caffemodel(str(folder / "bvlc_alexnet.caffemodel"), weights)
    prototxt = caffe_writer.deploy_prototxt(str(folder / "deploy.prototxt"), weights)
    rng = np.random.default_rng(1)  # a mean image that is not a constant colour (its crop position matters)
    mean_bgr = (np.array([104.0, 117.0, 123.0])[:, None, None] + rng.uniform(-20, 20, (3, FRAME, FRAME))).astype(np.float32)
    mean_file = caffe_writer.mean_binaryproto(str(folder / "ilsvrc_2012_mean.binaryproto"), mean_bgr)
    words = caffe_writer.synset_words(str(folder / "synset_words.txt"))
    files, frames = framed_photos(str(folder / "photos"))
    want = opencv_probabilities(prototxt, model_file, frames, mean_bgr)
    run_dir = str(folder / "runs" / "bvlc")
    record = import_weights.import_run(model_file, "alexnet", run_dir, mean_file=mean_file, class_names=words)
    yield dict(folder=folder, weights=weights, model_file=model_file, prototxt=prototxt, mean_bgr=mean_bgr,
               mean_file=mean_file, files=files, frames=frames, want=want, run_dir=run_dir, record=record)
    keras.backend.clear_session()


def test_record_says_what_every_command_needs(bvlc):
    record = runs.read_record(bvlc["run_dir"])
    assert (record.architecture, record.image_size, record.test_scale, record.mean, record.origin) == (
        "alexnet", 227, 256, "image", "import")
    config = runs.model_config_of(record)
    assert {k: config[k] for k in ("conv1_padding", "lrn_convention", "lrn_position", "lrn")} == {
        "conv1_padding": 0, "lrn_convention": "caffe", "lrn_position": "before_pool", "lrn": True}
    assert "LRN before pooling (bvlc_alexnet)" in record.mean_note and "ilsvrc_2012_mean.binaryproto" in record.mean_note
    assert record.class_names[:2] == ["class 0, thing 0", "class 1, thing 1"]
    np.testing.assert_array_equal(np.load(os.path.join(bvlc["run_dir"], "stats.npz"))["mean_image"],
                                  bvlc["mean_bgr"][::-1].transpose(1, 2, 0))


def test_probabilities_equal_opencv_caffe_on_real_photos(bvlc):
    """This project's pipeline (the run's mean image and framing, `export.make_preprocess`) and model give
    OpenCV's Caffe probabilities within 1e-4, on peaked outputs (else the tolerance says nothing)."""
    import tensorflow as tf

    from keras_alexnet import export
    from keras_alexnet.evaluation.models import load_keras_model

    want = bvlc["want"]
    assert (want.max(axis=1) > 0.3).sum() >= 4 and len(set(want.argmax(axis=1))) >= 2
    model = load_keras_model(bvlc["run_dir"])
    assert [layer.name for layer in model.layers if "lrn" in layer.name or "pool" in layer.name][:4] == [
        "lrn1", "pool1", "lrn2", "pool2"]
    settings = runs.eval_settings(bvlc["run_dir"], 227)
    preprocess = export.make_preprocess(mean=settings.mean_values, image_size=227, resize_size=settings.test_scale)
    crops = tf.concat([preprocess(tf.constant(open(path, "rb").read())) for path in bvlc["files"]], axis=0)
    got = keras.ops.convert_to_numpy(model(crops))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # The same weights read as this project's paper net (LRN k=2, α not divided by n) would differ.
    paper = build_model("alexnet", input_shape=(227, 227, 3), conv1_padding=0)
    paper.set_weights(model.get_weights())
    assert np.abs(keras.ops.convert_to_numpy(paper(crops)) - want).max() > 1e-3


def test_exported_serving_signature_on_photo_bytes(bvlc):
    """`main.py export`'s SavedModel, loaded with tf.saved_model.load: its bytes-in signature (the same 256
    frame and 227 centre crop) gives OpenCV's top-5 classes and probabilities."""
    import tensorflow as tf

    from keras_alexnet import export
    from keras_alexnet.evaluation.models import load_keras_model

    settings = runs.eval_settings(bvlc["run_dir"], 227)
    base = str(bvlc["folder"] / "saved_models")
    version_dir = export.export_saved_model(
        load_keras_model(bvlc["run_dir"]), base, "bvlc", class_names=settings.class_names,
        mean=settings.mean_values, image_size=227, resize_size=settings.test_scale)
    loaded = tf.saved_model.load(version_dir)
    images = tf.constant([open(path, "rb").read() for path in bvlc["files"]])
    out = loaded.signatures[export.SIGNATURE_BYTES](**{export.BYTES_INPUT: images})
    want = bvlc["want"]
    top = np.argsort(-want, axis=1)[:, :5]
    np.testing.assert_array_equal(out["classes"].numpy(), top)
    np.testing.assert_allclose(out["probabilities"].numpy(), np.take_along_axis(want, top, axis=1), rtol=0, atol=1e-4)
    assert out["class_names"].numpy()[0, 0].decode() == f"class {top[0, 0]}, thing {top[0, 0]}"


def test_v1_layers_and_legacy_blob_dims_read_the_same(bvlc):
    """The same net written in the legacy form (V1 `layers`, type enums, num/channels/height/width blobs)
    reads to the same layers and blobs (squeezed to Caffe's shapes on import)."""
    v1_file = caffe_writer.caffemodel(str(bvlc["folder"] / "v1.caffemodel"), bvlc["weights"], v1=True)
    current, legacy = read_net(bvlc["model_file"]), read_net(v1_file)
    assert [(l.name, l.type) for l in legacy] == [(l.name, l.type) for l in current]
    assert caffe_import.net_options(legacy) == caffe_import.net_options(current)
    fc6 = next(l for l in legacy if l.name == "fc6")
    assert fc6.blobs[0].shape == (1, 1, 4096, 9216) and fc6.blobs[1].shape == (1, 1, 1, 4096)
    for a, b in zip(current, legacy):
        for x, y in zip(a.blobs, b.blobs):
            np.testing.assert_array_equal(x.reshape(-1), y.reshape(-1))
    model = build_model("alexnet", input_shape=(227, 227, 3), **caffe_import.net_options(legacy))
    caffe_import.load_alexnet(model, legacy, v1_file)
    os.remove(v1_file)
    window = slice(OFFSET, OFFSET + CROP)
    mean_rgb = bvlc["mean_bgr"][::-1].transpose(1, 2, 0)
    crops = bvlc["frames"][:, window, window].astype(np.float32) - mean_rgb[window, window]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(crops)), bvlc["want"], rtol=0, atol=1e-4)
    # The mean file in both blob forms.
    shaped = caffe_writer.mean_binaryproto(str(bvlc["folder"] / "shaped.binaryproto"), bvlc["mean_bgr"], legacy=False)
    np.testing.assert_array_equal(read_blob(shaped), read_blob(bvlc["mean_file"]))


def test_caffenet_order_is_read_from_the_file(tmp_path):
    """CaffeNet (pool before LRN) at a quarter of the widths: the order is detected and built, and OpenCV's
    Caffe probabilities are matched (the mean colour, no mean file)."""
    layers = caffe_writer.CAFFENET
    weights = caffe_writer.random_weights(layers, seed=3, width=0.25, num_classes=10, fc8_scale=0.5)
    model_file = caffe_writer.caffemodel(str(tmp_path / "caffenet.caffemodel"), weights, layers)
    prototxt = caffe_writer.deploy_prototxt(str(tmp_path / "deploy.prototxt"), weights, layers)
    net = read_net(model_file)
    options = caffe_import.net_options(net)
    assert options == dict(conv1_padding=0, lrn_convention="caffe", lrn=True, lrn_position="after_pool")
    model = build_model("alexnet", num_classes=10, input_shape=(227, 227, 3), width=0.25, **options)
    caffe_import.load_alexnet(model, net, model_file)
    _, frames = framed_photos(str(tmp_path / "photos"))
    mean_bgr = np.array(caffe_import.CAFFE_MEAN_BGR, np.float32)[:, None, None]
    want = opencv_probabilities(prototxt, model_file, frames, mean_bgr)
    assert (want.max(axis=1) > 0.3).sum() >= 4
    crops = frames[:, OFFSET:OFFSET + CROP, OFFSET:OFFSET + CROP].astype(np.float32) - caffe_import.mean_rgb()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(crops)), want, rtol=0, atol=1e-4)


def test_bad_files_one_line_each(tmp_path, monkeypatch):
    from keras_alexnet import registry

    # A caffemodel of another net (conv1 of 64 kernels): the first layer that does not fit, both shapes.
    weights = caffe_writer.random_weights(width=0.25)
    weights["conv1"] = (np.zeros((64, 3, 11, 11), np.float32), np.zeros(64, np.float32))
    other = caffe_writer.caffemodel(str(tmp_path / "other.caffemodel"), weights)
    with pytest.raises(UserError) as error:
        import_weights.import_run(other, "alexnet", str(tmp_path / "a"))
    message = str(error.value)
    assert "\n" not in message and "other.caffemodel: layer conv1" in message
    assert "(64, 3, 11, 11)" in message and "(96, 3, 11, 11)" in message
    assert not os.path.exists(tmp_path / "a" / runs.RUN_FILE)

    # Files refused before any model is built.
    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the file was checked")

    monkeypatch.setattr(registry, "build_model", no_model)
    data = open(other, "rb").read()
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=r"truncated.caffemodel: truncated"):
        import_weights.import_run(str(truncated), "alexnet", str(tmp_path / "b"))
    garbage = tmp_path / "vgg16.h5"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(UserError, match=r"vgg16.h5: not an HDF5 file"):
        import_weights.import_run(str(garbage), "vgg_d", str(tmp_path / "c"))
    pth = tmp_path / "alexnet.pth"
    pth.write_bytes(b"garbage, not torch.save's output")
    with pytest.raises(UserError, match=r"alexnet.pth: not a PyTorch file"):
        import_weights.import_run(str(pth), "alexnet_torchvision", str(tmp_path / "d"))
    mean = tmp_path / "mean.binaryproto"
    mean.write_bytes(b"\x0a\xff\xff\xff\x0f")
    with pytest.raises(UserError, match=r"mean.binaryproto: truncated"):
        caffe_import.mean_image(str(mean))
    assert not any(os.path.exists(tmp_path / name) for name in "bcd")


def test_reader_skips_other_fields_and_reads_double_and_unpacked_data(tmp_path):
    """Fields a real train_val caffemodel also holds (bottom/top strings, param messages, a phase
    varint, fixed32/fixed64 values) are skipped; blobs in double_data (8) and in unpacked floats (5 as
    one 32-bit field each) are read."""
    w = caffe_writer
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    doubles = (w.length_field(7, w.length_field(1, w.varint(2) + w.varint(3)))
               + w.length_field(8, values.astype("<f8").tobytes()))
    unpacked = (w.varint_field(1, 1) + w.varint_field(2, 1) + w.varint_field(3, 2) + w.varint_field(4, 3)
                + b"".join(w.key(5, 5) + v.tobytes() for v in values.reshape(-1).astype("<f4")))
    layer = (w.length_field(1, b"fc") + w.length_field(2, b"InnerProduct") + w.length_field(3, b"pool5")
             + w.length_field(4, b"fc") + w.length_field(6, w.length_field(1, b"lr")) + w.varint_field(10, 1)
             + w.key(5, 5) + np.float32(1).tobytes() + w.key(11, 1) + np.float64(2).tobytes()
             + w.length_field(7, doubles) + w.length_field(7, unpacked))
    path = tmp_path / "fields.caffemodel"
    path.write_bytes(w.length_field(1, b"net") + w.varint_field(5, 1) + w.length_field(100, layer))
    (read,) = read_net(str(path))
    assert (read.name, read.type) == ("fc", "InnerProduct")
    np.testing.assert_array_equal(read.blobs[0], values)
    np.testing.assert_array_equal(read.blobs[1], values.reshape(1, 1, 2, 3))
