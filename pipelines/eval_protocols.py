"""The papers' test-time protocols, one entry each: the one table everything that evaluates reads.

Each entry says how an image's views are made from the image rescaled to the test scale Q (the
shorter side, AlexNet §2 / VGG §3.2), how the net's outputs over them are averaged, and the paper
section. Adding a protocol is adding an entry to `PROTOCOLS` (a combination of protocols, to
`COMBINATIONS`): `main.py evaluate --protocols` accepts it, `pipelines.input_pipeline.build_eval_dataset`
builds its views (`pipelines.eval_crops.protocol_views`), `keras_alexnet.evaluation.evaluate` runs it,
the error table names it, the studies may measure it and, when its views lie in the central square,
`main.py export --crops` serves it.

- ``center``: one central crop of the rescaled image (AlexNet §2's central patch; single-crop testing).
- ``ten_crop`` (AlexNet §4.1): "five 224×224 patches (the four corner patches and the center patch) as
  well as their horizontal reflections (hence ten patches in all), and averaging the predictions made
  by the network's softmax layer on the ten patches", from the central Q x Q square (AlexNet §2).
- ``multi_crop`` (VGG §3.2): "50 crops per scale (5 × 5 regular grid with 2 flips)" over the whole
  rescaled image, softmax averaged (VGG §4.3's 150 crops are these 50 at 3 scales).
- ``dense`` (VGG §3.2): the fully-convolutional net on the whole rescaled image; "the class score map is
  spatially averaged (sum-pooled)", and the soft-max posteriors of the image and its horizontal flip
  are averaged.

Every protocol is evaluated by default at the run's own test scale Q (VGG §3.2's single-scale
evaluation); several Q (VGG §4.2) are asked for explicitly (`main.py evaluate --test_scale/--train_scale`).
Nothing here imports TensorFlow: flag validation reads the table before TensorFlow starts.
"""

import dataclasses

from keras_alexnet.errors import FlagError

# Where the crops of a crop protocol are taken (`eval_crops.protocol_views`):
CENTER = "center"  # one central crop
CORNERS_AND_CENTER = "corners_and_center"  # the four corner crops and the central one (AlexNet §4.1)
GRID = "grid"  # a `grid` x `grid` regular grid, the outer crops on the borders (VGG §3.2)
WHOLE = "whole"  # no crop: the whole rescaled image through the fully-convolutional net (VGG §3.2)
POSITIONS = (CENTER, CORNERS_AND_CENTER, GRID, WHOLE)
# The frame the crops are taken from:
SQUARE = "square"  # the central Q x Q square (AlexNet §2: "cropped out the central 256×256 patch")
IMAGE = "image"  # the whole image rescaled to shorter side Q (VGG §3.2)
FRAMES = (SQUARE, IMAGE)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One test protocol: how views are made, how outputs are averaged, the paper's section.

    `name`: what `--protocols` takes; `method`: its name in the error table; `positions` (one of
    `POSITIONS`), `grid` (for GRID), `flip` (the views' horizontal reflections too) and `frame` (one
    of `FRAMES`) make the views. Outputs are averaged by `positions`: WHOLE (`dense`) spatially
    averages the class score map, then the flip's softmax (VGG §3.2); crops average their softmax
    (AlexNet §4.1, VGG §3.2).
    """

    name: str
    method: str
    section: str
    positions: str
    frame: str = IMAGE
    flip: bool = False
    grid: int = 0

    def __post_init__(self):
        if self.positions not in POSITIONS or self.frame not in FRAMES:
            raise ValueError(f"protocol {self.name}: positions must be one of {POSITIONS}, frame one of {FRAMES}")
        if (self.positions == GRID) != (self.grid > 0):
            raise ValueError(f"protocol {self.name}: a grid size goes with grid positions, and only with them")

    @property
    def dense(self) -> bool:
        """The whole image through the fully-convolutional net: its class score map spatially averaged
        (then the flip's, with `flip`), one image per batch as sizes differ (VGG §3.2)."""
        return self.positions == WHOLE

    @property
    def views(self) -> int:
        """Crops per image, their softmax outputs averaged (AlexNet §4.1, VGG §3.2); 0 for dense."""
        count = {CENTER: 1, CORNERS_AND_CENTER: 5, GRID: self.grid * self.grid, WHOLE: 0}[self.positions]
        return count * (2 if self.flip else 1)

    @property
    def in_central_square(self) -> bool:
        """Every view lies in the central Q x Q square: AlexNet §2's per-pixel mean image (defined on that
        square) is subtracted from them, and a serving signature can make them from a fixed-size frame.
        Other views get the mean colour (VGG §2.1)."""
        return not self.dense and (self.frame == SQUARE or self.positions == CENTER)


PROTOCOLS = {protocol.name: protocol for protocol in (
    Protocol("center", "centre crop", "AlexNet §2", CENTER),
    Protocol("ten_crop", "10 crops", "AlexNet §4.1", CORNERS_AND_CENTER, frame=SQUARE, flip=True),
    Protocol("multi_crop", "multi-crop (50/scale)", "VGG §3.2", GRID, flip=True, grid=5),
    Protocol("dense", "dense", "VGG §3.2", WHOLE, flip=True),
)}


@dataclasses.dataclass(frozen=True)
class Combination:
    """Protocols whose softmax outputs are averaged over all test scales (VGG §4.3, Table 5)."""

    name: str
    method: str
    section: str
    members: tuple


COMBINATIONS = {combination.name: combination for combination in (
    Combination("dense+multi_crop", "dense + multi-crop", "VGG §4.3", ("dense", "multi_crop")),
)}


def get(name: str) -> Protocol:
    """The protocol called `name`; FlagError naming --protocols and the choices otherwise."""
    found = PROTOCOLS.get(name)
    if found is None:
        raise FlagError(f"--protocols: unknown '{name}' (choose from {', '.join(PROTOCOLS)})")
    return found


def check(chosen) -> list:
    """`chosen` (names) as protocols, at least one; FlagError naming --protocols for an unknown one."""
    if not chosen:
        raise FlagError(f"--protocols: unknown '' (choose from {', '.join(PROTOCOLS)})")
    return [get(name) for name in chosen]


def combinations_of(chosen) -> list:
    """The combinations whose members are all among the protocol names `chosen`."""
    return [c for c in COMBINATIONS.values() if all(member in chosen for member in c.members)]


def servable() -> list:
    """The protocols a serving signature can run on a decoded image: their views lie in the central
    square (`Protocol.in_central_square`), a fixed number of fixed-size crops."""
    return [name for name, protocol in PROTOCOLS.items() if protocol.in_central_square]


def described() -> str:
    """The protocols for a flag's help: "center, ten_crop (AlexNet §4.1), ..."."""
    return ", ".join(f"{p.name} ({p.section})" for p in PROTOCOLS.values())
