"""The one exception type the library raises for bad input; the CLI turns it into a sentence."""


class DinogenError(Exception):
    """A problem the user can fix: a missing file, a bad value, an unavailable device."""

    exit_code = 1  # runtime error; usage errors override this with 2


class ConfigError(DinogenError):
    """A bad config key or value: a usage error."""

    exit_code = 2
