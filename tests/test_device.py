import os
import subprocess
import sys

import pytest
import torch

from dinogen import device
from dinogen.device import resolve_device, resolve_precision
from dinogen.errors import ConfigError, DinogenError


def test_cpu_and_auto_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DinogenError, match="CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(DinogenError, match="MPS is not available here"):
        resolve_device("mps")


def test_auto_prefers_cuda_and_checks_the_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("CUDA:0") == torch.device("cuda:0")
    with pytest.raises(DinogenError, match="has 1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", ""])
def test_unknown_device_names_are_usage_errors(name):
    with pytest.raises(ConfigError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(device, "_cpu_has", lambda feature: feature == "amx_bf16")
    monkeypatch.setattr(device, "_cpu_has_bf16_kernels", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "_cpu_has_bf16_kernels", lambda: False)  # e.g. ONEDNN_MAX_CPU_ISA=AVX2
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(device, "_cpu_has_bf16_kernels", lambda: True)
    monkeypatch.setattr(device, "_cpu_has", lambda feature: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", cuda) == "fp32"
    assert resolve_precision("fp16", cuda) == "fp16"
    assert resolve_precision("fp32", cpu) == "fp32"


def test_explicit_precision_the_device_cannot_run_is_refused(monkeypatch):
    with pytest.raises(DinogenError, match="fp16 needs a CUDA device, not cpu"):
        resolve_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(device, "_cpu_has_bf16_kernels", lambda: False)
    with pytest.raises(DinogenError, match="bf16 needs a CPU with AVX-512 or AMX"):
        resolve_precision("bf16", torch.device("cpu"))


def test_bf16_on_a_cpu_without_bf16_kernels_is_one_sentence(names_file, tmp_path):
    """A real oneDNN limited to AVX2 (as on most laptops) would fail inside the LSTM; dinogen says why first."""
    command = [
        sys.executable,
        "-m",
        "dinogen",
        "train",
        "-c",
        "tiny",
        "--data",
        str(names_file),
        "-o",
        str(tmp_path / "run"),
        "--set",
        "model.cell=lstm",
        "--set",
        "train.precision=bf16",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "train.precision=bf16 needs a CPU with AVX-512 or AMX" in result.stderr
    assert "Traceback" not in result.stderr
