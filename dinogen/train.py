"""The training loop. Quiet: it reports through callbacks and knows nothing of files or the CLI."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from dinogen.config import TrainConfig
from dinogen.data import IGNORE_INDEX, EncodedNames
from dinogen.model import CharRNN


@dataclass
class Evaluation:
    """What one validation pass found; one line of metrics.jsonl."""

    step: int
    epoch: float  # epochs completed, fractional mid-epoch
    train_loss: float  # mean loss per character since the previous evaluation (nats)
    val_loss: float | None  # mean loss per character on the validation names (nats), None without them
    lr: float
    grad_norm: float  # global gradient norm of the last step, before clipping
    chars_per_sec: float  # training characters (end tokens included) per second since the previous evaluation
    elapsed: float  # seconds since training started
    is_best: bool  # lowest validation loss so far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_loss(model: CharRNN, data: EncodedNames, batch_size: int = 512) -> float:
    """Mean negative log-likelihood per character (end tokens included, padding excluded), in nats."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=data.inputs.device)
    with torch.inference_mode():
        for inputs, targets in data.batches(batch_size):
            logits, _ = model(inputs)
            total += nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            )
    model.train(was_training)
    return total.item() / data.num_chars


class Trainer:
    """AdamW on cross-entropy over next characters, clipping the global gradient norm."""

    def __init__(self, model: CharRNN, config: TrainConfig, train_set: EncodedNames, val_set: EncodedNames | None):
        self.model = model
        self.config = config
        self.train_set = train_set
        self.val_set = val_set if val_set is not None and len(val_set) else None
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = train_set.num_batches(config.batch_size)
        self.step = 0
        self.best_val_loss = math.inf
        self.history: list[dict[str, Any]] = []

    @property
    def total_steps(self) -> int:
        """Steps until the first of the epoch and step budgets runs out."""
        budgets = [self.config.max_steps]
        if self.config.epochs is not None:
            budgets.append(self.config.epochs * self.steps_per_epoch)
        return min(b for b in budgets if b is not None)

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def fit(
        self,
        on_step: Callable[[int], None] | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> None:
        """Train until the budget is spent, validating every `eval_every` steps and at the end."""
        self.model.train()
        device = self.train_set.inputs.device
        loss_sum = torch.zeros((), device=device)  # summed on the device: no host sync per step
        chars = 0
        grad_norm = torch.zeros((), device=device)
        start = last_eval = time.perf_counter()
        while self.step < self.total_steps:
            epoch, position = divmod(self.step, self.steps_per_epoch)
            # The data order of each epoch depends only on the seed and the epoch: resume can replay it.
            for rows in self.train_set.batch_plan(self.config.batch_size, seed=self.config.seed + epoch)[position:]:
                inputs, targets = self.train_set.batch(rows)
                loss, grad_norm = self._train_step(inputs, targets)
                n_chars = int(self.train_set.lengths[rows].sum())  # lengths live on the CPU: no device sync
                loss_sum += loss * n_chars
                chars += n_chars
                self.step += 1
                if on_step:
                    on_step(self.step)
                if self.step % self.config.eval_every == 0 or self.step >= self.total_steps:
                    now = time.perf_counter()
                    evaluation = self._evaluate(loss_sum.item() / max(chars, 1), grad_norm, chars / (now - last_eval), now - start)
                    if on_evaluation:
                        on_evaluation(evaluation)
                    loss_sum.zero_()
                    chars = 0
                    last_eval = time.perf_counter()
                if self.step >= self.total_steps:
                    break

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = self.model(inputs)  # (B, T, V)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # backpropagation through time over the whole names
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        return loss.detach(), grad_norm

    def _evaluate(self, train_loss: float, grad_norm: torch.Tensor, chars_per_sec: float, elapsed: float) -> Evaluation:
        val_loss = mean_loss(self.model, self.val_set) if self.val_set is not None else None
        # Without validation names, every evaluation counts as the best so far.
        is_best = val_loss is None or val_loss < self.best_val_loss
        if val_loss is not None and is_best:
            self.best_val_loss = val_loss
        evaluation = Evaluation(
            step=self.step,
            epoch=round(self.epoch, 4),
            train_loss=train_loss,
            val_loss=val_loss,
            lr=self.optimizer.param_groups[0]["lr"],
            grad_norm=float(grad_norm),
            chars_per_sec=chars_per_sec,
            elapsed=elapsed,
            is_best=is_best,
        )
        self.history.append(evaluation.to_dict())
        return evaluation

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs beyond the model weights: optimizer, counters and random state."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "history": self.history,
            "cpu_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state
