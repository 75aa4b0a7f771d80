"""--precision auto: reduced precision only where the device runs it natively (and, on a CPU,
measured faster); float32 elsewhere. Runs without a GPU: the probes are replaced."""
from __future__ import annotations

import pytest

from model_zoo.errors import InvalidInputError
from model_zoo.precision import cpu_flags, resolve_precision


def _never_called() -> bool:
    raise AssertionError("the probe must not run here")


def test_explicit_precisions_pass_through() -> None:
    for p in ("float32", "bfloat16", "float16"):
        assert resolve_precision(p, "cpu", bf16_faster=_never_called, cuda_bf16=_never_called) == p


def test_cpu_without_bf16_hardware_keeps_float32() -> None:
    # the EPYC of issue 17: AVX2 only, bfloat16 emulated and 12x slower -> never timed, float32
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx", "avx2", "fma"}), bf16_faster=_never_called) == "float32"


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_cpu_with_bf16_hardware_uses_it_only_when_measured_faster(flag: str) -> None:
    flags = frozenset({"avx2", flag})
    assert resolve_precision("auto", "cpu", flags=flags, bf16_faster=lambda: True) == "bfloat16"
    assert resolve_precision("auto", "cpu", flags=flags, bf16_faster=lambda: False) == "float32"


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_device_strings(device: str) -> None:
    assert resolve_precision("auto", device, cuda_bf16=lambda: True) == "bfloat16"
    assert resolve_precision("auto", device, cuda_bf16=lambda: False) == "float16"


def test_bad_values_are_named() -> None:
    with pytest.raises(InvalidInputError, match="--precision 'fp8'"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(InvalidInputError, match="'mps'"):
        resolve_precision("auto", "mps")


def test_cpu_flags_parse(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "amx_bf16"})
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_run_records_the_resolved_precision(monkeypatch) -> None:
    from benchmark import runner
    from benchmark.runner import RunConfig, job_config

    monkeypatch.setattr(runner, "resolve_device", lambda device: "cpu")
    monkeypatch.setattr("model_zoo.precision.cpu_flags", lambda: frozenset({"avx2"}))
    jc = job_config(RunConfig(models=["x"], device="cpu", precision="auto", progress=False))
    assert jc.precision == "float32"  # what the job's identity and record carry
