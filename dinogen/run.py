"""A training run on disk: reads the data, builds the model, trains, and writes the run directory.

A run directory holds config.yaml (the resolved config), metrics.jsonl (one line per evaluation),
last.pt (the latest checkpoint, for resuming) and best.pt (the lowest validation loss, for sampling).
In a world of several processes, rank 0 alone writes it.
"""

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from dinogen.checkpoint import Checkpoint, load_checkpoint, remove_stale_temporaries, save_checkpoint
from dinogen.config import Config, apply_overrides
from dinogen.data import EncodedNames, Vocab, read_names, resolve_names_path, split_names
from dinogen.device import resolve_device
from dinogen.distributed import SINGLE_PROCESS, World
from dinogen.errors import ConfigError, DinogenError
from dinogen.model import CharRNN
from dinogen.train import Evaluation, Trainer

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt")
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
        if resume_from is not None:
            self.data_path = Path(resume_from.data_path)
            self.train_names, self.val_names = resume_from.train_names, resume_from.val_names
            self.vocab = resume_from.vocab
        else:
            self._read_data()
            self.vocab = Vocab.from_names(self.train_names + self.val_names)
        torch.manual_seed(config.train.seed)  # initial weights and dropout follow the seed
        self.model = CharRNN(len(self.vocab), config.model).to(self.device)
        self.trainer = Trainer(
            self.model,
            config.train,
            EncodedNames(self.train_names, self.vocab, self.device),
            EncodedNames(self.val_names, self.vocab, self.device) if self.val_names else None,
            world,
        )
        if resume_from is not None:
            self.model.load_state_dict(resume_from.model_state)
            self.trainer.load_state_dict(resume_from.trainer_state)
        log.debug("vocabulary of %d characters: %r", len(self.vocab.chars), "".join(self.vocab.chars))
        log.debug("config:\n%s", config.to_yaml())

    @classmethod
    def resume(cls, path: str | Path, overrides: Iterable[str] = (), world: World = SINGLE_PROCESS) -> "Run":
        """Continue the run whose last.pt is at `path` (a run directory or a checkpoint file); every rank loads it."""
        path = Path(path)
        source = path / "last.pt" if path.is_dir() else path
        checkpoint = load_checkpoint(source)
        if not checkpoint.trainer_state:
            raise DinogenError(f"{source} holds no training state (optimizer, schedule, random state) to resume from")
        run_dir = path if path.is_dir() else path.parent
        latest = run_dir / "last.pt"
        if path.is_file() and latest.exists() and not latest.samefile(path):
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
        if world.is_main:
            remove_stale_temporaries(run_dir)
        return cls(config, run_dir, resume_from=checkpoint, world=world)

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
        existing = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if existing and not overwrite:
            raise DinogenError(
                f"{self.run_dir} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
                "--overwrite to replace it, or choose another --out directory"
            )

    def prepare_dir(self, overwrite: bool = False) -> None:
        """Create the run directory for a new run (see `check_dir`), with its config.yaml (rank 0 only)."""
        if not self.world.is_main:
            return  # rank 0 may have written it already: checking here would find "an earlier run"
        self.check_dir(overwrite)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.run_dir)
            (self.run_dir / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
            (self.run_dir / "metrics.jsonl").write_text("", encoding="utf-8")
            for name in ("best.pt", "last.pt"):
                (self.run_dir / name).unlink(missing_ok=True)
        except OSError as err:
            raise DinogenError(f"cannot write to run directory {self.run_dir}: {err.strerror}") from None

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

        reason = self.trainer.fit(on_step, record, should_stop)
        if reason == "interrupted" and self.world.is_main:
            save_checkpoint(self.checkpoint(), self.run_dir / "last.pt")
        return reason

    def _record(self, evaluation: Evaluation) -> None:
        """Append the evaluation to metrics.jsonl and save last.pt, and best.pt when it is the best."""
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as file:
            file.write(json.dumps(evaluation.to_dict()) + "\n")
        checkpoint = self.checkpoint()
        save_checkpoint(checkpoint, self.run_dir / "last.pt")
        if evaluation.is_best:
            save_checkpoint(checkpoint, self.run_dir / "best.pt")
        log.debug("step %d: saved last.pt%s", evaluation.step, " and best.pt" if evaluation.is_best else "")

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
        )
