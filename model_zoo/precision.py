"""``precision="auto"``: the reduced precision a device runs natively, else float32.

Reduced precision changes the maps (bfloat16 autocast maps of a pretrained network agree only
0.72-0.82 per image with float32 ones, see issue 17), so it is never the default; ``auto`` is an
explicit request for speed, and it must not buy a slowdown: on a CPU without bfloat16 hardware
(AMX or AVX512_BF16) bfloat16 is emulated and measured ~12x slower, so ``auto`` keeps float32 there,
and where the hardware is present it still times a small bfloat16 convolution against float32 once
per process and keeps float32 unless bfloat16 is faster. CUDA: bfloat16 where the GPU supports it
(compute capability >= 8), else float16. The resolved value is what runs and what the record says.
Nothing is imported until :func:`resolve_precision` is called with ``"auto"``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from model_zoo.errors import InvalidInputError

__all__ = ["BF16_CPU_FLAGS", "PRECISION_CHOICES", "cpu_flags", "resolve_precision"]

PRECISION_CHOICES = ("float32", "bfloat16", "float16", "auto")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic
_measured: dict[str, bool] = {}  # "cpu" -> bfloat16 measured faster, once per process


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def resolve_precision(requested: str, device: str, *, flags: frozenset[str] | None = None,
                      bf16_faster: Callable[[], bool] | None = None,
                      cuda_bf16: Callable[[], bool] | None = None) -> str:
    """`requested` (one of :data:`PRECISION_CHOICES`) for `device` ("cpu", "cuda", "cuda:1"; a
    resolved device, not "auto") -> "float32", "bfloat16" or "float16". Anything but "auto" is
    returned as given. `flags`, `bf16_faster`, `cuda_bf16` replace the probes (tests)."""
    if requested not in PRECISION_CHOICES:
        raise InvalidInputError(f"--precision {requested!r}: expected one of {', '.join(PRECISION_CHOICES)}")
    if requested != "auto":
        return requested
    if str(device).startswith("cuda"):
        return "bfloat16" if (cuda_bf16 or _cuda_bf16)() else "float16"
    if str(device) != "cpu":
        raise InvalidInputError(f"--precision auto: unknown device {device!r} (expected cpu or cuda[:k])")
    present = cpu_flags() if flags is None else flags
    if not any(flag in present for flag in BF16_CPU_FLAGS):
        return "float32"  # bfloat16 would be emulated: slower
    if bf16_faster is None:
        if "cpu" not in _measured:
            _measured["cpu"] = _bf16_faster_on_cpu()
        faster = _measured["cpu"]
    else:
        faster = bf16_faster()
    return "bfloat16" if faster else "float32"


def _cuda_bf16() -> bool:
    from model_zoo.frameworks import import_torch

    return bool(import_torch().cuda.is_bf16_supported())


def _bf16_faster_on_cpu(rounds: int = 3) -> bool:
    """A ResNet-like 3x3 convolution, forward + input gradient, bfloat16 autocast vs float32:
    best of `rounds` interleaved timings each (about a second)."""
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(8, 64, 56, 56)

    def step(dtype) -> None:
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            y = conv(xi)
        torch.autograd.grad(y.float().sum(), xi)

    best = {"float32": float("inf"), "bfloat16": float("inf")}
    for _ in range(rounds + 1):  # the first round warms up oneDNN
        for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
            start = time.perf_counter()
            step(dtype)
            best[name] = min(best[name], time.perf_counter() - start)
    return best["bfloat16"] < best["float32"]
