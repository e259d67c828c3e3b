"""A training run: starts or resumes, reads the data, builds the model, trains, and writes its run directory.

What the directory holds, and its lock, are in `rundir.py`. In a world of several processes, rank 0 alone writes.
"""

import contextlib
import json
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from dinogen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dinogen.config import Config, apply_overrides, find_config, load_config
from dinogen.cpu import use_the_free_cores
from dinogen.data import EncodedNames, Vocab, read_labelled_names, resolve_names_path, split_labelled_names, split_names
from dinogen.device import resolve_device
from dinogen.distributed import SINGLE_PROCESS, World, joined_world
from dinogen.errors import ConfigError, DinogenError, OptionError, shorten
from dinogen.formats import plural
from dinogen.labels import label_counts, label_indices
from dinogen.model import build_model
from dinogen.output import append_line, output_file, remove_unfinished_writes
from dinogen.rundir import RUN_FILES, RUNS_ROOT, check_same_run, claim, lock_run_dir, new_run_dir
from dinogen.train import Evaluation, Trainer

log = logging.getLogger(__name__)

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
        self._world_stack = contextlib.ExitStack()  # the process group `start` joined, left by `close`
        self.signal = 0  # the signal that interrupted `fit`, if one did
        # The labels of labelled names (None: unlabelled), and each training and validation name's label index.
        self.labels: list[str] | None = None
        self.train_label_ids: list[int] | None = None
        self.val_label_ids: list[int] | None = None
        if resume_from is not None:
            self.data_path = Path(resume_from.data_path)
            self.train_names, self.val_names = resume_from.train_names, resume_from.val_names
            self.vocab = resume_from.vocab
            self.labels = resume_from.labels
            self.train_label_ids, self.val_label_ids = resume_from.train_label_ids, resume_from.val_label_ids
        else:
            self._read_data()
            self.vocab = Vocab.from_names(self.train_names + self.val_names)
        torch.manual_seed(config.train.seed)  # initial weights and dropout follow the seed
        self.model = build_model(len(self.vocab), config.model, len(self.labels or ())).to(self.device)
        self.trainer = Trainer(
            self.model,
            config.train,
            EncodedNames(self.train_names, self.vocab, self.device, self.train_label_ids),
            EncodedNames(self.val_names, self.vocab, self.device, self.val_label_ids) if self.val_names else None,
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
    def start(
        cls,
        config: str | Path | Config | None = None,
        run_dir: str | Path | None = None,
        *,
        overrides: Iterable[str] = (),
        resume: str | Path | None = None,
        overwrite: bool = False,
        dry_run: bool = False,
        runs_root: Path = RUNS_ROOT,
    ) -> "Run":
        """A run ready to `fit`, started as `dinogen train` starts one; `close` it (or use it in a `with`) after.

        A new run reads `config` (a YAML file, a bundled config's name, default "default", or a Config) with
        `overrides` ("section.key=value") and trains into `run_dir`, by default the first free one of
        runs_root/<config name>, -2, -3, ...; the directory is created and locked (a dry run only checks it).
        `resume` continues the run at that path (a run directory or its last.pt) with its saved config; only
        budget keys may be overridden. Under torchrun the process group is joined and rank 0 writes. Training
        uses as many threads as other programs leave cores idle, unless OMP_NUM_THREADS says otherwise.
        """
        _refuse_resume_with(resume, config, run_dir, overwrite)
        use_the_free_cores()
        with contextlib.ExitStack() as stack:
            world = stack.enter_context(joined_world())
            if resume is not None:
                run = cls.resume(resume, overrides, world, write=not dry_run)
            else:
                run = cls._new(config, run_dir, overrides, world, overwrite, dry_run, runs_root)
            run._world_stack = stack.pop_all()  # the process group stays joined until the run is closed
        return run

    @classmethod
    def _new(cls, config, run_dir, overrides, world: World, overwrite: bool, dry_run: bool, runs_root: Path) -> "Run":
        if isinstance(config, Config):
            config, name = Config.from_dict(apply_overrides(config.to_dict(), overrides)), "run"
        else:
            path = find_config("default" if config is None else config)
            config, name = load_config(path, overrides), path.stem
        # every rank must train into the directory rank 0 chose (a numbered one appears once rank 0 writes it)
        run = cls(config, world.main_choice(run_dir or new_run_dir(runs_root, name)), world=world)
        if dry_run:
            run.check_dir(overwrite)
        else:
            world.together(lambda: run.prepare_dir(overwrite))
        return run

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the run directory and leave the process group `start` joined."""
        self.release()
        self._world_stack.close()

    @property
    def finished(self) -> bool:
        """A resumed run that has already spent its step budget."""
        total = self.trainer.total_steps
        return total is not None and self.trainer.step >= total

    def describe(self, action: str) -> str:
        """One line on what is about to train: model, data, budget, device and directory."""
        trainer, model = self.trainer, self.config.model
        budget = f"{trainer.total_steps:,} steps" if trainer.total_steps else f"{self.config.train.max_time:g} s"
        processes = f" x {self.world.size} processes" if self.world.size > 1 else ""
        ensemble = f"an ensemble of {model.ensemble} " if model.ensemble > 1 else ""
        precision = f" in {trainer.precision}" if trainer.precision != "fp32" else ""
        labels = f" of {plural(len(self.labels), 'label')}" if self.labels else ""
        return (
            f"{action} {ensemble}{model.cell} ({self.model.num_parameters():,} parameters) on "
            f"{plural(len(self.train_names), 'name')}{labels} from {self.data_path}, {len(self.val_names):,} held out; "
            f"{plural(trainer.steps_per_epoch, 'batch', 'batches')} of {trainer.config.batch_size:,} per epoch, "
            f"{budget}; device {self.device}{precision}{processes}; run directory {self.run_dir}"
        )

    @classmethod
    def resume(
        cls, path: str | Path, overrides: Iterable[str] = (), world: World = SINGLE_PROCESS, write: bool = True
    ) -> "Run":
        """Continue the run whose last.pt is at `path` (a run directory or a checkpoint file); every rank loads it.

        With `write` (training, not a dry run), rank 0 locks the directory and cuts metrics.jsonl back to last.pt.
        """
        checkpoint, config, run_dir = _resume_point(path, overrides)
        writes = write and world.is_main  # rank 0 alone writes the directory
        lock = world.together(lambda: claim(run_dir, checkpoint.step) if writes else None)
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
        lowercase = data.lowercase is True  # auto reads the names as they are
        names, labels = read_labelled_names(self.data_path, lowercase, data.encoding, data.max_length)
        if data.val_path:
            val_path = resolve_names_path(data.val_path)
            val_names, val_labels = read_labelled_names(val_path, lowercase, data.encoding, data.max_length)
            _refuse_mixed_labelling(self.data_path, labels, val_path, val_labels)
            self.train_names, self.val_names = names, val_names
            if labels is not None:
                self.labels = list(dict.fromkeys(labels))
                self.train_label_ids = label_indices(labels, self.labels, self.data_path)
                self.val_label_ids = label_indices(val_labels, self.labels, val_path)
        elif labels is None:
            self.train_names, self.val_names = split_names(names, data.val_fraction, self.config.train.seed)
        else:
            train_rows, val_rows = split_labelled_names(labels, data.val_fraction, self.config.train.seed)
            self.labels = list(dict.fromkeys(labels))
            ids = label_indices(labels, self.labels, self.data_path)
            self.train_names, self.val_names = [names[row] for row in train_rows], [names[row] for row in val_rows]
            self.train_label_ids, self.val_label_ids = [ids[row] for row in train_rows], [ids[row] for row in val_rows]

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
        handle_signals: bool = True,
    ) -> str:
        """Train, appending metrics and saving last.pt (and best.pt when it improves) at each evaluation.

        With `handle_signals` (in the main thread), Ctrl-C and SIGTERM ask for a stop after the current step,
        as `should_stop()` turning true does, and a second Ctrl-C stops at once. An interrupted run saves
        last.pt and returns "interrupted", with `self.signal` the signal that stopped it (under torchrun, a
        process whose partner was signalled stops as SIGTERM would stop it). Rank 0 alone writes.
        """
        received: list[int] = []

        def record(evaluation: Evaluation) -> None:
            if self.world.is_main:
                self._record(evaluation)
            if on_evaluation:
                on_evaluation(evaluation)

        with _stop_requests(received) if handle_signals else contextlib.nullcontext():
            try:
                reason = self.trainer.fit(on_step, record, lambda: bool(received) or should_stop())
                if reason == "interrupted" and self.world.is_main:
                    save_checkpoint(self.checkpoint(), self.run_dir / "last.pt")
            finally:
                self.release()
        if reason == "interrupted" and not received and not should_stop():
            received.append(signal.SIGTERM)  # another rank was signalled: stop as torchrun's SIGTERM would
        self.signal = received[0] if received else 0
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
            labels=self.labels,
            label_counts=label_counts(self.train_label_ids, len(self.labels)) if self.labels else None,
            train_label_ids=self.train_label_ids,
            val_label_ids=self.val_label_ids,
        )


def _refuse_mixed_labelling(path: Path, labels: list[str] | None, val_path: Path, val_labels: list[str] | None):
    """Training and validation names are both labelled, or both not."""
    if (labels is None) != (val_labels is None):
        labelled, unlabelled = (path, val_path) if labels is not None else (val_path, path)
        raise DinogenError(
            f"{shorten(str(labelled))} is labelled (a name, a tab and a label a line, or a folder) but "
            f"{shorten(str(unlabelled))} is not; give data.path and data.val_path alike"
        )


def planned_config(
    config: str | Path | Config | None = None, overrides: Iterable[str] = (), resume: str | Path | None = None
) -> Config:
    """The config `Run.start` would train with, as written (a batch of auto stays auto): what --print-config shows."""
    _refuse_resume_with(resume, config, None, False)
    if resume is not None:
        return _resume_point(resume, overrides)[1]
    if isinstance(config, Config):
        return Config.from_dict(apply_overrides(config.to_dict(), overrides))
    return load_config("default" if config is None else config, overrides)


def _refuse_resume_with(resume, config, run_dir, overwrite: bool) -> None:
    if resume is not None and (config is not None or run_dir is not None or overwrite):
        raise OptionError(
            "{0} continues a run with its saved config and directory; drop {1}/{2}/{3}",
            *("resume", "config", "run_dir", "overwrite"),
        )


def _resume_point(path: str | Path, overrides: Iterable[str]) -> tuple[Checkpoint, Config, Path]:
    """The checkpoint a resume goes on from, its config with the (budget) overrides, and its run directory."""
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
    check_same_run(run_dir, source, checkpoint)
    return checkpoint, config, run_dir


@contextlib.contextmanager
def _stop_requests(received: list[int]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM add their number to `received` instead of stopping the process at once.

    Only the main thread may handle signals; elsewhere nothing changes. A second Ctrl-C raises KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
