"""Which precision a run trains in: float32 or Keras mixed precision, and when mixed is the default.

Mixed precision on: "mixed_float16" with dynamic loss scaling on GPUs (float16 gradients underflow without
it), "mixed_bfloat16" on CPUs (bfloat16 has float32's exponent range: no loss scaling). Variables and the
optimizer's update stay float32; LRN (AlexNet §3.3, `lrn.py`) and the softmax are computed in float32.

Unset (`TrainConfig.mixed_precision` None, the default), a new run trains in mixed precision only where
it was measured to pay and to keep the error:
- a CPU with AMX-BF16 matrix units (the `amx_bf16` flag of /proc/cpuinfo: Intel Xeon 4th generation
  and later) and no GPU: mixed_bfloat16 measured 2.06x float32's img/cpu-s on the full AlexNet step
  there, and `main.py study precision` measures its error against float32 on the same seeds (README);
- not on CPUs with only AVX512-BF16 (AMD Zen 4, Intel Cooper Lake): one dot-product instruction at
  twice the float32 FMA rate, measured 1.35-1.9x (bench/README.md), with bfloat16's rounding;
- not on GPUs: float16 with loss scaling is not measured here; pass --mixed_precision there and check
  it with `main.py study precision`.
A resumed run keeps the precision it recorded, whatever the machine.
"""

from typing import Optional

AMX_FLAG = "amx_bf16"
# The Keras dtype policies a run trains in (module docstring).
FLOAT32_POLICY = "float32"  # mixed precision off
GPU_POLICY = "mixed_float16"  # with dynamic loss scaling
CPU_POLICY = "mixed_bfloat16"


def cpu_fields(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The first processor's fields of /proc/cpuinfo ("model name", "flags", ...; empty where it does not
    exist)."""
    fields = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    return frozenset(cpu_fields(cpuinfo).get("flags", "").split())


def policy_name(gpus: int) -> str:
    """The Keras dtype policy of mixed precision on this machine (module docstring)."""
    return GPU_POLICY if gpus else CPU_POLICY


def needs_loss_scaling(policy: str) -> bool:
    """Whether training in `policy` scales the loss: float16's gradients underflow without it, bfloat16 has
    float32's exponent range (module docstring)."""
    return policy == GPU_POLICY


def resolve(requested: Optional[bool], recorded: Optional[bool], gpus: int, flags=None) -> tuple:
    """(mixed precision on?, why) for a run: the flag when given; else the run's recorded setting when it
    resumes; else on exactly when the CPU has AMX-BF16 and there is no GPU. `why` is "" for the flag."""
    if requested is not None:
        return bool(requested), ""
    if recorded is not None:
        return bool(recorded), "as the run recorded it"
    flags = cpu_flags() if flags is None else flags
    if gpus:
        return False, "default off on GPUs; --mixed_precision turns it on"
    if AMX_FLAG in flags:
        return True, "default on this CPU's AMX-BF16 matrix units; --nomixed_precision turns it off"
    return False, "default off: this CPU has no AMX-BF16 matrix units; --mixed_precision turns it on"
