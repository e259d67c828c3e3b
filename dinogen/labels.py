"""Labels: matching what a caller asks for to a model's labels, and which label each of n names gets.

A label is matched without regard to case (`Female` is `female`) and shown as the names file first spelled it.
What a caller asks for, `label`, is None (the model's labels in the proportions of its training names), one label,
a list of labels (equal shares; a label listed twice has twice the share) or a mapping of labels to positive
weights. Of n names, each label gets its exact share by largest remainder; which names get which label is a fixed
interleaving that depends only on the name's index, n and the shares, never on a batch or a shard.
"""

import difflib
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import torch

from dinogen.data import normalize_label
from dinogen.errors import DinogenError, OptionError, shorten

SHOWN_LABELS = 10  # labels an error lists before it says how many more there are


def label_indices(labels: Sequence[str], known: Sequence[str], source: Any) -> list[int]:
    """The index in `known` of each of `labels` (matched without regard to case); one unknown refuses `source`."""
    index = {label.casefold(): i for i, label in enumerate(known)}
    unknown = next((label for label in labels if label.casefold() not in index), None)
    if unknown is not None:
        raise DinogenError(
            f"{shorten(str(source))} holds the label {shorten(repr(unknown))}, which no training name has; "
            f"the training names' labels: {listed(known)}"
        )
    return [index[label.casefold()] for label in labels]


def label_counts(label_ids: Sequence[int], num_labels: int) -> list[int]:
    """How many names each label has."""
    counts = [0] * num_labels
    for label in label_ids:
        counts[label] += 1
    return counts


def listed(labels: Sequence[str]) -> str:
    """The labels for a sentence, the first SHOWN_LABELS of a long list and how many there are."""
    shown = ", ".join(shorten(label, 40) for label in labels[:SHOWN_LABELS])
    return shown if len(labels) <= SHOWN_LABELS else f"{shown}, … ({len(labels):,} labels)"


def label_weights(label: Any, labels: Sequence[str] | None, counts: Sequence[int] | None) -> list[Fraction] | None:
    """Each of the model's labels' share of the names that `label` asks for (summing to 1); None when unlabelled.

    Raises OptionError for a label the model does not know (with a close one, if there is one), for a label given
    to an unlabelled model, and for weights that are not positive numbers.
    """
    if labels is None:
        if label is None or (_is_collection(label) and not label):
            return None
        asked = next(iter(label)) if _is_collection(label) else label
        raise OptionError(
            "unknown {0} " + shorten(repr(asked)) + "; the model has no labels (it learned names without labels)",
            "label",
        )
    if label is None or (_is_collection(label) and not label):
        total = sum(counts)
        return [Fraction(count, total) for count in counts]
    weights = [Fraction(0)] * len(labels)
    index = {known.casefold(): i for i, known in enumerate(labels)}
    for text, weight in _asked(label):
        key = normalize_label(text).casefold()
        if key not in index:
            raise unknown_label(text, labels)
        weights[index[key]] += weight
    total = sum(weights)
    return [weight / total for weight in weights]


def _is_collection(value: Any) -> bool:
    return isinstance(value, list | tuple | dict)


def _asked(label: Any) -> list[tuple[str, Fraction]]:
    """(label, weight) pairs of what a caller asks for, type-checked."""
    if isinstance(label, str):
        return [(label, Fraction(1))]
    if isinstance(label, dict):
        pairs = list(label.items())
    elif isinstance(label, list | tuple):
        pairs = [(text, 1) for text in label]
    else:
        raise OptionError(
            "{0} must be a label, a list of labels or a mapping of labels to weights, got ",
            "label",
            detail=f"a {type(label).__name__}",
        )
    for text, weight in pairs:
        if not isinstance(text, str):
            raise OptionError("{0} must name labels as strings, got ", "label", detail=shorten(repr(text)))
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not (number and math.isfinite(weight) and weight > 0):
            raise OptionError(
                "{0} weights must be positive numbers, got ", "label", detail=f"{shorten(repr(weight))} for {text!r}"
            )
    return [(text, Fraction(weight)) for text, weight in pairs]


def unknown_label(text: str, labels: Sequence[str]) -> OptionError:
    """The sentence for a label the model does not know: the labels it knows, and a close one if there is one."""
    keys = {label.casefold(): label for label in labels}
    close = difflib.get_close_matches(normalize_label(text).casefold(), list(keys), n=1)
    hint = f"; did you mean {keys[close[0]]!r}?" if close else ""
    return OptionError(f"unknown {{0}} {shorten(repr(text))}; the model knows: {listed(labels)}{hint}", "label")


def largest_remainder(weights: Sequence[Fraction], n: int) -> list[int]:
    """Each weight's whole share of n (weights summing to 1): its quota rounded down, and one more for the largest
    remainders (ties to the first label), so that the shares add up to n."""
    quotas = [weight * n for weight in weights]
    counts = [math.floor(quota) for quota in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


class LabelPlan:
    """Which label each of n names gets: exactly `counts[l]` names for label l, spread evenly through the n.

    The labels are split in two halves, and the names between the halves as a line is drawn on a grid
    (Bresenham): name i goes to the first half when ceil((i + 1) c / n) > ceil(i c / n), c being the first half's
    names, so that every stretch of names holds its share of each half; each half's names are then split among its
    own halves in the same way. Two labels of equal weight alternate; any name's label takes log2(labels) steps,
    for any batch of indices at once.
    """

    def __init__(self, weights: Sequence[Fraction], n: int):
        self.n = n
        self.counts = largest_remainder(weights, n)
        self.cumulative = torch.tensor([0, *self.counts]).cumsum(0)  # (L + 1,)

    def labels_of(self, indices: torch.Tensor) -> torch.Tensor:
        """The label (L,) of each name index in [0, n) of `indices` (b,), on their device."""
        cumulative = self.cumulative.to(indices.device)
        low = torch.zeros_like(indices)
        high = torch.full_like(indices, len(self.counts))
        rank, total = indices.clone(), torch.full_like(indices, self.n)  # index among its group's names
        while bool((high - low > 1).any()):
            middle = (low + high) // 2
            first = cumulative[middle] - cumulative[low]  # names of the first half of the group
            splitting = high - low > 1
            before = _ceil_div(rank * first, total)  # first-half names among the group's names before this one
            to_first = splitting & (_ceil_div((rank + 1) * first, total) > before)
            to_second = splitting & ~to_first
            rank = torch.where(to_first, before, torch.where(to_second, rank - before, rank))
            total = torch.where(to_first, first, torch.where(to_second, total - first, total))
            low, high = torch.where(to_second, middle, low), torch.where(to_first, middle, high)
        return low


def _ceil_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ceil(a / b) of non-negative integers (b > 0 where it matters)."""
    return -((-a) // b.clamp(min=1))
