"""Test fixtures for data preparation: real-format images made with Pillow (CMYK/greyscale JPEGs, RGBA
PNGs, PNGs named .JPEG, truncated and empty files), class folders, miniature ILSVRC-2012 tars, and
reading TFRecord shards back byte for byte."""

import gzip
import io
import os
import tarfile

import numpy as np
from PIL import Image

KINDS = ("rgb_jpeg", "cmyk_jpeg", "grey_jpeg", "png_as_jpeg", "rgba_png", "grey_png", "gif", "bmp")
BROKEN = ("truncated_jpeg", "empty")


def pixels(seed: int, height: int = 40, width: int = 56) -> np.ndarray:
    """A smooth random RGB image (JPEG-friendly) as uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    a, b, c = rng.uniform(0, 255, (3, 1, 1, 3))
    return np.clip(a * x + b * y + c * x * y / 2, 0, 255).astype(np.uint8)


def image_bytes(kind: str, seed: int = 0, height: int = 40, width: int = 56) -> bytes:
    """The bytes of one image file of `kind` (see KINDS and BROKEN)."""
    rgb = Image.fromarray(pixels(seed, height, width))
    out = io.BytesIO()
    if kind == "rgb_jpeg":
        rgb.save(out, "JPEG", quality=95)
    elif kind == "cmyk_jpeg":
        rgb.convert("CMYK").save(out, "JPEG", quality=95)
    elif kind == "grey_jpeg":
        rgb.convert("L").save(out, "JPEG", quality=95)
    elif kind in ("png_as_jpeg", "grey_png"):
        (rgb if kind == "png_as_jpeg" else rgb.convert("L")).save(out, "PNG")
    elif kind == "rgba_png":
        alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
        Image.fromarray(np.dstack([np.asarray(rgb), alpha]), "RGBA").save(out, "PNG")
    elif kind == "gif":
        rgb.save(out, "GIF")
    elif kind == "bmp":
        rgb.save(out, "BMP")
    elif kind == "truncated_jpeg":
        rgb.save(out, "JPEG", quality=95)
        return out.getvalue()[: len(out.getvalue()) // 2]
    elif kind == "empty":
        return b""
    else:
        raise ValueError(kind)
    return out.getvalue()


def file_name(kind: str, index: int) -> str:
    ext = {"png_as_jpeg": ".JPEG", "rgba_png": ".png", "grey_png": ".png", "gif": ".gif", "bmp": ".bmp"}
    return f"img_{index:03d}_{kind}{ext.get(kind, '.JPEG')}"


def make_folder(root: str, classes=("cat", "dog", "fox"), kinds=KINDS, per_class: int = 3, broken=(),
                size=(40, 56)) -> dict:
    """ROOT/<class>/<image>: `per_class` images per class cycling through `kinds`, plus `broken` kinds in
    the first class. Returns {relative path: kind}."""
    made = {}
    index = 0
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        wanted = [kinds[(c * per_class + i) % len(kinds)] for i in range(per_class)]
        if c == 0:
            wanted += list(broken)
        for kind in wanted:
            rel = os.path.join(name, file_name(kind, index))
            with open(os.path.join(root, rel), "wb") as f:
                f.write(image_bytes(kind, seed=index, height=size[0], width=size[1]))
            made[rel] = kind
            index += 1
    return made


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_ilsvrc_train_tar(path: str, synsets=("n01440764", "n01443537", "n01484850"), per_synset: int = 4,
                          extra_members=()) -> None:
    """ILSVRC2012_img_train.tar in miniature: a tar of <synset>.tar, each holding <synset>_<n>.JPEG.

    `extra_members` are (outer or "synset", name, bytes) added as they are (crafted names)."""
    with tarfile.open(path, "w") as outer:
        for s, synset in enumerate(synsets):
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for i in range(per_synset):
                    kind = KINDS[(s + i) % len(KINDS)]
                    _add(inner, f"{synset}_{i}.JPEG", image_bytes(kind, seed=100 * s + i))
                for where, name, data in extra_members:
                    if where == synset:
                        _add(inner, name, data)
            _add(outer, f"{synset}.tar", inner_bytes.getvalue())
        for where, name, data in extra_members:
            if where == "outer":
                _add(outer, name, data)


def make_ilsvrc_val_tar(path: str, synsets_of_images) -> list:
    """ILSVRC2012_img_val.tar in miniature: flat ILSVRC2012_val_<8 digits>.JPEG members, added in a
    shuffled order (as the real tar is not sorted). Returns the member names in sorted order."""
    names = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(synsets_of_images))]
    order = np.random.default_rng(0).permutation(len(names))
    with tarfile.open(path, "w") as tar:
        for i in order:
            _add(tar, names[i], image_bytes(KINDS[i % len(KINDS)], seed=1000 + int(i)))
    return names


def write_idx(path: str, array: np.ndarray) -> None:
    """An unsigned-byte IDX file (gzip), the Fashion-MNIST/MNIST format."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def read_records(path: str) -> list:
    """Every record of a TFRecord file as {key: python value} (bytes, int)."""
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        example = tf.train.Example.FromString(raw)
        record = {}
        for key, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            record[key] = values[0] if len(values) == 1 else values
        out.append(record)
    return out


def read_split(data_dir: str, split: str) -> list:
    from pipelines import records

    return [r for shard in records.list_shards(data_dir, split) for r in read_records(shard)]
