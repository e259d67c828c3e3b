"""Batched generation and scoring of names from a trained CharRNN."""

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from dinogen.checkpoint import Checkpoint, load_checkpoint
from dinogen.config import require
from dinogen.data import BOUNDARY, IGNORE_INDEX, EncodedNames, Vocab
from dinogen.device import resolve_device
from dinogen.errors import ConfigError, DinogenError
from dinogen.model import CharRNN, State

DEFAULT_BATCH_SIZE = 4096


@dataclass(slots=True)
class ScoredName:
    """A name with the model's opinion of it."""

    name: str
    log_prob: float  # total log-probability of the name, end token included (nats); -inf if impossible
    nll_per_char: float  # -log_prob / (length + 1): mean loss per predicted position
    length: int  # characters in the name

    def to_dict(self) -> dict:
        return asdict(self)


class NotEnoughNames(DinogenError):
    """The filters rejected too many samples: fewer names than asked for were found."""

    exit_code = 3

    def __init__(self, message: str, found: int):
        super().__init__(message)
        self.found = found


@dataclass(frozen=True)
class _Controls:
    temperature: float
    top_k: int | None
    top_p: float | None
    prefix_ids: tuple[int, ...]
    min_length: int
    max_length: int


class Generator:
    """Samples names from a CharRNN as one batch on its device, carrying the recurrent state step to step."""

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocab,
        train_names: Iterable[str] = (),
        device: torch.device | str = "cpu",
        lowercase: bool = True,
    ):
        self.device = torch.device(device)
        self.lowercase = lowercase  # whether the training names were lowercased (score folds input the same way)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.train_names = frozenset(train_names)
        self.default_max_length = 2 * max(map(len, self.train_names), default=16)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> "Generator":
        """Rebuild model and vocabulary from a checkpoint file or run directory alone."""
        target = resolve_device(device)
        return cls.from_loaded(load_checkpoint(path, map_location=target), target)

    @classmethod
    def from_loaded(cls, checkpoint: Checkpoint, device: torch.device) -> "Generator":
        """A generator for a checkpoint already in memory."""
        model = checkpoint.build_model(device)
        return cls(model, checkpoint.vocab, checkpoint.train_names, device, checkpoint.config.data.lowercase)

    def sample(self, n: int, **options) -> list[str]:
        """`n` names as strings; see `iter_sample` for the options."""
        return [scored.name for scored in self.iter_sample(n, **options)]

    def iter_sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        prefix: str = "",
        min_length: int | None = None,
        max_length: int | None = None,
        unique: bool = False,
        novel: bool = False,
        exclude: Iterable[str] = (),
        seed: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_attempts: int | None = None,
    ) -> Iterator[ScoredName]:
        """Yield `n` scored names, batch by batch, keeping only those that pass the filters.

        temperature 0 is greedy decoding; top_k and top_p restrict sampling to the likeliest characters.
        With unique/novel/exclude, sampling goes on until `n` names pass or `max_attempts` samples
        (default: max(20 n, 10 batches)) were drawn; then NotEnoughNames is raised after the last name.
        """
        require(n >= 1, "n", "must be at least 1", n)
        require(batch_size >= 1, "batch_size", "must be at least 1", batch_size)
        controls = self._controls(temperature, top_k, top_p, prefix, min_length, max_length)
        rejected = set(exclude)
        excluding = bool(rejected)
        if novel:
            rejected |= self.train_names
        filtering = unique or bool(rejected)
        if max_attempts is None:
            max_attempts = max(20 * n, 10 * batch_size) if filtering else n
        generator = None
        if seed is not None:
            generator = torch.Generator(self.device).manual_seed(seed)
        found = attempts = 0
        while found < n and attempts < max_attempts:
            wanted = n - found
            size = min(batch_size, max(256, 2 * wanted) if filtering else wanted, max_attempts - attempts)
            attempts += size
            for scored in self._generate_batch(size, controls, generator):
                if scored.name in rejected:
                    continue
                if unique:
                    rejected.add(scored.name)
                yield scored
                found += 1
                if found == n:
                    return
        raise NotEnoughNames(
            f"found only {found} of {n} names after {attempts} samples: the filters "
            f"({', '.join(_filter_names(unique, novel, excluding))}) rejected the rest; "
            "try a higher temperature, a larger model, or fewer names",
            found,
        )

    def _controls(self, temperature, top_k, top_p, prefix, min_length, max_length) -> _Controls:
        require(temperature >= 0, "temperature", "must be 0 (greedy) or more", temperature)
        require(top_k is None or top_k >= 1, "top_k", "must be at least 1", top_k)
        require(top_p is None or 0 < top_p <= 1, "top_p", "must be in (0, 1]", top_p)
        if self.lowercase:
            prefix = prefix.lower()  # the training names were folded the same way
        unknown = self.vocab.unknown(prefix)
        if unknown:
            raise ConfigError(f"prefix {prefix!r} has characters the model never saw: {' '.join(map(repr, unknown))}")
        min_length = 1 if min_length is None else min_length
        max_length = self.default_max_length if max_length is None else max_length
        require(min_length >= 0, "min_length", "must be at least 0", min_length)
        require(max_length >= 1, "max_length", "must be at least 1", max_length)
        require(min_length <= max_length, "min_length", f"must not exceed max_length ({max_length})", min_length)
        require(len(prefix) <= max_length, "prefix", f"is longer than max_length ({max_length})", prefix)
        return _Controls(temperature, top_k, top_p, tuple(self.vocab.encode(prefix)), min_length, max_length)

    @torch.inference_mode()
    def _generate_batch(self, size: int, controls: _Controls, generator: torch.Generator | None) -> list[ScoredName]:
        prefix = controls.prefix_ids
        logits, state = None, None
        for token in (BOUNDARY, *prefix):  # the prefix runs once; afterwards only the state is carried
            logits, state = self.model.step(torch.full((size,), token, device=self.device), state)  # (B, V)
        steps = controls.max_length - len(prefix) + 1  # characters still allowed, plus the end
        chosen = torch.full((size, steps), BOUNDARY, device=self.device)  # (B, S)
        log_probs = torch.zeros(size, steps, device=self.device)  # (B, S) the model's log-probability of each choice
        alive = torch.arange(size, device=self.device)  # rows still writing, so finished ones cost nothing
        for t in range(steps):
            token = _pick(_length_mask(logits, len(prefix) + t, controls), controls, generator)  # (b,)
            chosen[alive, t] = token
            log_probs[alive, t] = logits.log_softmax(-1).gather(1, token[:, None]).squeeze(1)
            going = (token != BOUNDARY).nonzero().squeeze(1)  # positions of the rows that go on
            if not len(going):
                break
            alive, state = alive.index_select(0, going), _select(state, going)
            logits, state = self.model.step(token.index_select(0, going), state)
        chosen = chosen[:, : t + 1]  # the columns used; the boundary decodes to nothing
        lengths = (chosen != BOUNDARY).sum(1) + len(prefix)  # (B,)
        totals = log_probs.sum(1)  # (B,)
        prefix_text = self.vocab.decode(prefix)
        names = [prefix_text + self.vocab.decode(row) for row in chosen.tolist()]
        columns = (names, totals.tolist(), (-totals / (lengths + 1)).tolist(), lengths.tolist())
        return [ScoredName(*fields) for fields in zip(*columns, strict=True)]

    @torch.inference_mode()
    def score(self, names: Sequence[str]) -> list[ScoredName]:
        """The model's log-probability of each name; names with unseen characters get -inf."""
        known = [name for name in names if not self.vocab.unknown(name)]
        totals: dict[str, float] = {}
        if known:
            data = EncodedNames(known, self.vocab, self.device)
            logits, _ = self.model(data.inputs)  # (N, T, V)
            losses = nn.functional.cross_entropy(
                logits.transpose(1, 2), data.targets, ignore_index=IGNORE_INDEX, reduction="none"
            )  # (N, T), zero at padding
            totals = dict(zip(known, (-losses.sum(1)).tolist(), strict=True))
        results = []
        for name in names:
            total = totals.get(name, -math.inf)
            results.append(ScoredName(name, total, -total / (len(name) + 1), len(name)))
        return results


def _length_mask(logits: torch.Tensor, length: int, controls: _Controls) -> torch.Tensor:
    """Forbid the end before min_length and everything but the end at max_length."""
    if length < controls.min_length:
        logits = logits.clone()
        logits[:, BOUNDARY] = -math.inf
    elif length >= controls.max_length:
        forced = torch.full_like(logits, -math.inf)
        forced[:, BOUNDARY] = 0.0
        return forced
    return logits


def _pick(logits: torch.Tensor, controls: _Controls, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row: argmax at temperature 0, else a draw from the (top-k/top-p) tempered distribution."""
    if controls.temperature == 0:
        return logits.argmax(-1)
    if controls.temperature != 1:
        logits = logits / controls.temperature
    if controls.top_k is not None and controls.top_k < logits.size(-1):
        kth = logits.topk(controls.top_k, dim=-1).values[:, -1:]  # (b, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if controls.top_p is not None and controls.top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        outside = probs.cumsum(-1) - probs > controls.top_p  # the smallest set reaching top_p is kept
        logits = logits.scatter(-1, order, ordered.masked_fill(outside, -math.inf))
    # A draw from softmax(logits): the argmax of p_i / E_i with E_i = -log(U_i) ~ Exponential(1) (the
    # Gumbel-max trick in another form); exact, and several times faster than torch.multinomial here.
    noise = torch.rand(logits.shape, generator=generator, device=logits.device).log_().neg_()
    return (logits.softmax(-1) / noise).argmax(-1)


def _select(state: State, rows: torch.Tensor) -> State:
    if isinstance(state, tuple):  # LSTM: (hidden, cell)
        return tuple(part.index_select(1, rows) for part in state)
    return state.index_select(1, rows)  # (layers, b, H)


def _filter_names(unique: bool, novel: bool, excluding: bool) -> list[str]:
    return [name for name, on in (("unique", unique), ("novel", novel), ("exclude", excluding)) if on]
