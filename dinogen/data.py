"""Names in, tensors out: reading a names file, the character vocabulary, the split, batches."""

import codecs
import logging
import os
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from dinogen.bundled import bundled_file
from dinogen.errors import DinogenError, shorten
from dinogen.files import read_bytes
from dinogen.limits import MAX_NAME_LENGTH, NAMES_FILE_BYTES, reduce_seed

log = logging.getLogger(__name__)

BOUNDARY = 0  # token index that marks both the start and the end of a name
IGNORE_INDEX = -100  # target value for padding; cross_entropy skips it


def resolve_names_path(path: str | Path) -> Path:
    """The names file at `path`, or the bundled file of that name when `path` is relative and absent."""
    path = Path(path)
    if not os.path.exists(path) and not path.is_absolute():  # os.path: a name too long is just absent
        bundled = bundled_file(path)
        if bundled is not None:
            return bundled
    return path


def read_names(
    path: str | Path, lowercase: bool = True, encoding: str = "utf-8", max_length: int | None = None
) -> list[str]:
    """Read one name per line ("-": stdin): strip, NFC-normalise, optionally lowercase, drop blanks and repeats.

    Names longer than `max_length` characters are dropped with a logged warning that counts them; with
    `max_length` None a name longer than MAX_NAME_LENGTH refuses the file. So do invisible characters.
    Names that differ only in case are merged (when lowercasing) with a warning that counts them.
    """
    path = Path(path)
    text = _decode(read_bytes(path, "names file", NAMES_FILE_BYTES), path, encoding)
    _refuse_invisible_characters(text, path, encoding)
    exact = parse_names(text, lowercase=False)
    names = list(dict.fromkeys(normalize_name(name, lowercase) for name in exact)) if lowercase else exact
    if not names:
        raise DinogenError(f"names file {shorten(str(path))} holds no names (it is empty or only blank lines)")
    if len(names) < len(exact):
        log.warning("merged %d names in %s that differ only in case (names are lowercased)",
                    len(exact) - len(names), shorten(str(path)))  # fmt: skip
    if max_length is None:
        _refuse_long_names(names, path)
        return names
    kept = [name for name in names if len(name) <= max_length]
    if not kept:
        raise DinogenError(
            f"every name in {shorten(str(path))} is longer than data.max_length ({max_length}); raise it"
        )
    if len(kept) < len(names):
        log.warning(
            "dropped %d of %d names in %s longer than data.max_length (%d)",
            len(names) - len(kept),
            len(names),
            shorten(str(path)),
            max_length,
        )
    return kept


def _refuse_long_names(names: list[str], path: Path) -> None:
    longest = max(names, key=len)
    if len(longest) > MAX_NAME_LENGTH:
        raise DinogenError(
            f"names file {shorten(str(path))} holds a name of {len(longest):,} characters, more than the "
            f"{MAX_NAME_LENGTH:,} dinogen handles; set data.max_length to drop long lines"
        )


# Allowed although not printable: space separators and a tab (normalisation makes them a space), the
# \r of a \r\n line end, and the joiners that some scripts (Persian, Indic) need to spell names.
_ALLOWED_UNPRINTABLE = frozenset("\t\r\u200c\u200d")


def _refuse_invisible_characters(text: str, path: Path, encoding: str) -> None:
    """Refuse control, format, private-use and unassigned characters and line or paragraph separators.

    They are invisible or break lines differently from one tool to the next, so a name holding one is
    almost surely damage (or text in another encoding), not a name.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if line.isprintable():  # the fast path: no character of the categories C* or Z* but a space
            continue
        for char in line:
            if not (char.isprintable() or char in _ALLOWED_UNPRINTABLE or unicodedata.category(char) == "Zs"):
                raise DinogenError(_invisible_message(path, number, char, encoding))


_UNNAMED = {"Cc": "a control character", "Cn": "an unassigned character", "Co": "a private-use character",
            "Cs": "a surrogate"}  # fmt: skip


def _invisible_message(path: Path, number: int, char: str, encoding: str) -> str:
    kind = unicodedata.name(char, None) or _UNNAMED[unicodedata.category(char)]
    message = f"names file {shorten(str(path))} line {number} holds U+{ord(char):04X} ({kind}), which no name holds"
    if 0x80 <= ord(char) <= 0x9F and codecs.lookup(encoding).name == "iso8859-1":
        # Bytes 0x80-0x9F are C1 controls in Latin-1 but letters and signs (e.g. curly quotes) in Windows-1252.
        return message + "; the file is probably Windows-1252: set data.encoding=cp1252"
    return message + "; remove it, or set data.encoding if the file is in another encoding"


def normalize_name(text: str, lowercase: bool = True) -> str:
    """The one form of a name: whitespace stripped, inner runs of it one space, NFC, case folded if `lowercase`.

    Names read from a file, generated names, prefixes, filters and scored names all go through it,
    so that two spellings of one name are always the same name.
    """
    name = unicodedata.normalize("NFC", " ".join(text.split()))
    return unicodedata.normalize("NFC", name.lower()) if lowercase else name


def folds_case(setting: bool | str, chars: Iterable[str]) -> bool:
    """The case rule of a model whose names are made of `chars`: whether it, and every name given to it, is lowercase.

    true folds the names file's case and false keeps it. auto, the default, keeps it too, and a list that holds no
    capital is a lowercase list: what is given to its model (a prefix, names to score or exclude) is folded to
    match, so that `Tyrannosaurus` is the model's `tyrannosaurus`.
    """
    if setting == "auto":
        return all(char.lower() == char for char in chars)
    return bool(setting)


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
            f"unknown text encoding {shorten(repr(encoding))} for {shorten(str(path))}; "
            "set data.encoding to e.g. utf-8 or latin-1"
        ) from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DinogenError(
            f"names file {shorten(str(path))} is not valid {shorten(encoding)} text (line {line}); "
            "convert it or set data.encoding"
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
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(reduce_seed(seed))).tolist()
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
            generator = torch.Generator().manual_seed(reduce_seed(seed))
            order = torch.randperm(len(self), generator=generator)
            chunk = batch_size * bucket
            order = torch.cat([part[self.lengths[part].argsort(stable=True)] for part in order.split(chunk)])
        batches = list(order.split(batch_size))
        if seed is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of `rows`, cut to the longest name among them: (B, T) each."""
        width = int(self.lengths[rows].max())  # the lengths stay on the CPU: no wait for a GPU here
        # Without non_blocking, copying the row numbers to a GPU would wait for its queued work at every step.
        rows = rows.to(self.inputs.device, non_blocking=True)
        return self.inputs[rows, :width], self.targets[rows, :width]

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in self.batch_plan(batch_size, seed):
            yield self.batch(rows)


def normalize_fragment(text: str, lowercase: bool = True, follows: bool = False, followed: bool = False) -> str:
    """A piece of a name in the one form: as `normalize_name`, but whitespace at an edge is kept as one space where
    other characters of the name may stand beside it: before it (`follows`) or after it (`followed`).

    A prefix is followed (`glen ` asks for a second word), a suffix follows (` rex`: a last word), a text to
    contain both: a blank piece is empty, or one space where both edges touch the name.
    """
    core = normalize_name(text, lowercase)
    if not core:
        return " " if follows and followed and text[:1].isspace() else ""
    return " " * (follows and text[:1].isspace()) + core + " " * (followed and text[-1:].isspace())
