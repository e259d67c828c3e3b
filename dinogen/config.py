"""Typed configuration: dataclasses with defaults, YAML loading, `key=value` overrides, checks."""

import difflib
import math
import os
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dinogen.bundled import bundled_configs, bundled_file
from dinogen.errors import ConfigError, DinogenError, require, require_between, shorten
from dinogen.files import read_bytes
from dinogen.limits import (
    CONFIG_FILE_BYTES,
    MAX_BATCH_SIZE,
    MAX_COUNT,
    MAX_GRAD_CLIP,
    MAX_LAYERS,
    MAX_LR,
    MAX_MEMBERS,
    MAX_MIN_DELTA,
    MAX_NAME_LENGTH,
    MAX_PARAMETERS,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_WEIGHT_DECAY,
    MAX_WIDTH,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    reduce_seed,
)

Cell = Literal["rnn", "gru", "lstm"]
Implementation = Literal["fused", "reference"]
Conditioning = Literal["input", "state"]
Schedule = Literal["constant", "cosine", "plateau"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # blocks stacked in each recurrent weight matrix: GRU r, z, n; LSTM i, f, g, o


@dataclass
class DataConfig:
    """Where the names come from and how they are cleaned and split."""

    path: str = "data/dinos.txt"  # names file, one per line; falls back to the bundled file
    val_path: str | None = None  # explicit validation names (then val_fraction is ignored)
    val_fraction: float = 0.1  # share of the names held out for validation, chosen by the seed
    lowercase: bool | Literal["auto"] = "auto"  # fold case: true, false, or auto: as the file is (see data.folds_case)
    encoding: str = "utf-8"  # text encoding of the names files (a BOM is tolerated)
    max_length: int | None = 64  # longer lines are dropped with a warning (null: keep all)

    def validate(self) -> None:
        require(0 <= self.val_fraction < 1, "data.val_fraction", "must be in [0, 1)", self.val_fraction)
        require_between(self.max_length, "data.max_length", 1, MAX_NAME_LENGTH, nullable=True)


@dataclass
class ModelConfig:
    """Shape of the CharRNN: embedding -> recurrent layers -> linear to the vocabulary."""

    cell: Cell = "gru"  # rnn (vanilla tanh RNN), gru or lstm
    embedding_dim: int = 128  # size of each character's learned vector
    hidden_size: int = 112  # size of the recurrent state per layer
    num_layers: int = 1  # stacked recurrent layers
    dropout: float = 0.5  # dropout on embeddings, between layers and on outputs
    ensemble: int = 1  # models of this shape trained side by side, each on its own loss, averaged to predict
    impl: Implementation = "fused"  # fused: torch's kernels; reference: dinogen/cells.py, the equations in Python
    label_dim: int = 16  # size of each label's learned vector (only for labelled names)
    label_conditioning: Conditioning = "input"  # input: the label's vector beside every character's; state: h_0

    def validate(self) -> None:
        require_between(self.embedding_dim, "model.embedding_dim", 1, MAX_WIDTH)
        require_between(self.hidden_size, "model.hidden_size", 1, MAX_WIDTH)
        require_between(self.label_dim, "model.label_dim", 1, MAX_WIDTH)
        require_between(self.num_layers, "model.num_layers", 1, MAX_LAYERS)
        require(0 <= self.dropout < 1, "model.dropout", "must be in [0, 1)", self.dropout)
        require_between(self.ensemble, "model.ensemble", 1, MAX_MEMBERS)
        self.check_parameters(vocab_size=2)  # the smallest vocabulary: the boundary and one character

    def num_parameters(self, vocab_size: int, num_labels: int = 0) -> int:
        """Weights and biases of a model of this shape over `vocab_size` tokens (and labels), as torch counts them."""
        return sum(math.prod(shape) for _, shape in parameter_shapes(vocab_size, self, num_labels))

    def check_parameters(self, vocab_size: int, num_labels: int = 0) -> None:
        """Refuse, before anything is allocated, a model larger than MAX_PARAMETERS."""
        count = self.num_parameters(vocab_size, num_labels)
        if count > MAX_PARAMETERS:
            labels = f" and {num_labels:,} labels" if num_labels else ""
            raise ConfigError(
                f"{f'an ensemble of {self.ensemble} ' if self.ensemble > 1 else 'a '}{self.cell} of "
                f"{self.num_layers} layer(s), hidden_size {self.hidden_size} and embedding_dim {self.embedding_dim} "
                f"over {vocab_size:,} characters{labels} has {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                "dinogen allows; make model.hidden_size, embedding_dim, num_layers or ensemble smaller"
            )


def parameter_shapes(
    vocab_size: int, config: ModelConfig, num_labels: int = 0
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """The name and shape of each weight of the model, in `parameters()` order, without building one.

    Checking a checkpoint must not allocate what a damaged config asks for (nor start torch's meta
    device, which takes a second); tests keep this equal to `build_model(...).state_dict()`. A model of
    unlabelled names (`num_labels` 0) has no label weights, and label_dim and label_conditioning change nothing.
    """
    embedding, hidden, gates = config.embedding_dim, config.hidden_size, GATES[config.cell] * config.hidden_size
    by_input = num_labels > 0 and config.label_conditioning == "input"
    first_input = embedding + config.label_dim if by_input else embedding  # the label's vector beside the character's
    # An ensemble holds its members as members.0, members.1, ...; a single model is the member itself.
    for prefix in [""] if config.ensemble == 1 else [f"members.{k}." for k in range(config.ensemble)]:
        yield f"{prefix}embedding.weight", (vocab_size, embedding)
        if num_labels:
            yield f"{prefix}label_embedding.weight", (num_labels, config.label_dim)
        if num_labels and not by_input:  # the label sets every layer's initial state
            yield f"{prefix}label_state.weight", (config.num_layers * hidden, config.label_dim)
            yield f"{prefix}label_state.bias", (config.num_layers * hidden,)
        for layer in range(config.num_layers):
            yield f"{prefix}rnn.weight_ih_l{layer}", (gates, first_input if layer == 0 else hidden)  # input to gates
            yield f"{prefix}rnn.weight_hh_l{layer}", (gates, hidden)  # previous hidden state to gates
            yield f"{prefix}rnn.bias_ih_l{layer}", (gates,)
            yield f"{prefix}rnn.bias_hh_l{layer}", (gates,)
        yield f"{prefix}head.weight", (vocab_size, hidden)
        yield f"{prefix}head.bias", (vocab_size,)


@dataclass
class TrainConfig:
    """How long and how to optimise."""

    epochs: int | None = 100  # passes over the training names (null: no epoch limit)
    max_steps: int | None = None  # optimizer steps (null: no step limit); the first limit reached ends the run
    max_time: float | None = None  # seconds of training (null: no time limit)
    batch_size: int | Literal["auto"] = "auto"  # names per batch; auto: base_batch_size on a CPU, else gpu_batch_size
    base_batch_size: int = 64  # the batch lr is tuned for, and auto's batch on a CPU
    gpu_batch_size: int = 512  # auto's batch on a GPU, with lr scaled by sqrt(gpu_batch_size / base_batch_size)
    lr: float = 3e-3  # peak AdamW learning rate
    lr_schedule: Schedule = "cosine"  # constant; cosine decay to final_lr_fraction; plateau: halve when stuck
    warmup_steps: int = 0  # steps of linear warm-up from 0 to lr
    final_lr_fraction: float = 0.1  # cosine ends at lr * final_lr_fraction
    plateau_patience: int = 2  # plateau: evaluations without improvement before the lr is halved
    weight_decay: float = 0.5  # AdamW decoupled weight decay
    grad_clip: float | None = 1.0  # clip the global gradient norm to this (null: no clipping)
    eval_every: int = 50  # steps between validation passes (one also runs at the end)
    patience: int | None = None  # stop after this many evaluations without improvement (null: never)
    min_delta: float = 0.0  # improvement in validation loss that resets the patience counter
    seed: int = 0  # seeds the split, the initial weights, the data order and dropout
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    precision: Precision = "fp32"  # bf16/fp16 mixed precision (fp16: CUDA only); auto: bf16 where native
    compile: bool = False  # run the model through torch.compile (pays a start-up cost; measure first)

    def validate(self) -> None:
        require_between(self.epochs, "train.epochs", 1, MAX_COUNT, nullable=True)
        require_between(self.max_steps, "train.max_steps", 1, MAX_STEPS, nullable=True)
        require(
            self.max_time is None or 0 < self.max_time <= MAX_SECONDS,
            "train.max_time",
            f"must be in (0, {MAX_SECONDS:,}] seconds or null",
            self.max_time,
        )
        require(
            self.epochs is not None or self.max_steps is not None or self.max_time is not None,
            "train.epochs",
            "may be null only when train.max_steps or train.max_time is set",
            self.epochs,
        )
        if self.batch_size != "auto":
            require_between(self.batch_size, "train.batch_size", 1, MAX_BATCH_SIZE)
        require_between(self.base_batch_size, "train.base_batch_size", 1, MAX_BATCH_SIZE)
        require_between(self.gpu_batch_size, "train.gpu_batch_size", 1, MAX_BATCH_SIZE)
        require(0 < self.lr <= MAX_LR, "train.lr", f"must be in (0, {MAX_LR:g}]", self.lr)
        require(
            0 <= self.weight_decay <= MAX_WEIGHT_DECAY,
            "train.weight_decay",
            f"must be in [0, {MAX_WEIGHT_DECAY:g}]",
            self.weight_decay,
        )
        require(
            self.grad_clip is None or 0 < self.grad_clip <= MAX_GRAD_CLIP,
            "train.grad_clip",
            f"must be in (0, {MAX_GRAD_CLIP:,.0f}] or null",
            self.grad_clip,
        )
        require_between(self.eval_every, "train.eval_every", 1, MAX_STEPS)
        require_between(self.warmup_steps, "train.warmup_steps", 0, MAX_STEPS)
        require(
            0 <= self.final_lr_fraction <= 1, "train.final_lr_fraction", "must be in [0, 1]", self.final_lr_fraction
        )
        require_between(self.plateau_patience, "train.plateau_patience", 1, MAX_COUNT)
        require_between(self.patience, "train.patience", 1, MAX_COUNT, nullable=True)
        require(
            0 <= self.min_delta <= MAX_MIN_DELTA,
            "train.min_delta",
            f"must be in [0, {MAX_MIN_DELTA:g}]",
            self.min_delta,
        )


@dataclass
class Config:
    """A whole run: data, model and training settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain data, as written to config.yaml and checkpoints."""
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "Config":
        """Build and validate a Config from plain data; missing keys keep their defaults."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping of sections ({', '.join(_SECTIONS)}), got {_describe(raw)}")
        sections = {}
        for name, value in raw.items():
            if name not in _SECTIONS:
                raise ConfigError(_unknown_key(str(name), list(_SECTIONS)))
            sections[name] = _build_section(_SECTIONS[name], value, name)
        config = cls(**sections)
        for section in (config.data, config.model, config.train):
            section.validate()
        config.train.seed = reduce_seed(config.train.seed)  # any integer; the resolved config shows the seed used
        return config


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def load_config(name: str | Path, overrides: typing.Iterable[str] = ()) -> Config:
    """Read a YAML config (a file, or a bundled config's name), apply `section.key=value` overrides, validate."""
    path = find_config(name)
    return Config.from_dict(apply_overrides(_paths_beside(read_yaml(path), path.parent), overrides))


def _paths_beside(raw: Any, folder: Path) -> Any:
    """A config file's relative names files, read from the file's folder (a config travels with its data).

    A path with no such file there but a bundled file of that name (`data/dinos.txt` in the bundled configs)
    is kept as written, so that it still finds the bundled file.
    """
    data = raw.get("data") if isinstance(raw, dict) else None
    for key in ("path", "val_path"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, str) and value != "-" and not Path(value).is_absolute():
            beside = folder / value
            if os.path.exists(beside) or bundled_file(value) is None:
                data[key] = str(beside)
    return raw


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the bounded safe loader, turning every failure into a ConfigError."""
    shown = shorten(str(path))
    try:
        text = read_bytes(path, "config file", CONFIG_FILE_BYTES).decode("utf-8")
    except DinogenError as err:
        raise ConfigError(str(err)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {shown} is not UTF-8 text") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = shorten(getattr(err, "problem", None) or "invalid YAML")
        raise ConfigError(f"config file {shown} is not valid YAML{where}: {problem}") from None
    except ValueError:  # an integer of more digits than Python converts
        raise ConfigError(f"config file {shown} holds a number too long to read") from None


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, bounded: no aliases (a billion laughs), limited nesting and node count.

    It also reads 1e-3 as a number, as YAML 1.2 does (YAML 1.1 wants 1.0e-3), so no text is ever
    taken for a number: a quoted '0.1' stays a string.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = self.nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        self.nodes += 1
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a config", event.start_mark
            )
        if self.nodes > MAX_YAML_NODES or self.depth >= MAX_YAML_DEPTH:
            problem = f"more than {MAX_YAML_NODES:,} values or {MAX_YAML_DEPTH} levels of nesting"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """One YAML document read by the bounded loader (raises yaml.YAMLError, or ValueError for a huge integer)."""
    return yaml.load(text, Loader=_BoundedLoader)


def apply_overrides(raw: Any, overrides: typing.Iterable[str]) -> Any:
    """Return `raw` with each `section.key=value` applied; values are parsed as YAML scalars."""
    overrides = list(overrides)
    if not overrides or not isinstance(raw, dict | None):
        return raw  # nothing to do, or not a mapping: Config.from_dict says so
    raw = {name: dict(section or {}) if isinstance(section, dict) else section for name, section in (raw or {}).items()}
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator:
            raise ConfigError(
                f"override {shorten(repr(override))} needs the form section.key=value, e.g. train.lr=0.001"
            )
        section, dot, name = key.strip().partition(".")
        if not dot or not name or "." in name:
            matches = [
                f"{s}.{key.strip()}" for s, cls in _SECTIONS.items() if key.strip() in typing.get_type_hints(cls)
            ]
            hint = f" (did you mean {matches[0]!r}?)" if matches else ""
            raise ConfigError(f"override key {shorten(repr(key))} must be section.key, e.g. train.lr{hint}")
        if section not in _SECTIONS:
            raise ConfigError(_unknown_key(section, list(_SECTIONS)))
        try:
            value = parse_yaml(text)
        except (yaml.YAMLError, ValueError):
            value = text  # not a YAML scalar: keep the raw string and let type checking judge it
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"config section {section!r} must be a mapping of keys to values")
        target[name] = value
    return raw


def _build_section(cls: type, raw: Any, section: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {section!r} must be a mapping of keys to values, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(_unknown_key(f"{section}.{key}", [f"{section}.{name}" for name in hints]))
        values[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a field's type hint (a type, a Literal, or a union of them and None).

    Ints are accepted where floats are expected.
    """
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    members = list(typing.get_args(hint)) if union else [hint]
    nullable = type(None) in members
    if value is None and nullable:
        return None
    members = [member for member in members if member is not type(None)]
    for member in members:
        if typing.get_origin(member) is Literal:
            if value in typing.get_args(member) and not isinstance(value, bool):
                return value
        elif member is float and isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > sys.float_info.max:
                raise ConfigError(f"{key} must be a number of at most about 1.8e308, got {_describe(value)}")
            return float(value)
        elif isinstance(value, member) and not (member is not bool and isinstance(value, bool)):
            return value
    wanted = " or ".join(map(_wanted, members)) + " or null" * nullable
    only_choices = all(typing.get_origin(member) is Literal for member in members)
    raise ConfigError(f"{key} must be {wanted}, got {shorten(repr(value)) if only_choices else _describe(value)}")


def _wanted(member: Any) -> str:
    """How an error names what a type or Literal accepts: 'an integer', 'auto', 'one of rnn, gru, lstm'."""
    if typing.get_origin(member) is Literal:
        choices = typing.get_args(member)
        return choices[0] if len(choices) == 1 else f"one of {', '.join(choices)}"
    return _TYPE_NAMES[member]


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return "null" if value is None else f"{kinds.get(type(value), type(value).__name__)} ({shorten(repr(value))})"


def _unknown_key(key: str, valid: list[str]) -> str:
    key = shorten(key)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown config key {key!r}{hint}; valid keys: {', '.join(valid)}"


def find_config(name: str | Path) -> Path:
    """A config file path as given, or the bundled config of that name (e.g. 'lstm')."""
    path = Path(name)
    if os.path.exists(path):  # os.path: a name too long for the system is just absent
        return path
    bundled = (
        bundled_file(f"configs/{path.stem}.yaml") if path.suffix in ("", ".yaml") and path.parent == Path() else None
    )
    if bundled is not None:
        return bundled
    raise ConfigError(
        f"config {shorten(repr(str(name)))} is neither a file nor a bundled config ({', '.join(bundled_configs())})"
    )
