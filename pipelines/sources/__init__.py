"""Where images come from: ILSVRC-2012 tars, `ROOT/<class>/<image>` folders, Fashion-MNIST IDX files.

A source yields `Item`s: a labelled reference to one image (a byte range of a file or tar, or raw
pixels), cheap to pickle to the `prepare` worker processes. Nothing is ever extracted from a tar: the
workers read each member's bytes at its offset, so a crafted tar cannot write anywhere.
"""

import dataclasses
import os
import posixpath
from typing import Optional

import numpy as np

from pipelines.records import ClassInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One image to prepare.

    `where` names it in logs (a path, or `archive.tar:member`); `filename` is recorded as
    `image/filename`. The bytes are `size` bytes at `offset` of `path` (size -1: the whole file), or
    `pixels` (uint8 (H, W) or (H, W, C)) for array sources.
    """

    where: str
    filename: str
    label: int
    path: str = ""
    offset: int = 0
    size: int = -1
    pixels: Optional[np.ndarray] = None

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            if self.size < 0:
                return f.read()
            f.seek(self.offset)
            return f.read(self.size)


@dataclasses.dataclass
class SourceData:
    """The classes (label order) and the items of each split, plus what was left out while listing."""

    classes: list
    splits: dict  # split name -> list of Item
    description: str
    ignored: list = dataclasses.field(default_factory=list)  # "where: reason" lines


def is_image_name(name: str) -> bool:
    return not posixpath.basename(name).startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def safe_member_name(name: str) -> Optional[str]:
    """A tar member name as a clean relative path, or None when it is absolute or climbs out (`..`)."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def read_class_names(path: str) -> dict:
    """`synset<TAB or space>text` lines (ImageNet's `synset_words.txt`, tensorflow/models'
    `imagenet_metadata.txt`, our `labels.txt`) -> {synset: text}."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                synset, _, text = line.replace("\t", " ", 1).partition(" ")
                names[synset] = text.strip() or synset
    return names


def make_classes(synsets, class_names: Optional[dict] = None) -> list:
    """Sorted synsets -> ClassInfo list with 0-based labels (tensorflow/models sorts synsets too)."""
    class_names = class_names or {}
    return [ClassInfo(label=i, synset=s, text=class_names.get(s, s)) for i, s in enumerate(sorted(synsets))]


def display(path: str) -> str:
    return os.path.normpath(path)
