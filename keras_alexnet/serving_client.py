"""A client for TF Serving's REST API, for the models `keras_alexnet.export` writes.

Request (TF Serving "row" format): ``POST {server}/v1/models/{name}[/versions/{v}]:predict`` with
``{"signature_name": "serving_default", "instances": [{"b64": "<base64 JPEG/PNG>"}, ...]}``; binary
strings travel as ``{"b64": ...}`` objects. Response: ``{"predictions": [{"classes": [...],
"probabilities": [...], "class_names": [...], "status": "ok"}, ...]}``, one object per instance (an
image the model refused has its reason as `status`; models exported before `status` existed have
none), or ``{"error": "..."}`` with an HTTP error status for a request refused whole. Standard
library only (urllib), so the client needs no TensorFlow.
"""

import base64
import dataclasses
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from keras_alexnet.errors import UserError

STATUS_OK = "ok"  # the `status` output of an image the served model classified (keras_alexnet/export.py)


class ServingError(UserError):
    """TF Serving answered with an error, or could not be reached."""


class ServingUnreachable(ServingError):
    """TF Serving could not be reached: no request can succeed, so `predict` stops at once."""


@dataclasses.dataclass
class Prediction:
    """Top-k of one image: class ids, their names and probabilities, most probable first; or `error`,
    why the model did not classify that image (the lists are then empty)."""

    classes: list
    class_names: list
    probabilities: list
    error: Optional[str] = None

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
        status = _text(row.get("status", STATUS_OK))
        if status != STATUS_OK:
            out.append(Prediction([], [], [], error=status))
            continue
        out.append(Prediction([int(c) for c in row["classes"]], [_text(n) for n in row["class_names"]],
                              [float(p) for p in row["probabilities"]]))
    return out


def _text(value) -> str:
    """A string output as TF Serving's JSON carries it: plain text, or {"b64": ...} for binary strings."""
    return value if isinstance(value, str) else base64.b64decode(value["b64"]).decode("utf-8", "replace")


def predict(server: str, model_name: str, images, *, version=None,
            signature_name: str = "serving_default", timeout: float = 60.0) -> list:
    """Top-5 `Prediction`s for each encoded image (bytes) from a running TF Serving (no request for none)."""
    images = list(images)
    if not images:
        return []
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
