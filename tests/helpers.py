"""Pieces the tests share: the test names, the tiny config, the CLI runner and file-level helpers."""

import io
import time

import torch
from click.testing import CliRunner

from dinogen.cli import main
from dinogen.config import Config

NAMES = [
    "tyrannosaurus",
    "velociraptor",
    "triceratops",
    "stegosaurus",
    "brachiosaurus",
    "allosaurus",
    "diplodocus",
    "ankylosaurus",
    "iguanodon",
    "spinosaurus",
    "parasaurolophus",
    "pachycephalosaurus",
    "apatosaurus",
    "gallimimus",
    "deinonychus",
    "compsognathus",
    "oviraptor",
    "protoceratops",
    "microraptor",
    "carnotaurus",
    "giganotosaurus",
    "baryonyx",
    "edmontosaurus",
    "styracosaurus",
    "maiasaura",
    "therizinosaurus",
    "dilophosaurus",
    "coelophysis",
    "plateosaurus",
    "herrerasaurus",
]


# Place names with spaces, apostrophes, hyphens and capitals, some written carelessly: what the
# sampler must never copy is an edge space or a double space.
PLACES = [
    "Glen Ivy", "Mount Vernon", "O'Hare", "St. Albans", "Port Talbot", "Lake Placid", "New Haven",
    "Glen Ellyn", "Mount Pleasant", "Port Isaac", "  Lake  Tahoe ", "New  Glarus", "D'Arcy", "Fort Worth",
    "Fort Collins", "Glen Rock", "Mount Airy", "Port Arthur", "Lake Geneva", "New Paltz", "Rock Hill",
    "Little Rock", "Glen Cove", "Mount Holly", "Port Angeles", "Lake Forest", "New Hope", "Fort Myers",
    "Grand Forks", "Grand Rapids", "Cedar Falls", "Twin Falls", "Spring Lake", "Bay Harbor", "Sea Cliff",
    "Ash Grove", "Oak Park", "Elm Grove", "Pine Bluff", "Red Bank", "Stow-on-the-Wold", "L'Anse",
]  # fmt: skip


def tiny_config(names_file, **train) -> Config:
    """The tiny test config on the test names, with optional train.* changes."""
    raw = {
        "data": {"path": str(names_file), "val_fraction": 0.2},
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 16, "dropout": 0.0},
        "train": {"epochs": None, "max_steps": 30, "batch_size": 8, "lr": 0.01, "eval_every": 10, "device": "cpu"},
    }
    raw["train"].update(train)
    return Config.from_dict(raw)


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


class WritesAFile:
    """A pickle that would write a file when loaded: what weights_only must refuse."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def payload_span(content: bytes) -> range:
    """Where the sealed payload's bytes lie in the file."""
    payload = torch.load(io.BytesIO(content), weights_only=True)["payload"]
    data = bytes(payload.tolist())
    start = content.find(data)
    assert start > 0 and content.find(data, start + 1) == -1
    return range(start, start + len(data))


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)
