"""The sampling options, checked once: their bounds, the rules between them, and the controls a draw follows.

Each check raises an OptionError that names the keywords as the library spells them (`top_k`); the command
line shows the same sentence with its options (`--top-k`).
"""

from dataclasses import dataclass

from dinogen.automaton import Automaton
from dinogen.data import Vocab
from dinogen.errors import OptionError, require, require_between, shorten
from dinogen.limits import MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES, MAX_TEMPERATURE

DEFAULT_TEMPERATURE = 1.0  # the model's own distribution, at which its loss is measured


@dataclass(frozen=True)
class Controls:
    """How each character is drawn and which names may come out."""

    temperature: float  # 0: greedy, always the likeliest character
    top_k: int | None  # draw among the k likeliest characters only
    top_p: float | None  # draw among the likeliest characters whose probabilities reach p
    prefix_ids: tuple[int, ...]  # the normalised prefix, encoded
    min_length: int  # the end is masked below it
    max_length: int  # a name that runs past it is dropped (with constraints, the mask ends it in time)
    automaton: Automaton | None = None  # the constraints, compiled (constraints.py); None: none, the fast path
    exact: bool = False  # constraints met by rejection from the model's own distribution, not by the mask

    @property
    def greedy(self) -> bool:
        """Every draw gives the same name, so once one is rejected all the others would be."""
        return self.temperature == 0 or self.top_k == 1


def sampling_controls(
    vocab: Vocab,
    prefix: str,
    default_max_length: int,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_length: int = 1,
    max_length: int | None = None,
) -> Controls:
    """The checked controls for a model with `vocab`; `prefix` is already in normal form."""
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    require(0 <= temperature <= MAX_TEMPERATURE, "temperature", f"must be in [0, {MAX_TEMPERATURE:g}]", temperature)
    require(top_k is None or top_k >= 1, "top_k", "must be at least 1", top_k)
    require(top_p is None or 0 < top_p <= 1, "top_p", "must be in (0, 1]", top_p)
    refuse_unseen(vocab, prefix, "prefix")
    max_length = default_max_length if max_length is None else max_length
    require_between(min_length, "min_length", 1, MAX_NAME_LENGTH)
    require_between(max_length, "max_length", 1, MAX_NAME_LENGTH)
    require(min_length <= max_length, "min_length", f"must not exceed {{1}} ({max_length})", min_length, "max_length")
    require(len(prefix) <= max_length, "prefix", f"is longer than {{1}} ({max_length})", prefix, "max_length")
    return Controls(temperature, top_k, top_p, tuple(vocab.encode(prefix)), min_length, max_length)


def refuse_unseen(vocab: Vocab, text: str, keyword: str, consequence: str = "") -> None:
    """An OptionError naming the characters of `text` the model never saw, if there are any."""
    unknown = vocab.unknown(text)
    if unknown:
        unseen = shorten(" ".join(map(repr, unknown)))
        detail = f"{shorten(repr(text))} has characters the model never saw: {unseen}{consequence}"
        raise OptionError("{0} ", keyword, detail=detail)


def stream_slice(shard: tuple[int, int] | None, seed: int | None) -> tuple[int, int]:
    """(first, step) of the stream indices a shard (k, m) writes: k, k + m, k + 2m, ...; None is the whole stream."""
    if shard is None:
        return 0, 1
    k, m = shard
    integers = all(isinstance(value, int) and not isinstance(value, bool) for value in shard)
    if not (integers and 0 <= k < m <= MAX_NAMES):
        raise OptionError("{0} ", "shard", detail=f"{shorten(f'{k}/{m}')!r} needs 0 <= K < M <= {MAX_NAMES:,}")
    if m > 1 and seed is None:
        raise OptionError("{0} needs a seed, so that every shard draws from the same stream", "shard")
    return k, m


def shard_share(n: int, shard: tuple[int, int] | None, seed: int | None) -> int:
    """How many of the n names a shard writes (all n without one)."""
    first, step = stream_slice(shard, seed)
    return len(range(first, n, step))


def check_count(n: int) -> None:
    """How many names: 1 to MAX_NAMES."""
    require_between(n, "n", 1, MAX_NAMES)


def check_batch_size(batch_size: int) -> None:
    require_between(batch_size, "batch_size", 1, MAX_BATCH_SIZE)


def refuse_with_most_likely(**options) -> None:
    """The most likely names follow the model's own probabilities: sampling options have no meaning there."""
    given = [keyword for keyword, value in options.items() if value is not None]
    if given:
        slots = ", ".join(f"{{{i}}}" for i in range(1, len(given) + 1))
        sentence = "{0} takes no " + slots + ": it ranks names by the model's own probability; drop " + slots
        raise OptionError(sentence, "most_likely", *given)
