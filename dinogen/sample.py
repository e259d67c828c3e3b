"""Generating and scoring names with a trained CharRNN: the Generator and its stream of filtered names.

Sampling is a reproducible stream: name i of the stream is drawn with random numbers that depend only on
the seed, i and the step (`streams.py`), so the batch size, `-n` and sharding never change name i. How one
batch is drawn is in `draw.py`, the exact search for the likeliest names in `search.py`, the options'
checks in `controls.py`, and the constraints' automaton in `constraints.py`.
"""

import heapq
import math
import numbers
import secrets
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dinogen.bundled import bundled_model
from dinogen.checkpoint import Checkpoint, load_checkpoint
from dinogen.constraints import Constraints, checked_constraints, compile_constraints
from dinogen.controls import (
    Controls,
    check_batch_size,
    check_count,
    refuse_with_most_likely,
    sampling_controls,
    shard_share,
    stream_slice,
)
from dinogen.data import BOUNDARY, IGNORE_INDEX, EncodedNames, Vocab, normalize_fragment, normalize_name
from dinogen.device import resolve_device
from dinogen.draw import Rejected, RowDecoder, draw_batch
from dinogen.errors import ConfigError, DinogenError, require, require_between
from dinogen.labels import LabelPlan, label_weights
from dinogen.limits import MAX_ATTEMPTS, MAX_NAME_LENGTH
from dinogen.model import CharRNN, Ensemble
from dinogen.rules import CharacterRules
from dinogen.scored import ScoredName
from dinogen.search import BestFirst
from dinogen.state import State
from dinogen.streams import RowStreams

# Names drawn per batch when none is given: a CPU is fastest with batches that stay in its caches; a GPU
# needs many rows to keep its cores busy. Either way the batch size never changes the names.
DEFAULT_BATCH_SIZES = {"cpu": 4096, "cuda": 65536}
SCORE_BATCH_SIZE = 512  # names scored together: (B, T, V) logits stay small on any device
# Filters stop asking for names after this many samples in a row passed none (e.g. --unique at temperature 0).
STALL_SAMPLES = 40_960


class NotEnoughNames(DinogenError):
    """The filters rejected too many samples: fewer names than asked for were found."""

    exit_code = 3

    def __init__(self, message: str, names: Sequence[str] = (), found: int | None = None):
        super().__init__(message)
        self.names = list(names)  # the names found (`Generator.sample`); `iter_sample` yielded them already
        self.found = len(self.names) if found is None else found


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
        labels: Sequence[str] | None = None,
        label_counts: Sequence[int] | None = None,
    ):
        self.device = torch.device(device)
        # A model of labelled names: its labels in index order, and how many training names each had (None: unlabelled).
        self.labels = None if labels is None else list(labels)
        self.label_counts = None if labels is None else list(label_counts or [1] * len(self.labels))
        self.lowercase = lowercase  # whether the training names were lowercased (every input is folded the same way)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.train_names = frozenset(train_names)
        self.known_names = self.train_names | frozenset(val_names)  # the names file the model learned from
        self.default_max_length = min(2 * max(map(len, self.known_names), default=16), MAX_NAME_LENGTH)
        self.rules = CharacterRules(vocab, lowercase, self.device)
        self.decoder = RowDecoder(vocab, self.device)
        self.fixed_shapes = self.device.type == "cuda"  # how batches are drawn (see draw.py)
        self.default_batch_size = DEFAULT_BATCH_SIZES.get(self.device.type, DEFAULT_BATCH_SIZES["cpu"])

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> "Generator":
        """Rebuild model and vocabulary from a checkpoint file or run directory alone."""
        target = resolve_device(device)
        return cls.from_loaded(load_checkpoint(path, map_location=target), target)

    @classmethod
    def pretrained(cls, device: str = "auto") -> "Generator":
        """The dinosaur model that comes with dinogen: the default config trained on the bundled list."""
        path = bundled_model()
        if path is None:
            raise DinogenError("this copy of dinogen has no bundled model; train one with `dinogen train`")
        return cls.from_checkpoint(path, device)

    @classmethod
    def from_loaded(cls, checkpoint: Checkpoint, device: torch.device) -> "Generator":
        """A generator for a checkpoint already in memory."""
        model = checkpoint.build_model(device)
        return cls(model, checkpoint.vocab, checkpoint.train_names, device, checkpoint.lowercase, checkpoint.val_names,
                   checkpoint.labels, checkpoint.label_counts)  # fmt: skip

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
        temperature: float | None = None,
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
        ends_with: str | None = None,
        contains: str | Iterable[str] = (),
        pattern: str | None = None,
        blocklist: Iterable[str] = (),
        exact: bool = False,
        label: str | Sequence[str] | dict[str, float] | None = None,
    ) -> Iterator[ScoredName]:
        """`n` scored names of the seed's stream that pass the filters, in stream order, as an iterator.

        The options are checked at the call, so a bad one raises before any name is drawn or written.

        temperature (default 1) 0 is greedy decoding; top_k and top_p restrict sampling to the likeliest
        characters. Names whose natural length is outside [min_length, max_length] are not kept (the end is
        masked below min_length; a name that runs past max_length is dropped, never cut). novel leaves out the
        names the model learned from (training and validation), exclude any others, unique repeats.
        Constraints: every name ends with `ends_with`, contains each text of `contains` (one string or several),
        matches `pattern` as a whole (the regular expressions of `pattern.py`) and holds no text of `blocklist`
        (case ignored). They are one automaton whose dead states mask the draw, so every name meets them; the
        draw follows the model among the allowed characters and, once it draws the end too soon, finishes the
        name along a shortest way to meet them (draw.Draw.masked_choice): not the model's distribution given
        the constraints. exact=True draws from that one instead, by
        rejection (the names of the plain stream that meet the constraints), at 1 / P(constraints) samples a name.
        shard=(k, m) keeps only stream names i with i % m == k, i.e. names k, k + m, k + 2m, ... of the
        one-process stream, and yields this shard's share of n; interleaving the shards in turn (shard 0's
        first name, shard 1's first, ...) restores the one-process order.
        Sampling stops after max_attempts samples (default max(20 n, 40,960); with exact constraints, none) or
        after 40,960 samples in a row that gave no name; NotEnoughNames is raised after the last name found.
        most_likely=True yields the n likeliest names instead (see `most_likely`).
        A model of labelled names writes each name for a label, its ScoredName's `label`: `label` is one label, a
        list of labels (equal shares) or a mapping of labels to positive weights, matched without regard to case;
        None mixes the model's labels in the proportions of its training names. Each label gets its exact share of
        the n names (largest remainder), at positions that depend only on the name's index, n and the shares, and a
        name a filter rejects is drawn again for the same label.
        """
        check_count(n)
        require(isinstance(exact, bool), "exact", "must be True or False", exact)
        weights = label_weights(label, self.labels, self.label_counts)
        constraints = checked_constraints(self.lowercase, ends_with, contains, pattern, blocklist)
        controls = self._controls(temperature, top_k, top_p, prefix, min_length, max_length, constraints, exact)
        excluded = self._excluded(exclude)
        rejected = set(excluded | self.known_names if novel else excluded)  # grows with --unique
        if most_likely:
            refuse_with_most_likely(temperature=temperature, top_k=top_k, top_p=top_p, shard=shard,
                                    exact=exact or None)  # fmt: skip
            return self._most_likely(n, controls, rejected, weights)
        batch_size = self.default_batch_size if batch_size is None else batch_size
        check_batch_size(batch_size)
        integer = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
        require(seed is None or integer, "seed", "must be an integer or None", seed)
        first, step = stream_slice(shard, seed)
        wanted = shard_share(n, shard, seed)
        require_between(max_attempts, "max_attempts", 1, MAX_ATTEMPTS, nullable=True)
        if wanted == 0:
            return iter(())
        streams = RowStreams(secrets.randbits(64) if seed is None else seed, first, step, self.device)
        plan = None if weights is None else LabelPlan(weights, n)
        if max_attempts is None:  # rejection for constraints costs 1 / P samples a name: only a stall stops it
            rare = controls.exact and controls.automaton is not None
            max_attempts = MAX_ATTEMPTS if rare else max(20 * wanted, STALL_SAMPLES)
        filters = (rejected, unique, novel, bool(excluded))
        return self._stream(streams, plan, wanted, batch_size, max_attempts, controls, constraints, filters)

    def _stream(
        self,
        streams: RowStreams,
        plan: LabelPlan | None,
        wanted: int,
        batch_size: int,
        max_attempts: int,
        controls: Controls,
        constraints: Constraints,
        filters: tuple[set[str], bool, bool, bool],
    ) -> Iterator[ScoredName]:
        """The names of `streams` that pass the filters (rejected names, unique, novel, excluding), until `wanted`,
        each for the label `plan` gives its slot."""
        rejected, unique, novel, excluding = filters
        first, step = streams.first, streams.step
        stall = 1 if controls.greedy else STALL_SAMPLES
        # The shard's names are slots, one per draw of its part of the stream, each with the label of its draw; a
        # name found for a label fills that label's first open slot, and names leave in slot order. A slot whose draw
        # was rejected is filled by a later draw of its label, or by a re-draw from past the shard's part of the stream.
        labels = 1 if plan is None else len(plan.counts)
        one = labels == 1  # no label or one: every name fills the next slot, so names leave as they are found
        one_label = self.labels[0] if one and plan is not None else None  # a model of one label's
        open_slots: deque[int] = deque()  # the labels of the slots not yet written, in order
        waiting: list[deque[ScoredName]] = [deque() for _ in range(labels)]  # names found before their slot is next
        short = [0] * labels  # each label's slots so far less its names found
        drawn = redraws = found = attempts = since_found = 0
        dropped: Counter[Rejected] = Counter()  # samples that gave no name, by why
        while attempts < max_attempts and since_found < stall:
            # While every sample passed, a batch is what is missing; once some are rejected, batches grow.
            missing = wanted - found
            growing = missing if attempts == found else max(256, 2 * missing, attempts)
            size = min(batch_size, max_attempts - attempts, growing)
            slots = drawn < wanted  # the shard's own draws, one per slot; then re-draws for the labels still short
            if slots:  # with one label its re-draws follow its slots in the stream: no batch stops at the last slot
                draws = torch.arange(drawn, drawn + (size if one else min(size, wanted - drawn)), device=self.device)
                batch_labels = None if plan is None else plan.labels_of(first + step * draws)
                drawn += len(draws)
                redraws = max(0, drawn - wanted) if one else redraws
            else:  # re-draw r of label l is draw wanted + r * labels + l: each label its own part of the stream
                needed = torch.tensor([label for label in range(labels) if short[label]], device=self.device)
                rounds = redraws + torch.arange(max(1, size // len(needed)), device=self.device)
                draws = (wanted + rounds[:, None] * labels + needed).flatten()
                batch_labels = needed.repeat(len(rounds))
                redraws += len(rounds)
            row_labels = [0] * len(draws) if batch_labels is None else batch_labels.tolist()
            scored_rows = draw_batch(self, streams.keys_at(draws), None if plan is None else batch_labels, controls)
            for label, scored in zip(row_labels, scored_rows, strict=True):
                if slots:
                    if not one:
                        open_slots.append(label)
                    short[label] += 1
                elif not short[label]:
                    continue  # its label filled its slots earlier in this batch: this re-draw is not needed
                attempts += 1
                if isinstance(scored, ScoredName) and scored.name not in rejected:
                    if unique:
                        rejected.add(scored.name)
                    short[label] -= 1
                    found, since_found = found + 1, 0
                    if one:
                        scored.label = one_label
                        yield scored
                    else:
                        scored.label = self.labels[label]
                        waiting[label].append(scored)
                        while open_slots and waiting[open_slots[0]]:
                            yield waiting[open_slots.popleft()].popleft()
                    if found == wanted:
                        return
                else:
                    since_found += 1
                    if isinstance(scored, Rejected):
                        dropped[scored] += 1
                if since_found >= stall or attempts >= max_attempts:
                    break
        yield from (waiting[label].popleft() for label in open_slots if waiting[label])  # the names found, in order
        unmet = dropped[Rejected.UNMET]
        reasons = self._rejections(attempts - found, dropped, unique, novel, excluding, constraints, controls)
        shortfall = f"found only {found} of {wanted} names after {attempts:,} samples"
        if not reasons:  # every sample gave a name: only max_attempts stopped it
            bound = "the most max_attempts allows; raise --max-attempts (max_attempts)"
            raise NotEnoughNames(f"{shortfall}, {bound}", found=found)
        tips = "a higher temperature, a larger model, or fewer names"
        if since_found < stall:  # max_attempts stopped it, not a run of samples that gave none
            tips = "a higher temperature, a larger model, fewer names or a higher --max-attempts (max_attempts)"
        raise NotEnoughNames(
            f"{shortfall}: {reasons}; try {tips}"
            + (", or drop --exact (exact=True): a masked draw meets the constraints every time" * bool(unmet)),
            found=found,
        )

    def _rejections(self, rejected: int, dropped: Counter, unique, novel, excluding, constraints, controls) -> str:
        """What rejected the samples that were not kept, for the shortfall message."""
        too_long, unmet = dropped[Rejected.TOO_LONG], dropped[Rejected.UNMET]
        filtered = rejected - too_long - unmet
        named = [name for name, on in (("unique", unique), ("novel", novel), ("exclude", excluding)) if on]
        reasons = [f"the filters ({', '.join(named)}) rejected {filtered:,}"] if filtered else []
        if unmet:
            given, longest = ", ".join(constraints.given()), controls.max_length
            reasons.append(f"{unmet:,} could not meet the constraints ({given}) within max_length ({longest})")
        if too_long:
            form = " or were not in normal form" if self.rules.may_denormalize else ""
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
        ends_with: str | None = None,
        contains: str | Iterable[str] = (),
        pattern: str | None = None,
        blocklist: Iterable[str] = (),
        label: str | Sequence[str] | dict[str, float] | None = None,
    ) -> list[ScoredName]:
        """The `n` names of highest model probability, likeliest first: an exact best-first search.

        Prefixes are expanded in order of probability; a name is final when no open prefix is likelier,
        since extending a prefix can only lower its probability. Fewer names come back only when the
        length range, prefix, constraints and filters allow fewer. With constraints it is still exact: the
        search cuts the branches their automaton rules out and ranks the rest by the model's own probabilities.
        A model of labelled names searches for one `label` the likeliest names given it; for several (or None: all,
        in the proportions of the training names) it searches each and ranks the names by share(label) times
        p(name | label), each under its likeliest label (a name comes once); log_prob is log p(name | label).
        """
        return list(self.iter_sample(n, prefix=prefix, min_length=min_length, max_length=max_length, novel=novel,
                                     exclude=exclude, ends_with=ends_with, contains=contains, pattern=pattern,
                                     blocklist=blocklist, most_likely=True, label=label))  # fmt: skip

    def _excluded(self, exclude: Iterable[str]) -> frozenset[str]:
        """The excluded names, normalised."""
        if isinstance(exclude, str):
            raise TypeError("exclude must be a collection of names, not a single string")
        require(exclude is None or isinstance(exclude, Iterable), "exclude", "must be a collection of names", exclude)
        names = list(exclude or ())  # an iterator is read once
        wrong = [name for name in names if not isinstance(name, str)]
        require(not wrong, "exclude", "must hold strings only", wrong[0] if wrong else None)
        return frozenset(self.normalize(name) for name in names)

    def _controls(self, temperature, top_k, top_p, prefix, min_length, max_length, constraints: Constraints,
                  exact: bool) -> Controls:  # fmt: skip
        require(isinstance(prefix, str), "prefix", "must be a string", prefix)
        prefix = normalize_fragment(prefix, self.lowercase, followed=True)  # a trailing space: a word to follow
        controls = sampling_controls(
            self.vocab, prefix, self.default_max_length, temperature, top_k, top_p, min_length, max_length
        )
        automaton = compile_constraints(constraints, controls, self.vocab, self.rules, self.lowercase, self.device)
        return replace(controls, automaton=automaton, exact=exact and automaton is not None)

    @torch.inference_mode()
    def read_prefix(self, controls: Controls, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, State, Any]:
        """Logits and state after the boundary and the prefix, and the prefix's log-probability: one row, or a row
        for each of `labels` (R,) with their log-probabilities (R,)."""
        rows = 1 if labels is None else len(labels)
        logits, state = self.model.step(torch.full((rows,), BOUNDARY, device=self.device), None, labels)  # (R, V)
        log_prob = 0.0 if labels is None else torch.zeros(rows, device=self.device)
        for token in controls.prefix_ids:
            chosen = logits.log_softmax(-1)[:, token]  # (R,)
            log_prob = log_prob + (float(chosen[0]) if labels is None else chosen)
            logits, state = self.model.step(torch.full((rows,), token, device=self.device), state, labels)
        return logits, state, log_prob

    def finished(self, name: str, log_prob: float) -> ScoredName | None:
        """The ScoredName of a generated name, or None in the rare case normalising would change it."""
        if self.rules.may_denormalize and self.normalize(name) != name:
            return None  # e.g. a letter and a combining mark that NFC would merge
        return ScoredName.of(name, log_prob)

    @torch.inference_mode()
    def _most_likely(self, n: int, controls: Controls, rejected: set[str], weights) -> Iterator[ScoredName]:
        """Best-first search over the tree of prefixes; yields names likeliest first (see `most_likely`).

        With labels, one search a label of the mix, merged by log share(label) + log p(name | label).
        """
        if weights is None:
            searches = [BestFirst(self, controls, rejected, n)]
            ranked = searches[0].run()
        else:
            mix = [(label, math.log(weight)) for label, weight in enumerate(weights) if weight > 0]
            searches = [BestFirst(self, controls, rejected, n, label) for label, _ in mix]
            runs = [((share + scored.log_prob, scored) for scored in search.run()) for search, (_, share) in
                    zip(searches, mix, strict=True)]  # fmt: skip
            ranked = (scored for _, scored in heapq.merge(*runs, key=lambda pair: -pair[0]))
        found, seen = 0, set()
        for scored in ranked:
            if scored.name in seen:
                continue  # met already under a label that makes it likelier
            seen.add(scored.name)
            found += 1
            yield scored
            if found == n:
                return
        if any(search.cut_short for search in searches):
            raise NotEnoughNames(
                f"found only {found} of the {n} most likely names after reading {searches[0].max_prefixes:,} prefixes, "
                "the most the search reads (the model spreads its probability thinly there); "
                "ask for fewer or shorter names (max_length)"
                + ", loosen the constraints" * (controls.automaton is not None)
                + ", or sample them",
                found=found,
            )

    @torch.inference_mode()
    def score(
        self, names: Sequence[str], *, sort: bool = False, label: str | Sequence[str] | dict[str, float] | None = None
    ) -> list[ScoredName]:
        """The model's log-probability of each name, normalised first; names with unseen characters get -inf.

        sort=True puts the likeliest (lowest loss per character) first. On a model of labelled names, `label` (as in
        `iter_sample`; None: every label in the proportions of the training names) is a mix of labels with shares
        w_l, and log_prob is log sum_l w_l p(name | l), for one label log p(name | label); `label` is that one label
        (None for a mix) and `likeliest_label` the label of the mix with the largest w_l p(name | l).
        """
        if isinstance(names, str):
            raise TypeError("score takes a list of names, not a single string: score([name])")
        weights = label_weights(label, self.labels, self.label_counts)
        normalized = [self.normalize(name) for name in names]
        blank = next((i for i, name in enumerate(normalized) if not name), None)
        if blank is not None:
            raise ConfigError(f"name {blank + 1} to score is blank")
        too_long = next((name for name in normalized if len(name) > MAX_NAME_LENGTH), None)
        if too_long:
            raise ConfigError(
                f"a name to score has {len(too_long):,} characters, more than the {MAX_NAME_LENGTH:,} dinogen handles"
            )
        known = list(dict.fromkeys(name for name in normalized if not self.vocab.unknown(name)))
        if weights is None:
            totals = dict(zip(known, self._log_probs(known, None), strict=True))
            results = [ScoredName.of(name, totals.get(name, -math.inf)) for name in normalized]
        else:
            results = self._mixed_scores(normalized, known, weights)
        if sort:
            results.sort(key=lambda scored: scored.nll_per_char)
        return results

    def _log_probs(self, names: list[str], label: int | None) -> list[float]:
        """Each name's whole log-probability (given `label`); every character is in the vocabulary."""
        totals: dict[int, float] = {}
        if names:
            data = EncodedNames(names, self.vocab, self.device)
            for rows in data.batch_plan(SCORE_BATCH_SIZE):
                inputs, targets = data.batch(rows)
                labels = None if label is None else torch.full((len(rows),), label, device=self.device)
                logits, _ = self.model(inputs, labels=labels)  # (b, T, V)
                losses = nn.functional.cross_entropy(
                    logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
                )  # (b, T), zero at padding
                totals.update(zip(rows.tolist(), (-losses.sum(1)).tolist(), strict=True))
        return [totals[row] for row in range(len(names))]

    def _mixed_scores(self, normalized: list[str], known: list[str], weights) -> list[ScoredName]:
        """Scores under a mix of labels: log sum_l w_l p(name | l), and the label of the largest term."""
        mix = [label for label, weight in enumerate(weights) if weight > 0]
        shares = torch.tensor([math.log(weights[label]) for label in mix], dtype=torch.float64)  # (M,)
        terms = shares + torch.tensor([self._log_probs(known, label) for label in mix], dtype=torch.float64).T
        totals = dict(zip(known, torch.logsumexp(terms, dim=1).tolist(), strict=True))  # (N,) when mixed
        likeliest = dict(zip(known, (self.labels[mix[i]] for i in terms.argmax(1).tolist()), strict=True))
        single = self.labels[mix[0]] if len(mix) == 1 else None
        results = []
        for name in normalized:
            scored = ScoredName.of(name, totals.get(name, -math.inf))
            scored.label, scored.likeliest_label = single, likeliest.get(name)
            results.append(scored)
        return results
