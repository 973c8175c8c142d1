"""Scratch folders in the temporary folder ($TMPDIR), named with the process that owns them:
`keras_alexnet_<what>_<pid>-<random>`.

Their process removes them when it ends; a process killed with SIGKILL cannot, so `make` first removes
the scratch folders of processes that no longer run (those of processes still running, e.g. the other
workers of a cluster on the same host, are kept).
"""

import os
import re
import shutil
import tempfile

_PREFIX = "keras_alexnet_"
_NAME = re.compile(_PREFIX + r"[a-z]+_(\d+)-\w+")


def running(pid: int) -> bool:
    """True while process `pid` exists (also another user's, which this one may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(parent: str = "") -> list:
    """Removes the scratch folders in `parent` (the temporary folder by default) whose process no longer
    runs; returns their paths."""
    parent = parent or tempfile.gettempdir()
    removed = []
    for name in sorted(os.listdir(parent)):
        found = _NAME.fullmatch(name)
        path = os.path.join(parent, name)
        if found and not running(int(found.group(1))) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make(what: str) -> str:
    """A new empty scratch folder for `what` (lowercase letters) owned by this process, after removing the
    stale ones; the caller removes it when done."""
    if not re.fullmatch(r"[a-z]+", what):
        raise ValueError(f"scratch folder kind {what!r}: lowercase letters only")
    remove_stale()
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{what}_{os.getpid()}-")
