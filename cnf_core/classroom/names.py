"""Display names of a class: a generated one for each new student ("Blue heron"), and what a chosen one may be.

A name is all the board shows of a student: no address, no browser data.
Generated names pair a colour with a bird, so a class of thirty rarely meets
the same one twice and each reads well when a teacher says it aloud.
"""

from __future__ import annotations

import random
import unicodedata

from ..errors import ConfigError

__all__ = ["MAX_NAME_LENGTH", "generated_name", "display_name"]

MAX_NAME_LENGTH = 40
COLOURS = ("Blue", "Red", "Green", "Golden", "Silver", "Amber", "Coral", "Indigo", "Jade", "Scarlet", "Teal", "Violet", "Ochre", "Crimson", "Azure", "Olive")
BIRDS = ("heron", "finch", "kestrel", "owl", "wren", "robin", "swift", "plover", "ibis", "egret", "falcon", "lark", "magpie", "osprey", "puffin", "tern")


def generated_name(rng: random.Random | None = None) -> str:
    """A colour and a bird, such as "Blue heron" (256 names)."""
    rng = rng or random.SystemRandom()
    return f"{rng.choice(COLOURS)} {rng.choice(BIRDS)}"


def display_name(text: str) -> str:
    """`text` as a name the board may show: trimmed, whitespace collapsed, 1 to MAX_NAME_LENGTH printable characters.

    Control and formatting characters (a right-to-left override, a zero-width
    joiner) are refused, so a name cannot disguise itself or another's.

    >>> display_name("  Ana   M. ")
    'Ana M.'

    Raises:
        ConfigError: the name is empty, too long, or holds a character that is not printable.
    """
    name = " ".join(str(text).split())
    if not name:
        raise ConfigError("name: type at least one letter")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"name: at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ConfigError("name: use letters, digits, spaces and punctuation only")
    return name
