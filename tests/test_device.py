import pytest
import torch

from dinogen.device import resolve_device
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
