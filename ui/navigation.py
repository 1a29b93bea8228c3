"""The app's pages: file, title and icon, in the sidebar's order; the class board only for the teacher."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PAGES", "BOARD", "url_path", "sendable_pages"]

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/lecture.py", "Lecture 12", ":material/school:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/density.py", "Density evolution", ":material/blur_on:"),
    ("pages/solver_lab.py", "Solver lab", ":material/functions:"),
    ("pages/precision_recall.py", "Precision & recall", ":material/target:"),
    ("pages/neural_ode.py", "Neural ODE & adjoint", ":material/replay:"),
    ("pages/objectives.py", "MLE vs flow matching", ":material/compare_arrows:"),
    ("pages/straight_flows.py", "Straight flows", ":material/trending_flat:"),
]
BOARD = ("pages/board.py", "Class board", ":material/groups:")


def url_path(path: str) -> str:
    """The address of a page file as Streamlit gives it: its file name without ".py"; the first page is "" (the home page)."""
    return "" if path == PAGES[0][0] else Path(path).stem


def sendable_pages() -> dict[str, str]:
    """The pages a teacher may send the class to, address → title (every page but the board)."""
    return {url_path(path): title for path, title, _ in PAGES if (ROOT / path).exists()}
