"""A training run on disk: reads the data, builds the model, trains, and writes the run directory.

A run directory holds config.yaml (the resolved config), metrics.jsonl (one line per evaluation),
last.pt (the latest checkpoint, for resuming) and best.pt (the lowest validation loss, for sampling),
and .lock, which a training holds so that a second one cannot write into the same directory. In a
world of several processes, rank 0 alone writes it.
"""

import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch

from dinogen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dinogen.config import Config, apply_overrides
from dinogen.data import EncodedNames, Vocab, read_names, resolve_names_path, split_names
from dinogen.device import resolve_device
from dinogen.distributed import SINGLE_PROCESS, World
from dinogen.errors import ConfigError, DinogenError, shorten
from dinogen.model import build_model
from dinogen.output import append_line, output_file, remove_unfinished_writes
from dinogen.train import Evaluation, Trainer

try:
    import fcntl
except ImportError:  # Windows: run directories are not locked
    fcntl = None

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt")
LOCK_FILE = ".lock"
RUN_ID_LINE = re.compile(r"# dinogen run ([0-9a-f]+)")  # config.yaml's first line names the run
# Keys a resumed run may change: budgets and bookkeeping, never what the weights or data order depend on.
RESUMABLE_KEYS = {
    "train.epochs", "train.max_steps", "train.max_time", "train.eval_every",
    "train.patience", "train.min_delta", "train.device",
}  # fmt: skip


class Run:
    """Data, vocabulary, model and trainer for one config, ready to train into `run_dir`."""

    def __init__(
        self, config: Config, run_dir: str | Path, resume_from: Checkpoint | None = None, world: World = SINGLE_PROCESS
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.world = world
        self.device = world.device(resolve_device(config.train.device))
        self.run_id = resume_from.run_id if resume_from is not None else uuid.uuid4().hex[:12]
        self._lock = None  # the run directory's lock file while this run writes into it
        if resume_from is not None:
            self.data_path = Path(resume_from.data_path)
            self.train_names, self.val_names = resume_from.train_names, resume_from.val_names
            self.vocab = resume_from.vocab
        else:
            self._read_data()
            self.vocab = Vocab.from_names(self.train_names + self.val_names)
        torch.manual_seed(config.train.seed)  # initial weights and dropout follow the seed
        self.model = build_model(len(self.vocab), config.model).to(self.device)
        self.trainer = Trainer(
            self.model,
            config.train,
            EncodedNames(self.train_names, self.vocab, self.device),
            EncodedNames(self.val_names, self.vocab, self.device) if self.val_names else None,
            world,
        )
        # config.yaml and the checkpoints record the batch and lr auto chose, so a resume on any device replays them.
        self.config = replace(config, train=self.trainer.config)
        if resume_from is not None:
            self.model.load_state_dict(resume_from.model_state)
            self.trainer.load_state_dict(resume_from.trainer_state)
        log.debug("vocabulary of %d characters: %r", len(self.vocab.chars), "".join(self.vocab.chars))
        log.debug("config:\n%s", self.config.to_yaml())

    @classmethod
    def resume(
        cls, path: str | Path, overrides: Iterable[str] = (), world: World = SINGLE_PROCESS, write: bool = True
    ) -> "Run":
        """Continue the run whose last.pt is at `path` (a run directory or a checkpoint file); every rank loads it.

        With `write` (training, not a dry run), rank 0 locks the directory and cuts metrics.jsonl back to last.pt.
        """
        path = Path(path)
        is_dir = os.path.isdir(path)  # os.path: a name too long for the system is just not a directory
        source = path / "last.pt" if is_dir else path
        checkpoint = load_checkpoint(source)
        if not checkpoint.trainer_state:
            raise DinogenError(f"{source} holds no training state (optimizer, schedule, random state) to resume from")
        run_dir = path if is_dir else path.parent
        latest = run_dir / "last.pt"
        if not is_dir and latest.exists() and not latest.samefile(path):
            saved = load_checkpoint(latest).step
            if saved > checkpoint.step:
                # Going on from an earlier state would overwrite last.pt and rewrite metrics.jsonl's history.
                raise DinogenError(
                    f"{path} is at step {checkpoint.step} but {latest} is at step {saved}; resume the run "
                    f"directory (its last.pt), or copy {path.name} to a new directory to branch from it"
                )
        raw = checkpoint.config.to_dict()
        for override in overrides:
            key = override.partition("=")[0].strip()
            if key not in RESUMABLE_KEYS:
                raise ConfigError(
                    f"{key} cannot change when resuming (a resumed run keeps its model, data and optimisation); "
                    f"only {', '.join(sorted(RESUMABLE_KEYS))} can"
                )
        config = Config.from_dict(apply_overrides(raw, overrides))
        _check_same_run(run_dir, source, checkpoint)
        writes = write and world.is_main  # rank 0 alone writes the directory
        lock = world.together(lambda: _claim(run_dir, checkpoint.step) if writes else None)
        try:
            run = cls(config, run_dir, resume_from=checkpoint, world=world)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        run._lock = lock
        return run

    def _read_data(self) -> None:
        data = self.config.data
        self.data_path = resolve_names_path(data.path)
        names = read_names(self.data_path, data.lowercase, data.encoding, data.max_length)
        if data.val_path:
            self.train_names = names
            self.val_names = read_names(
                resolve_names_path(data.val_path), data.lowercase, data.encoding, data.max_length
            )
        else:
            self.train_names, self.val_names = split_names(names, data.val_fraction, self.config.train.seed)

    def check_dir(self, overwrite: bool = False) -> None:
        """Refuse a run directory that holds an earlier run, unless `overwrite`."""
        existing = [name for name in RUN_FILES if os.path.exists(self.run_dir / name)]
        if existing and not overwrite:
            raise DinogenError(
                f"{self.run_dir} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
                "--overwrite to replace it, or choose another --out directory"
            )

    def prepare_dir(self, overwrite: bool = False) -> None:
        """Create and lock the run directory for a new run (see `check_dir`), with its config.yaml (rank 0 only)."""
        if not self.world.is_main:
            return  # rank 0 may have written it already: checking here would find "an earlier run"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DinogenError(f"cannot write to run directory {shorten(str(self.run_dir))}: {err.strerror}") from None
        self._lock = lock_run_dir(self.run_dir)
        try:
            self.check_dir(overwrite)
            remove_unfinished_writes(self.run_dir, RUN_FILES)
            with output_file(self.run_dir / "config.yaml") as file:
                file.write(f"# dinogen run {self.run_id}\n{self.config.to_yaml()}")
            with output_file(self.run_dir / "metrics.jsonl"):
                pass  # empty: the new run's evaluations are appended
            for name in ("best.pt", "last.pt"):
                (self.run_dir / name).unlink(missing_ok=True)
        except BaseException:
            self.release()
            raise

    def fit(
        self,
        on_step: Callable[[int], None] | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """Train, appending metrics and saving last.pt (and best.pt when it improves) at each evaluation.

        An interrupted run (`should_stop()` turned true) saves last.pt before returning. Rank 0 alone writes.
        """

        def record(evaluation: Evaluation) -> None:
            if self.world.is_main:
                self._record(evaluation)
            if on_evaluation:
                on_evaluation(evaluation)

        try:
            reason = self.trainer.fit(on_step, record, should_stop)
            if reason == "interrupted" and self.world.is_main:
                save_checkpoint(self.checkpoint(), self.run_dir / "last.pt")
        finally:
            self.release()
        return reason

    def _record(self, evaluation: Evaluation) -> None:
        """Append the evaluation to metrics.jsonl and save last.pt, and best.pt when it is the best."""
        append_line(self.run_dir / "metrics.jsonl", json.dumps(evaluation.to_dict()))
        checkpoint = self.checkpoint()
        best = [self.run_dir / "best.pt"] if evaluation.is_best else []
        save_checkpoint(checkpoint, self.run_dir / "last.pt", *best)
        log.debug("step %d: saved last.pt%s", evaluation.step, " and best.pt" if evaluation.is_best else "")

    def release(self) -> None:
        """Let another training use the run directory."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def checkpoint(self) -> Checkpoint:
        """The run's current state as a checkpoint."""
        history = self.trainer.history
        metrics = dict(history[-1]) if history else {}
        metrics["best_val_loss"] = self.trainer.best_val_loss
        return Checkpoint(
            config=self.config,
            vocab=self.vocab,
            model_state=self.model.state_dict(),
            train_names=self.train_names,
            val_names=self.val_names,
            step=self.trainer.step,
            epoch=int(self.trainer.epoch),
            metrics=metrics,
            trainer_state=self.trainer.state_dict(),
            data_path=str(self.data_path),
            device=str(self.device),
            run_id=self.run_id,
        )


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


def _claim(run_dir: Path, step: int):
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


def _check_same_run(run_dir: Path, source: Path, checkpoint: Checkpoint) -> None:
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
