"""One self-describing checkpoint file: config, vocabulary, weights, training state and names."""

import hashlib
import io
import logging
import math
import os
import pickle
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dinogen import __version__
from dinogen.config import Config, parameter_shapes
from dinogen.data import Vocab, folds_case, normalize_label
from dinogen.errors import ConfigError, DinogenError, shorten
from dinogen.files import read_bytes
from dinogen.labels import label_counts
from dinogen.limits import CHECKPOINT_BYTES, MAX_LABEL_LENGTH, MAX_LABELS
from dinogen.model import CharRNN, Ensemble, build_model
from dinogen.output import output_file
from dinogen.train import LRSchedule, Trainer

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the payload is sealed with its SHA-256; 1: the payload's fields at the top level


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
    run_id: str = ""  # which run wrote it, as in its directory's config.yaml ("" before run ids existed)
    # Labelled names only (None, and absent from the file, for unlabelled ones): the labels in index order, how
    # many training names each has, and each training and validation name's label index.
    labels: list[str] | None = None
    label_counts: list[int] | None = None
    train_label_ids: list[int] | None = None
    val_label_ids: list[int] | None = None

    @property
    def lowercase(self) -> bool:
        """The case rule: whether names, and every name given to the model, are lowercased."""
        return folds_case(self.config.data.lowercase, self.vocab.chars)

    def build_model(self, device: torch.device | str = "cpu") -> CharRNN | Ensemble:
        """The trained model (a CharRNN, or an Ensemble of them), in eval mode, on `device`."""
        model = build_model(len(self.vocab), self.config.model, len(self.labels or ()))
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
            "ensemble": model.ensemble,
            "parameters": sum(t.numel() for t in self.model_state.values()),
            "vocab_size": len(self.vocab),
            "vocab": "".join(self.vocab.chars),
            **({} if self.labels is None else {"labels": dict(zip(self.labels, self.label_counts, strict=True))}),
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
        """The payload: plain data and tensors only, so that it loads with torch.load(weights_only=True)."""
        raw = {item.name: getattr(self, item.name) for item in fields(self)}
        raw = {key: value for key, value in raw.items() if key not in LABEL_FIELDS or self.labels is not None}
        return raw | {"config": self.config.to_dict(), "vocab": self.vocab.to_list()}


def seal(payload: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint file holds: the payload as torch.save bytes, and their SHA-256 to detect damage."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    return {
        "format_version": FORMAT_VERSION,
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
    }


def save_checkpoint(checkpoint: Checkpoint, *paths: str | Path) -> None:
    """Write to each path atomically (see output_file): a crash or kill leaves the previous whole file."""
    sealed = io.BytesIO()
    torch.save(seal(checkpoint.to_dict()), sealed)  # serialised and hashed once, however many files
    for path in map(Path, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        with output_file(path, binary=True) as file:
            file.write(sealed.getbuffer())


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A .pt file as given, or a run directory's best.pt (its last.pt before the run's first evaluation)."""
    path = Path(path)
    if os.path.isdir(path):  # os.path: a name too long for the system is just not a directory
        best, last = path / "best.pt", path / "last.pt"
        return last if last.exists() and not best.exists() else best
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint file (or a run directory's best.pt) safely: tensors and plain data only, checked whole."""
    given, path = Path(path), resolve_checkpoint_path(path)
    if os.path.isdir(given) and not path.exists():
        runs = sorted(p.name for p in given.iterdir() if (p / "best.pt").exists() or (p / "last.pt").exists())
        inside = f"; runs inside it: {', '.join(runs)}" if runs else ""
        raise DinogenError(f"{given} is not a run directory (it has no best.pt or last.pt){inside}")
    if os.path.isdir(given) and path.name == "last.pt":
        log.warning("%s has no best.pt yet (it stopped before its first evaluation); using its last.pt", given)
    data = read_bytes(path, "checkpoint", CHECKPOINT_BYTES)
    try:
        return validated_checkpoint(_unseal(_torch_load(data, path, map_location), path, map_location))
    except DamagedCheckpoint as err:
        raise DinogenError(f"checkpoint {path} is damaged: {err}") from None


def _torch_load(data: bytes | bytearray, path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses anything but tensors and plain data, so nothing in the file ran.
        raise DinogenError(
            f"{path} is not a dinogen checkpoint: it is not made of tensors and plain values only, "
            "so it was not loaded (nothing in it ran)"
        ) from None
    except Exception:
        # On arbitrary bytes torch.load raises almost any type (IndexError, KeyError, struct.error, ...).
        raise DinogenError(
            f"cannot read checkpoint {path}: it is truncated, damaged or not a dinogen checkpoint"
        ) from None


def _unseal(raw: Any, path: Path, map_location: str | torch.device) -> Any:
    """The payload of a loaded file, once its digest matches (format 2); format 1 holds its fields at the top."""
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise DinogenError(f"{path} is not a dinogen checkpoint")
    version = raw["format_version"]
    _expect(_is_count(version) and version >= 1, f"format_version must be a positive integer, got {_kind(version)}")
    if version > FORMAT_VERSION:
        raise DinogenError(
            f"checkpoint {path} has format version {_short(version)}, newer than this dinogen "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade dinogen"
        )
    if version == 1:
        return {key: value for key, value in raw.items() if key != "format_version"}
    _expect(raw.keys() == {"format_version", "sha256", "payload"}, "it must hold format_version, sha256 and payload")
    digest, payload = raw["sha256"], raw["payload"]
    _expect(isinstance(digest, str), f"sha256 must be a string, got {_kind(digest)}")
    _expect(
        _is_byte_tensor(payload) and payload.numel() > 0, f"payload must be a tensor of bytes, got {_kind(payload)}"
    )
    data = bytearray(payload.numel())
    torch.frombuffer(data, dtype=torch.uint8).copy_(payload)  # the tensor's bytes, without numpy
    if hashlib.sha256(data).hexdigest() != digest:
        raise DinogenError(f"checkpoint {path} is damaged (checksum mismatch)")
    return _torch_load(data, path, map_location)


class DamagedCheckpoint(DinogenError):
    """A field of a loaded checkpoint is not what save_checkpoint writes; load_checkpoint names the file."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise DamagedCheckpoint(problem)


_STRINGS = ("data_path", "device", "created", "dinogen_version", "torch_version")
LABEL_FIELDS = ("labels", "label_counts", "train_label_ids", "val_label_ids")  # all or none: labelled names only
_OPTIONAL = ("run_id", *LABEL_FIELDS)  # fields that files of earlier releases (and of unlabelled names) lack
_COUNTS = ("step", "epoch")


def validated_checkpoint(payload: Any) -> Checkpoint:
    """Check every field of a loaded payload against what save_checkpoint writes, then build the Checkpoint.

    The one gate between a file and the code that uses it: raises DamagedCheckpoint naming the first
    wrong field, so that nothing downstream meets a value of the wrong type or shape.
    """
    _expect(isinstance(payload, dict), f"its payload must be a mapping of fields, got {_kind(payload)}")
    _check_fields(payload, "it", [item.name for item in fields(Checkpoint) if item.name not in _OPTIONAL], _OPTIONAL)
    _expect(isinstance(payload["config"], dict), f"config must be a mapping, got {_kind(payload['config'])}")
    try:
        config = Config.from_dict(payload["config"])
    except ConfigError as err:
        raise DamagedCheckpoint(f"config: {err}") from None
    vocab = _checked_vocab(payload["vocab"])
    for name in ("train_names", "val_names"):
        _check_names(payload[name], name, vocab)
    _expect(len(payload["train_names"]) > 0, "train_names is empty")
    for name in _COUNTS:
        _expect(_is_count(payload[name]), f"{name} must be a non-negative integer, got {_kind(payload[name])}")
    for name in _STRINGS + (("run_id",) if "run_id" in payload else ()):
        _expect(isinstance(payload[name], str), f"{name} must be a string, got {_kind(payload[name])}")
    _expect(_is_record(payload["metrics"]), "metrics must be a mapping of names to plain values")
    num_labels = _check_labels(payload)
    shapes = _check_model_state(payload["model_state"], len(vocab), config, num_labels)
    trainer_state = payload["trainer_state"]
    _expect(isinstance(trainer_state, dict), f"trainer_state must be a mapping, got {_kind(trainer_state)}")
    if trainer_state:  # empty in a checkpoint made for sampling only; Run.resume refuses it
        _check_trainer_state(trainer_state, shapes)
    return Checkpoint(**payload | {"config": config, "vocab": vocab})


def _check_fields(mapping: dict, name: str, required: list[str], optional: tuple[str, ...] = ()) -> None:
    for key in required:
        _expect(key in mapping, f"{name} lacks the field {key}")
    for key in mapping:
        _expect(key in required or key in optional, f"{name} has an unknown field {_short(key)}")


def _checked_vocab(chars: Any) -> Vocab:
    _expect(isinstance(chars, list), f"vocab must be a list of characters, got {_kind(chars)}")
    for char in chars:
        _expect(isinstance(char, str) and len(char) == 1, f"vocab holds {_kind(char)}, not a single character")
    seen = set()
    for char in chars:
        _expect(char not in seen, f"vocab has a duplicate character {char!r}")
        seen.add(char)
    return Vocab(chars)


def _check_names(names: Any, field_name: str, vocab: Vocab) -> None:
    _expect(
        isinstance(names, list) and all(isinstance(name, str) for name in names),
        f"{field_name} must be a list of strings, got {_kind(names)}",
    )
    unknown = set().union(*map(set, names)) - vocab.index.keys()
    _expect(not unknown, f"{field_name} uses a character the vocab lacks: {min(unknown, default='')!r}")


def _check_labels(payload: dict) -> int:
    """The label fields of labelled names (all of them, or none): distinct labels, counts and indices that agree.

    Returns the number of labels (0 without them).
    """
    present = [name for name in LABEL_FIELDS if name in payload]
    if not present:
        return 0
    _expect(len(present) == len(LABEL_FIELDS), f"it has {present[0]} but lacks the other label fields")
    labels = payload["labels"]
    _expect(
        isinstance(labels, list) and 0 < len(labels) <= MAX_LABELS and all(isinstance(label, str) for label in labels),
        f"labels must be a list of 1 to {MAX_LABELS:,} strings, got {_kind(labels)}",
    )
    for label in labels:
        _expect(
            0 < len(label) <= MAX_LABEL_LENGTH and normalize_label(label) == label,
            f"labels holds {_short(label)}, which is not a label in normal form",
        )
    _expect(len({label.casefold() for label in labels}) == len(labels), "labels holds a label twice")
    for name, names in (("train_label_ids", "train_names"), ("val_label_ids", "val_names")):
        ids = payload[name]
        _expect(
            isinstance(ids, list) and len(ids) == len(payload[names]) and all(_is_count(i) for i in ids),
            f"{name} must be a list of one label index per name of {names}",
        )
        _expect(all(i < len(labels) for i in ids), f"{name} holds an index past the {len(labels)} labels")
    counts = payload["label_counts"]
    _expect(
        counts == label_counts(payload["train_label_ids"], len(labels)) and all(counts),
        "label_counts must count each label's training names (at least one each)",
    )
    return len(labels)


def _check_model_state(state: Any, vocab_size: int, config: Config, num_labels: int) -> list[tuple[int, ...]]:
    """Exactly the weights build_model(vocab_size, config.model, num_labels) has, finite; their shapes in order."""
    _expect(isinstance(state, dict), f"model_state must be a mapping of weights, got {_kind(state)}")
    shapes = []
    for name, shape in parameter_shapes(vocab_size, config.model, num_labels):
        _expect(name in state, f"model_state lacks the weight {name} that a {config.model.cell} of this config has")
        _check_tensor(state[name], f"model_state {name}", shape)
        shapes.append(shape)
    _expect(len(state) == len(shapes), f"model_state has weights that a {config.model.cell} of this config lacks")
    return shapes


def _check_tensor(value: Any, field_name: str, shape: tuple[int, ...]) -> None:
    _expect(
        isinstance(value, torch.Tensor) and value.layout == torch.strided and value.is_floating_point(),
        f"{field_name} must be a floating-point tensor, got {_kind(value)}",
    )
    _expect(value.shape == shape, f"{field_name} has shape {tuple(value.shape)} where the config needs {shape}")
    _expect(bool(torch.isfinite(value).all()), f"{field_name} holds NaN or infinite values")


_SCALER_FIELDS = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}


def _check_trainer_state(state: dict, shapes: list[tuple[int, ...]]) -> None:
    """What Trainer.load_state_dict reads, of the types it writes, with moments the shapes of the weights."""
    _check_fields(state, "trainer_state", list(Trainer.STATE_FIELDS), optional=("cuda_rng",))  # cuda_rng: with CUDA
    _check_optimizer(state["optimizer"], shapes)
    schedule = state["schedule"]
    _expect(
        isinstance(schedule, dict)
        and schedule.keys() == set(LRSchedule.STATE_KEYS)
        and _is_real(schedule["scale"])
        and _is_real(schedule["best"])
        and _is_count(schedule["waiting"]),
        f"trainer_state schedule must hold the numbers {', '.join(LRSchedule.STATE_KEYS[:-1])} and "
        f"{LRSchedule.STATE_KEYS[-1]}",
    )
    scaler = state["scaler"]
    _expect(
        isinstance(scaler, dict)
        and (not scaler or scaler.keys() == _SCALER_FIELDS)
        and all(map(_is_real, scaler.values())),
        "trainer_state scaler must be empty or hold the gradient scaler's numbers",
    )
    _expect(_is_count(state["step"]), f"trainer_state step must be a non-negative integer, got {_kind(state['step'])}")
    _expect(_is_real(state["elapsed"]) and 0 <= state["elapsed"] < math.inf, "trainer_state elapsed must be seconds")
    _expect(_is_real(state["best_val_loss"]), "trainer_state best_val_loss must be a number")
    _expect(
        _is_count(state["evaluations_since_improvement"]), "trainer_state evaluations_since_improvement must be a count"
    )
    history = state["history"]
    _expect(
        isinstance(history, list) and all(map(_is_record, history)), "trainer_state history must be a list of metrics"
    )
    _expect(_is_cpu_rng_state(state["cpu_rng"]), "trainer_state cpu_rng is not a state of torch's CPU random generator")
    cuda_rng = state.get("cuda_rng", [])
    _expect(
        isinstance(cuda_rng, list) and all(map(_is_byte_tensor, cuda_rng)),
        "trainer_state cuda_rng must be a list of byte tensors",
    )


_ADAMW_NUMBERS = ("lr", "eps", "weight_decay")
_ADAMW_OFF = ("amsgrad", "maximize", "capturable", "differentiable")  # options dinogen never turns on
_ADAMW_CHOICES = ("foreach", "fused")  # None (torch decides), True or False


def _check_optimizer(optimizer: Any, shapes: list[tuple[int, ...]]) -> None:
    """AdamW's one parameter group and its moments, each the shape of its weight (else the fused kernel crashes)."""
    _expect(
        isinstance(optimizer, dict) and optimizer.keys() == {"state", "param_groups"},
        "trainer_state optimizer must hold state and param_groups",
    )
    groups = optimizer["param_groups"]
    _expect(
        isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict),
        "trainer_state optimizer must have one parameter group",
    )
    group = groups[0]
    _expect(
        group.get("params") == list(range(len(shapes))), f"trainer_state optimizer must cover the {len(shapes)} weights"
    )
    _expect(
        all(_is_real(group.get(key)) for key in _ADAMW_NUMBERS),
        "trainer_state optimizer needs numbers lr, eps and weight_decay",
    )
    betas = group.get("betas")
    _expect(
        isinstance(betas, tuple | list) and len(betas) == 2 and all(map(_is_real, betas)),
        "trainer_state optimizer betas must be two numbers",
    )
    _expect(
        all(group.get(key, False) is False for key in _ADAMW_OFF),
        f"trainer_state optimizer turns on one of {', '.join(_ADAMW_OFF)}",
    )
    _expect(
        all(group.get(key) in (None, True, False) for key in _ADAMW_CHOICES),
        "trainer_state optimizer foreach and fused must be true, false or null",
    )
    moments = optimizer["state"]
    _expect(isinstance(moments, dict), "trainer_state optimizer state must be a mapping")
    for index, entry in moments.items():
        _expect(
            _is_count(index) and index < len(shapes),
            f"trainer_state optimizer state has an unknown weight {_short(index)}",
        )
        _expect(
            isinstance(entry, dict) and entry.keys() == {"step", "exp_avg", "exp_avg_sq"},
            f"trainer_state optimizer state {index} must hold step, exp_avg and exp_avg_sq",
        )
        _check_tensor(entry["step"], f"trainer_state optimizer step {index}", ())
        for name in ("exp_avg", "exp_avg_sq"):
            _check_tensor(entry[name], f"trainer_state optimizer {name} {index}", shapes[index])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_real(value: Any) -> bool:
    """A plain int or float (NaN excepted)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _is_byte_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1


def _is_cpu_rng_state(value: Any) -> bool:
    if not _is_byte_tensor(value):
        return False
    try:
        torch.Generator().set_state(value.cpu())  # a throwaway generator: torch checks size and content
    except RuntimeError:
        return False
    return True


def _is_record(value: Any) -> bool:
    """A mapping of names to plain values, as metrics are (they end up in JSON and in `dinogen info`)."""
    scalars = (type(None), bool, int, float, str)
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, scalars) for k, v in value.items())


def _kind(value: Any) -> str:
    """What a wrong value is, without echoing all of it (a damaged field may be huge)."""
    kinds = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if type(value) in kinds:
        return kinds[type(value)] + ("" if value is None else f" ({_short(value)})")
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _short(value: Any) -> str:
    return shorten(repr(value), 40)  # an int has at most 614 digits here: weights_only refuses longer ones
