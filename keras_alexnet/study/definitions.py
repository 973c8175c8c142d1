"""The studies: the papers' claims as arms (a configuration that differs from a reference in one thing).

An arm is an overlay of flat training settings (`training.config.config_from_values` names) on the study's
base settings, the measure its claim is judged by, the arm it is compared with, and the paper's own figure
for that difference with its section. An evaluation-only arm trains nothing: it measures the reference arm's
runs under another test protocol (compared seed by seed).

Measures (errors are on the held-out validation split, in percent):
- a protocol of `pipelines.eval_protocols` ("ten_crop": AlexNet §4.1's 10-crop error, computed by the
  training run itself; "center", "dense", "multi_crop": one centre crop, VGG §3.2's dense evaluation at Q
  and its 50-crop grid), or a combination of them ("dense+multi_crop": their softmax outputs averaged,
  VGG Table 5);
- "epochs_to_error": epochs of training until the training top-1 error first reaches the scale's threshold,
  interpolated between epochs (AlexNet Figure 1's measure, on the study's epochs).

The paper's figures are "arm − reference" in percentage points of top-1 / top-5 error (a positive figure:
the arm is worse). VGG numbers marked (recalled) come from the published paper's Tables 3-5 (the
translation the project was given omits its tables).
"""

import dataclasses
from typing import Optional

from keras_alexnet import registry
from keras_alexnet.errors import FlagError
from pipelines import eval_protocols


def measures() -> tuple:
    """Every measure an arm may be judged by: the protocols, their combinations, epochs to an error."""
    return (*eval_protocols.PROTOCOLS, *eval_protocols.COMBINATIONS, "epochs_to_error")


@dataclasses.dataclass(frozen=True)
class Claim:
    """What the paper says about arm − reference: its section, its figure in words, the figure itself in
    percentage points of top-1 / top-5 error (None where the paper gives none), and its direction
    (+1: the arm's measure is higher than the reference's; 0: not higher by more than `margin` points)."""

    section: str
    paper: str
    sign: int
    top1: Optional[float] = None
    top5: Optional[float] = None
    margin: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunOf:
    """An overlay value that names the run folder of `arm` with the same seed (VGG §3.1's warm start)."""

    arm: str


@dataclasses.dataclass(frozen=True)
class PerScale:
    """An overlay value that depends on the study's scale: ((scale name, value), ...)."""

    values: tuple

    def value(self, scale: str):
        for name, value in self.values:
            if name == scale:
                return value
        raise FlagError(f"no value for scale '{scale}' (have: {', '.join(n for n, _ in self.values)})")


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    description: str
    overlay: dict = dataclasses.field(default_factory=dict)
    measure: str = "ten_crop"
    claim: Optional[Claim] = None
    reference: Optional[str] = None  # the arm it is compared with (None: the study's baseline itself)
    reference_measure: Optional[str] = None  # the reference's measure (default: the same as the arm's)
    trains: bool = True  # False: evaluation only, on the reference's runs (paired by seed)

    @property
    def runs_of(self) -> str:
        """The arm whose trained runs this arm measures."""
        return self.name if self.trains else self.reference

    def needs(self) -> list:
        """Arms whose runs must exist before this arm's runs start (warm starts)."""
        return [value.arm for value in self.overlay.values() if isinstance(value, RunOf)]


@dataclasses.dataclass(frozen=True)
class Scale:
    """Base settings of a study at one scale, and how to describe them. `error_threshold`: the training
    top-1 error an "epochs_to_error" arm must reach (AlexNet Figure 1: 25%, which ReLU reaches after about a
    sixth of its 35 epochs); a short run needs one its baseline reaches well within its epochs."""

    name: str
    settings: dict
    description: str
    seconds_per_run: float = 0.0  # measured estimate (0: unknown), for the first ETA
    error_threshold: float = 0.25
    default_data: bool = False  # runs on the built-in Fashion-MNIST when no --data_dir is given


def scales(*of_a_study: Scale) -> dict:
    """{scale name: Scale}: a study's `scales`."""
    return {scale.name: scale for scale in of_a_study}


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    description: str
    arms: tuple
    scales: dict  # scale name -> Scale
    protocols: tuple  # evaluation protocols every trained run is measured under (besides ten_crop)
    eval_examples: int = 0  # evaluate only the first N validation images with the extra protocols (0: all)

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise FlagError(f"study {self.name}: no arm '{name}' (arms: {', '.join(a.name for a in self.arms)})")

    @property
    def baseline(self) -> Arm:
        return self.arms[0]

    def reference_of(self, arm: Arm) -> Arm:
        return self.arm(arm.reference) if arm.reference else self.baseline

    def trained_arms(self) -> list:
        """Arms that train, references first (a warm start's source before the arm that needs it)."""
        ordered = []
        for arm in self.arms:
            for needed in arm.needs():
                if needed not in ordered:
                    ordered.append(needed)
            if arm.trains and arm.name not in ordered:
                ordered.append(arm.name)
        return [self.arm(name) for name in ordered]

    def validate(self) -> None:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"study {self.name}: arm names repeat")
        unknown = [p for p in self.protocols if p not in eval_protocols.PROTOCOLS]
        if unknown:
            raise ValueError(f"study {self.name}: unknown protocol {unknown[0]} (choose from "
                             f"{', '.join(eval_protocols.PROTOCOLS)})")
        known = measures()
        for arm in self.arms:
            if arm.measure not in known or (arm.reference_measure or arm.measure) not in known:
                raise ValueError(f"study {self.name}, arm {arm.name}: unknown measure")
            if arm.reference and arm.reference not in names:
                raise ValueError(f"study {self.name}, arm {arm.name}: unknown reference {arm.reference}")
            if not arm.trains and (arm.overlay or not arm.reference):
                raise ValueError(f"study {self.name}, arm {arm.name}: an evaluation-only arm has a reference "
                                 "and no settings")


# --- AlexNet ----------------------------------------------------------------------------------------------

# The default run's structure and recipe (`training.presets`) with the paper's regularisers back in
# (dropout 0.5 §4.2, PCA lighting 0.1 §4.1), on a subset of each epoch (steps_per_epoch) to fit the hour.
ALEXNET_CPU = Scale("cpu", {
    "architecture": "alexnet", "width": 0.25, "resize_size": 72, "image_size": 64, "init": "glorot",
    "input_scale": 1.0 / 64, "learning_rate": 0.04, "lr_schedule": "linear", "warmup_epochs": 0.3,
    "batch_size": 64, "dropout": 0.5, "pca_jitter_std": 0.1, "epochs": 6, "steps_per_epoch": 80,
    "shuffle_buffer": 10000, "cache": False,
}, "AlexNet width 0.25 (two towers, LRN, overlapping pooling, dropout 0.5, PCA lighting 0.1) on the built-in "
   "Fashion-MNIST at 72 px frames / 64 px crops, batch 64, 6 epochs of 80 steps (30,720 images), learning rate "
   "0.04 with warm-up and linear decay; errors on the 5,000 validation images; tanh vs ReLU: epochs to 40% "
   "training error (the paper's 25% is barely reached in 6 short epochs)", error_threshold=0.40,
   default_data=True)

ALEXNET_PAPER = Scale("paper", {
    "architecture": "alexnet", "width": 1.0, "resize_size": 256, "image_size": 224, "init": "paper",
    "input_scale": 1.0, "learning_rate": 0.01, "lr_schedule": "plateau", "dropout": 0.5, "pca_jitter_std": 0.1,
    "batch_size": registry.spec("alexnet").batch_size, "epochs": registry.spec("alexnet").epochs, "steps_per_epoch": 0,
}, "the paper's AlexNet and recipe (AlexNet §5): 224 px crops of 256 px frames, batch 128, learning rate 0.01 "
   "divided by 10 on validation plateaus three times, up to 90 epochs (ImageNet via --data_dir)")

ALEXNET = Study(
    name="alexnet",
    description="AlexNet's ablations (§3.1-§4.2): each of the paper's choices removed in turn.",
    scales=scales(ALEXNET_CPU, ALEXNET_PAPER),
    protocols=("center",),
    arms=(
        Arm("baseline", "the paper's network and recipe at the study's scale"),
        Arm("no_lrn", "no local response normalisation", {"lrn": False},
            claim=Claim("AlexNet §3.3", "LRN reduces top-1/top-5 error by 1.4% / 1.2%", +1, 1.4, 1.2)),
        Arm("non_overlapping_pool", "2x2 stride-2 pooling instead of 3x3 stride 2", {"pooling": "non_overlapping"},
            claim=Claim("AlexNet §3.4", "overlapping pooling reduces top-1/top-5 error by 0.4% / 0.3%", +1, 0.4, 0.3)),
        Arm("one_tower", "one tower with half the kernels (the paper's one-GPU net)",
            {"architecture": "alexnet_1tower"},
            claim=Claim("AlexNet §3.2", "two towers reduce top-1/top-5 error by 1.7% / 1.2% against one tower "
                        "with half the kernels", +1, 1.7, 1.2)),
        Arm("no_dropout", "no dropout in fc6 and fc7", {"dropout": 0.0},
            claim=Claim("AlexNet §4.2", "without dropout the network overfits substantially (no figure)", +1)),
        Arm("no_pca_lighting", "no PCA lighting noise", {"pca_jitter_std": 0.0},
            claim=Claim("AlexNet §4.1", "PCA lighting reduces top-1 error by over 1%", +1, 1.0)),
        Arm("tanh", "tanh units instead of ReLU", {"activation": "tanh"}, measure="epochs_to_error",
            claim=Claim("AlexNet §3.1, Figure 1", "ReLU reaches 25% training error six times faster than tanh "
                        "(CIFAR-10, four-layer net): tanh/ReLU epochs ratio 6", +1)),
        Arm("center_crop", "centre crop instead of 10-crop evaluation (baseline's models)", measure="center",
            reference="baseline", reference_measure="ten_crop", trains=False,
            claim=Claim("AlexNet §4.1", "10-crop averaging at test time (no figure for the centre crop alone)",
                        +1)),
    ),
)

# --- Mixed precision -------------------------------------------------------------------------------------

PRECISION = Study(
    name="precision",
    description="Mixed precision against float32 (this project's claim, not a paper's): the AlexNet study's baseline "
                "trained both ways on the same seeds; the 10-crop error must not rise by more than 0.3 points.",
    scales=scales(ALEXNET_CPU, ALEXNET_PAPER),
    protocols=(),
    arms=(
        Arm("float32", "the AlexNet study's baseline in float32", {"mixed_precision": False}),
        Arm("mixed_precision", "the same in mixed precision (bfloat16 on CPU, float16 with loss scaling on GPU; "
            "LRN and the softmax in float32)", {"mixed_precision": True},
            claim=Claim("this project", "mixed precision does not raise the error by more than 0.3 points", 0, 0.0,
                        0.0, margin=0.3)),
    ),
)

# --- VGG --------------------------------------------------------------------------------------------------

VGG_CPU = Scale("cpu", {
    "architecture": "vgg_a", "width": 0.125, "image_size": 32, "resize_size": 36, "scale_jitter": 36,
    "mean": "rgb", "init": "glorot", "input_scale": 1.0 / 64, "learning_rate": 0.02, "lr_schedule": "linear",
    "warmup_epochs": 0.3, "batch_size": 64, "dropout": 0.5, "pca_jitter_std": 0.1, "epochs": 6,
    "steps_per_epoch": 80, "shuffle_buffer": 10000, "cache": False,
}, "VGG width 0.125 on the built-in Fashion-MNIST, 32 px crops of images rescaled to S = 36 (VGG §3.1's "
   "224/256 ratio), batch 64, Glorot init, 6 epochs of 80 steps, learning rate 0.02 with warm-up and linear "
   "decay; dense / multi-crop errors on the first 1,000 validation images", default_data=True)

VGG_PAPER = Scale("paper", {
    "architecture": "vgg_a", "width": 1.0, "image_size": 224, "resize_size": 256, "scale_jitter": 256,
    "mean": "rgb", "init": "glorot", "input_scale": 1.0, "learning_rate": 0.01, "lr_schedule": "plateau",
    "batch_size": registry.spec("vgg_a").batch_size, "dropout": 0.5, "pca_jitter_std": 0.1,
    "epochs": registry.spec("vgg_a").epochs, "steps_per_epoch": 0,
}, "the paper's VGG recipe (VGG §3.1): 224 px crops, S = 256 (jittered arm: S in [256, 512]), batch 256, "
   "learning rate 0.01 divided by 10 on plateaus, up to 74 epochs, Glorot init (ImageNet via --data_dir)")

VGG = Study(
    name="vgg",
    description="VGG's comparisons (Tables 3 and 5, §3.1, §4.1) at reduced width.",
    scales=scales(VGG_CPU, VGG_PAPER),
    protocols=("dense", "multi_crop"),
    eval_examples=1000,
    arms=(
        Arm("A", "net A (11 layers)", measure="dense"),
        Arm("A_LRN", "net A with LRN after the first conv", {"architecture": "vgg_a_lrn"}, measure="dense",
            claim=Claim("VGG §4.1, Table 3", "LRN does not improve A: 29.7/10.5 vs 29.6/10.4 (recalled)", +1,
                        0.1, 0.1)),
        Arm("B", "net B (13 layers)", {"architecture": "vgg_b"}, measure="dense",
            claim=Claim("VGG Table 3", "B 28.7/9.9 vs A 29.6/10.4 (recalled)", -1, -0.9, -0.5)),
        Arm("D", "net D (16 layers, 3x3)", {"architecture": "vgg_d"}, measure="dense",
            claim=Claim("VGG Table 3", "D 27.0/8.8 vs A 29.6/10.4 at S=256 (recalled)", -1, -2.6, -1.6)),
        Arm("E", "net E (19 layers)", {"architecture": "vgg_e"}, measure="dense",
            claim=Claim("VGG Table 3", "E 27.3/9.0 vs A 29.6/10.4 at S=256 (recalled)", -1, -2.3, -1.4)),
        Arm("C", "net C (16 layers, 1x1 in blocks 3-5) against D", {"architecture": "vgg_c"}, measure="dense",
            reference="D",
            claim=Claim("VGG §4.1, Table 3", "C 28.1/9.4 vs D 27.0/8.8 at S=256 (recalled): 3x3 beats 1x1", +1,
                        1.1, 0.6)),
        Arm("A_scale_jitter", "net A trained with jittered S (cpu: [36, 72], Q = 54; paper: [256, 512], Q = 384)",
            {"scale_jitter": PerScale((("cpu", (36, 72)), ("paper", (256, 512))))},
            measure="dense",
            claim=Claim("VGG §4.1, Table 3", "scale jitter: D 25.6/8.1 vs 27.0/8.8 with S=256 (recalled)", -1,
                        -1.4, -0.7)),
        Arm("A_multi_crop", "50-crop evaluation instead of dense (A's models)", measure="multi_crop",
            reference="A", reference_measure="dense", trains=False,
            claim=Claim("VGG §4.3, Table 5", "D multi-crop 24.6/7.5 vs dense 24.8/7.5 (recalled)", -1, -0.2, 0.0)),
        Arm("A_dense_multi_crop", "dense and multi-crop averaged (A's models)", measure="dense+multi_crop",
            reference="A", reference_measure="dense", trains=False,
            claim=Claim("VGG §4.3, Table 5", "D dense+multi-crop 24.4/7.2 vs dense 24.8/7.5 (recalled)", -1,
                        -0.4, -0.3)),
        Arm("D_warm_start", "net D initialised from A's run of the same seed", {"architecture": "vgg_d",
                                                                                 "warm_start": RunOf("A")},
            measure="dense", reference="D",
            claim=Claim("VGG §3.1", "deep nets started from A to avoid stalled learning; Glorot init later found "
                        "to work without it (no figure)", -1)),
    ),
)

STUDIES = {study.name: study for study in (ALEXNET, VGG, PRECISION)}
# The scales of the studies (`--scale`), the first the default: sized for a 2-core CPU, or the papers' own.
SCALES = tuple(dict.fromkeys(name for study in STUDIES.values() for name in study.scales))


def get(name: str) -> Study:
    if name not in STUDIES:
        raise FlagError(f"unknown study '{name}' (choose from: {', '.join(STUDIES)})")
    return STUDIES[name]
