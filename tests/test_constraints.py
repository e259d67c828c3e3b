import itertools
import math
import re
import warnings

import pytest
import torch
from helpers import NAMES, invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from dinogen import constraints, sample, search
from dinogen.automaton import Factor
from dinogen.config import ModelConfig
from dinogen.data import Vocab
from dinogen.errors import OptionError, shorten
from dinogen.limits import MAX_AUTOMATON_STATES
from dinogen.model import CharRNN
from dinogen.pattern import pattern_factor
from dinogen.sample import Generator, NotEnoughNames

# One of each constraint, then some together; every one of them leaves names to find in the tiny model's lengths.
CONSTRAINTS = [
    {"ends_with": "rus"},
    {"contains": "ex"},
    {"contains": ["ra", "to"]},
    {"pattern": "^[st][aeiou].{2,6}(us|on)$"},
    {"blocklist": ["sa", "au", "ur", "ops"]},
    {"ends_with": "x", "contains": "yo", "min_length": 6, "max_length": 12},
    {"prefix": "ti", "pattern": "[a-z]*(ix|ax)", "blocklist": ["aa", "ii"], "min_length": 7},
    {"contains": "o", "pattern": "(ab|ba|o)+c?", "min_length": 5, "max_length": 9},
]


@pytest.fixture(scope="module")
def generator(trained_run):
    return Generator.from_checkpoint(trained_run, device="cpu")


@pytest.fixture(scope="module")
def fixed(generator):
    """The same model drawing as on a GPU: fixed shapes, finished rows masked."""
    twin = Generator(generator.model, generator.vocab, generator.train_names, "cpu", True)
    twin.fixed_shapes = True
    return twin


def meets(name: str, options: dict) -> bool:
    """Whether `name` meets the constraints of `options`, checked with Python's own string tools and `re`."""
    contains = options.get("contains", ())
    contains = [contains] if isinstance(contains, str) else contains
    return (
        name.startswith(options.get("prefix", ""))
        and name.endswith(options.get("ends_with", ""))
        and all(text in name for text in contains)
        and ("pattern" not in options or re.fullmatch(options["pattern"], name) is not None)
        and not any(text.lower() in name.lower() for text in options.get("blocklist", ()))
        and options.get("min_length", 1) <= len(name) <= options.get("max_length", 36)
    )


def accepts(factor: Factor, tokens: list[int]) -> bool:
    state = factor.start
    for token in tokens:
        state = factor.table[state][token]
        if state < 0:
            return False
    return factor.accepting[state]


@pytest.mark.parametrize("options", CONSTRAINTS, ids=str)
@pytest.mark.parametrize("strategy", ["compact", "fixed"])
def test_every_sampled_name_meets_the_constraints_and_none_is_rejected(generator, fixed, options, strategy):
    chosen = generator if strategy == "compact" else fixed
    names = chosen.sample(300, seed=1, max_attempts=300, **options)  # a rejected sample would leave fewer than 300
    assert len(names) == 300
    assert all(meets(name, options) for name in names), [name for name in names if not meets(name, options)][:5]


@pytest.mark.parametrize("options", CONSTRAINTS[::2], ids=str)
def test_fixed_shapes_draw_the_same_constrained_names_as_compact_batches(generator, fixed, options):
    compact = list(generator.iter_sample(200, seed=4, **options))
    for a, b in zip(compact, fixed.iter_sample(200, seed=4, **options), strict=True):
        assert a.name == b.name and a.log_prob == pytest.approx(b.log_prob, abs=1e-5)


def test_a_constrained_stream_depends_only_on_the_seed_and_the_index(generator):
    options = {"contains": ["ra"], "blocklist": ["us"], "min_length": 5}
    stream = generator.sample(500, seed=8, **options)
    assert generator.sample(500, seed=8, batch_size=37, **options) == stream
    assert generator.sample(40, seed=8, **options) == stream[:40]
    shards = [generator.sample(500, seed=8, shard=(k, 2), **options) for k in range(2)]
    assert [name for pair in zip(*shards, strict=True) for name in pair] == stream
    assert generator.sample(500, seed=9, **options) != stream


@pytest.mark.parametrize("options", CONSTRAINTS[:5], ids=str)
def test_the_log_prob_is_the_models_own_probability_of_the_whole_name(generator, options):
    sampled = list(generator.iter_sample(60, seed=2, **options))
    for drawn, scored in zip(sampled, generator.score([s.name for s in sampled]), strict=True):
        assert drawn.log_prob == pytest.approx(scored.log_prob, abs=1e-4)


def test_a_masked_draw_renormalises_the_next_character_over_the_allowed_ones(generator):
    """A name matching [aeo].* starts with a, e or o at the model's probabilities of those three, renormalised."""
    names = generator.sample(20_000, seed=0, pattern="[aeo].*")
    with torch.no_grad():
        logits, _ = generator.model.step(torch.zeros(1, dtype=torch.long))
    allowed = [generator.vocab.index[char] for char in "aeo"]
    expected = logits[0, allowed].softmax(-1)
    for char, probability in zip("aeo", expected.tolist(), strict=True):
        assert sum(name[0] == char for name in names) / len(names) == pytest.approx(probability, abs=0.015), char


@pytest.mark.parametrize("strategy", ["compact", "fixed"])
def test_a_name_the_model_ends_too_soon_is_finished_along_a_shortest_way(generator, fixed, strategy):
    """Up to where the model draws the end, a masked draw is the plain stream; then the shortest way is written."""
    chosen = generator if strategy == "compact" else fixed
    plain = chosen.sample(300, seed=3, max_length=30)  # 30 + 3 fits: the mask never bites before the end
    finished = chosen.sample(300, seed=3, ends_with="rus", max_length=33)
    for short, long in zip(plain, finished, strict=True):
        if short.endswith("rus"):
            assert long == short
        else:  # the fewest characters that end the name in "rus", overlapping its end where it can
            ways = [short + "rus"[k:] for k in range(3) if short.endswith("rus"[:k]) or k == 0]
            assert long == min(ways, key=len), short
    # the characters on the way are drawn in the model's proportions: a pattern whose ends differ takes both
    ends = {name[-2:] for name in chosen.sample(300, seed=3, pattern="[a-z]{2,}(us|on)")}
    assert ends == {"us", "on"}


def test_exact_sampling_is_the_plain_stream_filtered_by_the_constraints(generator, fixed):
    options = {"ends_with": "us", "contains": "o", "blocklist": ["sa"]}
    plain = generator.sample(5000, seed=6)
    expected = [name for name in plain if meets(name, options)][:30]
    assert len(expected) == 30
    assert generator.sample(30, seed=6, exact=True, **options) == expected
    assert fixed.sample(30, seed=6, exact=True, **options) == expected
    masked = generator.sample(30, seed=6, **options)
    assert masked != expected and all(meets(name, options) for name in masked)


def test_exact_sampling_gives_up_with_the_attempts_bound_and_says_why(generator):
    message = "could not meet the constraints \\(ends_with\\) within max_length .*, or drop --exact"
    with pytest.raises(NotEnoughNames, match=message):
        generator.sample(5, seed=0, exact=True, ends_with="zyx", max_attempts=2000)
    assert len(generator.sample(5, seed=0, ends_with="zyx")) == 5  # the masked draw always finds them


def test_max_attempts_bounds_an_exact_draw_on_the_command_line(trained_run):
    result = invoke("sample", trained_run, "-n", 5, "--exact", "--ends-with", "zyx", "--max-attempts", 300, "--seed", 0)
    assert result.exit_code == 3 and "after 300 samples" in result.stderr
    with pytest.raises(OptionError, match="max_attempts must be in"):
        Generator.from_checkpoint(trained_run).sample(5, max_attempts="300")


def test_most_likely_with_constraints_is_the_top_of_a_brute_force_ranking(generator):
    """Every name of up to 3 characters scored, filtered with Python's tools, ranked: the search gives its top."""
    chars = generator.vocab.chars
    every = ["".join(letters) for size in (1, 2, 3) for letters in itertools.product(chars, repeat=size)]
    ranked = sorted(generator.score(every), key=lambda s: -s.log_prob)
    for options in [{"ends_with": "s"}, {"contains": "a"}, {"pattern": "[st].[aeiou]?"}, {"blocklist": ["a", "o"]},
                    {"contains": ["a", "r"], "blocklist": ["ar"], "min_length": 3}]:  # fmt: skip
        expected = [s for s in ranked if meets(s.name, options | {"max_length": 3})][:12]
        found = generator.most_likely(12, max_length=3, **options)
        assert [s.name for s in found] == [s.name for s in expected], options
        for a, b in zip(found, expected, strict=True):
            assert a.log_prob == pytest.approx(b.log_prob, abs=1e-4)


def test_most_likely_with_constraints_and_filters(generator):
    names = generator.most_likely(20, contains="ra", ends_with="r", min_length=6, novel=True)
    assert len(names) == 20 and not {s.name for s in names} & generator.known_names
    assert [s.log_prob for s in names] == sorted((s.log_prob for s in names), reverse=True)
    assert all(meets(s.name, {"contains": "ra", "ends_with": "r", "min_length": 6}) for s in names)
    assert len(generator.most_likely(50, pattern="(tyr|rex)a?")) == 4  # a finite language: all of it, no more


def test_a_search_too_vast_stops_at_its_bound_with_the_names_found(generator, monkeypatch):
    monkeypatch.setattr(search, "MAX_SEARCH_PREFIXES", 300)
    found = []
    with pytest.raises(NotEnoughNames, match="after reading 300 prefixes, the most the search reads") as err:
        found.extend(s.name for s in generator.iter_sample(50, most_likely=True, contains="xyz"))
    assert err.value.found == len(found) < 50 and all("xyz" in name for name in found)


def test_the_blocklist_never_appears_in_100000_names(generator):
    """Every 3- and 4-letter piece of the training names blocked: hundreds of overlapping entries, in any case."""
    pieces = sorted({name[i : i + size] for name in NAMES for size in (3, 4) for i in range(len(name) - size + 1)})
    blocklist = [piece.upper() if i % 2 else piece for i, piece in enumerate(pieces)]
    assert len(blocklist) > 200
    names = generator.sample(100_000, seed=0, blocklist=blocklist, max_attempts=100_000)
    blocked = re.compile("|".join(pieces))
    assert len(names) == 100_000 and not any(blocked.search(name) for name in names)


def test_lengths_the_pattern_cannot_have_are_never_tried(generator):
    """(ab)+ has even lengths only: with min_length 5 the mask steers to 6 or 8, never to a dead end."""
    names = generator.sample(300, seed=0, pattern="(ab)+", min_length=5, max_length=9, max_attempts=300)
    assert {len(name) for name in names} <= {6, 8} and all(re.fullmatch("(ab)+", name) for name in names)
    assert set(generator.sample(200, seed=0, pattern="(ab)+|x{7}", min_length=7, max_length=7)) == {"xxxxxxx"}


def test_greedy_decoding_meets_the_constraints_too(generator):
    names = generator.sample(3, temperature=0, ends_with="nyx")
    assert len(set(names)) == 1 and names[0].endswith("nyx")


def test_texts_are_normalised_like_names(generator):
    assert all(name.endswith("rus") for name in generator.sample(20, seed=0, ends_with="RUS  "))
    assert all("ex" in name for name in generator.sample(20, seed=0, contains=["EX"]))
    assert all(re.fullmatch("t.*", name) for name in generator.sample(20, seed=0, pattern="T.*"))  # folded, as re.I
    assert generator.sample(20, seed=0, contains="", ends_with="") == generator.sample(20, seed=0)


def test_a_blocked_text_the_model_cannot_write_changes_nothing(generator):
    assert generator.sample(50, seed=3, blocklist=["t-rex", "w", "x" * 100]) == generator.sample(50, seed=3)


def test_the_blocklist_ignores_case_whatever_the_case_rule():
    vocab = Vocab(sorted(set("Rex rex REX Tyr tyr ab")))
    model = CharRNN(len(vocab), ModelConfig(hidden_size=8, embedding_dim=4, dropout=0.0))
    generator = Generator(model, vocab, lowercase=False)
    names = generator.sample(3000, seed=0, max_length=10, blocklist=["rex"])
    assert not any("rex" in name.lower() for name in names)
    assert any("Rex" in name for name in generator.sample(3000, seed=0, max_length=10))  # without it, there they are
    assert all(name.endswith("Tyr") for name in generator.sample(50, seed=0, max_length=10, ends_with="Tyr"))


def test_constrained_names_keep_the_one_form_of_a_name():
    """A vocabulary with a space: no space first, twice or last, even where a constraint would like one."""
    vocab = Vocab(sorted(set("glen ivy port rock")))
    model = CharRNN(len(vocab), ModelConfig(hidden_size=8, embedding_dim=4, dropout=0.0))
    generator = Generator(model, vocab, lowercase=True)
    for options in [{"contains": " "}, {"ends_with": " rock"}, {"pattern": "[a-z ]* [a-z ]*"}, {"contains": "y  "}]:
        for name in generator.sample(500, seed=0, max_length=12, max_attempts=500, **options):
            assert name == " ".join(name.split()) and " " in name, (options, name)
    with pytest.raises(OptionError, match="no name of any length can meet pattern"):
        generator.sample(3, max_length=12, pattern=".* ")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pattern": "^[a-z]{37,}$"}, "no name of 1 to 36 characters can meet pattern; loosen it or the length range"),
        ({"pattern": "a{4}", "min_length": 5}, "no name of 5 to 36 characters can meet pattern"),
        ({"prefix": "ty", "pattern": "r.*"}, "can meet prefix and pattern together; loosen one of them"),
        ({"prefix": "tyr", "blocklist": ["yr"]}, "can meet prefix and blocklist together"),
        ({"contains": ["abcde", "uvxyz"], "max_length": 9}, "no name of 1 to 9 characters can meet contains"),
        ({"ends_with": " rex"}, "ends_with ' rex' has characters the model never saw: ' '"),  # a last word
        ({"ends_with": "saurus", "pattern": ".*x"}, "can meet ends_with and pattern together"),
        ({"ends_with": "t-rex"}, "ends_with 't-rex' has characters the model never saw: '-'; no name can end with it"),
        ({"contains": ["ra", "w"]}, "contains 'w' has characters the model never saw: 'w'; no name can contain it"),
        ({"pattern": "qu.*|w"}, "no name of any length can meet pattern; loosen it"),  # the length range is no help
        ({"pattern": "[0-9]+", "max_length": 9}, "no name of any length can meet pattern; loosen it"),
        ({"prefix": "tyr", "blocklist": ["yr"]}, "no name of any length can meet prefix and blocklist together"),
        ({"pattern": 7}, "pattern must be a string, got 7"),
        ({"contains": ["ok", 3]}, "contains must hold strings only, got 3"),
        ({"exact": "yes"}, "exact must be True or False"),
    ],
)
def test_impossible_and_bad_constraints_are_one_sentence_before_any_sample(generator, monkeypatch, options, message):
    monkeypatch.setattr(sample, "draw_batch", lambda *args: pytest.fail("a draw began"))
    with pytest.raises(OptionError, match=re.escape(message)):
        generator.sample(3, **options)
    if "exact" not in options:
        with pytest.raises(OptionError, match=re.escape(message)):
            generator.most_likely(3, **options)


def test_a_blocklist_as_one_string_is_a_type_error(generator):
    with pytest.raises(TypeError, match="not a single string"):
        generator.sample(3, blocklist="rex")


def test_an_automaton_past_the_bound_is_refused(generator):
    words = ["".join(letters) for letters in itertools.product("abcdegh", repeat=6)]  # 117,649 of them
    with pytest.raises(OptionError, match=f"blocklist makes an automaton of more than {MAX_AUTOMATON_STATES:,} states"):
        generator.sample(3, blocklist=words)
    with pytest.raises(OptionError, match="pattern makes an automaton of more than"):
        generator.sample(3, pattern="(a{100}b){1000}")


def test_constraints_whose_product_passes_the_bound_are_refused_together(generator, monkeypatch):
    monkeypatch.setattr(constraints, "MAX_AUTOMATON_STATES", 60)
    with pytest.raises(OptionError, match="contains and pattern make an automaton of more than 60 states together"):
        generator.sample(3, contains=["ab", "cd"], pattern="[a-e]*e[a-e]{3}")


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("(?=a)b", "uses a lookahead (?=...) at position 0, which dinogen does not support"),
        ("a(?<!b)", "uses a negative lookbehind (?<!...) at position 1"),
        ("(a)\\1", "uses a backreference or octal escape at position 3"),
        ("(?P<x>a)(?P=x)", "uses a backreference at position 8"),
        ("\\bra", "uses a word boundary \\b at position 0"),
        ("a*+", "uses a possessive quantifier at position 2"),
        ("(?i)rex", "uses an inline flag or extension (?...) at position 0"),
        ("(?>ab)", "uses an atomic group (?>...)"),
        ("\\x41", "uses a code point escape \\x"),
        ("a{2000}", "uses a repeat count above 1,000 (the longest name)"),
        ("(" * 60 + ")" * 60, "uses groups nested more than 50 deep"),
        ("a(b", "is not a valid regular expression (missing ), unterminated subpattern at position 1)"),
        ("ab)", "is not a valid regular expression (unbalanced parenthesis at position 2)"),
        ("*a", "is not a valid regular expression (nothing to repeat at position 0)"),
        ("a**", "is not a valid regular expression (multiple repeat at position 2)"),
        ("[z-a]", "is not a valid regular expression (a bad character range at position 1)"),
        ("[ab", "is not a valid regular expression (unterminated character set at position 0)"),
        ("a{3,1}", "is not a valid regular expression (min repeat greater than max repeat at position 1)"),
        ("\\q", "is not a valid regular expression (a bad escape \\q at position 0)"),
    ],
)
def test_pattern_syntax_dinogen_cannot_read_is_one_sentence(pattern, what):
    with pytest.raises(OptionError) as err:
        pattern_factor(pattern, list("abc"), False, MAX_AUTOMATON_STATES)
    assert str(err.value).startswith(f"pattern {what}") and str(err.value).endswith(f", got {shorten(repr(pattern))}")


ALPHABET = "abc"
atoms = st.sampled_from(["a", "b", "c", ".", "[ab]", "[^a]", "[a-b]", "[]a]", "\\w", "\\D", "^", "$", "(?:)", "\\."])


def quantified(inner: str, quantifier: str) -> str:
    return f"(?:{inner}){quantifier}"


patterns = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map("".join),
        st.lists(inner, min_size=2, max_size=3).map("|".join),
        inner.map(lambda text: f"({text})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,}", "{,2}", "{0,3}", "*?", "{1,2}?"])).map(
            lambda parts: quantified(*parts)
        ),
    ),
    max_leaves=8,
)
strings = st.lists(st.text(alphabet=ALPHABET + ".", max_size=7), min_size=30, max_size=30)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns, texts=strings)
def test_the_pattern_automaton_agrees_with_re_fullmatch(pattern, texts):
    chars = list(ALPHABET + ".")
    factor = pattern_factor(pattern, chars, False, MAX_AUTOMATON_STATES)
    compiled = re.compile(pattern)
    for text in texts + ["", "a", "ab", "abc", "cba"]:
        tokens = [chars.index(char) + 1 for char in text]
        assert accepts(factor, tokens) == (compiled.fullmatch(text) is not None), (pattern, text)


@settings(max_examples=600, deadline=None)
@given(pattern=st.text(alphabet="ab.()[]^$-*+?|{},12\\", max_size=10), texts=strings)
def test_any_pattern_text_is_refused_or_agrees_with_re_fullmatch(pattern, texts):
    """Text that is barely a pattern: refused with a sentence (invalid, or unsupported), or read as Python reads it."""
    chars = list(ALPHABET + ".")
    try:
        factor = pattern_factor(pattern, chars, False, MAX_AUTOMATON_STATES)
    except OptionError as err:
        assert str(err).startswith("pattern ")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" for [[: the same set either way
        compiled = re.compile(pattern)  # dinogen read it, so Python must too
    for text in texts:
        assert accepts(factor, [chars.index(char) + 1 for char in text]) == (compiled.fullmatch(text) is not None)


def test_a_lowercase_model_folds_the_pattern_as_re_ignorecase():
    chars = list("abcxyz")
    for pattern in ["[A-C]+", "[^A-B]x", "X|y", "\\W", "[a-cX]*Z"]:
        factor = pattern_factor(pattern, chars, True, MAX_AUTOMATON_STATES)
        for size in range(4):
            for letters in itertools.product("abxz", repeat=size):
                text = "".join(letters)
                expected = re.fullmatch(pattern, text, re.IGNORECASE) is not None
                assert accepts(factor, [chars.index(char) + 1 for char in text]) == expected, (pattern, text)


def test_without_constraints_no_automaton_is_built(generator, monkeypatch):
    monkeypatch.setattr(constraints, "product", lambda *args: pytest.fail("an automaton was built"))
    assert generator.sample(20, seed=0) == generator.sample(20, seed=0, blocklist=[], contains=())
    assert [s.name for s in generator.most_likely(5)] == [s.name for s in generator.most_likely(5, ends_with="")]


def test_the_command_line_takes_every_constraint(trained_run, tmp_path):
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("SA\naur\n")
    args = ["sample", trained_run, "-n", 40, "--seed", 0, "--contains", "o", "--contains", "r", "--ends-with", "x"]
    args += ["--pattern", "^[a-z]{3,12}$", "--blocklist", blocklist]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    names = result.stdout.split()
    options = {"contains": ["o", "r"], "ends_with": "x", "pattern": "[a-z]{3,12}", "blocklist": ["sa", "aur"]}
    assert len(names) == 40 and all(meets(name, options) for name in names)
    exact = invoke("sample", trained_run, "-n", 5, "--seed", 0, "--ends-with", "us", "--exact", "--format", "jsonl")
    assert exact.exit_code == 0 and exact.stdout.count('"log_prob"') == 5
    likeliest = invoke("sample", trained_run, "--most-likely", "-n", 3, "--ends-with", "x")
    assert likeliest.exit_code == 0 and all(name.endswith("x") for name in likeliest.stdout.split())


def test_the_command_line_spells_the_constraint_options(trained_run):
    result = invoke("sample", trained_run, "--prefix", "ty", "--pattern", "r.*")
    assert result.exit_code == 2
    assert "no name of any length can meet --prefix and --pattern together" in result.stderr
    result = invoke("sample", trained_run, "--most-likely", "--exact", "--ends-with", "x")
    assert result.exit_code == 2 and "--most-likely takes no --exact" in result.stderr


def test_names_at_the_edge_of_the_length_range_meet_the_constraints(generator):
    names = generator.sample(100, seed=0, ends_with="x", min_length=30, max_length=36, max_attempts=100)
    assert all(30 <= len(name) <= 36 and name.endswith("x") for name in names)
    assert not math.isnan(sum(s.log_prob for s in generator.iter_sample(20, seed=0, contains="xyz")))


@pytest.mark.parametrize("bad", [["--pattern", "a("], ["--ends-with", "t-x"], ["--most-likely", "--top-k", 3]])
def test_a_refused_option_writes_nothing_on_stdout_not_even_a_csv_header(trained_run, generator, bad):
    result = invoke("sample", trained_run, "-n", 2, "--format", "csv", *bad)
    assert result.exit_code == 2 and result.stdout == ""
    with pytest.raises(OptionError):
        generator.iter_sample(2, pattern="a(")  # at the call, before anything is drawn


def test_a_shortfall_says_what_stopped_it_even_when_no_sample_was_rejected(trained_run, generator):
    with pytest.raises(NotEnoughNames, match=r"after 3 samples, the most max_attempts allows; raise --max-attempts"):
        generator.sample(5, seed=0, ends_with="us", max_attempts=3)  # a masked draw rejects none: the bound stopped it
    with pytest.raises(NotEnoughNames, match=r"could not meet .*; try .* a higher --max-attempts"):
        generator.sample(5, seed=0, ends_with="zyx", exact=True, max_attempts=12)
    result = invoke("sample", trained_run, "-n", 5, "--max-attempts", 3, "--pattern", "[a-z]+")
    assert result.exit_code == 3 and "samples: ;" not in result.stderr and len(result.stdout.split()) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"contains": 5}, "contains must be a string or a collection of strings, got 5"),
        ({"contains": b"ra"}, "contains must be a string or a collection of strings, got b'ra'"),
        ({"contains": [None]}, "contains must hold strings only, got null"),
        ({"blocklist": 5}, "blocklist must be a collection of strings, got 5"),
        ({"blocklist": b"rex"}, "blocklist must be a collection of strings, got b'rex'"),
        ({"blocklist": ["rex", None]}, "blocklist must hold strings only, got null"),
    ],
    ids=str,
)
def test_texts_of_the_wrong_type_are_one_sentence(generator, options, message):
    with pytest.raises(OptionError) as caught:
        generator.sample(2, **options)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": None}, "prefix must be a string, got null"),
        ({"prefix": b"ty"}, "prefix must be a string, got b'ty'"),
        ({"exclude": [5]}, "exclude must hold strings only, got 5"),
        ({"exclude": 5}, "exclude must be a collection of names, got 5"),
        ({"seed": "a"}, "seed must be an integer or None, got 'a'"),
        ({"seed": 1.5, "ends_with": "us"}, "seed must be an integer or None, got 1.5"),
    ],
    ids=str,
)
def test_options_of_the_wrong_type_are_one_sentence(generator, options, message):
    with pytest.raises(OptionError) as caught:
        generator.sample(2, **options)
    assert str(caught.value) == message


def test_exclude_may_be_an_iterator_or_none(generator):
    names = generator.sample(20, seed=0)
    assert generator.sample(20, seed=0, exclude=iter(names[:3]))[:3] != names[:3]
    assert generator.sample(20, seed=0, exclude=None) == names
