"""A trained model for use outside Python: which format to write, and what every format records beside the weights."""

from pathlib import Path
from typing import Any

import torch

from dinogen import __version__
from dinogen.checkpoint import Checkpoint, load_checkpoint
from dinogen.data import BOUNDARY
from dinogen.errors import ConfigError
from dinogen.model import CharRNN, Ensemble

FORMATS = {"onnx": "model.onnx", "html": "names.html"}  # format -> the file written without -o
FORMAT_VERSION = 1  # of the description below; a reader checks it before trusting the keys


def export_model(checkpoint_path: str | Path, output: str | Path | None = None, fmt: str | None = None) -> list[Path]:
    """Write the checkpoint as `fmt` (default: html for a .html/.htm output, else onnx); return the files written."""
    fmt = fmt or ("html" if output is not None and Path(output).suffix.lower() in (".html", ".htm") else "onnx")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    output = Path(output if output is not None else FORMATS[fmt])
    if fmt == "onnx":
        from dinogen.onnx_export import export_onnx, require_onnx

        require_onnx()  # before the checkpoint is read: a missing extra is the first thing to hear about
        return export_onnx(load_checkpoint(checkpoint_path), output)
    from dinogen.web_export import export_html

    return [export_html(load_checkpoint(checkpoint_path), output)]


def describe(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a host program needs beside the weights: vocabulary, boundary, case rule, shapes, defaults, config."""
    from dinogen.sample import Generator

    model = checkpoint.config.model
    generator = Generator.from_loaded(checkpoint, torch.device("cpu"))  # for the sampler's own default max_length
    return {
        "format": "dinogen-step",
        "format_version": FORMAT_VERSION,
        "dinogen_version": __version__,
        "vocab": checkpoint.vocab.to_list(),  # token i is vocab[i - 1]
        "boundary": BOUNDARY,  # the token that starts and ends every name
        "lowercase": checkpoint.lowercase,  # the case rule: inputs are lowercased before they are encoded
        "max_length": generator.default_max_length,  # dinogen sample's default longest name
        "cell": model.cell,
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "ensemble": model.ensemble,
        "state": state_names(checkpoint),
        "state_shape": [model.ensemble * model.num_layers, "batch", model.hidden_size],
        "run_id": checkpoint.run_id,
        "step": checkpoint.step,
        "config": checkpoint.config.to_dict(),
    } | ({} if checkpoint.labels is None else _label_description(checkpoint, generator))


def _label_description(checkpoint: Checkpoint, generator) -> dict[str, Any]:
    """A model of labelled names: its labels (label i is index i), and how a name for label i starts.

    With label_conditioning "input" the step takes each row's label and a name starts from a zero state; with
    "state" the step takes none, and a name for label i starts from initial_states[i] instead.
    """
    description = {"labels": checkpoint.labels, "label_counts": checkpoint.label_counts,
                   "label_conditioning": checkpoint.config.model.label_conditioning}  # fmt: skip
    if checkpoint.config.model.label_conditioning == "state":
        description["initial_states"] = [initial_state(generator.model, label).tolist()
                                         for label in range(len(checkpoint.labels))]  # fmt: skip
    return description


def initial_state(model: CharRNN | Ensemble, label: int) -> torch.Tensor:
    """label_conditioning "state": the hidden state a name for `label` starts from, (K * layers, H); an LSTM's cell
    state starts at zero."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    with torch.no_grad():
        parts = [member.initial_state(torch.full((1,), label)) for member in members]  # (layers, 1, H) each
    return torch.cat([part[0] if isinstance(part, tuple) else part for part in parts])[:, 0]


def state_names(checkpoint: Checkpoint) -> list[str]:
    """The tensors a step carries to the next: an LSTM's hidden and cell state, the other cells' hidden state."""
    return ["hidden", "cell"] if checkpoint.config.model.cell == "lstm" else ["hidden"]
