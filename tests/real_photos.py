"""Real colour photographs for tests: the sample photos scikit-image ships inside its wheel
(`skimage/data/`: an astronaut, a cat, a cup of coffee, a rocket launch, a motorcycle). They are read
with Pillow from the package folder (scikit-image itself is not imported). scikit-image is a test
requirement (requirements-test.txt): a missing photo fails the test, it does not skip it."""

import importlib.util
import os

import numpy as np
from PIL import Image

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def photo_dir() -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed: pip install -r requirements-test.txt (its sample photos)")
    return os.path.join(spec.submodule_search_locations[0], "data")


def photo_paths(names=PHOTOS) -> list:
    return [os.path.join(photo_dir(), name) for name in names]


def photo(name: str) -> np.ndarray:
    """One photo as uint8 (H, W, 3) RGB."""
    return np.asarray(Image.open(os.path.join(photo_dir(), name)).convert("RGB"))


def square_frame(name: str, size: int) -> Image.Image:
    """One photo's central square resized to size x size (bilinear), as a PIL image."""
    image = Image.fromarray(photo(name))
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)


def write_class_folder(root: str, names=PHOTOS) -> list:
    """ROOT/photos/<name>.png for each photo (one class); returns the written paths."""
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(root, "photos", os.path.splitext(name)[0] + ".png")
        Image.fromarray(photo(name)).save(path)
        paths.append(path)
    return paths
