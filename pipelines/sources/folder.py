"""Image folder trees `ROOT/<class>/<image>` (extracted ImageNet, or any user dataset).

Classes are the sorted sub-folder names of the training root; images are the files below each class
folder (recursively, following symlinks) whose extension is a common image format. The format itself
is read from the bytes when decoding, so a PNG named `.JPEG` is fine.
"""

import os

from keras_alexnet.errors import UserError
from pipelines.sources import Item, is_image_name


def class_folders(root: str) -> list:
    """The sorted class folder names of `root`; UserError when there are none."""
    if not os.path.isdir(root):
        raise UserError(f"{root}: not a folder")
    names = sorted(n for n in os.listdir(root) if not n.startswith(".") and os.path.isdir(os.path.join(root, n)))
    if not names:
        raise UserError(f"{root}: no class folders (expected ROOT/<class>/<image>)")
    return names


def scan(root: str, labels: dict, ignored: list) -> list:
    """Items for every image under `root`/<class>, labelled through `labels` ({class name: label}).

    Files that are not images by extension are listed in `ignored`. A class folder that `labels` does
    not know is a UserError (validation and test folders must use the training classes).
    """
    items = []
    for name in class_folders(root):
        if name not in labels:
            raise UserError(f"{os.path.join(root, name)}: class '{name}' is not among the training classes")
        class_dir = os.path.join(root, name)
        for folder, dirs, files in os.walk(class_dir, followlinks=True):
            dirs.sort()
            for file in sorted(files):
                path = os.path.join(folder, file)
                if is_image_name(file):
                    items.append(Item(where=path, filename=file, label=labels[name], path=path))
                elif not file.startswith("."):
                    ignored.append(f"{path}: not an image file extension")
    return items
