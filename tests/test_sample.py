import math

import pytest

from dinogen.errors import ConfigError
from dinogen.sample import Generator, NotEnoughNames


@pytest.fixture(scope="module")
def generator(trained_run):
    return Generator.from_checkpoint(trained_run, device="cpu")


def test_same_seed_same_names(generator):
    assert generator.sample(50, seed=1) == generator.sample(50, seed=1)
    assert generator.sample(50, seed=1) != generator.sample(50, seed=2)


def test_prefix_and_lengths(generator):
    names = generator.sample(200, prefix="Ty", min_length=4, max_length=6, seed=0)  # folded like the data
    assert len(names) == 200
    assert all(name.startswith("ty") and 4 <= len(name) <= 6 for name in names)


def test_greedy_is_deterministic_and_equals_top_k_1(generator):
    greedy = generator.sample(5, temperature=0)
    assert len(set(greedy)) == 1
    assert generator.sample(5, top_k=1, seed=3) == greedy


def test_unique_and_novel_filters(generator):
    names = generator.sample(40, unique=True, novel=True, temperature=1.5, seed=0)
    assert len(set(names)) == 40
    assert not set(names) & generator.train_names


def test_exclude_filter(generator):
    common = generator.sample(1, temperature=0)[0]
    assert common not in generator.sample(100, exclude=[common], seed=0)


def test_shortfall_raises_after_the_names_found(generator):
    found = []
    with pytest.raises(NotEnoughNames) as err:
        for scored in generator.iter_sample(3, temperature=0, unique=True, max_attempts=1000):
            found.append(scored.name)
    assert len(found) == 1 and err.value.found == 1 and err.value.exit_code == 3


def test_sampled_log_prob_equals_score(generator):
    sampled = list(generator.iter_sample(30, seed=0))
    scored = generator.score([s.name for s in sampled])
    for a, b in zip(sampled, scored, strict=True):
        assert a.name == b.name
        assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4)
        assert b.nll_per_char == pytest.approx(-b.log_prob / (b.length + 1))


def test_score_of_unknown_characters_is_minus_infinity(generator):
    (scored,) = generator.score(["t-rex!"])
    assert scored.log_prob == -math.inf and scored.nll_per_char == math.inf


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -1}, "temperature must be 0"),
        ({"top_k": 0}, "top_k must be at least 1"),
        ({"top_p": 1.5}, "top_p must be in"),
        ({"prefix": "T-!"}, "prefix 't-!' has characters the model never saw: '-' '!'"),
        ({"min_length": 5, "max_length": 4}, "min_length must not exceed max_length"),
        ({"prefix": "tyr", "max_length": 2}, "prefix is longer than max_length"),
    ],
)
def test_bad_sampling_options(generator, options, message):
    with pytest.raises(ConfigError, match=message):
        generator.sample(3, **options)
