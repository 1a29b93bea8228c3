"""The error types of cnf_core: every bad input or failed solve is one of these.

Each carries a message written for a person (the app shows it as is).
"""

__all__ = ["CNFLabError", "ConfigError", "SolveError", "CheckpointError", "UsageError"]


class CNFLabError(Exception):
    """Base of all errors that cnf_core raises on purpose."""


class ConfigError(CNFLabError, ValueError):
    """A setting is out of range or of the wrong kind; the message names the field."""


class SolveError(CNFLabError, RuntimeError):
    """An ODE solve stopped: NFE cap, time cap, step-size underflow or divergence.

    `status` is one of "nfe-cap", "time-cap", "step-underflow", "diverged".
    """

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class CheckpointError(CNFLabError, ValueError):
    """A checkpoint cannot be read (not one, truncated or damaged, unsafe, another architecture, newer) or written."""


class UsageError(CNFLabError, ValueError):
    """A command line that cannot be parsed (unknown option, missing or malformed value)."""
