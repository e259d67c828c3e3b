"""One self-describing checkpoint file: config, vocabulary, weights, training state and names."""

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dinogen import __version__
from dinogen.config import Config
from dinogen.data import Vocab
from dinogen.errors import ConfigError, DinogenError
from dinogen.model import CharRNN

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to sample from, evaluate or resume a run, as plain data and tensors."""

    config: Config
    vocab: Vocab
    model_state: dict[str, torch.Tensor]
    train_names: list[str]
    val_names: list[str] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # latest evaluation, plus best_val_loss
    trainer_state: dict[str, Any] = field(default_factory=dict)  # optimizer, RNG, ... for resume
    data_path: str = ""
    device: str = "cpu"
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    dinogen_version: str = __version__
    torch_version: str = str(torch.__version__)

    def build_model(self, device: torch.device | str = "cpu") -> CharRNN:
        """The trained CharRNN, in eval mode, on `device`."""
        model = CharRNN(len(self.vocab), self.config.model)
        model.load_state_dict(self.model_state)
        return model.to(device).eval()

    def summary(self) -> dict[str, Any]:
        """What `dinogen info` shows: the model, its data, its training and its provenance."""
        model = self.config.model
        names = self.train_names + self.val_names
        return {
            "cell": model.cell,
            "num_layers": model.num_layers,
            "embedding_dim": model.embedding_dim,
            "hidden_size": model.hidden_size,
            "dropout": model.dropout,
            "parameters": sum(t.numel() for t in self.model_state.values()),
            "vocab_size": len(self.vocab),
            "vocab": "".join(self.vocab.chars),
            "data_path": self.data_path,
            "train_names": len(self.train_names),
            "val_names": len(self.val_names),
            "chars": sum(map(len, names)),
            "step": self.step,
            "epoch": self.epoch,
            "best_val_loss": self.metrics.get("best_val_loss"),
            "val_loss": self.metrics.get("val_loss"),
            "device": self.device,
            "dinogen_version": self.dinogen_version,
            "torch_version": self.torch_version,
            "created": self.created,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data and tensors only, so that it loads with torch.load(weights_only=True)."""
        raw = {item.name: getattr(self, item.name) for item in fields(self)}
        return raw | {"format_version": FORMAT_VERSION, "config": self.config.to_dict(), "vocab": self.vocab.to_list()}


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write atomically: a temporary file in the same directory, then os.replace over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint.to_dict(), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by writes that a killed process never finished."""
    for stale in directory.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A .pt file as given, or a run directory's best.pt."""
    path = Path(path)
    if path.is_dir():
        return path / "best.pt"
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint file (or a run directory's best.pt) safely: tensors and plain data only."""
    given, path = Path(path), resolve_checkpoint_path(path)
    if given.is_dir() and not path.exists():
        runs = sorted(p.name for p in given.iterdir() if (p / "best.pt").exists())
        inside = f"; runs inside it: {', '.join(runs)}" if runs else ""
        raise DinogenError(f"{given} is not a run directory (it has no best.pt){inside}")
    if not path.exists():
        raise DinogenError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses anything but tensors and plain data, so nothing in the file ran.
        raise DinogenError(
            f"{path} is not a dinogen checkpoint: it is not made of tensors and plain values only, "
            "so it was not loaded (nothing in it ran)"
        ) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError):
        raise DinogenError(
            f"cannot read checkpoint {path}: it is truncated, damaged or not a dinogen checkpoint"
        ) from None
    return _from_dict(raw, path)


def _from_dict(raw: Any, path: Path) -> Checkpoint:
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise DinogenError(f"{path} is not a dinogen checkpoint")
    if raw["format_version"] > FORMAT_VERSION:
        raise DinogenError(
            f"checkpoint {path} has format version {raw['format_version']}, newer than this dinogen "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade dinogen"
        )
    try:
        values = {item.name: raw[item.name] for item in fields(Checkpoint)}
        return Checkpoint(**values | {"config": Config.from_dict(raw["config"]), "vocab": Vocab(raw["vocab"])})
    except (KeyError, TypeError, ConfigError) as err:
        raise DinogenError(f"checkpoint {path} is damaged or incomplete ({err})") from None
