"""What every sampled name must hold (ends_with, contains, pattern, blocklist): checked, normalised, made one automaton.

Texts are normalised like names (`data.normalize_fragment`, the model's case rule), so to a lowercase model
`--ends-with Raptor` is `raptor`; a pattern's letters are folded the same way. A text to end with or contain that
holds a character the model never saw can never be met: one sentence says so. A blocked text holding one can never
appear: it is left out. The blocklist ignores case whatever the model's rule: `rex` blocks `Rex` and `REX` too.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from dinogen.automaton import DEAD, Automaton, product, substring_factor
from dinogen.controls import Controls, refuse_unseen
from dinogen.data import Vocab, normalize_fragment
from dinogen.errors import OptionError, require
from dinogen.limits import MAX_AUTOMATON_STATES
from dinogen.pattern import pattern_factor
from dinogen.rules import CharacterRules

KEYWORDS = ("ends_with", "contains", "pattern", "blocklist")


@dataclass(frozen=True)
class Constraints:
    """The constraints in the one form of a name; "", () and None are no constraint."""

    ends_with: str = ""
    contains: tuple[str, ...] = ()
    pattern: str | None = None  # "" is a pattern: only the empty name matches it
    blocklist: tuple[str, ...] = ()

    def given(self) -> list[str]:
        """The keywords of the constraints there are, in the order of KEYWORDS."""
        present = (bool(self.ends_with), bool(self.contains), self.pattern is not None, bool(self.blocklist))
        return [keyword for keyword, there in zip(KEYWORDS, present, strict=True) if there]


def checked_constraints(lowercase: bool, ends_with=None, contains=(), pattern=None, blocklist=()) -> Constraints:
    """The constraints as keywords give them, type-checked and normalised by the model's case rule `lowercase`."""
    require(ends_with is None or isinstance(ends_with, str), "ends_with", "must be a string", ends_with)
    require(pattern is None or isinstance(pattern, str), "pattern", "must be a string", pattern)
    if isinstance(blocklist, str):
        raise TypeError("blocklist must be a collection of texts, not a single string")
    contains = _texts([contains] if isinstance(contains, str) else contains, "contains", "a string or a collection")
    blocklist = _texts(blocklist, "blocklist", "a collection")
    inside = [normalize_fragment(text, lowercase, follows=True, followed=True) for text in contains + blocklist]
    return Constraints(
        normalize_fragment(ends_with or "", lowercase, follows=True),  # a leading space: the name's last word
        tuple(dict.fromkeys(text for text in inside[: len(contains)] if text)),
        pattern,
        tuple(dict.fromkeys(text for text in inside[len(contains) :] if text)),
    )


def _texts(texts, keyword: str, kind: str) -> list[str]:
    """`texts` (None, or a collection of strings) as a list, refusing anything else, bytes and None items included."""
    collection = texts is None or (isinstance(texts, Iterable) and not isinstance(texts, (bytes, bytearray)))
    require(collection, keyword, f"must be {kind} of strings", texts)
    texts = list(texts or ())
    wrong = [text for text in texts if not isinstance(text, str)]
    require(not wrong, keyword, "must hold strings only", wrong[0] if wrong else None)
    return texts


def compile_constraints(
    constraints: Constraints, controls: Controls, vocab: Vocab, rules: CharacterRules, lowercase: bool, device
) -> Automaton | None:
    """The one automaton of the constraints, the character rules and the length range; None without a constraint.

    Raises the impossible-constraint sentence when no name of the length range, prefix included, can meet them.
    """
    width, limit = len(vocab), MAX_AUTOMATON_STATES
    exact_symbols = [None, *vocab.chars]  # token t reads vocab.chars[t - 1]; the end reads nothing
    factors = []
    if constraints.ends_with:
        refuse_unseen(vocab, constraints.ends_with, "ends_with", "; no name can end with it")
        factors.append(substring_factor([constraints.ends_with], exact_symbols, "ends", limit, "ends_with"))
    for text in constraints.contains:
        refuse_unseen(vocab, text, "contains", "; no name can contain it")
        factors.append(substring_factor([text], exact_symbols, "appears", limit, "contains"))
    if constraints.pattern is not None:
        factors.append(pattern_factor(constraints.pattern, vocab.chars, lowercase, limit))
    blocked = _blocked_words(constraints.blocklist, vocab, controls.max_length)
    if blocked:
        folded = [None, *(char.lower() for char in vocab.chars)]
        factors.append(substring_factor(blocked, folded, "never", limit, "blocklist"))
    if not factors:
        return None  # e.g. a blocklist of texts the model cannot write: nothing to constrain
    if rules.factor() is not None:
        factors.append(rules.factor())
    found = product(factors, controls.prefix_ids, width, limit, constraints.given())
    first, automaton = len(controls.prefix_ids), None
    if found is not None:
        automaton = Automaton(*found, first, controls.min_length, controls.max_length, device)
    if automaton is None or not bool(automaton.viable(torch.tensor(automaton.start, device=device), first)):
        raise impossible(constraints, controls, any_length=automaton is None or automaton.start == DEAD)
    return automaton


def _blocked_words(blocklist: Iterable[str], vocab: Vocab, max_length: int) -> list[list[str]]:
    """The blocked texts as folded symbols, leaving out those no name can hold (unseen characters, too long)."""
    known = {char.lower() for char in vocab.chars}
    words = ([char.lower() for char in text] for text in blocklist)
    return [word for word in words if len(word) <= max_length and all(symbol in known for symbol in word)]


def impossible(constraints: Constraints, controls: Controls, any_length: bool = False) -> OptionError:
    """The sentence for constraints that no name of the length range (or, `any_length`, of any length) can meet."""
    keywords = ["prefix"] * bool(controls.prefix_ids) + constraints.given()
    slots = [f"{{{i}}}" for i in range(len(keywords))]
    listed = slots[0] if len(slots) == 1 else ", ".join(slots[:-1]) + " and " + slots[-1] + " together"
    loosen = "it" if len(slots) == 1 else "one of them"
    if any_length:  # the length range is not to blame: say so, rather than suggest loosening it
        return OptionError(f"no name of any length can meet {listed}; loosen {loosen}", *keywords)
    lengths = f"{controls.min_length} to {controls.max_length} characters"
    return OptionError(f"no name of {lengths} can meet {listed}; loosen {loosen} or the length range", *keywords)
