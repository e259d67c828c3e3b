"""A trained model as one self-contained web page that writes names in the browser, offline."""

import base64
import html
import json
import sys
from array import array
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from dinogen.checkpoint import Checkpoint
from dinogen.errors import DinogenError
from dinogen.export import describe
from dinogen.model import Ensemble
from dinogen.output import output_file

TEMPLATE = "web/page.html"  # inside the package; the wheel ships it
MODEL_SLOT, TITLE_SLOT, ABOUT_SLOT = "{{MODEL_JSON}}", "{{TITLE}}", "{{ABOUT}}"


def export_html(checkpoint: Checkpoint, output: Path) -> Path:
    """Write the page to `output`."""
    _refuse_changed_equations(checkpoint)
    page = render_page(checkpoint)
    with output_file(output) as file:
        file.write(page)
    return output


def _refuse_changed_equations(checkpoint: Checkpoint) -> None:
    """The page's script computes torch's cells: a model of edited reference equations (model.impl) would
    silently sample other names there, so its steps must equal torch's fused cells on the same weights."""
    if checkpoint.config.model.impl == "fused":
        return
    model = checkpoint.build_model()
    fused = replace(checkpoint, config=replace(checkpoint.config, model=replace(checkpoint.config.model, impl="fused")))
    tokens = torch.randint(len(checkpoint.vocab), (64, 8), generator=torch.Generator().manual_seed(0))  # (B, T)
    labels = torch.arange(64) % len(checkpoint.labels) if checkpoint.labels else None
    with torch.inference_mode():
        ours, torchs = model(tokens, labels=labels)[0], fused.build_model()(tokens, labels=labels)[0]
    if not torch.allclose(ours, torchs, atol=1e-4):
        raise DinogenError(
            "this model's reference cells compute other equations than torch's, and the page computes torch's; "
            "export it to ONNX, which runs the model's own equations"
        )


def render_page(checkpoint: Checkpoint) -> str:
    """The template with the model, its weights and its training names filled in."""
    template = resources.files("dinogen").joinpath(TEMPLATE).read_text(encoding="utf-8")
    source = Path(checkpoint.data_path or checkpoint.config.data.path).name
    model = checkpoint.config.model
    layers = f"{model.num_layers}-layer " if model.num_layers > 1 else ""
    members = f"an ensemble of {model.ensemble} {layers}{model.cell.upper()}s" if model.ensemble > 1 else None
    about = (
        f"{members or 'A ' + layers + model.cell.upper()} trained on {len(checkpoint.train_names):,} names "
        f"from {source} writes new ones, here in your browser."
    )
    filled = {MODEL_SLOT: _script_json(page_model(checkpoint)), TITLE_SLOT: html.escape(f"New names · {source}"),
              ABOUT_SLOT: html.escape(about[0].upper() + about[1:])}  # fmt: skip
    for slot, value in filled.items():
        template = template.replace(slot, value)
    return template


def page_model(checkpoint: Checkpoint) -> dict[str, Any]:
    """What the page's script reads: the export description, the names the model learned, the weights."""
    model = checkpoint.build_model("cpu")
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    tensors: list[list] = []  # [member, name, rows, columns] of each tensor, in the order of the weights
    chunks: list[bytes] = []
    with torch.no_grad():
        for index, member in enumerate(members):
            for name, tensor in _member_tensors(member):
                matrix = tensor.reshape(tensor.shape[0], -1)
                tensors.append([index, name, *matrix.shape])
                chunks.append(_float32_bytes(matrix))
    known = sorted(set(checkpoint.train_names) | set(checkpoint.val_names))
    return describe(checkpoint) | {
        "train_names": len(checkpoint.train_names),
        "known": known,  # the page's "new names only" leaves these out, as `dinogen sample --novel` does
        "tensors": tensors,
        "weights": base64.b64encode(b"".join(chunks)).decode("ascii"),
    }


def _member_tensors(member) -> list[tuple[str, torch.Tensor]]:
    """One CharRNN's weights as the page uses them, its first layer's input already projected for every character."""
    rnn = member.rnn
    # The first layer's input projection W_ih e + b_ih of every character: the table CharRNN.step looks up.
    tensors = [("input_table", member.input_table())]  # (V, G*H)
    if member.by_input:  # the label's part of that projection, W_ih e(label): CharRNN.step's label table
        tensors.append(("label_table", member.label_table()))  # (L, G*H)
    for layer in range(member.config.num_layers):
        if layer > 0:
            tensors += [(f"weight_ih_l{layer}", getattr(rnn, f"weight_ih_l{layer}")),
                        (f"bias_ih_l{layer}", getattr(rnn, f"bias_ih_l{layer}"))]  # fmt: skip
        tensors += [(f"weight_hh_l{layer}", getattr(rnn, f"weight_hh_l{layer}")),
                    (f"bias_hh_l{layer}", getattr(rnn, f"bias_hh_l{layer}"))]  # fmt: skip
    return tensors + [("head_weight", member.head.weight), ("head_bias", member.head.bias)]


def _float32_bytes(tensor: torch.Tensor) -> bytes:
    """Little-endian float32, the byte order a browser's Float32Array reads on every platform that runs one."""
    values = array("f", tensor.float().flatten().tolist())
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def _script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: no "</" to end it early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
