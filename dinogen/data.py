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
from dinogen.limits import MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, NAMES_FILE_BYTES, reduce_seed

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
    A labelled file or a folder (see `read_labelled_names`) gives its names, without their labels.
    """
    names, labels = read_labelled_names(path, lowercase, encoding, max_length)
    return names if labels is None else list(dict.fromkeys(names))


def read_labelled_names(
    path: str | Path, lowercase: bool = True, encoding: str = "utf-8", max_length: int | None = None
) -> tuple[list[str], list[str] | None]:
    """The names of a names file or folder, cleaned as `read_names` cleans them, and their labels (None: unlabelled).

    A file is labelled when a line that is not blank holds a tab: then each line is name<TAB>label, split at the
    first tab. A folder holds one label's names per file, the label being the file's name without its extension.
    A label is normalised like a name, but never lowercased, and labels that differ only in case are one, spelled
    as first seen. A repeated (name, label) is dropped like a repeated name; a name under two labels stays under both.
    """
    path = Path(path)
    if str(path) != "-" and os.path.isdir(path):  # os.path: a name too long for the system is just not a folder
        where, pairs = f"folder {shorten(str(path))}", _read_folder(path, encoding)
    else:
        where, text = f"names file {shorten(str(path))}", _read_text(path, encoding)
        labelled = "\t" in text and any("\t" in line and line.strip() for line in text.splitlines())
        pairs = _labelled_lines(text, where) if labelled else [(name, None) for name in parse_names(text, False)]
    exact = list(dict.fromkeys(pairs))
    kept = (
        list(dict.fromkeys((normalize_name(name, lowercase), label) for name, label in exact)) if lowercase else exact
    )
    if not kept:
        raise DinogenError(f"{where} holds no names (it is empty or only blank lines)")
    if len(kept) < len(exact):
        log.warning("merged %d names in %s that differ only in case (names are lowercased)",
                    len(exact) - len(kept), shorten(str(path)))  # fmt: skip
    if max_length is None:
        _refuse_long_names([name for name, _ in kept], where)
    else:
        kept = _drop_long_names(kept, where, max_length)
    names = [name for name, _ in kept]
    return names, None if kept[0][1] is None else [label for _, label in kept]


def _read_text(path: Path, encoding: str) -> str:
    """A names file's text, decoded and checked for invisible characters."""
    text = _decode(read_bytes(path, "names file", NAMES_FILE_BYTES), path, encoding)
    _refuse_invisible_characters(text, path, encoding)
    return text


def _labelled_lines(text: str, where: str) -> list[tuple[str, str]]:
    """The (name, label) of each line of a labelled file; a line that is not name<TAB>label refuses the file."""
    spelled: dict[str, str] = {}  # a label's case-folded form -> its first spelling
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, tab, label = line.partition("\t")
        name, label, at = normalize_name(name, lowercase=False), normalize_label(label), f"{where} line {number}"
        if not tab:
            raise DinogenError(
                f"{at} has no tab, but other lines do: each line of a labelled file is a name, a tab and its label"
            )
        if not label:
            raise DinogenError(f"{at} has a blank label after its tab; give the name's label or remove the tab")
        if not name:
            raise DinogenError(f"{at} has a label but no name before its tab")
        _refuse_long_label(label, at)
        pairs.append((name, spelled.setdefault(label.casefold(), label)))
    _refuse_many_labels(len(spelled), where)
    return pairs


def _read_folder(path: Path, encoding: str) -> list[tuple[str, str]]:
    """The (name, label) of each name in the files of a folder of names: one file a label, named by its file."""
    files = sorted(entry for entry in path.iterdir() if not entry.name.startswith(".") and entry.is_file())
    where = f"folder {shorten(str(path))}"
    if not files:
        raise DinogenError(
            f"{where} holds no names files; a folder of names holds one file per label, named by the label (female.txt)"
        )
    _refuse_many_labels(len(files), where)
    spelled: dict[str, str] = {}
    pairs, size = [], 0
    for file in files:
        label = normalize_label(file.stem)
        if not label:
            raise DinogenError(f"names file {shorten(str(file))} has a blank name, which is its label; rename it")
        _refuse_long_label(label, f"names file {shorten(str(file))}")
        text = _read_text(file, encoding)
        size += len(text)
        if size > NAMES_FILE_BYTES:
            raise DinogenError(
                f"{where} holds more than {NAMES_FILE_BYTES // 2**20} MB of names, the most dinogen reads"
            )
        if "\t" in text:
            number = text[: text.index("\t")].count("\n") + 1
            raise DinogenError(
                f"names file {shorten(str(file))} line {number} holds a tab; in a folder each file is one label's "
                "names, one per line, with no label on the line"
            )
        label = spelled.setdefault(label.casefold(), label)
        pairs.extend((name, label) for name in parse_names(text, lowercase=False))
    return pairs


def normalize_label(text: str) -> str:
    """The one form of a label: a name's (`normalize_name`), but never lowercased; case is ignored when matching."""
    return normalize_name(text, lowercase=False)


def _refuse_long_label(label: str, where: str) -> None:
    if len(label) > MAX_LABEL_LENGTH:
        raise DinogenError(
            f"{where} has a label of {len(label):,} characters, more than the {MAX_LABEL_LENGTH} dinogen handles"
        )


def _refuse_many_labels(count: int, where: str) -> None:
    if count > MAX_LABELS:
        raise DinogenError(f"{where} holds {count:,} labels, more than the {MAX_LABELS:,} dinogen handles")


def _drop_long_names(pairs: list[tuple[str, str | None]], where: str, max_length: int) -> list[tuple[str, str | None]]:
    """The names of at most `max_length` characters, with a warning that counts the others; none left refuses them."""
    kept = [pair for pair in pairs if len(pair[0]) <= max_length]
    shown = where.removeprefix("names file ")  # a file by its path, a folder as "folder ..."
    if not kept:
        raise DinogenError(f"every name in {shown} is longer than data.max_length ({max_length}); raise it")
    if len(kept) < len(pairs):
        log.warning(
            "dropped %d of %d names in %s longer than data.max_length (%d)", len(pairs) - len(kept), len(pairs), shown,
            max_length,
        )  # fmt: skip
    return kept


def _refuse_long_names(names: list[str], where: str) -> None:
    longest = max(names, key=len)
    if len(longest) > MAX_NAME_LENGTH:
        raise DinogenError(
            f"{where} holds a name of {len(longest):,} characters, more than the "
            f"{MAX_NAME_LENGTH:,} dinogen handles; set data.max_length to drop long lines"
        )


# Allowed although not printable: space separators and a tab (normalisation makes them a space; in a labelled
# file a tab separates a name from its label), the
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


def split_labelled_names(labels: Sequence[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """The rows of the training and of the validation names: `val_fraction` of each label's names held out.

    Each label's names are shuffled with the seed and at least one is held out when it has 2 or more (but never
    all); a label of one name keeps it for training. Both lists are in file order.
    """
    if val_fraction == 0:
        return list(range(len(labels))), []
    if len(labels) < 2:
        raise DinogenError(
            f"only {len(labels)} name; a validation split needs at least 2 (add names, or set data.val_fraction=0)"
        )
    generator = torch.Generator().manual_seed(reduce_seed(seed))
    rows_of: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        rows_of.setdefault(label, []).append(row)
    held: set[int] = set()
    for rows in rows_of.values():
        if len(rows) >= 2:
            order = torch.randperm(len(rows), generator=generator).tolist()
            held.update(rows[i] for i in order[: min(len(rows) - 1, max(1, round(len(rows) * val_fraction)))])
    return [row for row in range(len(labels)) if row not in held], sorted(held)


class EncodedNames:
    """A list of names encoded once into padded tensors, served as length-bucketed batches.

    Row i of `inputs` is [BOUNDARY, c1, ..., cn, pad...] and of `targets` [c1, ..., cn, BOUNDARY, IGNORE...]:
    at each position the model sees the characters so far and must predict the next one or the end. Names of
    labelled data come with their labels' indices, `label_ids`.
    """

    def __init__(
        self,
        names: Sequence[str],
        vocab: Vocab,
        device: torch.device | str = "cpu",
        label_ids: Sequence[int] | None = None,
    ):
        self.names = list(names)
        self.labels = None if label_ids is None else torch.tensor(list(label_ids), dtype=torch.long, device=device)
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

    def batch_labels(self, rows: torch.Tensor) -> torch.Tensor | None:
        """The labels of `rows` (B,), or None for unlabelled names."""
        return None if self.labels is None else self.labels[rows.to(self.labels.device, non_blocking=True)]

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
