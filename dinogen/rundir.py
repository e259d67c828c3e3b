"""A run directory on disk: its files, its lock, numbered names for new runs, and the latest run.

A run directory holds config.yaml (the resolved config, after a first line naming the run), metrics.jsonl
(one line per evaluation), last.pt (the latest checkpoint, for resuming), best.pt (the lowest validation loss,
for sampling) and .lock, which a training holds so that a second one cannot write into the same directory.
"""

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from dinogen.errors import DinogenError, shorten
from dinogen.output import output_file, remove_unfinished_writes

if TYPE_CHECKING:  # only for type hints: checkpoints import torch, which listing runs does not need
    from dinogen.checkpoint import Checkpoint

try:
    import fcntl
except ImportError:  # Windows: run directories are not locked
    fcntl = None

log = logging.getLogger(__name__)

RUNS_ROOT = Path("checkpoints")  # where a new run goes without a run directory, and where commands look for one
RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt")
LOCK_FILE = ".lock"
RUN_ID_LINE = re.compile(r"# dinogen run ([0-9a-f]+)")  # config.yaml's first line names the run


def new_run_dir(root: Path, name: str) -> Path:
    """root/name, or the first of root/name-2, name-3, ... that holds no run: a new run never replaces one."""
    candidate, number = root / name, 1
    while any((candidate / file).exists() for file in RUN_FILES):
        number += 1
        candidate = root / f"{name}-{number}"
    return candidate


def run_dirs(root: Path) -> list[Path]:
    """The run directories in `root` that hold a checkpoint, the one written last at the end."""
    try:
        candidates = [path for path in root.iterdir() if path.is_dir()]
    except OSError:
        return []
    written = {path: _last_written(path) for path in candidates}
    return sorted((path for path, when in written.items() if when is not None), key=lambda path: (written[path], path))


def _last_written(run_dir: Path) -> float | None:
    times = []
    for name in ("best.pt", "last.pt"):
        with contextlib.suppress(OSError):
            times.append((run_dir / name).stat().st_mtime)
    return max(times, default=None)


def claim(run_dir: Path, step: int):
    """Lock a run directory to resume it at `step`: remove unfinished writes, cut metrics.jsonl back to `step`."""
    lock = lock_run_dir(run_dir)
    try:
        remove_unfinished_writes(run_dir, RUN_FILES)
        _trim_metrics(run_dir / "metrics.jsonl", step)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    return lock


def lock_run_dir(run_dir: Path):
    """Lock `run_dir` for one training until the returned file is closed (or the process ends), or say who holds it."""
    if fcntl is None:
        return None
    try:
        file = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held open while the run trains)
    except OSError as err:
        raise DinogenError(f"cannot write to run directory {shorten(str(run_dir))}: {err.strerror}") from None
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel however the process ends
    except OSError:
        file.seek(0)
        holder = file.read(20).strip() or "unknown"
        file.close()
        raise DinogenError(
            f"{run_dir} is in use by another training (PID {holder}); wait for it to finish or choose another "
            "--out directory"
        ) from None
    file.truncate(0)
    file.write(str(os.getpid()))
    file.flush()
    return file


def check_same_run(run_dir: Path, source: Path, checkpoint: "Checkpoint") -> None:
    """Refuse to resume from a checkpoint that another run wrote (copied in), which would mix two runs' files."""
    try:
        first_line = (run_dir / "config.yaml").read_text(encoding="utf-8", errors="replace").partition("\n")[0]
    except OSError:
        return  # no config.yaml to compare with
    recorded = RUN_ID_LINE.fullmatch(first_line.strip())
    if recorded and checkpoint.run_id and checkpoint.run_id != recorded[1]:
        raise DinogenError(
            f"{source} belongs to another run (run {checkpoint.run_id}) than {run_dir / 'config.yaml'} "
            f"(run {recorded[1]}); copy it into a directory of its own to continue it"
        )


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the evaluations up to the checkpoint's step: a run killed while saving logged some that resuming redoes."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return
    except OSError as err:
        raise DinogenError(f"cannot read {path}: {err.strerror}") from None
    kept = [line for line in lines if (logged := _step_of(line)) is not None and logged <= step]
    if kept != lines:
        log.warning("dropped %d lines of %s past the checkpoint's step %d", len(lines) - len(kept), path, step)
        with output_file(path) as file:
            file.writelines(line + "\n" for line in kept)


def _step_of(line: str) -> int | None:
    """The step of one metrics.jsonl line, or None for a torn or foreign line."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    step = row.get("step") if isinstance(row, dict) else None
    return step if isinstance(step, int) else None
