"""The training loop. Quiet: it reports through callbacks and knows nothing of files or the CLI."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from dinogen.config import TrainConfig
from dinogen.data import IGNORE_INDEX, EncodedNames
from dinogen.device import resolve_precision
from dinogen.distributed import SINGLE_PROCESS, World
from dinogen.errors import DinogenError
from dinogen.limits import MAX_LR
from dinogen.model import CharRNN, Ensemble


@dataclass
class Evaluation:
    """What one validation pass found; one line of metrics.jsonl."""

    step: int
    epoch: float  # epochs completed, fractional mid-epoch
    train_loss: float  # mean loss per character since the previous evaluation (nats)
    val_loss: float | None  # mean loss per character on the validation names (nats), None without them
    val_bpc: float | None  # the same in bits per character
    val_perplexity: float | None  # exp(val_loss): the model is as unsure as a fair die with this many sides
    lr: float
    grad_norm: float  # global gradient norm of the last step, before clipping: watch it explode or vanish
    chars_per_sec: float  # training characters (end tokens included) per second since the previous evaluation
    elapsed: float  # seconds of training so far
    is_best: bool  # lowest validation loss so far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_batch_size(config: TrainConfig, device: torch.device, num_names: int) -> TrainConfig:
    """`config` with `batch_size: auto` made a number for `device`, and `lr` scaled to match.

    On a CPU, auto is `base_batch_size`, the batch `lr` is tuned for. A GPU takes a larger batch in about the
    time of a small one, so there auto is `gpu_batch_size` (no more than the `num_names` there are, no less than
    the base), and `lr` is multiplied by sqrt(batch / base_batch_size): a batch k times larger has a gradient
    with 1/sqrt(k) of the noise, which Adam can follow with a step sqrt(k) times longer. A number is used as is.
    """
    if config.batch_size != "auto":
        return config
    batch = config.base_batch_size
    if device.type != "cpu":
        batch = max(batch, min(config.gpu_batch_size, num_names))
    return replace(config, batch_size=batch, lr=min(MAX_LR, config.lr * math.sqrt(batch / config.base_batch_size)))


class TrainingDiverged(DinogenError):
    """The loss became NaN or infinite."""


def mean_loss(model: CharRNN | Ensemble, data: EncodedNames, batch_size: int = 512) -> float:
    """Mean negative log-likelihood per character (end tokens included, padding excluded), in nats."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=data.inputs.device)
    with torch.inference_mode():
        for rows in data.batch_plan(batch_size):
            inputs, targets = data.batch(rows)
            logits, _ = model(inputs, labels=data.batch_labels(rows))
            total += nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            )
    model.train(was_training)
    return total.item() / data.num_chars


class LRSchedule:
    """Learning-rate factor: linear warm-up, then constant, cosine decay, or halving on a plateau.

    Cosine follows the fraction of the budget used, by steps or by time, whichever is further along,
    so a run limited by train.max_time still decays fully (torch's schedulers only count steps).
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.plateau_scale = 1.0  # plateau: product of the halvings so far
        self.plateau_best = math.inf
        self.plateau_waiting = 0

    def factor(self, step: int, progress: float) -> float:
        if step < self.config.warmup_steps:
            return (step + 1) / self.config.warmup_steps
        if self.config.lr_schedule == "cosine":
            final = self.config.final_lr_fraction
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if self.config.lr_schedule == "plateau":
            return self.plateau_scale
        return 1.0

    def observe(self, val_loss: float | None) -> None:
        """Plateau: halve the rate after `plateau_patience` evaluations without a new best."""
        if self.config.lr_schedule != "plateau" or val_loss is None:
            return
        if val_loss < self.plateau_best:
            self.plateau_best, self.plateau_waiting = val_loss, 0
            return
        self.plateau_waiting += 1
        if self.plateau_waiting >= self.config.plateau_patience:
            self.plateau_scale, self.plateau_waiting = self.plateau_scale / 2, 0

    STATE_KEYS = ("scale", "best", "waiting")  # what state_dict holds, in the checkpoint's trainer_state

    def state_dict(self) -> dict[str, float]:
        return dict(zip(self.STATE_KEYS, (self.plateau_scale, self.plateau_best, self.plateau_waiting), strict=True))

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_scale, self.plateau_best, self.plateau_waiting = (state[key] for key in self.STATE_KEYS)


class Trainer:
    """AdamW on cross-entropy over next characters, with clipping, a schedule and early stopping.

    In a `world` of several processes, each takes its shard of every batch and they train one model together.
    """

    COUNTERS = ("step", "elapsed", "best_val_loss", "evaluations_since_improvement", "history")  # saved as they are
    STATE_FIELDS = ("optimizer", "schedule", "scaler", *COUNTERS, "cpu_rng")  # state_dict's keys (+ cuda_rng)

    def __init__(
        self,
        model: CharRNN | Ensemble,
        config: TrainConfig,
        train_set: EncodedNames,
        val_set: EncodedNames | None,
        world: World = SINGLE_PROCESS,
    ):
        self.model = model
        self.world = world
        device = train_set.inputs.device
        self.config = config = resolve_batch_size(config, device, len(train_set))
        self.train_set = train_set
        self.val_set = val_set if val_set is not None and len(val_set) else None
        # The fused kernel updates all parameters in one pass: about half the optimizer time on a CPU.
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda")
        )
        self.precision = resolve_precision(config.precision, device)
        self.autocast = torch.autocast(device.type, dtype=_DTYPES[self.precision], enabled=self.precision != "fp32")
        # fp16 gradients can underflow to zero; the scaler multiplies the loss up and the gradients back down.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.clip_groups = list(model.members) if isinstance(model, Ensemble) else [model]  # one per member
        wrapped = world.wrap(model)
        self.forward = torch.compile(wrapped, dynamic=True) if config.compile else wrapped
        self.schedule = LRSchedule(config)
        self.steps_per_epoch = train_set.num_batches(config.batch_size)
        self.step = 0
        self.elapsed = 0.0  # seconds trained, across resumes
        self.best_val_loss = math.inf
        self.evaluations_since_improvement = 0
        self.history: list[dict[str, Any]] = []

    @property
    def total_steps(self) -> int | None:
        """Steps until the first of the epoch and step budgets runs out (None: only time limits the run)."""
        budgets = [self.config.max_steps]
        if self.config.epochs is not None:
            budgets.append(self.config.epochs * self.steps_per_epoch)
        return min((b for b in budgets if b is not None), default=None)

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def progress(self, elapsed: float) -> float:
        """Fraction of the budget used: steps or time, whichever is further along."""
        fractions = [0.0]
        if self.total_steps is not None:
            fractions.append(self.step / self.total_steps)
        if self.config.max_time is not None:
            fractions.append(elapsed / self.config.max_time)
        return max(fractions)

    def fit(
        self,
        on_step: Callable[[int], None] | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """Train until a budget is spent, patience runs out or `should_stop()`; return why it stopped.

        `should_stop` is asked between steps, so a stop never leaves a half-applied update; in a world of
        several processes, a stop asked of any of them stops all after the same step.
        """
        self.model.train()
        self.world.draw_own_randomness(self.config.seed, self.step)
        device = self.train_set.inputs.device
        loss_sum = torch.zeros((), device=device)  # summed on the device: no host sync per step
        chars = 0
        start = time.perf_counter() - self.elapsed
        last_eval = time.perf_counter()
        while not self._budget_spent(self.elapsed):
            epoch, position = divmod(self.step, self.steps_per_epoch)
            # The data order of each epoch depends only on the seed and the epoch: resume can replay it,
            # and every rank of a world follows the same plan.
            for rows in self.train_set.batch_plan(self.config.batch_size, seed=self.config.seed + epoch)[position:]:
                lr = self.config.lr * self.schedule.factor(self.step, self.progress(self.elapsed))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                n_chars = int(self.train_set.lengths[rows].sum())  # the whole batch's; on the CPU: no device sync
                mine, weight = self.world.shard(rows)
                # Each rank's loss is its share of the batch mean, times the world size that DDP's average divides by.
                summed_loss, grad_norm = self._train_step(
                    *self.train_set.batch(mine), scale=weight * self.world.size / n_chars,
                    labels=self.train_set.batch_labels(mine),
                )  # fmt: skip
                loss_sum += summed_loss * weight
                chars += n_chars
                self.step += 1
                self.elapsed = time.perf_counter() - start
                if on_step:
                    on_step(self.step)
                self.elapsed, stop = self.world.agree(self.elapsed, should_stop())
                spent = self._budget_spent(self.elapsed)
                if self.step % self.config.eval_every == 0 or spent:
                    now = time.perf_counter()
                    train_loss = self.world.sum(loss_sum.item()) / max(chars, 1)
                    evaluation = self._evaluate(train_loss, grad_norm, chars / (now - last_eval))
                    if on_evaluation:
                        on_evaluation(evaluation)
                    loss_sum.zero_()
                    chars = 0
                    start += time.perf_counter() - now  # evaluation time does not count against max_time
                    last_eval = time.perf_counter()
                    if self._out_of_patience():
                        return f"no improvement in {self.config.patience} evaluations"
                if stop:
                    return "interrupted"
                if spent:
                    break
        return "budget spent"

    def _budget_spent(self, elapsed: float) -> bool:
        if self.total_steps is not None and self.step >= self.total_steps:
            return True
        return self.config.max_time is not None and elapsed >= self.config.max_time

    def _out_of_patience(self) -> bool:
        return self.config.patience is not None and self.evaluations_since_improvement >= self.config.patience

    def _train_step(
        self, inputs: torch.Tensor, targets: torch.Tensor, scale: float, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on the loss summed over the batch's characters times `scale`; returns that sum and the norm.

        An ensemble's loss is summed over its members too, so each member gets the gradient of its own loss;
        the sum returned is the members' mean, and the norm the largest member's.
        """
        with self.autocast:
            # (B, T, V); an ensemble's members each give theirs: (K, B, T, V); labels (B,) or None
            logits, _ = self.forward(inputs, labels=labels)
            summed_loss = nn.functional.cross_entropy(
                logits.flatten(0, -2).float(),
                targets.expand(logits.shape[:-1]).flatten(),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(summed_loss * scale).backward()  # backpropagation through time over the whole names
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        # An ensemble's members are clipped one by one, so that one member's large gradient never shrinks another's.
        norms = [nn.utils.clip_grad_norm_(group.parameters(), max_norm) for group in self.clip_groups]
        grad_norm = norms[0] if len(norms) == 1 else torch.stack(norms).max()
        self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
        self.scaler.update()
        return summed_loss.detach() / len(self.clip_groups), grad_norm  # an ensemble: the members' mean loss

    def _evaluate(self, train_loss: float, grad_norm: torch.Tensor, chars_per_sec: float) -> Evaluation:
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training diverged: the loss became {train_loss} by step {self.step}; lower train.lr "
                "or set train.grad_clip (the last good checkpoint is kept)"
            )
        val_loss = None
        if self.val_set is not None:
            # Rank 0 measures it for all, so every rank takes the same patience and schedule decisions.
            val_loss = self.world.from_main(mean_loss(self.model, self.val_set) if self.world.is_main else 0.0)
        # Without validation names, every evaluation counts as the best so far.
        is_best = val_loss is None or val_loss < self.best_val_loss
        if val_loss is not None:
            if val_loss < self.best_val_loss - self.config.min_delta:
                self.evaluations_since_improvement = 0
            else:
                self.evaluations_since_improvement += 1
            self.best_val_loss = min(self.best_val_loss, val_loss)
        self.schedule.observe(val_loss)
        evaluation = Evaluation(
            step=self.step,
            epoch=round(self.epoch, 4),
            train_loss=train_loss,
            val_loss=val_loss,
            val_bpc=None if val_loss is None else val_loss / math.log(2),
            val_perplexity=None if val_loss is None else math.exp(val_loss),
            lr=self.optimizer.param_groups[0]["lr"],
            grad_norm=float(grad_norm),
            chars_per_sec=chars_per_sec,
            elapsed=self.elapsed,
            is_best=is_best,
        )
        self.history.append(evaluation.to_dict())
        return evaluation

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs beyond the model weights: optimizer, schedule, counters and random state."""
        parts = {"optimizer": self.optimizer, "schedule": self.schedule, "scaler": self.scaler}
        state = {name: parts[name].state_dict() for name in parts}
        state |= {name: getattr(self, name) for name in self.COUNTERS}
        state["cpu_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for name in self.COUNTERS:
            setattr(self, name, state[name])
        self.history = list(self.history)  # the checkpoint's list stays the checkpoint's
        torch.set_rng_state(state["cpu_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
