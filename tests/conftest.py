"""Shared fixtures: a small names file and one tiny trained run, reused across tests."""

import pytest
from click.testing import CliRunner

from dinogen import cli
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


@pytest.fixture(scope="session")
def places_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("places") / "places.txt"
    path.write_text("\n".join(PLACES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def names_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def tiny_config(names_file, **train) -> Config:
    """The tiny test config on the test names, with optional train.* changes."""
    raw = {
        "data": {"path": str(names_file), "val_fraction": 0.2},
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 16, "dropout": 0.0},
        "train": {"epochs": None, "max_steps": 30, "batch_size": 8, "lr": 0.01, "eval_every": 10, "device": "cpu"},
    }
    raw["train"].update(train)
    return Config.from_dict(raw)


@pytest.fixture(scope="session")
def trained_run(names_file, tmp_path_factory):
    """A run directory made by `dinogen train` on the tiny config."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    # 200 steps: enough that the likeliest names end (greedy decoding is a name, not an endless loop)
    args = ["train", "-c", "tiny", "--data", str(names_file), "-o", str(run_dir), "-q", "--set", "train.max_steps=200"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(autouse=True)
def _no_unexpected_errors(request, monkeypatch):
    """Fail a test whose input reaches the CLI's last line of defence: every bad input deserves its own sentence."""
    reached = []

    def record(err):
        reached.append(err)
        return unexpected(err)

    unexpected = cli.unexpected_error
    monkeypatch.setattr(cli, "unexpected_error", record)
    yield
    if reached and not request.node.get_closest_marker("unexpected_ok"):
        pytest.fail(f"the CLI met an unexpected {type(reached[0]).__name__}: {reached[0]}")
