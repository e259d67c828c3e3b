"""The exception types the library raises for bad input; the CLI turns them into a sentence."""

from collections.abc import Callable
from typing import Any

SHOWN_CHARS = 100  # the most of a user's input that an error message echoes


class DinogenError(Exception):
    """A problem the user can fix: a missing file, a bad value, an unavailable device."""

    exit_code = 1  # runtime error; usage errors override this with 2


class ConfigError(DinogenError):
    """A bad config key or value: a usage error."""

    exit_code = 2


class OptionError(ConfigError):
    """A bad keyword value, or keywords that do not go together: the sentence names them as the caller spells them.

    The library spells `top_k`; the command line shows the same sentence with `--top-k` (see `spelled`).
    `template` names the keywords {0}, {1}, ...; `detail` (what the user gave) follows it as it is.
    """

    def __init__(self, template: str, *keywords: str, detail: str = ""):
        self.template, self.keywords, self.detail = template, keywords, detail
        super().__init__(self.spelled(str))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The sentence with each keyword written by `spell`."""
        return self.template.format(*map(spell, self.keywords)) + self.detail


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut in the middle to at most `limit` characters, so that a message never echoes a huge input.

    The middle goes: the start and the end (a file's name, a closing quote) say most.
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head) :]}"


def require(ok: bool, key: str, rule: str, value: Any, *others: str) -> None:
    """Unless `ok`: an OptionError '`key` `rule`, got `value`'; `rule` names the keywords `others` as {1}, {2}, ..."""
    if not ok:
        raise OptionError(
            "{0} " + rule + ", got ", key, *others, detail="null" if value is None else shorten(repr(value))
        )


def require_between(value: Any, key: str, low: int, high: int, nullable: bool = False) -> None:
    """`value` is an integer in [low, high] (or None, if `nullable`)."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    ok = (value is None and nullable) or (integer and low <= value <= high)
    require(ok, key, f"must be in [{low:,}, {high:,}]{' or null' * nullable}", value)
