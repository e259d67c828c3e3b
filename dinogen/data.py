"""Names in, tensors out: reading a names file, the character vocabulary, the split, batches."""

import logging
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from dinogen.bundled import bundled_file
from dinogen.errors import DinogenError

log = logging.getLogger(__name__)

BOUNDARY = 0  # token index that marks both the start and the end of a name
IGNORE_INDEX = -100  # target value for padding; cross_entropy skips it


def resolve_names_path(path: str | Path) -> Path:
    """The names file at `path`, or the bundled file of that name when `path` is relative and absent."""
    path = Path(path)
    if not path.exists() and not path.is_absolute():
        bundled = bundled_file(path)
        if bundled is not None:
            return bundled
    return path


def read_names(
    path: str | Path, lowercase: bool = True, encoding: str = "utf-8", max_length: int | None = None
) -> list[str]:
    """Read one name per line ("-": stdin): strip, NFC-normalise, optionally lowercase, drop blanks and repeats.

    Names longer than `max_length` characters are dropped with a logged warning that counts them.
    """
    path = Path(path)
    try:
        raw = (sys.stdin.buffer.read() if sys.stdin else b"") if str(path) == "-" else path.read_bytes()
    except FileNotFoundError:
        raise DinogenError(f"names file {path} does not exist") from None
    except IsADirectoryError:
        raise DinogenError(f"names file {path} is a directory; give a text file with one name per line") from None
    except OSError as err:
        raise DinogenError(f"cannot read names file {path}: {err.strerror}") from None
    names = parse_names(_decode(raw, path, encoding), lowercase)
    if not names:
        raise DinogenError(f"names file {path} holds no names (it is empty or only blank lines)")
    if max_length is not None:
        kept = [name for name in names if len(name) <= max_length]
        if not kept:
            raise DinogenError(
                f"every name in {path} is longer than data.max_length ({max_length}); raise it or set it to null"
            )
        if len(kept) < len(names):
            log.warning(
                "dropped %d of %d names in %s longer than data.max_length (%d)",
                len(names) - len(kept),
                len(names),
                path,
                max_length,
            )
        names = kept
    return names


def normalize_name(text: str, lowercase: bool = True) -> str:
    """The one form of a name: whitespace stripped, inner runs of it one space, NFC, case folded if `lowercase`.

    Names read from a file, generated names, prefixes, filters and scored names all go through it,
    so that two spellings of one name are always the same name.
    """
    name = unicodedata.normalize("NFC", " ".join(text.split()))
    return unicodedata.normalize("NFC", name.lower()) if lowercase else name


def parse_names(text: str, lowercase: bool = True) -> list[str]:
    """Clean the lines of `text` into a list of distinct names, keeping first occurrences."""
    names = (normalize_name(line, lowercase) for line in text.splitlines())
    return list(dict.fromkeys(name for name in names if name))


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    # utf-8-sig also drops a leading byte-order mark
    codec = "utf-8-sig" if encoding.replace("-", "").replace("_", "").lower() == "utf8" else encoding
    try:
        return raw.decode(codec)
    except LookupError:
        raise DinogenError(
            f"unknown text encoding {encoding!r} for {path}; set data.encoding to e.g. utf-8 or latin-1"
        ) from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DinogenError(
            f"names file {path} is not valid {encoding} text (line {line}); convert it or set data.encoding"
        ) from None


class Vocab:
    """The characters of the data, with index 0 reserved for the boundary token."""

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.index = {char: i for i, char in enumerate(self.chars, start=1)}
        self._lookup = ["", *self.chars]  # index -> text; the boundary decodes to nothing

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "Vocab":
        return cls(sorted(set("".join(names))))

    def __len__(self) -> int:
        return len(self.chars) + 1  # + the boundary token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def encode(self, name: str) -> list[int]:
        return [self.index[char] for char in name]

    def decode(self, indices: Sequence[int]) -> str:
        return "".join(map(self._lookup.__getitem__, indices))

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(char for char in text if char not in self.index))

    def to_list(self) -> list[str]:
        """Plain data for the checkpoint."""
        return list(self.chars)


def split_names(names: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle with the seed and hold out `val_fraction` of the names (at least one when the fraction is > 0)."""
    if val_fraction == 0:
        return list(names), []
    if len(names) < 2:
        raise DinogenError(
            f"only {len(names)} name; a validation split needs at least 2 (add names, or set data.val_fraction=0)"
        )
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(len(names) - 1, max(1, round(len(names) * val_fraction)))
    return [names[i] for i in order[n_val:]], [names[i] for i in order[:n_val]]


class EncodedNames:
    """A list of names encoded once into padded tensors, served as length-bucketed batches.

    Row i of `inputs` is [BOUNDARY, c1, ..., cn, pad...] and of `targets` [c1, ..., cn, BOUNDARY, IGNORE...]:
    at each position the model sees the characters so far and must predict the next one or the end.
    """

    def __init__(self, names: Sequence[str], vocab: Vocab, device: torch.device | str = "cpu"):
        self.names = list(names)
        self.lengths = torch.tensor([len(name) + 1 for name in self.names])  # (N,) positions incl. the end
        width = int(self.lengths.max()) if self.names else 1
        self.inputs = torch.full((len(self.names), width), BOUNDARY, dtype=torch.long)  # (N, T)
        self.targets = torch.full((len(self.names), width), IGNORE_INDEX, dtype=torch.long)  # (N, T)
        for row, name in enumerate(self.names):
            ids = torch.tensor(vocab.encode(name), dtype=torch.long)
            self.inputs[row, 1 : len(ids) + 1] = ids
            self.targets[row, : len(ids)] = ids
            self.targets[row, len(ids)] = BOUNDARY
        self.inputs, self.targets = self.inputs.to(device), self.targets.to(device)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_chars(self) -> int:
        """Predicted positions: every character plus one end token per name."""
        return int(self.lengths.sum())

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch_plan(self, batch_size: int, seed: int | None = None, bucket: int = 50) -> list[torch.Tensor]:
        """Row indices of each batch, in order: shuffled by `seed` (None: corpus order) and bucketed by length.

        Names are shuffled, then sorted by length within chunks of `bucket` batches, so each batch holds
        names of similar length and little padding; the batch order is then shuffled again.
        """
        if seed is None:
            order = torch.arange(len(self))
        else:
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(len(self), generator=generator)
            chunk = batch_size * bucket
            order = torch.cat([part[self.lengths[part].argsort(stable=True)] for part in order.split(chunk)])
        batches = list(order.split(batch_size))
        if seed is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of `rows`, cut to the longest name among them: (B, T) each."""
        width = int(self.lengths[rows].max())
        rows = rows.to(self.inputs.device)
        return self.inputs[rows, :width], self.targets[rows, :width]

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in self.batch_plan(batch_size, seed):
            yield self.batch(rows)
