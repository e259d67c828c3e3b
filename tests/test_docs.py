"""README.md and docs/*.md cannot drift from the tool: their commands run, their tables match the code, links land."""

import dataclasses
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import click
import pytest
import torch
from helpers import NAMES, PLACES, invoke

from dinogen.cli import main
from dinogen.config import Config, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]  # a page added to docs/ is read here without a change
CLI = DOCS / "cli.md"
CONFIGURATION = DOCS / "configuration.md"
README_BYTES = 12 * 1024  # the front door stays short; the reference lives in docs/
# Pages being written on other branches: a link to one of them may wait for its merge (its anchors are checked
# once it is here). Drop an entry when its page has landed.
PENDING_PAGES: set[Path] = set()  # pages linked before they are written

# What the pages' training commands get appended here, so that each takes a second, not a minute.
FAST_TRAINING = ["--set", "train.epochs=null", "--set", "train.max_steps=6", "--set", "train.eval_every=3",
                 "--set", "train.max_time=null"]  # fmt: skip
SMALL_MODEL = ["--set", "model.hidden_size=16", "--set", "model.embedding_dim=8"]


def read(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def blocks(language: str, text: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def shell_commands(text: str) -> list[str]:
    """Each command of the text's bash blocks; `a && b` counts as two, a `# comment` line none."""
    lines = [line.strip() for block in blocks("bash", text) for line in block.splitlines()]
    return [part.strip() for line in lines if line and not line.startswith("#") for part in line.split("&&")]


def section(text: str, heading: str) -> str:
    """The text under a heading line, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(rf"^#{{1,{level}}} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def quick_start() -> list[str]:
    """The README's quick start: what every page's examples assume has run."""
    return shell_commands(section(read(README), "## Quick start"))


def runnable(command: str) -> list[str] | None:
    """The arguments the test runs for a command, or None for one it leaves to CI or to a GPU machine."""
    args = shlex.split(command)
    if args[0] == "python" and args[1].startswith("examples/"):
        return args
    if args[0] != "dinogen":
        return None  # pip, ruff, pytest, torchrun, paste and the benchmarks are what CI itself runs
    if "cuda" in args and not torch.cuda.is_available():
        return None  # the GPU examples run where there is one
    args = ["1000" if arg.isdigit() and int(arg) > 1000 else arg for arg in args[1:]]  # -n 100000 is for real use
    if args[0] == "train" and "--print-config" not in args:
        args += FAST_TRAINING if "--resume" in args else FAST_TRAINING + SMALL_MODEL
    return ["dinogen", *args]


def run(command: str) -> bool:
    """Run one command of a page in the current directory; False when it is not one to run here."""
    args = runnable(command)
    if args is None:
        return False
    if args[0] == "python":
        result = subprocess.run([sys.executable, str(ROOT / args[1]), *args[2:]], capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stderr)
    else:
        result = invoke(*args[1:])
        assert result.exit_code == 0, (command, result.output)
    return True


@pytest.fixture
def page_dir(tmp_path, monkeypatch):
    """A fresh working directory with the files the pages' examples name."""
    for name in ("my_names.txt", "candidates.txt", "test_names.txt"):
        (tmp_path / name).write_text("\n".join(NAMES) + "\n")
    labelled = [f"{name}\tdinosaur" for name in NAMES] + [f"{place}\tplace" for place in PLACES]
    (tmp_path / "labelled.txt").write_text("\n".join(labelled) + "\n")  # docs' labelled.txt: name<TAB>label
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_quick_start():
    assert sum(run(command) for command in quick_start()) >= 2  # a training and a sample


@pytest.mark.parametrize("page", [page for page in PAGES if blocks("bash", read(page))], ids=page_id)
def test_page_commands_run(page, page_dir):
    """Every command of a page in order, in one fresh directory, as a reader would type them (no --overwrite added).

    A docs page starts where the README's quick start left off; the README starts from nothing.
    """
    commands = shell_commands(read(page))
    if page != README and any(runnable(command) for command in commands):
        run_quick_start()
    for command in commands:
        run(command)


def test_the_pages_show_enough_commands_to_run():
    commands = [command for page in PAGES for command in shell_commands(read(page))]
    assert sum(runnable(command) is not None for command in commands) >= 20


@pytest.mark.parametrize("page", [page for page in PAGES if blocks("python", read(page))], ids=page_id)
def test_page_python_blocks_run(page, page_dir):
    """Each python block of a page runs on its own, in order, after the quick start."""
    run_quick_start()
    for block in blocks("python", read(page)):
        code = block.replace("1_000_000", "1_000")  # a million names is the point, not the test
        exec(compile(code, page_id(page), "exec"), {"print": lambda *a, **k: None})


def test_yaml_blocks_are_valid_configs():
    found = [block for page in PAGES for block in blocks("yaml", read(page))]
    assert found
    for block in found:
        Config.from_dict(parse_yaml(block))


def test_config_table_lists_every_key_with_its_default():
    table = read(CONFIGURATION).split("<!-- config:start -->")[1].split("<!-- config:end -->")[0]
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| `([^`]*)` \|", table, flags=re.MULTILINE))
    expected = {}
    for section_field in dataclasses.fields(Config):
        for field in dataclasses.fields(section_field.default_factory()):
            value = getattr(section_field.default_factory(), field.name)
            expected[f"{section_field.name}.{field.name}"] = _yaml_scalar(value)
    assert rows == expected


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _documented(option: click.Option, text: str) -> bool:
    longest = max(option.opts, key=len)
    return f"`{longest}" in text or f", {longest}" in text


def test_every_option_is_documented():
    """Each command has its section in docs/cli.md with its usage line and every option; the global ones have theirs."""
    text = read(CLI)
    global_opts = {opt for param in main.params for opt in param.opts}
    global_section = section(text, "### Global options")
    for param in main.params:
        assert _documented(param, global_section), max(param.opts, key=len)
    parent = click.Context(main, info_name="dinogen")
    for name, command in main.commands.items():
        heading = f"### `dinogen {name}`"
        assert heading in text.splitlines(), name
        own = section(text, heading)
        usage = " ".join(command.collect_usage_pieces(click.Context(command, info_name=name, parent=parent)))
        assert f"`dinogen {name} {usage}`" in own, name
        for param in command.params:
            if isinstance(param, click.Option):
                where = global_section if set(param.opts) <= global_opts else own
                assert _documented(param, where), f"{name} {max(param.opts, key=len)}"


def test_no_option_is_documented_that_does_not_exist():
    text = read(CLI)
    for name, command in main.commands.items():
        cells = re.findall(r"^\| `(-[^`]*)` \|", section(text, f"### `dinogen {name}`"), flags=re.MULTILINE)
        opts = {opt for param in command.params for opt in param.opts}
        assert cells, name
        for cell in cells:
            for option in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", cell):
                assert option in opts, f"dinogen {name} has no option {option}"


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    development = section(read(README), "## Development")
    test_command = next(line for line in blocks("bash", development)[0].splitlines() if line.strip())
    assert test_command.strip() in ci
    assert "torch==2.13.0" in ci


def test_the_readme_is_a_short_front_door():
    assert README.stat().st_size <= README_BYTES, f"README.md is {README.stat().st_size} bytes; move text to docs/"
    text = read(README)
    for page in sorted(DOCS.glob("*.md")) + sorted(PENDING_PAGES):
        assert f"(docs/{page.name}" in text, f"README.md does not link {page.name}"


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but `-` and `_` removed, spaces made `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link in a heading: its text
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_fences(read(page)), flags=re.MULTILINE):
        base = github_anchor(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)  # GitHub numbers repeated headings
        seen[base] = seen.get(base, 0) + 1
    return found


def test_github_anchor_rule():
    assert github_anchor("`dinogen sample`") == "dinogen-sample"
    assert github_anchor("I trained on a GPU; can I sample on a machine without one?") == (
        "i-trained-on-a-gpu-can-i-sample-on-a-machine-without-one"
    )
    assert github_anchor("More than one process: torchrun") == "more-than-one-process-torchrun"
    assert github_anchor("Runs, resume and reproducibility") == "runs-resume-and-reproducibility"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_and_anchors_resolve(page):
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", without_code(read(page)))
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto: are not this repository's
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_relative_to(ROOT), f"{page_id(page)}: {link} leaves the repository"
        if not target.exists() and target in PENDING_PAGES:
            continue
        assert target.exists(), f"{page_id(page)}: {link} names no file"
        if anchor and target.suffix != ".md":  # a line of code: tests/test_cells.py checks what is on it
            assert re.fullmatch(r"L[0-9]+", anchor), f"{page_id(page)}: {link} has an anchor that is not a line"
        elif anchor:
            assert anchor in anchors(target), f"{page_id(page)}: {link} names no heading of {target.name}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_page_names_a_file_outside_the_repository(page):
    """A user has the repository, not the project's own machines: no corpus path, no ../ of the checkout."""
    assert "../shared" not in read(page)
    assert "shared/data" not in read(page)


def test_shell_completion_works():
    import os

    env = {**os.environ, "_DINOGEN_COMPLETE": "bash_source"}
    result = subprocess.run([sys.executable, "-m", "dinogen"], env=env, capture_output=True, text=True)
    assert "_dinogen_completion" in result.stdout
