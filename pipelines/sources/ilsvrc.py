"""ILSVRC-2012 as distributed, read straight from the tars (AlexNet §2: ILSVRC-2012 train/val).

- Training: `ILSVRC2012_img_train.tar`, a tar of per-synset tars (`n01440764.tar` holding
  `n01440764_10026.JPEG`, ...). A tar of `<class>/<image>` members is read the same way.
- Validation: `ILSVRC2012_img_val.tar`, a flat tar of `ILSVRC2012_val_00000001.JPEG` ..., with ground
  truth given one line per image in the images' sorted name order, in either form:
  - synsets (`n01751748`), like TFDS's `imagenet2012/validation_labels.txt` (used by default: it ships
    with tensorflow-datasets);
  - the devkit's `ILSVRC2012_validation_ground_truth.txt` (integer ILSVRC2012_IDs, 1-based). Those
    index meta.mat's synset list, which is not read here (it would need scipy): pass that list as a
    text file, one synset per line in ILSVRC2012_ID order (`--synsets`).

Nothing is extracted: each image is an `Item` pointing at its byte range in the outer tar file, so
member names never become paths (absolute or `..` names are ignored and reported). Only uncompressed
tars (as distributed) are supported.
"""

import os
import re
import tarfile

from keras_alexnet.errors import UserError
from pipelines.sources import Item, is_image_name, safe_member_name

_SYNSET_RE = re.compile(r"^n\d{8}$")


def _open(path: str) -> tarfile.TarFile:
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    try:
        return tarfile.open(path, mode="r:")
    except tarfile.ReadError as error:
        raise UserError(f"{path}: not an uncompressed tar ({error})") from None


def _images(tar: tarfile.TarFile, tar_label: str, base: int, ignored: list):
    """Yields (member, clean name, absolute offset, size) for the regular-file members of `tar`."""
    for member in tar:
        where = f"{tar_label}:{member.name}"
        if not member.isreg() or member.issparse():
            if not member.isdir():
                ignored.append(f"{where}: not a regular file")
            continue
        name = safe_member_name(member.name)
        if name is None:
            ignored.append(f"{where}: unsafe member name (absolute or '..')")
            continue
        yield member, name, base + member.offset_data, member.size


def list_tar(path: str, ignored: list):
    """(class or None, clean name, where, offset, size) for every image of a tar, nested tars included.

    The class is the stem of the nested tar (`n01440764.tar`) or the first folder of the member name;
    None for a flat image member.
    """
    entries = []
    with _open(path) as tar:
        for member, name, offset, size in _images(tar, path, 0, ignored):
            if name.lower().endswith(".tar"):
                synset = os.path.basename(name)[: -len(".tar")]
                try:
                    inner = tarfile.open(fileobj=tar.extractfile(member), mode="r:")
                except tarfile.ReadError as error:
                    ignored.append(f"{path}:{name}: not a readable tar ({error})")
                    continue
                with inner:
                    for _, inner_name, inner_offset, inner_size in _images(inner, f"{path}:{name}", offset, ignored):
                        if is_image_name(inner_name):
                            where = f"{path}:{name}:{inner_name}"
                            entries.append((synset, inner_name, where, inner_offset, inner_size))
            elif is_image_name(name):
                synset = name.split("/")[0] if "/" in name else None
                entries.append((synset, name, f"{path}:{name}", offset, size))
            else:
                ignored.append(f"{path}:{name}: not an image file extension")
    return entries


def train_synsets(path: str, ignored: list):
    """Lists a training tar: (entries, sorted synsets)."""
    entries = list_tar(path, ignored)
    if any(e[0] is None for e in entries):
        flat = next(e for e in entries if e[0] is None)
        raise UserError(f"{flat[2]}: training tar members need a class (nested <synset>.tar or <class>/<image>)")
    if not entries:
        raise UserError(f"{path}: no images found")
    return entries, sorted({e[0] for e in entries})


def items(path: str, entries, labels: dict) -> list:
    return [Item(where=w, filename=os.path.basename(n), label=labels[s], path=path, offset=o, size=z)
            for s, n, w, o, z in entries]


def read_ground_truth(path: str, synsets_by_id_path: str = "") -> list:
    """Validation ground truth -> one synset per image (sorted image-name order); see the module docstring."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if lines and all(_SYNSET_RE.match(line) for line in lines):
        return lines
    if lines and all(line.isdigit() for line in lines):
        if not synsets_by_id_path:
            raise UserError(f"{path}: holds ILSVRC2012_IDs; pass --synsets=FILE (one synset per line in ID order)")
        if not os.path.isfile(synsets_by_id_path):
            raise UserError(f"{synsets_by_id_path}: no such file")
        with open(synsets_by_id_path, encoding="utf-8") as f:
            by_id = [line.split()[0] for line in f if line.strip()]
        bad = next((line for line in lines if not 1 <= int(line) <= len(by_id)), None)
        if bad is not None:
            raise UserError(f"{path}: ILSVRC2012_ID {bad} is outside 1..{len(by_id)} of {synsets_by_id_path}")
        return [by_id[int(line) - 1] for line in lines]
    raise UserError(f"{path}: expected one synset (n01440764) or one ILSVRC2012_ID per line")


def default_validation_labels() -> str:
    """The path of TFDS's ILSVRC-2012 validation ground truth (synset per line), or '' without TFDS."""
    import importlib.util

    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012", "validation_labels.txt")
    return path if os.path.isfile(path) else ""


def validation_entries(path: str, ground_truth: list, ignored: list):
    """Entries of a validation tar with their synsets from the ground truth (sorted-name order).

    Members with a class folder keep it; a flat tar needs the ground truth, one line per image.
    """
    entries = list_tar(path, ignored)
    labelled = [e for e in entries if e[0] is not None]
    flat = sorted((e for e in entries if e[0] is None), key=lambda e: e[1])
    if not flat:
        if not labelled:
            raise UserError(f"{path}: no images found")
        return labelled
    if not ground_truth:
        raise UserError(f"{path}: flat validation tar needs ground truth (--validation_labels=FILE)")
    if len(ground_truth) != len(flat):
        raise UserError(f"{path}: {len(flat)} images but the ground truth has {len(ground_truth)} lines")
    return labelled + [(synset,) + e[1:] for synset, e in zip(ground_truth, flat)]
