import torch
from torch import nn

from dinogen.config import ModelConfig, TrainConfig
from dinogen.data import IGNORE_INDEX, EncodedNames, Vocab
from dinogen.model import CharRNN
from dinogen.run import Run
from dinogen.train import Trainer, mean_loss

from conftest import NAMES, tiny_config


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
        losses.append(nn.functional.cross_entropy(logits[0], one.targets[0], ignore_index=IGNORE_INDEX, reduction="none"))
    expected = torch.cat(losses).mean().item()
    assert abs(mean_loss(model, data, batch_size=7) - expected) < 1e-5


def test_budget_is_the_first_limit_reached():
    data = EncodedNames(NAMES, Vocab.from_names(NAMES))
    model = CharRNN(len(Vocab.from_names(NAMES)), ModelConfig(hidden_size=4, embedding_dim=2))
    steps_per_epoch = -(-len(NAMES) // 8)
    assert Trainer(model, TrainConfig(epochs=2, batch_size=8), data, None).total_steps == 2 * steps_per_epoch
    assert Trainer(model, TrainConfig(epochs=2, max_steps=3, batch_size=8), data, None).total_steps == 3
    assert Trainer(model, TrainConfig(epochs=None, max_steps=50, batch_size=8), data, None).total_steps == 50


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
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"config.yaml", "metrics.jsonl", "best.pt", "last.pt"}
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
