"""Write names from an exported model with numpy and onnxruntime alone: no torch, no dinogen.

    dinogen export checkpoints/default -o model.onnx
    python examples/onnx_sample.py model.onnx -n 10 --temperature 0.8 --seed 1

The graph is one step of the network: a character and the recurrent state go in, the log-probabilities
of the next character and the new state come out. This file is the rest: start from the boundary token
with a zero state, read the prefix, then draw characters until the boundary comes again. Each line
printed is a name's log-probability under the model (natural log, the end of the name included), a tab,
and the name. A model of labelled names writes names for one label (--label): with label_conditioning
"input" the graph takes each row's label beside its token; with "state" a name starts from its label's
initial state (the metadata's initial_states) instead of zeros.
"""

import argparse
import json
import sys
import unicodedata

import numpy as np
import onnxruntime


class StepModel:
    """The exported graph, and what its metadata says: the vocabulary, the boundary token, the case rule."""

    def __init__(self, path: str):
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        meta = {key: json.loads(value) for key, value in self.session.get_modelmeta().custom_metadata_map.items()}
        self.vocab, self.boundary, self.lowercase = meta["vocab"], meta["boundary"], meta["lowercase"]
        self.max_length = meta["max_length"]  # dinogen's default longest name for this model
        self.token = {char: i for i, char in enumerate(self.vocab, start=1)}  # token 0 is the boundary
        self.labels, self.initial_states = meta.get("labels"), meta.get("initial_states")  # labelled models only
        self.tokens_input, *self.state_inputs = self.session.get_inputs()  # state: hidden (and an LSTM's cell)
        self.takes_labels = bool(self.state_inputs) and self.state_inputs[0].name == "labels"
        self.state_inputs = self.state_inputs[self.takes_labels :]
        self.label = 0  # the label index names are written for

    def zero_state(self, batch: int) -> list[np.ndarray]:
        """The state a name starts from: zeros, or with label_conditioning "state" its label's hidden state."""
        state = [np.zeros((item.shape[0], batch, item.shape[2]), np.float32) for item in self.state_inputs]
        if self.initial_states is not None:
            state[0][:] = np.asarray(self.initial_states[self.label], np.float32)[:, None]  # (K * layers, 1, H)
        return state

    def step(self, tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Log-probabilities of the next character (B, V) after `tokens` (B,), and the new state."""
        feeds = {self.tokens_input.name: tokens.astype(np.int64)}
        if self.takes_labels:
            feeds["labels"] = np.full(len(tokens), self.label, np.int64)
        feeds.update((item.name, part) for item, part in zip(self.state_inputs, state, strict=True))
        log_probs, *state = self.session.run(None, feeds)
        return log_probs, state


def normalize(text: str, lowercase: bool) -> str:
    """A name's one form, as dinogen writes names: spaces collapsed, NFC, lowercased if the model's names were."""
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    return unicodedata.normalize("NFC", text.lower()) if lowercase else text


def sample(model, n, rng, temperature=1.0, top_k=None, prefix="", min_length=1, max_length=None):
    """Up to n (name, log-probability) pairs; a name that would run past max_length is dropped, never cut."""
    max_length = max_length or model.max_length
    # Read the boundary and the prefix once, on one row, then give every name a copy of that state.
    log_probs, state = model.step(np.array([model.boundary]), model.zero_state(1))
    prefix_log_prob = 0.0
    for char in prefix:
        prefix_log_prob += float(log_probs[0, model.token[char]])
        log_probs, state = model.step(np.array([model.token[char]]), state)
    log_probs = np.repeat(log_probs, n, axis=0)  # (n, V)
    state = [np.repeat(part, n, axis=1) for part in state]  # (K * layers, n, H) each
    last = np.full(n, model.token[prefix[-1]] if prefix else model.boundary)  # (b,) each row's last token
    rows = np.arange(n)  # which name each row of the batch is writing; finished names leave the batch
    totals = np.full(n, prefix_log_prob)  # (n,) log-probability of each name so far
    drawn = np.zeros((n, max_length - len(prefix) + 1), np.int64)  # (n, S) the characters, then the end
    finished = []
    for t in range(drawn.shape[1]):
        scores = allowed(model, log_probs, len(prefix) + t, last, min_length)
        token = draw(scores, temperature, top_k, rng)  # (b,)
        totals[rows] += log_probs[np.arange(len(rows)), token]  # the model's own probability: no temperature
        drawn[rows, t] = token
        ended = token == model.boundary
        finished.extend(rows[ended])
        rows, last, state = rows[~ended], token[~ended], [part[:, ~ended] for part in state]
        if len(rows) == 0 or t == drawn.shape[1] - 1:
            break  # the rows still writing at the last step ran past max_length
        log_probs, state = model.step(last, state)
    return [(prefix + decode(model, drawn[row]), float(totals[row])) for row in sorted(finished)]


def allowed(model, log_probs, length, last, min_length):
    """`log_probs` with -inf where a name cannot go: no end before min_length; no space first, twice or last."""
    scores = log_probs.copy()
    if length < min_length:
        scores[:, model.boundary] = -np.inf
    space = model.token.get(" ")
    if space is not None:
        scores[(last == space) | (length == 0), space] = -np.inf
        scores[last == space, model.boundary] = -np.inf
    return scores


def draw(scores, temperature, top_k, rng):
    """One token per row of `scores` (b, V): the likeliest at temperature 0, else drawn from softmax(scores / T)."""
    if temperature == 0:
        return scores.argmax(axis=1)
    scores = scores / temperature
    if top_k:  # keep the k likeliest characters of each row
        kth = np.partition(scores, -top_k, axis=1)[:, -top_k, None]
        scores = np.where(scores < kth, -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    cumulative = weights.cumsum(axis=1)
    threshold = rng.random((len(scores), 1)) * cumulative[:, -1:]
    return (cumulative < threshold).sum(axis=1)  # the first token whose running total reaches the threshold


def decode(model, tokens):
    """The text of `tokens` up to the first boundary."""
    return "".join(model.vocab[token - 1] for token in tokens[: list(tokens).index(model.boundary)])


def main() -> None:
    parser = argparse.ArgumentParser(description="Write names from a model exported by `dinogen export`.")
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("-n", "--num", type=int, default=10, help="how many names")
    parser.add_argument("-t", "--temperature", type=float, default=1.0, help="0 is greedy")
    parser.add_argument("--top-k", type=int, help="draw only among the K likeliest characters")
    parser.add_argument("--prefix", default="", help="every name starts with this")
    parser.add_argument("--min-length", type=int, default=1)
    parser.add_argument("--max-length", type=int, help="longer names are dropped [default: the model's]")
    parser.add_argument("--seed", type=int, help="the same seed, the same names")
    parser.add_argument("--label", help="a labelled model: names for this label [default: its first]")
    args = parser.parse_args()
    model = StepModel(args.model)
    if args.label is not None:
        known = [label.casefold() for label in model.labels or ()]
        if args.label.casefold() not in known:
            sys.exit(f"unknown label {args.label!r}; the model knows: {', '.join(model.labels or ()) or 'none'}")
        model.label = known.index(args.label.casefold())
    prefix = normalize(args.prefix, model.lowercase)
    unknown = sorted(set(prefix) - set(model.vocab))
    if unknown:
        sys.exit(f"prefix {prefix!r} has characters the model never saw: {' '.join(map(repr, unknown))}")
    rng = np.random.default_rng(args.seed)
    names = []
    for _ in range(100):  # names that run past max_length are dropped: draw again until there are enough
        names += sample(model, args.num - len(names), rng, args.temperature, args.top_k, prefix,
                        args.min_length, args.max_length)  # fmt: skip
        if len(names) == args.num:
            break
    for name, log_prob in names:
        print(f"{log_prob:.6f}\t{name}")


if __name__ == "__main__":
    main()
