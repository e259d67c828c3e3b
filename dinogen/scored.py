"""ScoredName: a name with the model's opinion of it, the record every sampling and scoring call returns."""

from dataclasses import asdict, dataclass


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
