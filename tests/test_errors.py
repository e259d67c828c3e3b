"""Every bad input listed in the error table of docs/errors.md gives the message and exit code the table promises.

The table lives between the `errors:start` and `errors:end` markers in docs/errors.md; each row's
command runs here, in a directory holding the files the commands name.
"""

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from helpers import NAMES, WritesAFile, invoke, payload_span

from dinogen.checkpoint import load_checkpoint, seal
from dinogen.limits import NAMES_FILE_BYTES
from dinogen.run import lock_run_dir

ERRORS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def error_rows() -> list[tuple[str, str, str, int]]:
    text = ERRORS_PAGE.read_text(encoding="utf-8")
    table = text.split("<!-- errors:start -->")[1].split("<!-- errors:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:  # skip the header and its rule
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        what, command, message, code = cells
        rows.append((what, command.strip("`"), message.replace("\\|", "|"), int(code)))
    return rows


@pytest.fixture(scope="module")
def sandbox(trained_run, tmp_path_factory):
    """A directory with every file the table's commands name."""
    root = tmp_path_factory.mktemp("errors")
    good = "\n".join(NAMES) + "\n"
    (root / "names.txt").write_text(good)
    (root / "folder").mkdir()
    (root / "empty.txt").write_text("")
    (root / "blank.txt").write_text("\n   \n\r\n")
    (root / "latin1.txt").write_bytes("alpha\nbeta\nh\u00e9ros\n".encode("latin-1"))
    (root / "windows.txt").write_bytes(("\ufeff" + good.replace("\n", "\r\n").upper() + "Ñandú\r\n").encode())
    (root / "long.txt").write_text(good + "x" * 100 + "\n")
    (root / "one.txt").write_text("tyrannosaurus\n")
    (root / "dupes.txt").write_text("raptor\n raptor \nraptor\n")
    (root / "bad.yaml").write_text("train:\n  lr: [0.1\n")
    (root / "notadir.txt").write_text("a file, not a directory\n")
    os.mkfifo(root / "fifo")
    with open(root / "huge.txt", "wb") as file:
        file.truncate(NAMES_FILE_BYTES + 1)  # sparse: costs no disk
    (root / "control.txt").write_text("raptor\nptero\u2028dactylus\n")
    (root / "quotes.txt").write_bytes("raptor\n\u201ctrex\u201d\n".encode("cp1252"))
    (root / "bomb.yaml").write_text("a: &a [x, x, x]\nb: [*a, *a, *a]\n")
    (root / "notab.txt").write_text("anna\tfemale\nolaf\n")
    (root / "blanklabel.txt").write_text("anna\tfemale\nolaf\t \n")
    (root / "sexes.txt").write_text(
        "".join(f"{name}\t{'female' if i % 2 else 'male'}\n" for i, name in enumerate(NAMES))
    )
    trained = invoke("train", "-c", "tiny", "--data", root / "sexes.txt", "-o", root / "labelled", "-q")
    assert trained.exit_code == 0, trained.output  # a model of labelled names
    shutil.copytree(trained_run, root / "run")
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes((trained_run / "best.pt").read_bytes()[:1000])
    (root / "random.pt").write_bytes(bytes(range(256)) * 16)
    raw = torch.load(trained_run / "best.pt", weights_only=True)
    raw["format_version"] += 1
    torch.save(raw, root / "future.pt")
    torch.save({"format_version": 1, "payload": WritesAFile(str(root / "pwned"))}, root / "evil.pt")
    payload = load_checkpoint(trained_run / "best.pt").to_dict()
    torch.save(seal(payload | {"vocab": [payload["vocab"][0], *payload["vocab"]]}), root / "crafted.pt")
    flipped = bytearray((trained_run / "best.pt").read_bytes())
    span = payload_span(bytes(flipped))
    flipped[span[len(span) // 2]] ^= 0x10
    (root / "flipped.pt").write_bytes(flipped)
    (root / "early").mkdir()  # stopped before its first evaluation: last.pt only
    shutil.copy(trained_run / "last.pt", root / "early" / "last.pt")
    shutil.copytree(trained_run, root / "mixed")
    config = (root / "mixed" / "config.yaml").read_text().split("\n", 1)[1]
    (root / "mixed" / "config.yaml").write_text("# dinogen run 0123456789ab\n" + config)  # last.pt: another run's
    (root / "busy").mkdir()
    lock = lock_run_dir(root / "busy")  # a training "running" there for the rows' duration
    yield root
    lock.close()


@pytest.mark.parametrize(("what", "command", "message", "code"), error_rows(), ids=lambda v: str(v)[:40])
def test_error_table(sandbox, monkeypatch, what, command, message, code):
    monkeypatch.chdir(sandbox)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = shlex.split(command)
    assert args[0] == "dinogen"
    result = invoke(*args[1:])
    assert result.exit_code == code, result.output
    shown = " ".join(result.stderr.split())
    for part in message.split("…"):  # the table shortens long messages with an ellipsis
        assert " ".join(part.split()) in shown, result.stderr
    assert "Traceback" not in result.output
    assert not (sandbox / "pwned").exists()
    if code == 0 and "train" in args and "--dry-run" not in args:
        pytest.fail("table rows that train must use --dry-run to stay fast")


def test_the_table_covers_the_issue_list():
    commands = " ".join(command for _, command, _, _ in error_rows())
    for needle in ["missing.txt", "folder", "empty.txt", "blank.txt", "latin1.txt", "windows.txt", "long.txt",
                   "one.txt", "dupes.txt", "bad.yaml", "train.lrr", "model.cell=", "missing.pt", "empty.pt",
                   "truncated.pt", "random.pt", "future.pt", "evil.pt", "crafted.pt", "flipped.pt", "-n 0", "--top-k 0",
                   "--top-p", "--min-length", "--device cuda", "notadir.txt", "fifo", "huge.txt", "control.txt",
                   "quotes.txt", "bomb.yaml", "batch_size=1000", "--max-length 1000000000", "'0.1'", "/dev/full",
                   "early", "busy", "mixed", "--resume missing", "--pattern", "--ends-with", "--blocklist",
                   "--exact"]:  # fmt: skip
        assert needle in commands, needle
    assert re.search(r"--set train\.lr(?!=)", commands), "a --set without '='"
