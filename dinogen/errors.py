"""The one exception type the library raises for bad input; the CLI turns it into a sentence."""

SHOWN_CHARS = 100  # the most of a user's input that an error message echoes


class DinogenError(Exception):
    """A problem the user can fix: a missing file, a bad value, an unavailable device."""

    exit_code = 1  # runtime error; usage errors override this with 2


class ConfigError(DinogenError):
    """A bad config key or value: a usage error."""

    exit_code = 2


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut in the middle to at most `limit` characters, so that a message never echoes a huge input.

    The middle goes: the start and the end (a file's name, a closing quote) say most.
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head) :]}"
