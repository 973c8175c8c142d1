"""The REST client against an in-test stand-in for TF Serving (http.server on 127.0.0.1).

The stand-in answers `/v1/models/NAME:predict` as TF Serving does: it decodes `{"b64": ...}` instances,
runs the exported SavedModel's signature, and returns row-format predictions, or `{"error": ...}` with
HTTP 400 when the signature fails (as TF Serving reports InvalidArgument).
"""

import base64
import http.server
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

from keras_alexnet import export, serving_client

SIZE, CLASSES = 12, 6
NAMES = [f"n{i:02d} thing {i}" for i in range(CLASSES)]


def _tiny_model():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(3, 3, strides=3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(CLASSES, name="fc8")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="softmax")(x))


def _json_value(value):
    """A row of one output as TF Serving's JSON carries it: strings as text, numbers as numbers."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value]
    return value.item()


class _StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _handler(models, requests):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, self.headers.get("Content-Type"), body))
            match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict", self.path)
            if not match or match.group(1) not in models:
                return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            signature = models[match.group(1)].signatures[body.get("signature_name", "serving_default")]
            images = tf.constant([base64.b64decode(i["b64"]) for i in body["instances"]], tf.string)
            try:
                out = signature(image_bytes=images)
            except tf.errors.InvalidArgumentError as error:
                return self._reply(400, {"error": error.message})
            rows = [{name: _json_value(value[i].numpy()) for name, value in out.items()}
                    for i in range(len(body["instances"]))]  # every output, as TF Serving answers
            return self._reply(200, {"predictions": rows})

    return Handler


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = export.export_saved_model(_tiny_model(), str(tmp_path_factory.mktemp("sm")), "tiny",
                                     class_names=NAMES, mean=[100.0, 100.0, 100.0], image_size=SIZE,
                                     resize_size=14)
    loaded = tf.saved_model.load(path)
    requests = []
    server = _StandIn(("127.0.0.1", 0), _handler({"tiny": loaded}, requests))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", loaded, requests, path
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _images():
    rng = np.random.default_rng(0)
    return [tf.io.encode_png(rng.integers(0, 256, (20, 17, 3), dtype=np.uint8)).numpy(),
            tf.io.encode_jpeg(rng.integers(0, 256, (15, 30, 3), dtype=np.uint8)).numpy()]


def test_request_format_and_parsed_predictions(served):
    url, loaded, requests, _ = served
    images = _images()
    predictions = serving_client.predict(url, "tiny", images, version=3, timeout=30)
    path, content_type, body = requests[-1]
    assert path == "/v1/models/tiny/versions/3:predict"
    assert content_type == "application/json"
    assert body["signature_name"] == "serving_default"
    assert [base64.b64decode(i["b64"]) for i in body["instances"]] == images
    direct = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    assert len(predictions) == 2
    for i, prediction in enumerate(predictions):
        assert prediction.classes == direct["classes"][i].numpy().tolist()
        assert prediction.class_names == [NAMES[c] for c in prediction.classes]
        np.testing.assert_allclose(prediction.probabilities, direct["probabilities"][i].numpy(), rtol=1e-6)
        assert prediction.rows()[0] == (prediction.classes[0], prediction.class_names[0],
                                        prediction.probabilities[0])


def test_url_without_version_or_scheme(served):
    url, _, requests, _ = served
    serving_client.predict(url.replace("http://", ""), "tiny", _images()[:1], timeout=30)
    assert requests[-1][0] == "/v1/models/tiny:predict"


def test_bad_images_get_their_reason_and_the_good_ones_their_answer(served):
    url, loaded, requests, _ = served
    good = _images()
    predictions = serving_client.predict(url, "tiny", [good[0], b"not an image", good[1], good[0][:20]], timeout=30)
    assert requests[-1][0] == "/v1/models/tiny:predict"
    direct = loaded.signatures["serving_default"](image_bytes=tf.constant(good))
    assert [p.error for p in predictions] == [None, "image bytes are neither JPEG nor PNG", None,
                                              "PNG bytes are truncated before the end of the IHDR header"]
    assert predictions[1].rows() == predictions[3].rows() == []
    for i, prediction in zip((0, 1), (predictions[0], predictions[2])):
        assert prediction.classes == direct["classes"][i].numpy().tolist()
        np.testing.assert_allclose(prediction.probabilities, direct["probabilities"][i].numpy(), rtol=1e-6)
    count = len(requests)
    assert serving_client.predict(url, "tiny", [], timeout=30) == [] and len(requests) == count  # no request


def test_server_errors_become_one_line_user_errors(served):
    url, _, _, _ = served
    too_many = [_images()[0]] * (export.DEFAULT_MAX_BATCH_IMAGES + 1)  # a request limit refuses it whole
    with pytest.raises(serving_client.ServingError, match="HTTP 400: .*max_batch_images") as error:
        serving_client.predict(url, "tiny", too_many, timeout=30)
    assert "\n" not in str(error.value) and "[[" not in str(error.value)
    with pytest.raises(serving_client.ServingError, match="HTTP 404: Servable not found"):
        serving_client.predict(url, "missing", _images()[:1], timeout=30)


def test_unreachable_server():
    with socket_closed_port() as port:
        with pytest.raises(serving_client.ServingError, match="cannot reach TF Serving"):
            serving_client.predict(f"http://127.0.0.1:{port}", "tiny", [b"x"], timeout=5)


class socket_closed_port:
    """A local port with nothing listening on it."""

    def __enter__(self):
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        return port

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("body, message", [
    ({"error": "Model is loading"}, "refused the request: Model is loading"),
    ({"predictions": []}, "without 1 predictions"),
    ({"predictions": [[0.1, 0.9]]}, "does not return classes"),
])
def test_malformed_answers(body, message):
    with pytest.raises(serving_client.ServingError, match=message):
        serving_client.parse_response(body, 1)


def test_b64_encoded_names_are_decoded():
    row = {"classes": [2], "probabilities": [0.5],
           "class_names": [{"b64": base64.b64encode("café".encode()).decode()}]}
    assert serving_client.parse_response({"predictions": [row]}, 1)[0].class_names == ["café"]


def _main(*args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, os.path.join(root, "main.py"), *args], capture_output=True,
                          text=True, cwd=root, timeout=300)


def test_predict_command_from_server_and_from_saved_model(served, tmp_path):
    url, loaded, requests, path = served
    requests_before = len([r for r in requests if r[0] == "/v1/models/tiny:predict"])
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in zip(("a.png", "b.jpg"), _images()):
        (folder / name).write_bytes(data)
    (folder / "c.png").write_bytes(b"not an image either")  # named by predict; a.png and b.jpg in one request
    (folder / "notes.txt").write_text("not an image")
    remote = _main("predict", f"--server={url}", "--model_name=tiny", f"--output_csv={tmp_path / 'p.csv'}",
                   str(folder))
    assert remote.returncode == 1, remote.stderr
    assert remote.stderr.strip().splitlines()[-3:] == [
        f"main.py predict: error: {folder / 'c.png'}: not an image (not JPEG, PNG, GIF, BMP or WebP)",
        f"wrote {tmp_path / 'p.csv'}",
        "main.py predict: error: 1 of 3 images could not be predicted (each named above)"]
    assert len([r for r in requests if r[0] == "/v1/models/tiny:predict"]) == requests_before + 1  # one request
    direct = loaded.signatures["serving_default"](image_bytes=tf.constant(_images()))
    first = NAMES[direct["classes"].numpy()[0][0]]
    lines = remote.stdout.splitlines()
    assert lines[0] == str(folder / "a.png") and lines[1].endswith(first) and len(lines) == 12
    csv_lines = (tmp_path / "p.csv").read_text().splitlines()
    assert csv_lines[0] == "file,rank,class,name,probability" and len(csv_lines) == 11

    local = _main("predict", f"--model={os.path.dirname(path)}", str(folder))
    assert local.returncode == 1 and local.stderr == remote.stderr.replace(f"wrote {tmp_path / 'p.csv'}\n", "")
    assert local.stdout == remote.stdout  # same model, same answers, locally and over REST

