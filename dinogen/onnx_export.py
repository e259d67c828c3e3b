"""One step of a trained model as an ONNX graph: (tokens, state) -> (log-probabilities, next state).

The graph is torch's exporter run over `CharRNN.step` (or `Ensemble.step`), which writes each cell out as
matrix products, sigmoids and tanhs: no fused RNN/GRU/LSTM operator, so no exporter convention (such as
a GRU's linear_before_reset) can change the result. Every export is checked against torch before it is
written.
"""

import contextlib
import importlib.util
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dinogen.checkpoint import Checkpoint
from dinogen.errors import DinogenError
from dinogen.export import describe, state_names
from dinogen.model import CharRNN, Ensemble
from dinogen.output import output_file

if TYPE_CHECKING:
    import onnx

PARITY_TOLERANCE = 1e-4  # largest difference of a log-probability between onnxruntime and torch
_NEEDED = ("onnx", "onnxscript", "onnxruntime")  # the exporter writes with onnx and onnxscript; the check runs ort


def require_onnx() -> None:
    """Raise a one-sentence error naming the packages of the [export] extra that are not installed."""
    missing = [name for name in _NEEDED if _absent(name)]
    if missing:
        listed = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise DinogenError(f"exporting to ONNX needs {listed}: pip install 'dinogen[export]'")


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
        return True


class OneStep(nn.Module):
    """The model's `step` as the graph's function: log-probabilities out, the state as separate tensors.

    A model of labelled names with label_conditioning "input" takes each row's label after the tokens; with
    "state" the label only sets the state a name starts from (the description's initial_states), so no label goes in.
    """

    def __init__(self, model: CharRNN | Ensemble):
        super().__init__()
        self.model = model
        self.num_labels = model.num_labels
        self.takes_labels = model.num_labels > 0 and model.config.label_conditioning == "input"

    def forward(self, tokens: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B,) int64, then (B,) int64 labels if it takes them, and (K * layers, B, H) per state tensor -> (B, V)
        log-probabilities and the next state."""
        labels, state = (inputs[0], inputs[1:]) if self.takes_labels else (None, inputs)
        if self.num_labels and labels is None:
            labels = torch.zeros_like(tokens)  # "state": a given state already holds the label
        logits, next_state = self.model.step(tokens, state if len(state) == 2 else state[0], labels)
        # An Ensemble's scores are already the log of its members' mean probability: log_softmax leaves them so.
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        return (log_probs, *(next_state if isinstance(next_state, tuple) else (next_state,)))


def export_onnx(checkpoint: Checkpoint, output: Path) -> list[Path]:
    """Write the ONNX graph of one step to `output` and its description to a JSON file beside it."""
    import onnx

    require_onnx()
    description = describe(checkpoint)
    step = OneStep(checkpoint.build_model("cpu")).eval()
    proto = _trace(step, state_names(checkpoint), checkpoint.config.model)
    labels = " and labels (batch,) int64" if step.takes_labels else ""
    proto.doc_string = (
        f"One step of a dinogen character model: tokens (batch,) int64{labels} and the state in; log_probs "
        "(batch, vocabulary) and the next state out. Every metadata value is JSON."
    )
    onnx.helper.set_model_props(proto, {key: json.dumps(value) for key, value in description.items()})
    graph = proto.SerializeToString()
    check_parity(graph, step, len(checkpoint.vocab), num_labels=len(checkpoint.labels or ()))
    sidecar = output.with_name(output.name + ".json") if output.suffix == ".json" else output.with_suffix(".json")
    with output_file(output, binary=True) as file:
        file.write(graph)
    with output_file(sidecar) as file:
        file.write(_one_key_a_line(description))
    return [output, sidecar]


def _trace(step: OneStep, state: list[str], config) -> "onnx.ModelProto":
    """The exported graph, with the batch dimension left free; the exporter's chatter kept off stdout."""
    batch = torch.export.Dim("batch", min=1)
    rows = config.ensemble * config.num_layers
    labels = [torch.zeros(2, dtype=torch.long)] * step.takes_labels
    example = (torch.zeros(2, dtype=torch.long), *labels, *(torch.zeros(rows, 2, config.hidden_size) for _ in state))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecations inside the exporter are not the user's to act on
        quiet.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                step,
                example,
                dynamo=True,
                input_names=["tokens", *["labels"] * step.takes_labels, *state],
                output_names=["log_probs", *(f"next_{name}" for name in state)],
                dynamic_shapes={
                    "tokens": {0: batch},
                    "inputs": tuple([{0: batch}] * len(labels) + [{1: batch}] * len(state)),
                },
                verbose=False,
            )
        finally:
            quiet.setLevel(level)
    return program.model_proto


def check_parity(
    graph: bytes, step: OneStep, vocab_size: int, batch_sizes=(1, 7), seed: int = 0, num_labels: int = 0
) -> float:
    """The largest difference between onnxruntime's and torch's outputs on random tokens and states; raise if off."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batch_sizes:
        feeds = random_inputs(session, vocab_size, batch, generator, num_labels)
        with torch.no_grad():
            expected = step(*(torch.from_numpy(value) for value in feeds.values()))
        for got, want in zip(session.run(None, feeds), expected, strict=True):
            worst = max(worst, float((torch.from_numpy(got) - want).abs().max()))
    if not worst <= PARITY_TOLERANCE:  # also catches NaN
        raise DinogenError(
            f"the exported graph differs from the model by {worst:.3g} (more than {PARITY_TOLERANCE:g}); "
            "nothing was written: report it with your torch and onnx versions"
        )
    return worst


def random_inputs(session, vocab_size: int, batch: int, generator: torch.Generator, num_labels: int = 0) -> dict:
    """Random tokens (batch,) (and labels) and states of the session's input shapes, as numpy arrays by input name."""
    inputs = session.get_inputs()
    feeds = {inputs[0].name: torch.randint(vocab_size, (batch,), generator=generator).numpy()}
    if inputs[1].name == "labels":
        feeds["labels"] = torch.randint(num_labels, (batch,), generator=generator).numpy()
    for item in inputs[1 + ("labels" in feeds) :]:
        rows, _, hidden = item.shape  # (K * layers, "batch", H)
        feeds[item.name] = torch.randn(rows, batch, hidden, generator=generator).numpy()
    return feeds


def _one_key_a_line(description: dict) -> str:
    """JSON with each top-level key on a line of its own: readable, and short for a long vocabulary."""
    lines = (f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in description.items())
    return "{\n" + ",\n".join(lines) + "\n}\n"
