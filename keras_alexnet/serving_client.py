"""A client for TF Serving's REST API, for the models `keras_alexnet.export` writes.

Request (TF Serving "row" format): ``POST {server}/v1/models/{name}[/versions/{v}]:predict`` with
``{"signature_name": "serving_default", "instances": [{"b64": "<base64 JPEG/PNG>"}, ...]}``; binary
strings travel as ``{"b64": ...}`` objects. Response: ``{"predictions": [{"classes": [...],
"probabilities": [...], "class_names": [...]}, ...]}``, one object per instance, or ``{"error": "..."}``
with an HTTP error status. Standard library only (urllib), so the client needs no TensorFlow.
"""

import base64
import dataclasses
import json
import re
import urllib.error
import urllib.parse
import urllib.request

from keras_alexnet.errors import UserError


class ServingError(UserError):
    """TF Serving answered with an error, or could not be reached."""


class ServingUnreachable(ServingError):
    """TF Serving could not be reached: no request can succeed, so `predict` stops at once."""


@dataclasses.dataclass
class Prediction:
    """Top-k of one image: class ids, their names and probabilities, most probable first."""

    classes: list
    class_names: list
    probabilities: list

    def rows(self):
        return list(zip(self.classes, self.class_names, self.probabilities))


def one_line(message: str) -> str:
    """A TensorFlow error message without its graph-node and stack-trace lines (`File "...", line N`,
    as a `tf.function`'s errors carry them) and its `[Op:...]` tag, on one line."""
    noise = ("[[", "Detected at", "<stack", "Graph execution error", "defined at", 'File "')
    lines = [re.sub(r"\s*\[Op:[^\]]*\]$", "", line.strip()) for line in str(message).splitlines()]
    kept = [line for line in lines if line and not line.startswith(noise)]
    return " ".join(kept or lines)[:500]


def predict_url(server: str, model_name: str, version=None) -> str:
    server = server.rstrip("/")
    if not urllib.parse.urlparse(server).scheme:
        server = "http://" + server
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return f"{server}{path}:predict"


def request_body(images, signature_name: str = "serving_default") -> dict:
    """The JSON body for a batch of encoded images (bytes)."""
    return {
        "signature_name": signature_name,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images],
    }


def parse_response(body: dict, expected: int) -> list:
    """`Prediction`s from a TF Serving predict response; ServingError on an error or a malformed answer."""
    if "error" in body:
        raise ServingError(f"TF Serving refused the request: {one_line(body['error'])}")
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != expected:
        raise ServingError(f"TF Serving answered without {expected} predictions: {str(body)[:200]}")
    out = []
    for row in predictions:
        if not isinstance(row, dict) or not {"classes", "probabilities", "class_names"} <= set(row):
            raise ServingError(
                "the served model does not return classes/probabilities/class_names "
                f"(was it written by `main.py export`?): {str(row)[:200]}"
            )
        names = [n if isinstance(n, str) else base64.b64decode(n["b64"]).decode() for n in row["class_names"]]
        out.append(Prediction([int(c) for c in row["classes"]], names,
                              [float(p) for p in row["probabilities"]]))
    return out


def predict(server: str, model_name: str, images, *, version=None,
            signature_name: str = "serving_default", timeout: float = 60.0) -> list:
    """Top-5 `Prediction`s for each encoded image (bytes) from a running TF Serving."""
    images = list(images)
    url = predict_url(server, model_name, version)
    data = json.dumps(request_body(images, signature_name)).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text
        raise ServingError(f"{url}: HTTP {error.code}: {one_line(message)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ServingUnreachable(f"cannot reach TF Serving at {url}: {reason}") from None
    except ValueError:
        raise ServingError(f"{url}: the answer is not JSON") from None
    return parse_response(body, len(images))
