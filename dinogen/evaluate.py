"""How good is a trained model: loss on held-out names, and what its samples look like (for each label, if labelled)."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dinogen.data import EncodedNames
from dinogen.errors import DinogenError, shorten
from dinogen.labels import label_indices
from dinogen.sample import Generator
from dinogen.scored import ScoredName
from dinogen.train import mean_loss


@dataclass
class Report:
    """The figures `dinogen evaluate` prints; a model of labelled names has a row of them for each label too."""

    loss: float  # mean negative log-likelihood per character, end tokens included (nats), each name given its label
    bits_per_char: float
    perplexity: float
    names: int  # names the loss was measured on
    chars: int  # predicted positions (characters plus one end per name)
    samples: int  # names sampled for the figures below
    novelty: float  # share of samples that are not among the names the model learned from (training and validation)
    uniqueness: float  # share of samples that are distinct
    sample_mean_length: float
    train_mean_length: float
    label: str | None = None  # in a label's row: the label
    labels: list["Report"] | None = None  # a model of labelled names: a row per label (NaN where it has no names)

    def to_dict(self) -> dict:
        """Plain data; the label keys only where there are labels."""
        return {
            key: value for key, value in asdict(self).items() if value is not None or key not in ("label", "labels")
        }


def evaluate(
    generator: Generator,
    names: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    train_names: Sequence[str] | None = None,
    train_labels: Sequence[str] | None = None,
) -> Report:
    """Loss on `names` and the novelty, uniqueness and length of `samples` sampled names.

    A model of labelled names needs each name's label (`labels`), and measures its loss given it; its samples mix
    the labels in the proportions of the training names, and each label gets a row of its figures. The training
    names' mean length is that of `train_names` (default: the generator's), by `train_labels` in a label's row.
    """
    unknown = generator.vocab.unknown("".join(names))
    if unknown:
        raise DinogenError(
            f"the names hold characters the model never saw ({shorten(' '.join(map(repr, unknown)))}); "
            "their loss is infinite"
        )
    if not names:
        raise DinogenError("no names to evaluate on: give --data FILE")
    if generator.labels is not None and labels is None:
        raise DinogenError(
            "this model learned labelled names, and these have no labels: give --data a labelled file "
            "(a name, a tab and its label a line) or a folder of names files, one per label"
        )
    train_names = list(generator.train_names if train_names is None else train_names)
    drawn = list(generator.iter_sample(samples, seed=seed))
    if generator.labels is None:
        return _figures(generator, list(names), None, drawn, train_names)
    ids = label_indices(labels, generator.labels, "the names to evaluate on")
    report = _figures(generator, list(names), ids, drawn, train_names)
    report.labels = []
    for index, label in enumerate(generator.labels):
        own = [name for name, name_label in zip(names, ids, strict=True) if name_label == index]
        own_train = [name for name, other in zip(train_names, train_labels or (), strict=False) if other == label]
        row = _figures(generator, own, [index] * len(own), [s for s in drawn if s.label == label], own_train)
        row.label = label
        report.labels.append(row)
    return report


def _figures(
    generator: Generator, names: list[str], ids: list[int] | None, drawn: list[ScoredName], train: list[str]
) -> Report:
    """One row of figures: NaN for a loss without names, and for sample figures without samples."""
    data = EncodedNames(names, generator.vocab, generator.device, ids)
    loss = mean_loss(generator.model, data) if names else math.nan  # nan: a label with no names to measure on
    drawn_names = [scored.name for scored in drawn]
    share = (lambda count: count / len(drawn_names)) if drawn_names else (lambda count: math.nan)
    return Report(
        loss=loss,
        bits_per_char=loss / math.log(2),
        perplexity=math.exp(loss),
        names=len(data),
        chars=data.num_chars,
        samples=len(drawn_names),
        novelty=share(sum(name not in generator.known_names for name in drawn_names)),
        uniqueness=share(len(set(drawn_names))),
        sample_mean_length=share(sum(map(len, drawn_names))),
        train_mean_length=sum(map(len, train)) / len(train) if train else math.nan,
    )
