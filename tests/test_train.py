import math
from dataclasses import replace

import pytest
import torch
from helpers import NAMES, tiny_config
from torch import nn

from dinogen.config import ModelConfig, TrainConfig
from dinogen.data import BOUNDARY, IGNORE_INDEX, EncodedNames, Vocab
from dinogen.model import CharRNN
from dinogen.run import Run
from dinogen.train import LRSchedule, Trainer, TrainingDiverged, mean_loss, resolve_batch_size


def test_tiny_training_lowers_the_loss(names_file, tmp_path):
    run = Run(tiny_config(names_file, max_steps=60, eval_every=20), tmp_path)
    before = mean_loss(run.model, run.trainer.train_set)
    evaluations = []
    run.trainer.fit(on_evaluation=evaluations.append)
    assert [e.step for e in evaluations] == [20, 40, 60]
    assert mean_loss(run.model, run.trainer.train_set) < before - 0.3
    assert evaluations[-1].val_loss is not None and evaluations[-1].grad_norm > 0


def test_mean_loss_equals_per_character_mean():
    vocab = Vocab.from_names(NAMES)
    model = CharRNN(len(vocab), ModelConfig(hidden_size=8, embedding_dim=4)).eval()
    data = EncodedNames(NAMES, vocab)
    losses = []
    for name in NAMES:
        one = EncodedNames([name], vocab)
        logits, _ = model(one.inputs)
        losses.append(
            nn.functional.cross_entropy(logits[0], one.targets[0], ignore_index=IGNORE_INDEX, reduction="none")
        )
    expected = torch.cat(losses).mean().item()
    assert abs(mean_loss(model, data, batch_size=7) - expected) < 1e-5


def test_budget_is_the_first_limit_reached():
    data = EncodedNames(NAMES, Vocab.from_names(NAMES))
    model = CharRNN(len(Vocab.from_names(NAMES)), ModelConfig(hidden_size=4, embedding_dim=2))
    steps_per_epoch = -(-len(NAMES) // 8)
    assert Trainer(model, TrainConfig(epochs=2, batch_size=8), data, None).total_steps == 2 * steps_per_epoch
    assert Trainer(model, TrainConfig(epochs=2, max_steps=3, batch_size=8), data, None).total_steps == 3
    assert Trainer(model, TrainConfig(epochs=None, max_steps=50, batch_size=8), data, None).total_steps == 50


def test_auto_batch_is_the_base_on_a_cpu_and_the_gpu_batch_on_a_gpu_with_the_lr_scaled():
    auto = TrainConfig(batch_size="auto", base_batch_size=64, gpu_batch_size=256, lr=0.003)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # a device name needs no GPU: nothing is allocated
    assert resolve_batch_size(auto, cpu, 10_000) == replace(auto, batch_size=64)

    chosen = resolve_batch_size(auto, gpu, 10_000)
    assert chosen.batch_size == 256 and chosen.lr == pytest.approx(0.003 * 2)  # sqrt(256 / 64)
    assert chosen.base_batch_size == 64 and chosen.gpu_batch_size == 256
    assert resolve_batch_size(auto, gpu, 100).batch_size == 100  # no larger than the names there are
    assert resolve_batch_size(auto, gpu, 10).batch_size == 64  # nor smaller than the base
    assert resolve_batch_size(replace(auto, lr=9.0), gpu, 10_000).lr == 10.0  # the largest lr a config allows

    given = TrainConfig(batch_size=100, lr=0.003)  # a number is used as it is, on any device
    assert resolve_batch_size(given, gpu, 10_000) == given


def test_the_trainer_trains_with_the_batch_auto_chose(names_file, tmp_path):
    config = tiny_config(names_file)
    config.train.batch_size, config.train.base_batch_size = "auto", 5
    run = Run(config, tmp_path / "run")
    assert run.trainer.config.batch_size == run.config.train.batch_size == 5
    assert run.trainer.steps_per_epoch == -(-len(run.train_names) // 5)
    # The run records the number, so a resume (on any device) replays the same batches.
    run.prepare_dir()
    run.fit()
    assert "batch_size: 5\n" in (tmp_path / "run" / "config.yaml").read_text()
    assert Run.resume(tmp_path / "run").trainer.config.batch_size == 5


def test_an_ensemble_trains_each_member_on_its_own_loss_and_samples_their_average(names_file, tmp_path):
    from dinogen.sample import Generator

    config = tiny_config(names_file, max_steps=40)
    config.model.ensemble = 2
    run = Run(config, tmp_path / "run")
    first, second = run.model.members
    assert not torch.equal(first.embedding.weight, second.embedding.weight)  # each starts from its own weights
    inputs, targets = run.trainer.train_set.batch(torch.arange(8))

    def own_loss(member):
        logits, _ = member(inputs)
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)

    before = [own_loss(member).item() for member in run.model.members]
    summed, _ = run.trainer._train_step(inputs, targets, scale=0.0)  # scale 0: no gradient (weight decay only)
    chars = int((targets != IGNORE_INDEX).sum())
    assert summed.item() / chars == pytest.approx(sum(before) / 2, rel=1e-5)  # the members' mean loss

    # Each member gets its own loss's gradient, clipped on its own: both end at the clip's norm.
    run.trainer.config = replace(run.trainer.config, grad_clip=1e-3)
    _, largest = run.trainer._train_step(inputs, targets, scale=1 / chars)
    norms = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in m.parameters()])) for m in run.model.members]
    assert [norm.item() for norm in norms] == pytest.approx([1e-3, 1e-3], rel=1e-4) and largest > 1e-3
    run.trainer.config = replace(run.trainer.config, grad_clip=1.0)

    run.prepare_dir()
    run.fit()
    assert all(own_loss(member).item() < loss - 0.3 for member, loss in zip(run.model.members, before, strict=True))
    generator = Generator.from_checkpoint(tmp_path / "run")
    name = generator.sample(1, seed=0)[0]
    tokens = torch.tensor([[BOUNDARY, *generator.vocab.encode(name)]])
    log_probs = torch.stack([m.eval()(tokens)[0].log_softmax(-1) for m in generator.model.members]).exp().mean(0).log()
    expected = sum(log_probs[0, t, token].item() for t, token in enumerate([*generator.vocab.encode(name), BOUNDARY]))
    assert generator.score([name])[0].log_prob == pytest.approx(expected, abs=1e-4)


def test_same_seed_same_losses(names_file, tmp_path):
    def losses(seed):
        run = Run(tiny_config(names_file, seed=seed), tmp_path)
        evaluations = []
        run.trainer.fit(on_evaluation=evaluations.append)
        return [(e.train_loss, e.val_loss) for e in evaluations]

    assert losses(0) == losses(0)
    assert losses(0) != losses(1)


def test_run_writes_its_directory(names_file, tmp_path):
    run = Run(tiny_config(names_file), tmp_path / "run")
    run.prepare_dir()
    run.fit()
    files = {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", ".lock"}
    assert {p.name for p in (tmp_path / "run").iterdir()} == files
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_early_stopping_stops_and_keeps_the_best(names_file, tmp_path):
    # A huge min_delta means no evaluation after the first counts as an improvement.
    run = Run(tiny_config(names_file, max_steps=200, eval_every=5, patience=3, min_delta=10.0), tmp_path)
    run.prepare_dir()
    reason = run.fit()
    assert reason == "no improvement in 3 evaluations"
    assert run.trainer.step == 20  # the first evaluation at step 5, then three without improvement
    assert (tmp_path / "best.pt").exists()


def test_cosine_schedule_with_warmup():
    config = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=4, final_lr_fraction=0.1)
    schedule = LRSchedule(config)
    assert [schedule.factor(step, 0.0) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule.factor(10, 0.0) == 1.0
    assert schedule.factor(10, 0.5) == pytest.approx(0.55)
    assert schedule.factor(10, 1.0) == pytest.approx(0.1)


def test_plateau_schedule_halves_after_patience():
    schedule = LRSchedule(TrainConfig(lr_schedule="plateau", plateau_patience=2))
    for loss in [2.0, 1.9, 1.95, 1.95]:
        schedule.observe(loss)
    assert schedule.factor(100, 0.5) == 0.5
    schedule.observe(1.8)
    assert schedule.factor(100, 0.5) == 0.5  # an improvement resets the count but keeps the rate
    restored = LRSchedule(TrainConfig(lr_schedule="plateau", plateau_patience=2))
    restored.load_state_dict(schedule.state_dict())
    assert restored.factor(100, 0.5) == 0.5


def test_trainer_applies_the_schedule(names_file, tmp_path):
    run = Run(tiny_config(names_file, max_steps=20, eval_every=10, lr=0.01, lr_schedule="cosine"), tmp_path)
    evaluations = []
    run.trainer.fit(on_evaluation=evaluations.append)
    assert evaluations[0].lr < 0.01 and evaluations[-1].lr == pytest.approx(
        0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))
    )


def test_max_time_is_honoured(names_file, tmp_path):
    run = Run(tiny_config(names_file, max_steps=None, epochs=None, max_time=0.5, eval_every=1000), tmp_path)
    evaluations = []
    assert run.trainer.fit(on_evaluation=evaluations.append) == "budget spent"
    assert run.trainer.elapsed >= 0.5 and run.trainer.step > 1
    assert len(evaluations) == 1 and evaluations[0].step == run.trainer.step


def test_a_diverging_run_stops_with_a_clear_error(names_file, tmp_path):
    run = Run(tiny_config(names_file, eval_every=5), tmp_path)
    run.prepare_dir()
    with torch.no_grad():
        run.model.head.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        run.fit()
    assert not (tmp_path / "last.pt").exists()


def test_metrics_report_bits_and_perplexity(names_file, tmp_path):
    run = Run(tiny_config(names_file), tmp_path)
    evaluations = []
    run.trainer.fit(on_evaluation=evaluations.append)
    last = evaluations[-1]
    assert last.val_bpc == pytest.approx(last.val_loss / math.log(2))
    assert last.val_perplexity == pytest.approx(math.exp(last.val_loss))


def test_auto_precision_lstm_trains_and_keeps_fp32_weights(names_file, tmp_path):
    """`auto` computes in bf16 on a CPU with AMX (fp32 elsewhere); the weights and the optimizer stay fp32."""
    config = tiny_config(names_file, max_steps=60, eval_every=20, precision="auto")
    config.model.cell = "lstm"
    run = Run(config, tmp_path)
    assert run.trainer.precision in ("bf16", "fp32")
    before = mean_loss(run.model, run.trainer.train_set)
    run.trainer.fit()
    assert mean_loss(run.model, run.trainer.train_set) < before - 0.3
    assert all(p.dtype == torch.float32 for p in run.model.parameters())
    assert run.trainer.optimizer.defaults["fused"]  # one fused AdamW kernel on CPU and CUDA
