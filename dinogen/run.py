"""A training run on disk: reads the data, builds the model, trains, and writes the run directory.

A run directory holds config.yaml (the resolved config), metrics.jsonl (one line per evaluation),
last.pt (the latest checkpoint) and best.pt (the one with the lowest validation loss).
"""

import json
from collections.abc import Callable
from pathlib import Path

import torch

from dinogen.checkpoint import Checkpoint, save_checkpoint
from dinogen.config import Config
from dinogen.data import EncodedNames, Vocab, read_names, resolve_names_path, split_names
from dinogen.device import resolve_device
from dinogen.errors import DinogenError
from dinogen.model import CharRNN
from dinogen.train import Evaluation, Trainer

RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt")


class Run:
    """Data, vocabulary, model and trainer for one config, ready to train into `run_dir`."""

    def __init__(self, config: Config, run_dir: str | Path):
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = resolve_device(config.train.device)
        self.data_path = resolve_names_path(config.data.path)
        names = read_names(self.data_path, config.data.lowercase, config.data.encoding)
        if config.data.val_path:
            val_path = resolve_names_path(config.data.val_path)
            self.train_names = names
            self.val_names = read_names(val_path, config.data.lowercase, config.data.encoding)
        else:
            self.train_names, self.val_names = split_names(names, config.data.val_fraction, config.train.seed)
        self.vocab = Vocab.from_names(self.train_names + self.val_names)
        torch.manual_seed(config.train.seed)  # initial weights and dropout follow the seed
        self.model = CharRNN(len(self.vocab), config.model).to(self.device)
        self.trainer = Trainer(
            self.model,
            config.train,
            EncodedNames(self.train_names, self.vocab, self.device),
            EncodedNames(self.val_names, self.vocab, self.device) if self.val_names else None,
        )

    def prepare_dir(self, overwrite: bool = False) -> None:
        """Create the run directory; refuse to replace an earlier run unless `overwrite`."""
        existing = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if existing and not overwrite:
            raise DinogenError(
                f"{self.run_dir} already holds a run ({', '.join(existing)}); "
                "pass --overwrite to replace it or choose another --out directory"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
            (self.run_dir / "metrics.jsonl").write_text("", encoding="utf-8")
        except OSError as err:
            raise DinogenError(f"cannot write to run directory {self.run_dir}: {err.strerror}") from None
        for name in ("best.pt", "last.pt"):
            (self.run_dir / name).unlink(missing_ok=True)

    def fit(
        self,
        on_step: Callable[[int], None] | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> None:
        """Train, appending metrics and saving last.pt (and best.pt when it improves) at each evaluation."""

        def record(evaluation: Evaluation) -> None:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as file:
                file.write(json.dumps(evaluation.to_dict()) + "\n")
            checkpoint = self.checkpoint()
            save_checkpoint(checkpoint, self.run_dir / "last.pt")
            if evaluation.is_best:
                save_checkpoint(checkpoint, self.run_dir / "best.pt")
            if on_evaluation:
                on_evaluation(evaluation)

        self.trainer.fit(on_step, record)

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
