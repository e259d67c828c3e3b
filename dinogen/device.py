"""Turn a device name into a torch.device, with a clear error when it is not available."""

import torch

from dinogen.errors import ConfigError, DinogenError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; other names must be available as given."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DinogenError(
                f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise DinogenError(
                f"device {name!r} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DinogenError(
                f"device {name!r} was asked for but Apple's MPS is not available here; use --device cpu or auto"
            )
        return device
    raise ConfigError(f"unsupported device {name!r}; use {DEVICE_CHOICES}")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
