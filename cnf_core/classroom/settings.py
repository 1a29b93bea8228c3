"""What a class on this server is set up with: the teacher's key, where the class store lives and how long it keeps things.

Read from the environment (`ClassSettings.from_env`), like the training pool's limits:

| variable | meaning | default |
|---|---|---|
| CNF_LAB_TEACHER_KEY | the key that opens the board (`/board?teacher=KEY`) | a random key made at start, printed once in the server's log |
| CNF_LAB_CLASS_DIR | a private folder (0700, yours) for the class store, shared by the app processes of one deployment | a new private temporary folder |
| CNF_LAB_CLASS_TTL | seconds a student, a run or a sent link stays in the store after its last sign of life | 10800 (a long lesson) |

Keys are compared in constant time (`hmac.compare_digest`), so the time an
answer takes says nothing of how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..settings import number

__all__ = ["ClassSettings", "ENVIRONMENT", "MIN_KEY_LENGTH", "new_key"]

ENVIRONMENT = {"teacher_key": "CNF_LAB_TEACHER_KEY", "folder": "CNF_LAB_CLASS_DIR", "ttl": "CNF_LAB_CLASS_TTL"}
MIN_KEY_LENGTH = 12  # shorter keys are guessable by a class with a script
MIN_TTL, MAX_TTL = 60.0, 7 * 24 * 3600.0


def new_key() -> str:
    """A random teacher's key: 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class ClassSettings:
    """The class's key, store folder and time to live; `ConfigError` names the variable that is wrong.

    `key_was_made`: no key was given, so `teacher_key` is a new random one
    that the server prints once (nobody else can know it).
    """

    teacher_key: str = field(default_factory=new_key, repr=False)
    folder: str | None = None
    ttl: float = 3 * 3600.0
    key_was_made: bool = False

    def __post_init__(self) -> None:
        key = str(self.teacher_key)
        if len(key) < MIN_KEY_LENGTH or not key.isprintable() or any(ch.isspace() for ch in key):
            raise ConfigError(f"teacher_key: at least {MIN_KEY_LENGTH} printable characters without spaces (a longer random one is better)")
        ttl = number("ttl", self.ttl)
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ConfigError(f"ttl: must be between {MIN_TTL:g} and {MAX_TTL:g} seconds, got {self.ttl!r}")
        object.__setattr__(self, "ttl", ttl)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "ClassSettings":
        """The settings the environment gives; without CNF_LAB_TEACHER_KEY a random key is made (`key_was_made`)."""
        environ = os.environ if environ is None else environ
        given = {name: environ[variable].strip() for name, variable in ENVIRONMENT.items() if environ.get(variable, "").strip()}
        if "ttl" in given:
            try:
                given["ttl"] = float(given["ttl"])
            except ValueError:
                raise ConfigError(f"CNF_LAB_CLASS_TTL: expected a number of seconds, got {given['ttl']!r}") from None
        try:
            return cls(**given, key_was_made="teacher_key" not in given)
        except ConfigError as exc:
            name, message = str(exc).split(":", 1)
            raise ConfigError(f"{ENVIRONMENT.get(name, name)}:{message}") from None

    def is_teacher_key(self, given: object) -> bool:
        """Whether `given` is the teacher's key, compared in constant time."""
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.teacher_key.encode("utf-8"))
