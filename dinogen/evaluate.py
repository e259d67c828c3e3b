"""How good is a trained model: loss on held-out names, and what its samples look like."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dinogen.data import EncodedNames
from dinogen.errors import DinogenError, shorten
from dinogen.sample import Generator
from dinogen.train import mean_loss


@dataclass
class Report:
    """The figures `dinogen evaluate` prints."""

    loss: float  # mean negative log-likelihood per character, end tokens included (nats)
    bits_per_char: float
    perplexity: float
    names: int  # names the loss was measured on
    chars: int  # predicted positions (characters plus one end per name)
    samples: int  # names sampled for the figures below
    novelty: float  # share of samples that are not among the names the model learned from (training and validation)
    uniqueness: float  # share of samples that are distinct
    sample_mean_length: float
    train_mean_length: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(generator: Generator, names: Sequence[str], samples: int = 1000, seed: int = 0) -> Report:
    """Loss on `names` and the novelty, uniqueness and length of `samples` sampled names."""
    unknown = generator.vocab.unknown("".join(names))
    if unknown:
        raise DinogenError(
            f"the names hold characters the model never saw ({shorten(' '.join(map(repr, unknown)))}); "
            "their loss is infinite"
        )
    if not names:
        raise DinogenError("no names to evaluate on: give --data FILE")
    data = EncodedNames(names, generator.vocab, generator.device)
    loss = mean_loss(generator.model, data)
    drawn = generator.sample(samples, seed=seed)
    train = generator.train_names
    return Report(
        loss=loss,
        bits_per_char=loss / math.log(2),
        perplexity=math.exp(loss),
        names=len(data),
        chars=data.num_chars,
        samples=len(drawn),
        novelty=sum(name not in generator.known_names for name in drawn) / len(drawn),
        uniqueness=len(set(drawn)) / len(drawn),
        sample_mean_length=sum(map(len, drawn)) / len(drawn),
        train_mean_length=sum(map(len, train)) / max(len(train), 1),
    )
