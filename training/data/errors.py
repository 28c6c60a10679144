"""The one exception every bad-data case raises."""


class DataError(ValueError):
    """A dataset that cannot be loaded or split as asked.

    The message names the bad value (a path, a label, a class and its count) and the valid
    choices, so the command line can print it as the single line a user reads. Subclasses
    ``ValueError`` so callers that validate config values can catch both the same way.
    """
