"""Image folder trees `ROOT/<class>/<image>` (extracted ImageNet, or any user dataset; AlexNet §2).

Classes are the sorted sub-folder names of the training root; images are the files below each class
folder (recursively) whose extension is a common image format. The format itself is read from the
bytes when decoding, so a PNG named `.JPEG` is fine.

Real-world folders: file names are kept as the OS gives them (bytes that are not UTF-8 ride along as
`surrogateescape` characters and are stored as the original bytes). Symlinks are followed, but every
folder and file is listed once: a link back into a folder being listed (a loop) or a second path to a
folder or file already listed is reported in one `ignored` line instead of duplicating images. A class
folder may be a symlink; one that leads to the root itself (or above it), or to another class's
folder, is refused in one line.
"""

import os

from keras_alexnet.errors import UserError
from pipelines.sources import Item, is_image_name


def class_folders(root: str) -> list:
    """The sorted class folder names of `root`; UserError when there are none or one is unusable."""
    if not os.path.isdir(root):
        raise UserError(f"{root}: not a folder")
    names = sorted(n for n in os.listdir(root) if not n.startswith(".") and os.path.isdir(os.path.join(root, n)))
    if not names:
        raise UserError(f"{root}: no class folders (expected ROOT/<class>/<image>)")
    real_root, targets = os.path.realpath(root), {}
    for name in names:
        path = os.path.join(root, name)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"{path}: the class folder's name is not UTF-8 (class names are stored as text); "
                            "rename it") from None
        real = os.path.realpath(path)
        if real == real_root or real_root.startswith(real.rstrip(os.sep) + os.sep):
            raise UserError(f"{path}: a symlink to {real}, which holds the class folders; a class folder must "
                            "hold only its own images")
        if real in targets:
            raise UserError(f"{path}: the same folder as class '{targets[real]}' ({real}); each class needs its "
                            "own folder")
        targets[real] = name
    return names


def _identity(path: str) -> tuple:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _images(class_dir: str, seen: dict, ignored: list):
    """Yields the image paths below `class_dir` in sorted order (files, then sub-folders depth-first),
    entering every folder once and listing every file once (`seen`: identity -> first path)."""
    stack = [class_dir]
    while stack:
        folder = stack.pop()
        try:
            key = _identity(folder)
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            ignored.append(f"{folder}: cannot list ({error.strerror or error})")
            continue
        if key in seen:
            first = seen[key]
            kind = "a symlink loop back to" if (folder + os.sep).startswith(first + os.sep) else "the same folder as"
            ignored.append(f"{folder}: {kind} {first}, not listed again")
            continue
        seen[key] = folder
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as error:  # ELOOP: a symlink pointing at itself
                ignored.append(f"{entry.path}: {error.strerror or error}")
                continue
            if is_dir:
                subfolders.append(entry.path)
            elif not is_file:
                ignored.append(f"{entry.path}: " + ("a broken symlink" if entry.is_symlink() else "not a regular file"))
            elif not is_image_name(entry.name):
                ignored.append(f"{entry.path}: not an image file extension")
            else:
                file_key = _identity(entry.path)
                if file_key in seen:
                    ignored.append(f"{entry.path}: the same file as {seen[file_key]}, not listed again")
                    continue
                seen[file_key] = entry.path
                yield entry.path
        stack.extend(reversed(subfolders))


def scan(root: str, labels: dict, ignored: list) -> list:
    """Items for every image under `root`/<class>, labelled through `labels` ({class name: label}).

    What is left out (other file types, loops, second paths to listed files) goes to `ignored`. A class
    folder that `labels` does not know is a UserError (validation and test folders must use the
    training classes).
    """
    items, seen = [], {}
    for name in class_folders(root):
        if name not in labels:
            raise UserError(f"{os.path.join(root, name)}: class '{name}' is not among the training classes")
        for path in _images(os.path.join(root, name), seen, ignored):
            items.append(Item(where=path, filename=os.path.basename(path), label=labels[name], path=path))
    return items
