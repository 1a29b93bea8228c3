"""The class in the room: students' display names, the teacher's board of their runs, and the link the teacher sends.

- `names`: generated names ("Blue heron") and what a chosen name may be;
- `settings`: the teacher's key, the store's folder and time to live (from the environment);
- `store`: `ClassStore`, the SQLite tables every app process of the machine shares;
- `publisher`: `RunPublisher`, which writes each run of this process to the store as the pool reports it;
- `links`: the address a teacher sends, kept to this app's pages.
"""

from .links import KEY_PARAM, class_link
from .names import MAX_NAME_LENGTH, display_name, generated_name
from .publisher import RunPublisher, run_record
from .settings import ClassSettings, new_key
from .store import ClassStore, Link, RunRecord

__all__ = [
    "ClassSettings",
    "ClassStore",
    "KEY_PARAM",
    "Link",
    "MAX_NAME_LENGTH",
    "RunPublisher",
    "RunRecord",
    "class_link",
    "display_name",
    "generated_name",
    "new_key",
    "run_record",
]
