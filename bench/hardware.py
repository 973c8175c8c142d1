"""One line naming the CPU a benchmark ran on and its bfloat16 hardware, printed above every table.

The bfloat16 / float32 ratio depends on it: AMX-BF16 tiles (Intel Xeon 4th generation and
later) multiply many times float32's rate per cycle; AVX512-BF16 alone (AMD Zen 4, Intel Cooper Lake)
is one dot-product instruction at twice the float32 FMA rate at most; without either, bfloat16 is
converted to float32 and saves only memory traffic.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_alexnet.training.precision import AMX_FLAG, cpu_fields, cpu_flags  # noqa: E402


def cpu_model() -> str:
    """The CPU's model name, with its family and model numbers."""
    fields = cpu_fields()
    return f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family', '?')}, model " \
           f"{fields.get('model', '?')})"


def bfloat16_units(flags=None) -> str:
    flags = cpu_flags() if flags is None else flags
    if AMX_FLAG in flags:
        return "AMX-BF16 matrix units"
    if "avx512_bf16" in flags:
        return "AVX512-BF16 dot products, no AMX (bfloat16 at most 2x float32 per cycle)"
    return "no bfloat16 instructions (bfloat16 runs converted to float32)"


def describe() -> str:
    return f"{cpu_model()}, {os.cpu_count()} CPUs; {bfloat16_units()}"


if __name__ == "__main__":
    print(describe())
