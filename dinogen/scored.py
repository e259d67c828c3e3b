"""ScoredName: a name with the model's opinion of it, the record every sampling and scoring call returns."""

from dataclasses import asdict, dataclass

LABEL_FIELDS = ("label", "likeliest_label")


@dataclass(slots=True)
class ScoredName:
    """A name with the model's opinion of it."""

    name: str
    log_prob: float  # total log-probability of the whole name, end token included (nats); -inf if impossible
    nll_per_char: float  # -log_prob / (length + 1): mean loss per predicted position
    length: int  # characters in the name
    label: str | None = None  # a model of labelled names: the label it was drawn or scored for (None: a mix)
    likeliest_label: str | None = None  # `score` on a model of labelled names: the label that makes it likeliest

    def to_dict(self) -> dict:
        """Its fields, the label fields only when they are set (names of unlabelled models have none)."""
        return {key: value for key, value in asdict(self).items() if value is not None or key not in LABEL_FIELDS}

    @classmethod
    def of(cls, name: str, log_prob: float) -> "ScoredName":
        """A name and its whole log-probability, with the per-character loss and length that follow."""
        return cls(name, log_prob, -log_prob / (len(name) + 1), len(name))
