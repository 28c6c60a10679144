"""The project's exceptions that the command line maps to exit codes (see `training.cli`).

Bad input (exit 2, raised before any run is created): `ConfigError`, `DataError`,
`TrackingError`. `RunKilled` is raised inside training on SIGTERM (exit 143).
"""


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the valid choices."""


class DataError(ValueError):
    """A dataset that cannot be loaded or split as asked.

    The message names the bad value (a path, a label, a class and its count) and the valid
    choices, so the command line can print it as the single line a user reads. Subclasses
    ``ValueError`` so callers that validate config values can catch both the same way.
    """


class TrackingError(RuntimeError):
    """The tracking store cannot be used (unreachable server, unusable URI)."""


class RunKilled(BaseException):
    """Raised inside training on SIGTERM so that the run is closed as KILLED."""


BAD_INPUT = (ConfigError, DataError, TrackingError)
