"""Batched generation and scoring of names from a trained CharRNN.

Sampling is a reproducible stream: name i of the stream is drawn with random numbers that depend only on
the seed, i and the step (`streams.py`), so the batch size, `-n` and sharding never change name i.
"""

import ctypes
import heapq
import itertools
import math
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from dinogen.checkpoint import Checkpoint, load_checkpoint
from dinogen.config import require, require_between
from dinogen.data import BOUNDARY, IGNORE_INDEX, EncodedNames, Vocab, normalize_name
from dinogen.device import resolve_device
from dinogen.errors import ConfigError, DinogenError, shorten
from dinogen.limits import MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES
from dinogen.model import CharRNN, Ensemble, State
from dinogen.streams import RowStreams

# Names drawn per batch when none is given: a CPU is fastest with batches that stay in its caches; a GPU
# needs many rows to keep its cores busy. Either way the batch size never changes the names.
DEFAULT_BATCH_SIZES = {"cpu": 4096, "cuda": 65536}
SCORE_BATCH_SIZE = 512  # names scored together: (B, T, V) logits stay small on any device
MAX_TEMPERATURE = 100.0  # above it every allowed character is about equally likely
# Filters stop asking for names after this many samples in a row passed none (e.g. --unique at temperature 0).
STALL_SAMPLES = 40_960
MOST_LIKELY_BATCH = 512  # prefixes expanded together by the best-first search


@dataclass(slots=True)
class ScoredName:
    """A name with the model's opinion of it."""

    name: str
    log_prob: float  # total log-probability of the whole name, end token included (nats); -inf if impossible
    nll_per_char: float  # -log_prob / (length + 1): mean loss per predicted position
    length: int  # characters in the name

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, name: str, log_prob: float) -> "ScoredName":
        """A name and its whole log-probability, with the per-character loss and length that follow."""
        return cls(name, log_prob, -log_prob / (len(name) + 1), len(name))


class NotEnoughNames(DinogenError):
    """The filters rejected too many samples: fewer names than asked for were found."""

    exit_code = 3

    def __init__(self, message: str, names: Sequence[str] = (), found: int | None = None):
        super().__init__(message)
        self.names = list(names)  # the names found (`Generator.sample`); `iter_sample` yielded them already
        self.found = len(self.names) if found is None else found


@dataclass(frozen=True)
class _Controls:
    temperature: float
    top_k: int | None
    top_p: float | None
    prefix_ids: tuple[int, ...]
    min_length: int
    max_length: int


class Generator:
    """Samples names from a CharRNN as one batch on its device, carrying the recurrent state step to step.

    Every name that comes in (prefix, exclude, score) or goes out is in the form `data.normalize_name`
    gives it: the form of the training names.
    """

    def __init__(
        self,
        model: CharRNN | Ensemble,
        vocab: Vocab,
        train_names: Iterable[str] = (),
        device: torch.device | str = "cpu",
        lowercase: bool = True,
        val_names: Iterable[str] = (),
    ):
        self.device = torch.device(device)
        self.lowercase = lowercase  # whether the training names were lowercased (every input is folded the same way)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.train_names = frozenset(train_names)
        self.known_names = self.train_names | frozenset(val_names)  # the names file the model learned from
        self.default_max_length = min(2 * max(map(len, self.known_names), default=16), MAX_NAME_LENGTH)
        self._rules = _CharacterRules(vocab, lowercase, self.device)
        self.fixed_shapes = self.device.type == "cuda"  # how batches are drawn (see _generate_batch)
        self.default_batch_size = DEFAULT_BATCH_SIZES.get(self.device.type, DEFAULT_BATCH_SIZES["cpu"])
        # token -> Unicode code point, for decoding many names at once; the boundary ends a name's line
        self._code_points = torch.tensor([ord("\n"), *map(ord, vocab.chars)], dtype=torch.int32, device=self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> "Generator":
        """Rebuild model and vocabulary from a checkpoint file or run directory alone."""
        target = resolve_device(device)
        return cls.from_loaded(load_checkpoint(path, map_location=target), target)

    @classmethod
    def from_loaded(cls, checkpoint: Checkpoint, device: torch.device) -> "Generator":
        """A generator for a checkpoint already in memory."""
        model = checkpoint.build_model(device)
        lowercase = checkpoint.config.data.lowercase
        return cls(model, checkpoint.vocab, checkpoint.train_names, device, lowercase, checkpoint.val_names)

    def normalize(self, name: str) -> str:
        """`name` in the form of the training names (see `data.normalize_name`)."""
        return normalize_name(name, self.lowercase)

    def sample(self, n: int, **options) -> list[str]:
        """`n` names as strings; see `iter_sample` for the options. NotEnoughNames carries the names found."""
        names: list[str] = []
        try:
            names.extend(scored.name for scored in self.iter_sample(n, **options))
        except NotEnoughNames as err:
            raise NotEnoughNames(str(err), names) from None
        return names

    def iter_sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        prefix: str = "",
        min_length: int = 1,
        max_length: int | None = None,
        unique: bool = False,
        novel: bool = False,
        exclude: Iterable[str] = (),
        seed: int | None = None,
        batch_size: int | None = None,
        shard: tuple[int, int] | None = None,
        most_likely: bool = False,
        max_attempts: int | None = None,
    ) -> Iterator[ScoredName]:
        """Yield `n` scored names of the seed's stream that pass the filters, in stream order.

        temperature 0 is greedy decoding; top_k and top_p restrict sampling to the likeliest characters.
        Names whose natural length is outside [min_length, max_length] are not kept (the end is masked
        below min_length; a name that runs past max_length is dropped, never cut). novel leaves out the
        names the model learned from (training and validation), exclude any others, unique repeats.
        shard=(k, m) keeps only stream names i with i % m == k, and yields this shard's share of n.
        Sampling stops after max_attempts samples (default max(20 n, 40,960)) or 40,960 samples in a
        row that gave no name; NotEnoughNames is raised after the last name found.
        most_likely=True yields the n likeliest names instead (see `most_likely`).
        """
        require_between(n, "n", 1, MAX_NAMES)
        controls = self._controls(temperature, top_k, top_p, prefix, min_length, max_length)
        excluded = self._excluded(exclude)
        rejected = set(excluded | self.known_names if novel else excluded)  # grows with --unique
        if most_likely:
            _refuse_with_most_likely(temperature=temperature != 1, top_k=top_k, top_p=top_p, shard=shard)
            yield from self._most_likely(n, controls, rejected)
            return
        batch_size = self.default_batch_size if batch_size is None else batch_size
        require_between(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        first, step = parse_shard(shard)
        if step > 1 and seed is None:
            raise ConfigError("shard needs a seed, so that every shard draws from the same stream")
        wanted = len(range(first, n, step))  # this shard's share of the n names
        if wanted == 0:
            return
        streams = RowStreams(secrets.randbits(64) if seed is None else seed, first, step, self.device)
        max_attempts = max(20 * wanted, STALL_SAMPLES) if max_attempts is None else max_attempts
        # Greedy decoding draws the same name every time: once one is rejected, all the others would be.
        stall = 1 if controls.temperature == 0 or controls.top_k == 1 else STALL_SAMPLES
        found = attempts = since_found = too_long = 0
        while attempts < max_attempts and since_found < stall:
            # While every sample passed, a batch is what is missing; once some are rejected, batches grow.
            missing = wanted - found
            growing = missing if attempts == found else max(256, 2 * missing, attempts)
            size = min(batch_size, max_attempts - attempts, growing)
            for scored in self._generate_batch(streams, attempts, size, controls):
                attempts += 1
                if scored is not None and scored.name not in rejected:
                    if unique:
                        rejected.add(scored.name)
                    yield scored
                    found, since_found = found + 1, 0
                    if found == wanted:
                        return
                else:
                    since_found += 1
                    too_long += scored is None
                if since_found >= stall or attempts >= max_attempts:
                    break
        raise NotEnoughNames(
            f"found only {found} of {wanted} names after {attempts} samples: "
            f"{self._rejections(attempts - found - too_long, too_long, unique, novel, bool(excluded), controls)}; "
            "try a higher temperature, a larger model, or fewer names",
            found=found,
        )

    def _rejections(self, filtered: int, too_long: int, unique: bool, novel: bool, excluding: bool, controls) -> str:
        """What rejected the samples that were not kept, for the shortfall message."""
        named = [name for name, on in (("unique", unique), ("novel", novel), ("exclude", excluding)) if on]
        reasons = [f"the filters ({', '.join(named)}) rejected {filtered:,}"] if filtered else []
        if too_long:
            form = " or were not in normal form" if self._rules.may_denormalize else ""
            reasons.append(f"{too_long:,} ran past max_length ({controls.max_length}){form}")
        return " and ".join(reasons)

    def most_likely(
        self,
        n: int,
        *,
        prefix: str = "",
        min_length: int = 1,
        max_length: int | None = None,
        novel: bool = False,
        exclude: Iterable[str] = (),
    ) -> list[ScoredName]:
        """The `n` names of highest model probability, likeliest first: an exact best-first search.

        Prefixes are expanded in order of probability; a name is final when no open prefix is likelier,
        since extending a prefix can only lower its probability. Fewer names come back only when the
        length range, prefix and filters allow fewer.
        """
        require_between(n, "n", 1, MAX_NAMES)
        controls = self._controls(1.0, None, None, prefix, min_length, max_length)
        excluded = self._excluded(exclude)
        return list(self._most_likely(n, controls, set(excluded | self.known_names if novel else excluded)))

    def _excluded(self, exclude: Iterable[str]) -> frozenset[str]:
        """The excluded names, normalised."""
        if isinstance(exclude, str):
            raise TypeError("exclude must be a collection of names, not a single string")
        return frozenset(self.normalize(name) for name in exclude)

    def _controls(self, temperature, top_k, top_p, prefix, min_length, max_length) -> _Controls:
        require(0 <= temperature <= MAX_TEMPERATURE, "temperature", f"must be in [0, {MAX_TEMPERATURE:g}]", temperature)
        require(top_k is None or top_k >= 1, "top_k", "must be at least 1", top_k)
        require(top_p is None or 0 < top_p <= 1, "top_p", "must be in (0, 1]", top_p)
        prefix = self._normalize_prefix(prefix)
        unknown = self.vocab.unknown(prefix)
        if unknown:
            unseen = shorten(" ".join(map(repr, unknown)))
            raise ConfigError(f"prefix {shorten(repr(prefix))} has characters the model never saw: {unseen}")
        max_length = self.default_max_length if max_length is None else max_length
        require_between(min_length, "min_length", 1, MAX_NAME_LENGTH)
        require_between(max_length, "max_length", 1, MAX_NAME_LENGTH)
        require(min_length <= max_length, "min_length", f"must not exceed max_length ({max_length})", min_length)
        require(len(prefix) <= max_length, "prefix", f"is longer than max_length ({max_length})", prefix)
        return _Controls(temperature, top_k, top_p, tuple(self.vocab.encode(prefix)), min_length, max_length)

    def _normalize_prefix(self, prefix: str) -> str:
        """The start of a normalised name: as a name, but a trailing space (a word to follow) is kept."""
        if isinstance(prefix, str) and prefix[-1:].isspace() and prefix.strip():
            return self.normalize(prefix) + " "
        return self.normalize(prefix)

    @torch.inference_mode()
    def _start(self, controls: _Controls) -> tuple[torch.Tensor, State, float]:
        """Logits and state after the boundary and the prefix (one row), and the prefix's log-probability."""
        logits, state = self.model.step(torch.full((1,), BOUNDARY, device=self.device))  # (1, V)
        log_prob = 0.0
        for token in controls.prefix_ids:
            log_prob += float(logits.log_softmax(-1)[0, token])
            logits, state = self.model.step(torch.full((1,), token, device=self.device), state)
        return logits, state, log_prob

    @torch.inference_mode()
    def _generate_batch(
        self, streams: RowStreams, first: int, size: int, controls: _Controls
    ) -> list[ScoredName | None]:
        """Stream draws first..first+size-1: a ScoredName each, or None where the name ran past max_length."""
        logits, state, prefix_log_prob = self._start(controls)
        draw = _Draw(self, controls, streams.keys(first, size), logits.expand(size, -1), _repeat(state, size))
        # A CPU is fastest when finished rows leave the batch; a GPU when shapes stay fixed (finished rows
        # are masked) and the host asks the device only every few steps whether any row is still writing.
        tokens, log_probs, ended = draw.fixed() if self.fixed_shapes else draw.compact()
        totals = (log_probs.sum(1) + prefix_log_prob).tolist()  # (B,) the whole name's log-probability
        prefix_text = self.vocab.decode(controls.prefix_ids)
        names = [prefix_text + name for name in self._decode(tokens, ended)]
        if self._rules.may_denormalize:  # rare: only vocabularies with combining marks
            ended &= torch.tensor([self.normalize(name) == name for name in names], device=ended.device)
        return [
            ScoredName.of(name, total) if kept else None
            for name, total, kept in zip(names, totals, ended.tolist(), strict=True)
        ]

    def _decode(self, tokens: torch.Tensor, ended: torch.Tensor) -> list[str]:
        """The text of each row of `tokens` (B, S) up to its end, all rows at once (not character by character).

        Each token becomes a Unicode code point, the end a newline; the rows' code points, cut after their
        end, are joined into one UTF-32 buffer that is decoded and split once.
        """
        codes = self._code_points[tokens]  # (B, S) int32
        codes = torch.cat([codes, torch.full_like(codes[:, :1], ord("\n"))], dim=1)  # rows that never ended end here
        first_end = torch.where(ended, (tokens == BOUNDARY).int().argmax(1), tokens.shape[1])  # (B,)
        keep = torch.arange(codes.shape[1], device=codes.device) <= first_end[:, None]
        flat = codes[keep].cpu().contiguous()
        return _utf32_text(flat).split("\n")[:-1]

    def _scored(self, name: str, log_prob: float) -> ScoredName | None:
        """The ScoredName of a generated name, or None in the rare case normalising would change it."""
        if self._rules.may_denormalize and self.normalize(name) != name:
            return None  # e.g. a letter and a combining mark that NFC would merge
        return ScoredName.of(name, log_prob)

    @torch.inference_mode()
    def _most_likely(self, n: int, controls: _Controls, rejected: set[str]) -> Iterator[ScoredName]:
        """Best-first search over the tree of prefixes; yields names likeliest first (see `most_likely`)."""
        yield from _BestFirst(self, controls, rejected, n).run()

    @torch.inference_mode()
    def score(self, names: Sequence[str], *, sort: bool = False) -> list[ScoredName]:
        """The model's log-probability of each name, normalised first; names with unseen characters get -inf.

        sort=True puts the likeliest (lowest loss per character) first.
        """
        if isinstance(names, str):
            raise TypeError("score takes a list of names, not a single string: score([name])")
        normalized = [self.normalize(name) for name in names]
        blank = next((i for i, name in enumerate(normalized) if not name), None)
        if blank is not None:
            raise ConfigError(f"name {blank + 1} to score is blank")
        known = list(dict.fromkeys(name for name in normalized if not self.vocab.unknown(name)))
        totals: dict[str, float] = {}
        if known:
            data = EncodedNames(known, self.vocab, self.device)
            for rows in data.batch_plan(SCORE_BATCH_SIZE):
                inputs, targets = data.batch(rows)
                logits, _ = self.model(inputs)  # (b, T, V)
                losses = nn.functional.cross_entropy(
                    logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
                )  # (b, T), zero at padding
                totals.update(zip((known[i] for i in rows.tolist()), (-losses.sum(1)).tolist(), strict=True))
        results = []
        for name in normalized:
            total = totals.get(name, -math.inf)
            results.append(ScoredName.of(name, total))
        if sort:
            results.sort(key=lambda scored: scored.nll_per_char)
        return results


class _CharacterRules:
    """What may come next in a normalised name: no space first, after a space or before the end.

    Characters that normalisation never leaves in a name (other whitespace, capitals when names are
    lowercased) are never drawn. Without a space in the vocabulary all of this costs one mask at the start.
    """

    def __init__(self, vocab: Vocab, lowercase: bool, device: torch.device):
        is_space = [False] + [char == " " for char in vocab.chars]
        never = [False] + [char != " " and normalize_name(char, lowercase) != char for char in vocab.chars]
        self.space = torch.tensor(is_space, device=device)  # (V,)
        self.never = torch.tensor(never, device=device)  # (V,)
        self.end = torch.arange(len(vocab), device=device) == BOUNDARY  # (V,)
        self.has_space, self.has_never = any(is_space), any(never)
        # NFC may merge a character with a combining mark after it: only then is a drawn name checked.
        self.may_denormalize = any(unicodedata.combining(char) for char in vocab.chars)

    def mask(self, logits: torch.Tensor, lengths: int | torch.Tensor, last: torch.Tensor, min_length: int):
        """`logits` (b, V) with -inf where a name of `lengths` characters ending in token `last` (b,) cannot go."""
        if isinstance(lengths, int) and lengths >= max(min_length, 1) and not (self.has_space or self.has_never):
            return logits  # the common case: nothing is forbidden
        lengths = torch.as_tensor(lengths, device=logits.device).reshape(-1, 1)  # (b, 1) or (1, 1)
        forbidden = self.never | ((lengths < min_length) & self.end) | ((lengths == 0) & self.space)
        if self.has_space:
            forbidden = forbidden | (self.space[last][:, None] & (self.space | self.end))  # (b, V)
        return logits.masked_fill(forbidden, -math.inf)


class _BestFirst:
    """Exact search for the likeliest names: a priority queue of open prefixes, expanded in batches.

    A node is a prefix the model has read (its state is kept). A queue entry (-log_prob, order, node,
    token) is the node's text followed by `token`; the end token makes it a finished name. Finished
    names leave the queue likeliest first. Entries that cannot beat the n-th likeliest finished name
    already seen are never queued, which keeps the queue small.
    """

    def __init__(self, generator: Generator, controls: _Controls, rejected: set[str], n: int):
        self.generator, self.controls, self.rejected, self.n = generator, controls, rejected, n
        self.parents: list[int] = []  # node -> parent node (-1: the root, which is the prefix)
        self.tokens: list[int] = []  # node -> its last token
        self.lengths: list[int] = []  # node -> characters, prefix included
        self.states: list[tuple[State, int]] = []  # node -> (a batch of states, its row)
        self.queue: list[tuple[float, int, int, int]] = []
        self.order = itertools.count()  # ties go first-come, so the search is deterministic
        self.best_finished: list[float] = []  # min-heap of the n best finished log-probabilities seen
        self.prefix_text = generator.vocab.decode(controls.prefix_ids)

    def run(self) -> Iterator[ScoredName]:
        logits, state, prefix_log_prob = self.generator._start(self.controls)
        root_token = self.controls.prefix_ids[-1] if self.controls.prefix_ids else BOUNDARY
        self._add_nodes([-1], [root_token], [len(self.controls.prefix_ids)], [prefix_log_prob], logits, state)
        emitted = 0
        while self.queue:
            while self.queue and self.queue[0][3] == BOUNDARY:  # finished, and nothing open is likelier
                negative, _, node, _ = heapq.heappop(self.queue)
                name = self._text(node)
                scored = self.generator._scored(name, -negative)
                if scored is not None and name not in self.rejected:
                    yield scored
                    emitted += 1
                    if emitted == self.n:
                        return
            self._expand(self._pop_open())

    def _pop_open(self) -> list[tuple[float, int, int, int]]:
        """The likeliest open entries (up to a batch); finished names passed over go back in the queue."""
        taken, finished = [], []
        while self.queue and len(taken) < MOST_LIKELY_BATCH:
            entry = heapq.heappop(self.queue)
            (finished if entry[3] == BOUNDARY else taken).append(entry)
        for entry in finished:
            heapq.heappush(self.queue, entry)
        return taken

    def _expand(self, entries: list[tuple[float, int, int, int]]) -> None:
        """Step the model once for all entries together; each becomes a node."""
        if not entries:
            return
        parents = [node for _, _, node, _ in entries]
        tokens = [token for _, _, _, token in entries]
        state = _gather([self.states[node] for node in parents])
        logits, state = self.generator.model.step(torch.tensor(tokens, device=self.generator.device), state)
        lengths = [self.lengths[node] + 1 for node in parents]
        self._add_nodes(parents, tokens, lengths, [-negative for negative, *_ in entries], logits, state)

    def _add_nodes(self, parents, tokens, lengths, log_probs, logits: torch.Tensor, state: State) -> None:
        """Record new nodes and queue their allowed children with their whole log-probability."""
        device = self.generator.device
        first = len(self.parents)
        for row, node_fields in enumerate(zip(parents, tokens, lengths, strict=True)):
            for column, value in zip((self.parents, self.tokens, self.lengths), node_fields, strict=True):
                column.append(value)
            self.states.append((state, row))
        length_tensor = torch.tensor(lengths, device=device)
        allowed = self.generator._rules.mask(
            logits, length_tensor, torch.tensor(tokens, device=device), self.controls.min_length
        )
        at_max = (length_tensor >= self.controls.max_length)[:, None]  # names never run past max_length
        allowed = allowed.masked_fill(at_max & (torch.arange(logits.shape[1], device=device) != BOUNDARY), -math.inf)
        # The model's own probabilities: the masks choose which names exist, they do not reweigh them.
        children = torch.tensor(log_probs, device=device)[:, None] + logits.log_softmax(-1)  # (E, V)
        children = children.masked_fill(allowed == -math.inf, -math.inf)
        threshold = self.best_finished[0] if len(self.best_finished) == self.n else -math.inf
        rows, columns = (children > threshold).nonzero(as_tuple=True)
        for row, column, value in zip(rows.tolist(), columns.tolist(), children[rows, columns].tolist(), strict=True):
            if column == BOUNDARY:
                self._note_finished(value, first + row)
            heapq.heappush(self.queue, (-value, next(self.order), first + row, column))

    def _note_finished(self, log_prob: float, node: int) -> None:
        """Keep the n best finished log-probabilities seen; names the filters reject do not count."""
        if self.rejected and self._text(node) in self.rejected:
            return
        if len(self.best_finished) < self.n:
            heapq.heappush(self.best_finished, log_prob)
        elif log_prob > self.best_finished[0]:
            heapq.heapreplace(self.best_finished, log_prob)

    def _text(self, node: int) -> str:
        """The name a node spells, prefix included."""
        tokens = []
        while self.parents[node] >= 0:
            tokens.append(self.tokens[node])
            node = self.parents[node]
        return self.prefix_text + self.generator.vocab.decode(tokens[::-1])


class _Draw:
    """One batch of names drawn character by character from the state after the prefix."""

    def __init__(self, generator: Generator, controls: _Controls, keys: torch.Tensor, logits, state):
        self.model, self.rules, self.controls = generator.model, generator._rules, controls
        self.keys, self.logits, self.state = keys, logits, state  # (B, 2), (B, V), (layers, B, H)
        size, device = keys.shape[0], keys.device
        self.prefix_length = len(controls.prefix_ids)
        self.steps = controls.max_length - self.prefix_length + 1  # characters still allowed, plus the end
        self.tokens = torch.full((size, self.steps), BOUNDARY, device=device)  # (B, S)
        self.log_probs = torch.zeros(size, self.steps, device=device)  # (B, S) the model's log-prob of each choice
        self.ended = torch.zeros(size, dtype=torch.bool, device=device)  # (B,) rows that chose the end
        self.last = torch.full((size,), controls.prefix_ids[-1] if controls.prefix_ids else BOUNDARY, device=device)

    def choose(self, t: int, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step t's token of each row (b,) and the model's (untempered, unmasked) log-probability of it."""
        allowed = self.rules.mask(self.logits, self.prefix_length + t, self.last, self.controls.min_length)
        token = _pick(allowed, self.controls, RowStreams.uniform(keys, t))  # (b,)
        return token, self.logits.log_softmax(-1).gather(1, token[:, None]).squeeze(1)

    def compact(self):
        """Rows that end leave the batch, so the remaining steps cost only what is still being written."""
        alive = torch.arange(self.keys.shape[0], device=self.keys.device)  # rows still writing
        keys = self.keys
        for t in range(self.steps):
            token, log_prob = self.choose(t, keys)
            self.tokens[alive, t], self.log_probs[alive, t] = token, log_prob
            done = token == BOUNDARY
            self.ended[alive[done]] = True
            going = (~done).nonzero().squeeze(1)  # positions of the rows that go on
            if not len(going) or t == self.steps - 1:
                break  # rows still going at the last step ran past max_length
            alive, keys, self.last = alive[going], keys[going], token[going]
            self.logits, self.state = self.model.step(self.last, _select(self.state, going))
        return self.tokens, self.log_probs, self.ended

    def fixed(self, check_every: int = 8):
        """All rows step together with fixed shapes; the host asks whether any row is going every few steps."""
        going = torch.ones_like(self.ended)
        for t in range(self.steps):
            token, log_prob = self.choose(t, self.keys)
            token = token.where(going, BOUNDARY)  # a finished row keeps writing the boundary
            self.tokens[:, t], self.log_probs[:, t] = token, log_prob.where(going, 0.0)
            self.ended |= going & (token == BOUNDARY)
            going &= token != BOUNDARY
            if t == self.steps - 1 or (t % check_every == check_every - 1 and not bool(going.any())):
                break
            self.last = token
            self.logits, self.state = self.model.step(token, self.state)
        return self.tokens, self.log_probs, self.ended


def _utf32_text(code_points: torch.Tensor) -> str:
    """Decode a contiguous CPU int32 tensor of code points in one call (no NumPy needed to reach its bytes)."""
    return ctypes.string_at(code_points.data_ptr(), code_points.numel() * 4).decode("utf-32-le")


def _pick(logits: torch.Tensor, controls: _Controls, uniform: torch.Tensor) -> torch.Tensor:
    """Next token per row: argmax at temperature 0, else a draw from the (top-k/top-p) tempered distribution.

    The draw inverts the cumulative distribution at the row's own uniform number `uniform` (b,), so a
    row's choice depends on its random stream alone, not on the other rows of the batch.
    """
    if controls.temperature == 0:
        return logits.argmax(-1)
    scaled = logits - logits.max(-1, keepdim=True).values  # the likeliest at 0: no overflow at tiny temperatures
    if controls.temperature != 1:
        scaled = scaled / controls.temperature
    if controls.top_k is not None and controls.top_k < scaled.size(-1):
        kth = scaled.topk(controls.top_k, dim=-1).values[:, -1:]  # (b, 1)
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if controls.top_p is not None and controls.top_p < 1:
        ordered, order = scaled.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        outside = probs.cumsum(-1) - probs > controls.top_p  # the smallest set reaching top_p is kept
        scaled = scaled.scatter(-1, order, ordered.masked_fill(outside, -math.inf))
    cumulative = scaled.exp().double().cumsum(-1)  # (b, V) unnormalised; float64 keeps it exact enough
    target = uniform * cumulative[:, -1]  # (b,) strictly below the total, as uniform < 1
    return (cumulative <= target[:, None]).sum(-1)  # the first token whose cumulative weight passes the target


def _repeat(state: State, size: int) -> State:
    """A one-row state repeated for `size` rows."""
    if isinstance(state, tuple):
        return tuple(part.expand(-1, size, -1).contiguous() for part in state)
    return state.expand(-1, size, -1).contiguous()


def _select(state: State, rows: torch.Tensor) -> State:
    if isinstance(state, tuple):  # LSTM: (hidden, cell)
        return tuple(part.index_select(1, rows) for part in state)
    return state.index_select(1, rows)  # (layers, b, H)


def _gather(rows: list[tuple[State, int]]) -> State:
    """One state of the given rows of several state batches."""
    first = rows[0][0]
    if isinstance(first, tuple):
        return tuple(torch.stack([state[part][:, row] for state, row in rows], dim=1) for part in range(len(first)))
    return torch.stack([state[:, row] for state, row in rows], dim=1)


def parse_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """(k, m) checked: 0 <= k < m; None is the whole stream (0, 1)."""
    if shard is None:
        return 0, 1
    k, m = shard
    require(
        isinstance(m, int) and 1 <= m <= MAX_NAMES, "shard", f"needs a count M in [1, {MAX_NAMES:,}] (K/M)", f"{k}/{m}"
    )
    require(isinstance(k, int) and 0 <= k < m, "shard", f"needs 0 <= K < M ({m}) (K/M)", f"{k}/{m}")
    return k, m


def _refuse_with_most_likely(**options) -> None:
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        raise ConfigError(f"most_likely ranks names by the model's own probability; it takes no {', '.join(given)}")
