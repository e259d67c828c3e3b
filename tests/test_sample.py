import itertools
import math

import pytest
import torch
from click.testing import CliRunner

from dinogen.cli import main
from dinogen.config import ModelConfig
from dinogen.data import Vocab, normalize_name
from dinogen.errors import ConfigError
from dinogen.model import CharRNN
from dinogen.sample import Generator, NotEnoughNames
from dinogen.streams import RowStreams


@pytest.fixture(scope="module")
def generator(trained_run):
    return Generator.from_checkpoint(trained_run, device="cpu")


@pytest.fixture(scope="module")
def places(places_file, tmp_path_factory):
    """A model of place names: spaces, apostrophes and dots, trained long enough to write them."""
    run_dir = tmp_path_factory.mktemp("places-run") / "run"
    args = ["train", "-c", "tiny", "--data", str(places_file), "-o", str(run_dir), "-q"]
    args += ["--set", "train.max_steps=300", "--set", "data.val_fraction=0.15", "--set", "model.hidden_size=32"]
    args += ["--set", "data.lowercase=true"]  # folded: these tests are about the one form of a name
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return Generator.from_checkpoint(run_dir, device="cpu")


def test_same_seed_same_names(generator):
    assert generator.sample(50, seed=1) == generator.sample(50, seed=1)
    assert generator.sample(50, seed=1) != generator.sample(50, seed=2)


def test_name_i_depends_only_on_the_seed_and_i(generator):
    stream = generator.sample(700, seed=5, batch_size=256)
    assert generator.sample(20, seed=5) == stream[:20]
    assert generator.sample(700, seed=5, batch_size=7) == stream
    assert generator.sample(300, seed=5 + 2**64) == stream[:300]  # seeds are taken modulo 2^64


def test_filters_only_drop_names_from_the_stream(generator):
    stream = generator.sample(3000, seed=11)
    assert generator.sample(100, seed=11, unique=True) == list(dict.fromkeys(stream))[:100]
    novel = [name for name in stream if name not in generator.known_names]
    assert generator.sample(100, seed=11, novel=True) == novel[:100]
    excluded = set(stream[:5])
    assert generator.sample(100, seed=11, exclude=excluded) == [n for n in stream if n not in excluded][:100]


def test_max_length_drops_long_names_and_never_cuts_them(generator):
    stream = generator.sample(3000, seed=3)
    short = generator.sample(200, seed=3, max_length=8)
    assert short == [name for name in stream if len(name) <= 8][:200]
    for scored, rescored in zip(
        generator.iter_sample(200, seed=3, max_length=8), generator.score(short), strict=True
    ):  # the end is the model's own choice, so the whole-name score holds
        assert scored.log_prob == pytest.approx(rescored.log_prob, abs=1e-4)


def test_min_length_masks_the_end_and_lengths_stay_in_range(generator):
    names = generator.sample(300, min_length=6, max_length=12, seed=0)
    assert all(6 <= len(name) <= 12 for name in names)
    with pytest.raises(ConfigError, match=r"min_length must be in \[1, 1,000\]"):
        generator.sample(3, min_length=0)


def test_shards_together_write_the_stream(generator):
    stream = generator.sample(100, seed=9)
    shards = [generator.sample(100, seed=9, shard=(k, 3)) for k in range(3)]
    assert [len(shard) for shard in shards] == [34, 33, 33]
    merged = [name for row in itertools.zip_longest(*shards) for name in row if name is not None]
    assert merged == stream
    with pytest.raises(ConfigError, match="shard"):
        generator.sample(3, seed=0, shard=(3, 3))
    with pytest.raises(ConfigError, match="shard needs a seed"):
        generator.sample(3, shard=(0, 2))
    with pytest.raises(ConfigError, match=r"n must be in \[1,"):
        generator.sample(2.5)


def test_the_draw_follows_the_model_distribution(generator):
    """First characters of 20,000 names against the model's probabilities for the first character."""
    names = generator.sample(20_000, seed=0, max_length=100)
    with torch.no_grad():
        logits, _ = generator.model.step(torch.zeros(1, dtype=torch.long))
    logits[0, 0] = -math.inf  # min_length 1 masks the end
    expected = logits.softmax(-1)[0]
    for char, index in generator.vocab.index.items():
        observed = sum(name[0] == char for name in names) / len(names)
        assert observed == pytest.approx(float(expected[index]), abs=0.01), char


def test_uniform_numbers_are_uniform():
    keys = RowStreams(123).keys(0, 100_000)
    values = RowStreams.uniform(keys, 3)
    assert float(values.min()) >= 0 and float(values.max()) < 1
    counts = torch.histc(values.float(), bins=10, min=0, max=1)
    assert (counts - 10_000).abs().max() < 500  # about 5 standard deviations
    assert len(set(keys[:, 0].tolist())) > 99_990


def test_prefix_and_lengths(generator):
    names = generator.sample(200, prefix="Ty", min_length=4, max_length=9, seed=0)  # folded like the data
    assert len(names) == 200
    assert all(name.startswith("ty") and 4 <= len(name) <= 9 for name in names)


@pytest.mark.parametrize(
    "options", [{}, {"prefix": "ty"}, {"temperature": 0.5, "prefix": "a"}, {"top_k": 3}, {"top_p": 0.7}]
)
def test_sampled_scores_are_whole_name_scores(generator, options):
    sampled = list(generator.iter_sample(40, seed=0, **options))
    scored = generator.score([s.name for s in sampled])
    for a, b in zip(sampled, scored, strict=True):
        assert a.name == b.name and a.length == b.length == len(a.name)
        assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4)
        assert a.nll_per_char == pytest.approx(b.nll_per_char, abs=1e-4)


def test_greedy_is_deterministic_and_equals_top_k_1(generator):
    greedy = generator.sample(5, temperature=0)
    assert len(set(greedy)) == 1
    assert generator.sample(5, top_k=1, seed=3) == greedy


def test_unique_and_novel_filters(generator):
    names = generator.sample(40, unique=True, novel=True, temperature=1.5, seed=0)
    assert len(set(names)) == 40
    assert not set(names) & generator.known_names


def test_novel_leaves_out_the_validation_names_too(generator):
    likeliest = generator.most_likely(3)
    as_validation = Generator(generator.model, generator.vocab, (), "cpu", True, [likeliest[0].name])
    assert likeliest[0].name in as_validation.known_names
    assert [s.name for s in as_validation.most_likely(2, novel=True)] == [s.name for s in likeliest[1:]]


def test_exclude_filter_is_normalised(generator):
    common = generator.sample(1, temperature=0)[0]
    assert common not in generator.sample(100, exclude=[f"  {common.upper()} "], seed=0)
    with pytest.raises(TypeError, match="not a single string"):
        generator.sample(3, exclude=common)


def test_shortfall_keeps_the_names_found(generator):
    found = []
    with pytest.raises(NotEnoughNames) as err:
        for scored in generator.iter_sample(3, temperature=0, unique=True):
            found.append(scored.name)
    assert len(found) == 1 and err.value.found == 1 and err.value.exit_code == 3
    with pytest.raises(NotEnoughNames) as err:
        generator.sample(3, temperature=0, unique=True)
    assert err.value.names == found


def test_generated_names_are_in_normal_form(places):
    names = places.sample(3000, temperature=1.3, seed=0)
    assert any(" " in name for name in names) and any("'" in name for name in names)
    for name in names:
        assert name == normalize_name(name) and "  " not in name and name == name.strip()


def test_names_that_normalise_to_known_ones_are_those_names(places):
    assert "lake tahoe" in places.known_names and "new glarus" in places.known_names  # read from messy lines
    names = places.sample(3000, temperature=1.2, unique=True, novel=True, seed=1)
    assert not {normalize_name(name) for name in names} & places.known_names
    assert len({normalize_name(name) for name in names}) == len(names)


def test_prefix_is_normalised_as_the_start_of_a_name(places):
    names = places.sample(50, prefix="  GLEN ", seed=0)
    assert all(name.startswith("glen ") and len(name) > 5 for name in names)


def test_score_normalises_like_the_data(generator):
    plain, shouty, spaced = generator.score(["tyrannosaurus", "TyRannosaurus", "  tyrannosaurus "])
    assert plain.log_prob == shouty.log_prob == spaced.log_prob and spaced.name == "tyrannosaurus"
    assert math.isfinite(plain.log_prob)
    with pytest.raises(TypeError, match="not a single string"):
        generator.score("tyrannosaurus")
    with pytest.raises(ConfigError, match="name 2 to score is blank"):
        generator.score(["rex", "   "])


def test_score_sorts_and_gives_minus_infinity_to_unknown_characters(generator):
    scored = generator.score(["t-rex!", "saurus", "a"], sort=True)
    assert scored[-1].name == "t-rex!" and scored[-1].log_prob == -math.inf and scored[-1].nll_per_char == math.inf
    assert scored[0].nll_per_char <= scored[1].nll_per_char


def test_most_likely_is_the_exact_top_of_the_distribution(generator):
    """Against brute force: every name of up to 3 characters over the whole vocabulary, scored."""
    chars = generator.vocab.chars
    every = ["".join(letters) for size in (1, 2, 3) for letters in itertools.product(chars, repeat=size)]
    ranked = sorted(generator.score(every), key=lambda s: -s.log_prob)
    best = generator.most_likely(15, max_length=3)
    assert [s.name for s in best] == [s.name for s in ranked[:15]]
    for found, expected in zip(best, ranked, strict=False):
        assert found.log_prob == pytest.approx(expected.log_prob, abs=1e-4)


def test_most_likely_controls(generator):
    names = generator.most_likely(30, prefix="s", min_length=5, max_length=10, novel=True)
    assert [s.log_prob for s in names] == sorted((s.log_prob for s in names), reverse=True)
    assert all(s.name.startswith("s") and 5 <= s.length <= 10 for s in names)
    assert not {s.name for s in names} & generator.known_names
    assert generator.most_likely(30, prefix="s", min_length=5, max_length=10, novel=True) == names
    assert [s.name for s in generator.iter_sample(5, most_likely=True)] == [s.name for s in generator.most_likely(5)]
    with pytest.raises(ConfigError, match="takes no temperature"):
        generator.sample(3, most_likely=True, temperature=0.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -1}, "temperature must be in"),
        ({"temperature": math.inf}, "temperature must be in"),
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


def test_fixed_shapes_draw_the_same_names_as_the_compact_batches(generator):
    """The GPU's way (finished rows masked, fixed shapes) against the CPU's (finished rows removed)."""
    compact = list(generator.iter_sample(300, seed=2, prefix="a", min_length=3))
    fixed = Generator(generator.model, generator.vocab, generator.train_names, "cpu", True)
    fixed.fixed_shapes = True
    for a, b in zip(compact, fixed.iter_sample(300, seed=2, prefix="a", min_length=3), strict=True):
        assert a.name == b.name and a.log_prob == pytest.approx(b.log_prob, abs=1e-5)


def test_names_are_decoded_in_bulk_with_any_characters():
    vocab = Vocab(sorted(set("zürich ñandú ørsted 東京")))
    model = CharRNN(len(vocab), ModelConfig(hidden_size=8, embedding_dim=4, dropout=0.0))
    generator = Generator(model, vocab, lowercase=False)
    for scored in generator.iter_sample(200, seed=0, max_length=12, temperature=0.7):
        ids = vocab.encode(scored.name)
        assert vocab.decode(ids) == scored.name and scored.length == len(scored.name)
