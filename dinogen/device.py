"""Turn a device name into a torch.device, and a precision into one the device can run, with clear errors."""

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


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 where the hardware computes in it natively (a CUDA GPU with bf16, a CPU with AMX), else fp32.

    Explicit choices are checked: fp16 needs CUDA, and bf16 on a CPU needs oneDNN bf16 kernels
    (AVX-512 or newer); without them torch fails deep inside the LSTM layer.
    """
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        native = device.type == "cpu" and _cpu_has("amx_bf16") and _cpu_has_bf16_kernels()
        return "bf16" if native else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise DinogenError(f"train.precision=fp16 needs a CUDA device, not {device.type}; use bf16, auto or fp32")
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16_kernels():
        raise DinogenError(
            "train.precision=bf16 needs a CPU with AVX-512 or AMX, which this one lacks; use auto or fp32"
        )
    return precision


def _cpu_has(feature: str) -> bool:
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # newer torch only; without it, assume not
    return bool(capabilities and capabilities().get(feature))


def _cpu_has_bf16_kernels() -> bool:
    try:  # oneDNN's own answer (it honours ONEDNN_MAX_CPU_ISA); a private op, so trust the user without it
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True
