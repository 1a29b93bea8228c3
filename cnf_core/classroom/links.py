"""The link a teacher sends to the class: an address of this app, read from whatever the teacher pasted.

Only a page of this app can be sent (its path and settings), never another
site: whatever scheme and host the pasted text names are dropped, so the
banner's button always opens the student's own server. The teacher's key
never travels in a sent link.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from ..errors import ConfigError

__all__ = ["MAX_LINK_LENGTH", "KEY_PARAM", "class_link"]

MAX_LINK_LENGTH = 2000
KEY_PARAM = "teacher"  # the address parameter that carries the teacher's key


def class_link(text: str, pages: dict[str, str]) -> tuple[str, str]:
    """The address to send for `text` (a full address or a path such as "/lecture?step=adjoint"), and its page's title.

    Args:
        text: what the teacher pasted or typed.
        pages: the app's pages, url path ("" for the home page) → title.

    >>> class_link("http://10.0.0.5:8080/lecture?step=adjoint&teacher=secret", {"": "Home", "lecture": "Lecture 12"})
    ('/lecture?step=adjoint', 'Lecture 12')

    Raises:
        ConfigError: the text is empty, too long, or names no page of the app.
    """
    text = str(text).strip()
    if not text:
        raise ConfigError("link: paste the address of a page of this app")
    if len(text) > MAX_LINK_LENGTH:
        raise ConfigError(f"link: at most {MAX_LINK_LENGTH} characters")
    parts = urlsplit(text if "://" in text or text.startswith("/") else "/" + text)
    path = parts.path.strip("/")
    if path not in pages:
        known = ", ".join(f"/{name}" for name in pages)
        raise ConfigError(f"link: /{path} is not a page of this app (pages: {known})")
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != KEY_PARAM]
    address = "/" + path + ("?" + urlencode(query) if query else "")
    return address, pages[path]
