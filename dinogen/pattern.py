"""`--pattern`: a regular expression over the whole name, made into a deterministic automaton over the vocabulary.

The supported syntax, with Python's meaning (`re.fullmatch`): literals and escaped punctuation (`\\.`), `.`,
classes (`[aeiou]`, `[a-z]`, `[^xq]`, `[]a]`), `\\d \\w \\s` and `\\D \\W \\S`, the quantifiers `*`, `+`, `?`,
`{m}`, `{m,}`, `{,n}`, `{m,n}` (a lazy `?` after one changes which match Python finds, never whether there is
one), `|`, groups `(...)`, `(?:...)` and `(?P<name>...)`, and the anchors `^`/`\\A` and `$`/`\\Z`. Anything
else is refused with one sentence naming it. The pattern is read as an NFA (Thompson's construction, where
the anchors are edges taken only at the name's start or end), then made deterministic by the subset
construction over the model's characters.
"""

import unicodedata
from dataclasses import dataclass

from dinogen.automaton import Factor, refuse_states
from dinogen.errors import OptionError, shorten
from dinogen.limits import MAX_NAME_LENGTH, MAX_PATTERN_CHARS, MAX_PATTERN_NESTING

SUPPORTED = "literals, ., [...] classes, \\d \\w \\s, *, +, ?, {m,n}, |, (...) groups, ^ and $"
QUANTIFIERS = "*+?{"
SHORTHANDS = {"d": str.isdecimal, "s": str.isspace, "w": lambda char: char.isalnum() or char == "_"}
LITERAL_ESCAPES = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
UNSUPPORTED_ESCAPES = {"b": "a word boundary \\b", "B": "a non-boundary \\B", "x": "a code point escape \\x",
                       "u": "a code point escape \\u", "U": "a code point escape \\U", "N": "a named character \\N",
                       "G": "\\G"}  # fmt: skip
UNSUPPORTED_GROUPS = {"=": "a lookahead (?=...)", "!": "a negative lookahead (?!...)", "<=": "a lookbehind (?<=...)",
                      "<!": "a negative lookbehind (?<!...)", ">": "an atomic group (?>...)", "P=": "a backreference",
                      "#": "a comment (?#...)", "(": "a conditional (?(...)"}  # fmt: skip


def refuse(pattern: str, what: str, position: int, valid: bool = True) -> OptionError:
    """The sentence for a pattern dinogen cannot read: unsupported syntax (`valid`) or not a regular expression."""
    if valid:
        rule = f"uses {what} at position {position}, which dinogen does not support (it supports {SUPPORTED})"
    else:
        rule = f"is not a valid regular expression ({what} at position {position})"
    rule = rule.replace("{", "{{").replace("}", "}}")  # the sentence is a template: {0} is the keyword
    return OptionError("{0} " + rule + ", got ", "pattern", detail=shorten(repr(pattern)))


@dataclass(frozen=True)
class CharSet:
    """What one position may hold: items (a char, a (low, high) range or a shorthand letter), maybe negated."""

    items: tuple
    negated: bool = False

    def holds(self, char: str, fold: bool) -> bool:
        """Whether `char` is in the set; folding, a lowercase char is also in it when its capital is (as re.I)."""
        inside = self._inside(char) or (fold and len(char.upper()) == 1 and self._inside(char.upper()))
        return inside != self.negated

    def _inside(self, char: str) -> bool:
        return any(self._item_holds(item, char) for item in self.items)

    @staticmethod
    def _item_holds(item, char: str) -> bool:
        if isinstance(item, tuple):
            return item[0] <= char <= item[1]
        if len(item) == 2 and item[0] == "\\":  # a shorthand: \d, \D, \w, ...
            return SHORTHANDS[item[1].lower()](char) != item[1].isupper()
        return item == char


ANY = CharSet((), negated=True)


class Parser:
    """A recursive-descent reader of the supported syntax into a tree of tuples.

    Nodes: ("chars", CharSet), ("seq", [nodes]), ("alt", [nodes]), ("repeat", node, low, high or None),
    ("anchor", "start" | "end").
    """

    def __init__(self, pattern: str):
        self.text, self.at = pattern, 0

    def parse(self):
        tree = self.alternation(0)
        if self.at < len(self.text):  # only an unmatched ) stops an alternation early
            raise refuse(self.text, "unbalanced parenthesis", self.at, valid=False)
        return tree

    def peek(self, ahead: int = 0) -> str:
        return self.text[self.at + ahead : self.at + ahead + 1]

    def alternation(self, depth: int):
        if depth > MAX_PATTERN_NESTING:
            raise refuse(self.text, f"groups nested more than {MAX_PATTERN_NESTING} deep", self.at)
        branches = [self.sequence(depth)]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence(depth))
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self, depth: int):
        items = []
        while self.peek() and self.peek() not in "|)":
            start = self.at
            atom = self.atom(depth)
            quantifier = self.quantifier()
            if quantifier is not None:
                if atom[0] == "anchor":
                    raise refuse(self.text, "nothing to repeat", start + 1, valid=False)
                atom = ("repeat", atom, *quantifier)
                if self.peek() == "?":
                    self.at += 1  # lazy: the same set of names
                elif self.peek() == "+":
                    raise refuse(self.text, "a possessive quantifier", self.at)
                if (self.peek() and self.peek() in "*+?") or self.braces() is not None:
                    raise refuse(self.text, "multiple repeat", self.at, valid=False)
            items.append(atom)
        return ("seq", items)

    def braces(self) -> tuple[int, int | None, int] | None:
        """(low, high, end) of a {m,n} quantifier here, or None where the brace is a literal (as Python reads it)."""
        close = self.text.find("}", self.at)
        if self.peek() != "{" or close < 0:
            return None
        low, comma, high = self.text[self.at + 1 : close].partition(",")
        if not all(part == "" or (part.isascii() and part.isdigit()) for part in (low, high)):
            return None
        if not comma and not low:
            return None
        return int(low or 0), (None if comma and not high else int(high or low)), close + 1

    def quantifier(self) -> tuple[int, int | None] | None:
        char = self.peek()
        if char and char in "*+?":
            self.at += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        found = self.braces()
        if found is None:
            return None
        low, high, end = found
        if max(low, high or 0) > MAX_NAME_LENGTH:
            raise refuse(self.text, f"a repeat count above {MAX_NAME_LENGTH:,} (the longest name)", self.at)
        if high is not None and high < low:
            raise refuse(self.text, "min repeat greater than max repeat", self.at, valid=False)
        self.at = end
        return low, high

    def atom(self, depth: int):
        char, start = self.peek(), self.at
        self.at += 1
        if char == "(":
            return self.group(depth, start)
        if char == "[":
            return ("chars", self.char_class(start))
        if char == ".":
            return ("chars", ANY)
        if char in "^$":
            return ("anchor", "start" if char == "^" else "end")
        if char in "*+?" or (char == "{" and self.back_to_brace()):
            raise refuse(self.text, "nothing to repeat", start, valid=False)
        if char == "\\":
            return self.escape(start, in_class=False)
        return ("chars", CharSet((char,)))

    def back_to_brace(self) -> bool:
        """Whether the { just read opens a quantifier (then it has nothing to repeat)."""
        self.at -= 1
        found = self.braces() is not None
        self.at += 1
        return found

    def group(self, depth: int, start: int):
        if self.peek() == "?":
            kind = self.text[self.at + 1 : self.at + 3]
            if kind[:1] == ":":
                self.at += 2
            elif kind == "P<":
                close = self.text.find(">", self.at)
                if close < 0 or not self.text[self.at + 3 : close].isidentifier():
                    raise refuse(self.text, "a bad group name", start, valid=False)
                self.at = close + 1
            else:
                what = next((text for key, text in UNSUPPORTED_GROUPS.items() if kind.startswith(key)), None)
                raise refuse(self.text, what or "an inline flag or extension (?...)", start)
        inner = self.alternation(depth + 1)
        if self.peek() != ")":
            raise refuse(self.text, "missing ), unterminated subpattern", start, valid=False)
        self.at += 1
        return inner

    def escape(self, start: int, in_class: bool):
        """The atom (outside a class) or the class item (inside one) of the escape at `start`."""
        char = self.peek()
        self.at += 1
        if not char:
            raise refuse(self.text, "a bad escape (end of pattern)", start, valid=False)
        if char.lower() in SHORTHANDS and char.isascii():
            item = "\\" + char
            return item if in_class else ("chars", CharSet((item,)))
        if in_class and char == "b":
            return "\b"  # inside a class, \b is a backspace, as in Python
        if not in_class and char in "AZ":
            return ("anchor", "start" if char == "A" else "end")
        if char.isascii() and char.isdigit():
            raise refuse(self.text, "a backreference or octal escape", start)
        if char in UNSUPPORTED_ESCAPES:
            raise refuse(self.text, UNSUPPORTED_ESCAPES[char], start)
        if char.isascii() and char.isalpha() and char not in LITERAL_ESCAPES:
            raise refuse(self.text, f"a bad escape \\{char}", start, valid=False)
        literal = LITERAL_ESCAPES.get(char, char)
        return literal if in_class else ("chars", CharSet((literal,)))

    def char_class(self, start: int) -> CharSet:
        negated = self.peek() == "^"
        self.at += negated
        items: list = []
        first = True
        while True:
            char = self.peek()
            if not char:
                raise refuse(self.text, "unterminated character set", start, valid=False)
            if char == "]" and not first:
                self.at += 1
                return CharSet(tuple(items), negated)
            first = False
            item_start = self.at
            item = self.class_item()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.at += 1
                high = self.class_item()
                if len(item) != 1 or len(high) != 1 or high < item:
                    raise refuse(self.text, "a bad character range", item_start, valid=False)
                item = (item, high)
            items.append(item)

    def class_item(self) -> str:
        char, start = self.peek(), self.at
        self.at += 1
        return self.escape(start, in_class=True) if char == "\\" else char


class Nfa:
    """Thompson's automaton: character edges, free edges, and anchor edges taken only at the start or the end."""

    def __init__(self, pattern: str, token_sets, limit: int):
        self.pattern, self.token_sets, self.limit = pattern, token_sets, limit
        self.edges: list[list[tuple[frozenset[int], int]]] = []  # node -> (tokens, next node)
        self.free: list[list[int]] = []  # node -> nodes reached reading nothing
        self.anchored: list[list[tuple[str, int]]] = []  # node -> ("start" | "end", next node)
        self.reach: dict[int, frozenset[int]] = {}  # node -> its closure inside the name, once asked for

    def node(self) -> int:
        if len(self.edges) >= self.limit:
            raise refuse_states("pattern", self.limit, self.pattern)
        self.edges.append([])
        self.free.append([])
        self.anchored.append([])
        return len(self.edges) - 1

    def build(self, tree) -> tuple[int, int]:
        """(entry, exit) nodes of the fragment for `tree`."""
        kind = tree[0]
        entry, exit_ = self.node(), self.node()
        if kind == "chars":
            self.edges[entry].append((self.token_sets(tree[1]), exit_))
        elif kind == "anchor":
            self.anchored[entry].append((tree[1], exit_))
        elif kind == "alt":
            for branch in tree[1]:
                inner_entry, inner_exit = self.build(branch)
                self.free[entry].append(inner_entry)
                self.free[inner_exit].append(exit_)
        elif kind == "seq":
            here = entry
            for item in tree[1]:
                inner_entry, inner_exit = self.build(item)
                self.free[here].append(inner_entry)
                here = inner_exit
            self.free[here].append(exit_)
        else:
            self.repeat(tree[1], tree[2], tree[3], entry, exit_)
        return entry, exit_

    def repeat(self, tree, low: int, high: int | None, entry: int, exit_: int) -> None:
        """`low` copies in a row, then `high - low` optional ones, or a loop when there is no `high`."""
        here = entry
        for _ in range(low):
            inner_entry, inner_exit = self.build(tree)
            self.free[here].append(inner_entry)
            here = inner_exit
        if high is None:
            inner_entry, inner_exit = self.build(tree)
            self.free[here] += [inner_entry, exit_]
            self.free[inner_exit].append(here)
            return
        for _ in range(high - low):
            inner_entry, inner_exit = self.build(tree)
            self.free[here] += [inner_entry, exit_]
            here = inner_exit
        self.free[here].append(exit_)

    def closure(self, nodes, at_start: bool, at_end: bool) -> frozenset[int]:
        """The nodes reached from `nodes` reading nothing; anchors pass only at the name's start or end."""
        passing = {"start": at_start, "end": at_end}
        seen, stack = set(nodes), list(nodes)
        while stack:
            node = stack.pop()
            reached = self.free[node] + [target for anchor, target in self.anchored[node] if passing[anchor]]
            for target in reached:
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(seen)

    def finishing(self, final: int) -> set[int]:
        """The nodes from which `final` is reached reading nothing at the name's end (end anchors pass)."""
        before: dict[int, list[int]] = {}
        for node in range(len(self.edges)):
            for target in self.free[node] + [target for anchor, target in self.anchored[node] if anchor == "end"]:
                before.setdefault(target, []).append(node)
        seen, stack = {final}, [final]
        while stack:
            for earlier in before.get(stack.pop(), ()):
                if earlier not in seen:
                    seen.add(earlier)
                    stack.append(earlier)
        return seen

    def inside(self, nodes: frozenset[int]) -> frozenset[int]:
        """The closure of `nodes` inside the name (no anchor passes), as the union of each node's, computed once."""
        for node in nodes:
            if node not in self.reach:
                self.reach[node] = self.closure([node], at_start=False, at_end=False)
        return frozenset().union(*(self.reach[node] for node in nodes))


def pattern_factor(pattern: str, chars: list[str], fold: bool, limit: int) -> Factor:
    """The pattern as a DFA over tokens 1..len(chars) (token t is chars[t - 1]); fold: a lowercase model's rule."""
    if not isinstance(pattern, str):
        raise OptionError("{0} must be a string, got ", "pattern", detail=shorten(repr(pattern)))
    if len(pattern) > MAX_PATTERN_CHARS:
        raise OptionError(
            "{0} " + f"is longer than {MAX_PATTERN_CHARS:,} characters, got ", "pattern", detail=shorten(repr(pattern))
        )
    tree = Parser(unicodedata.normalize("NFC", pattern)).parse()
    cache: dict[CharSet, frozenset[int]] = {}

    def token_sets(char_set: CharSet) -> frozenset[int]:
        if char_set not in cache:
            cache[char_set] = frozenset(t for t, char in enumerate(chars, start=1) if char_set.holds(char, fold))
        return cache[char_set]

    nfa = Nfa(pattern, token_sets, limit)
    return subsets(nfa, *nfa.build(tree), len(chars) + 1)


def subsets(nfa: Nfa, entry: int, final: int, width: int) -> Factor:
    """The subset construction: each DFA state is the set of NFA nodes the name so far may have reached."""
    sets = [nfa.closure([entry], at_start=True, at_end=False)]
    ids: dict[frozenset[int], int] = {}  # the start is a state of its own: only there do start anchors pass
    stepped: dict[frozenset[int], int] = {}  # the nodes a character reaches -> the DFA state of their closure
    finishing = nfa.finishing(final)
    table, accepting = [], [final in nfa.closure(sets[0], at_start=True, at_end=True)]
    for state, nodes in enumerate(sets):  # `sets` grows as new states are found
        if state > 0:
            accepting.append(not finishing.isdisjoint(nodes))
        following: dict[int, set[int]] = {}
        for node in nodes:
            for tokens, target in nfa.edges[node]:
                for token in tokens:
                    following.setdefault(token, set()).add(target)
        row = [-1] * width
        for token, targets in following.items():
            targets = frozenset(targets)
            if targets not in stepped:
                reached = nfa.inside(targets)
                if reached not in ids:
                    if len(sets) >= nfa.limit:
                        raise refuse_states("pattern", nfa.limit, nfa.pattern)
                    ids[reached] = len(sets)
                    sets.append(reached)
                stepped[targets] = ids[reached]
            row[token] = stepped[targets]
        table.append(row)
    return Factor(table, accepting)
