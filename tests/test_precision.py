"""The default precision of a run (`training/precision.py`): mixed precision for a new run only
on a CPU with AMX-BF16 matrix units and no GPU; the flag wins; a resumed run keeps its recorded setting."""

import pytest

from keras_alexnet.training import precision

AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
ZEN4 = frozenset({"avx512f", "avx512_bf16"})  # dot-product bfloat16 only, no matrix units


def test_cpu_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert precision.cpu_flags(str(cpuinfo)) == frozenset({"fpu", "avx512f", "avx512_bf16"})
    assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("requested, recorded, gpus, flags, expected", [
    (None, None, 0, AMX, True),  # a new run on AMX-BF16
    (None, None, 0, ZEN4, False),  # AVX512-BF16 alone: about 1.35x, not the default
    (None, None, 1, AMX, False),  # GPUs: float16's accuracy not measured here
    (None, True, 0, ZEN4, True),  # a resumed run keeps its precision on another machine
    (None, False, 0, AMX, False),
    (False, None, 0, AMX, False),  # the flag wins
    (True, None, 0, ZEN4, True),
    (True, False, 0, ZEN4, True),  # a change the resume check then refuses in one line
])
def test_resolve(requested, recorded, gpus, flags, expected):
    on, why = precision.resolve(requested, recorded, gpus, flags)
    assert on is expected
    assert (why == "") == (requested is not None)
    if requested is None and recorded is None:
        assert ("--nomixed_precision" in why) == expected and ("--mixed_precision " in why) != expected


def test_policy_per_device():
    assert precision.policy_name(gpus=0) == "mixed_bfloat16" and precision.policy_name(gpus=2) == "mixed_float16"


def test_only_float16_scales_the_loss():
    """float16's small gradients underflow without loss scaling; bfloat16 keeps float32's exponent range."""
    assert precision.needs_loss_scaling(precision.policy_name(gpus=1))
    assert not precision.needs_loss_scaling(precision.policy_name(gpus=0))
    assert not precision.needs_loss_scaling(precision.FLOAT32_POLICY)
