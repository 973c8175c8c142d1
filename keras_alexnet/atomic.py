"""Writing a file whole or not at all: into `<file>.tmp` beside it, renamed over the file when complete.

A reader (a resumed run, a second process, a server) sees the old file or the new one, never half of one.
The temporary is removed when the block fails; a process killed midway leaves `<file>.tmp`, which
`prepare` removes at its next start (`TEMP_SUFFIX`). With `what`, an OS error becomes one `UserError`
line: `PATH: cannot write WHAT (reason)`; without it the error propagates (to `outputs.writing` in the
command that writes). Nothing here imports TensorFlow: `pipelines` uses it before TensorFlow is loaded.
"""

import contextlib
import json
import os

import numpy as np

from keras_alexnet.errors import UserError

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing_path(path: str, what: str = ""):
    """Yields the temporary path to write instead of `path` (by any writer: `tf.io.TFRecordWriter`,
    `np.savez`); renames it over `path` when the block completes, removes it when the block fails."""
    temp = path + TEMP_SUFFIX
    try:
        yield temp
        os.replace(temp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temp)
        if what and isinstance(error, OSError):
            raise UserError(f"{path}: cannot write {what} ({error.strerror or error})") from None
        raise


@contextlib.contextmanager
def replacing(path: str, mode: str = "w", what: str = "", newline=None):
    """Yields a file open for writing (`mode` "w" as UTF-8 text, or "wb") that replaces `path` when complete."""
    encoding = None if "b" in mode else "utf-8"
    with replacing_path(path, what) as temp, open(temp, mode, encoding=encoding, newline=newline) as f:
        yield f


def write_text(path: str, text: str, what: str = "") -> str:
    """Replaces `path` with `text` (UTF-8); returns `path`."""
    with replacing(path, what=what) as f:
        f.write(text)
    return path


def write_json(path: str, data, what: str = "") -> str:
    """Replaces `path` with `data` as JSON (indent 1); returns `path`."""
    with replacing(path, what=what) as f:
        json.dump(data, f, indent=1)
    return path


def write_npz(path: str, arrays: dict, what: str = "") -> str:
    """Replaces `path` with the arrays of `arrays` as an uncompressed `.npz` (the name is kept as given)."""
    with replacing(path, "wb", what=what) as f:
        np.savez(f, **{key: np.asarray(value) for key, value in arrays.items()})
    return path
