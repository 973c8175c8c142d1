"""Where the writing commands write: checked before work starts, and OS errors while writing as one line.

Every command that writes (prepare, stats, evaluate, export, predict --output_csv, neighbors, figures,
train, import_weights) checks its output location in `validate()`, before TensorFlow is imported:
`check_writable_dir` (a folder that exists or can be created, writable) or `check_writable_file`, and a
name that makes a folder under another (`train --run_name`, `export --name`) with `check_folder_name`. An OS
error during the writing itself (no space left, a file system turned read-only) is turned by `writing`
into one `UserError` line naming the path, after removing the files the block left partly written.
Nothing here imports TensorFlow; TensorFlow's own file errors (`tf.io`, `TFRecordWriter`, summary
writers) are recognised once it is loaded.
"""

import contextlib
import os
import shutil
import sys

from keras_alexnet.errors import FlagError, UserError


def _nearest_existing(path: str) -> str:
    """`path` or its closest ancestor that exists (a dangling symlink counts as existing)."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _not_writable(folder: str) -> str:
    """Why `folder` (an existing folder) cannot be written to, or "" when it can."""
    if os.access(folder, os.W_OK | os.X_OK):
        return ""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"


def _check_folder(folder: str, shown: str) -> None:
    """FlagError starting with `shown` unless `folder` is, or can be created as, a writable folder."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise FlagError(f"{shown}: " + ("not a folder" if shown.endswith("=" + folder) else f"{folder} is not a folder"))
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise FlagError(f"{shown}: {existing} is not a folder")
    reason = _not_writable(existing)
    if reason:
        raise FlagError(f"{shown}: {existing} is not writable ({reason})")


def check_writable_dir(path: str, flag: str, shown: str = "") -> None:
    """FlagError naming `--flag` unless `path` is a writable folder or can be created as one (`shown`:
    how the error names the flag when its value is not `path` itself, e.g. `--run_name=NAME`)."""
    if not path:
        raise FlagError(f"--{flag}: empty path")
    _check_folder(path, shown or f"--{flag}={path}")


def check_folder_name(name: str, flag: str, parent_flag: str) -> None:
    """FlagError unless `name` (the value of `--flag`) is one path component: a folder directly under
    `--parent_flag`, never elsewhere (no separator, not `.` or `..`)."""
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    if name in ("", ".", "..") or any(sep in name for sep in separators):
        raise FlagError(f"--{flag}={name}: a folder name under --{parent_flag}, without '{os.sep}'")


def check_writable_file(path: str, flag: str) -> None:
    """FlagError naming `--flag` unless the file `path` can be written: not a folder, in a folder that
    `check_writable_dir` accepts, writable if it exists."""
    if not path:
        raise FlagError(f"--{flag}: empty path")
    if os.path.isdir(path):
        raise FlagError(f"--{flag}={path}: is a folder, expected a file name")
    _check_folder(os.path.dirname(path) or ".", f"--{flag}={path}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise FlagError(f"--{flag}={path}: not writable (permission denied)")


def io_error_reason(error: BaseException):
    """The one-line reason of an OS or TensorFlow file-system error, None for any other exception."""
    if isinstance(error, OSError):
        return error.strerror or str(error).splitlines()[0]
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        return (error.message or type(error).__name__).strip().splitlines()[0]
    return None


def remove_partial(paths) -> None:
    """Removes the files (or folders) in `paths` that exist; errors while removing are ignored."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.remove(path)


@contextlib.contextmanager
def writing(path: str, partial=()):
    """Runs a block that writes `path`: an OS error in it becomes `UserError("PATH: cannot write (reason)")`,
    naming the file the error names when it names one, after `remove_partial(partial)`."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - narrowed by io_error_reason, re-raised otherwise
        reason = io_error_reason(error)
        if reason is None:
            raise
        remove_partial(partial)
        named = getattr(error, "filename", None)
        named = os.fsdecode(named) if named else path
        if reason.startswith(named):  # TensorFlow's messages start with the path: "<path>; No space left ..."
            reason = reason[len(named):].lstrip(";: ")
        raise UserError(f"{named}: cannot write ({reason})") from None
