"""The data a model trains on: a built-in dataset, an uploaded CSV or image, or a drawing.

An upload is read once per file (its bytes' digest), not on every rerun of
the page: the dataset read from it is kept in the session until another
file replaces it.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from cnf_core import datasets
from cnf_core.datasets import Dataset
from cnf_core.errors import CNFLabError
from cnf_core.training import TrainConfig

from . import drawing, settings

__all__ = ["UPLOAD_CSV", "UPLOAD_IMAGE", "DRAW", "dataset_input", "read_upload"]

UPLOAD_CSV, UPLOAD_IMAGE, DRAW = "Upload a CSV…", "Upload an image…", "Draw your own…"
_READERS = {UPLOAD_CSV: datasets.from_csv, UPLOAD_IMAGE: datasets.from_image}


def read_upload(upload, choice: str) -> Dataset:
    """The dataset in an uploaded file, read once per distinct file and kept for the page's reruns; `DataError` says what is wrong."""
    digest = hashlib.sha256(upload.getvalue()).hexdigest()
    kept = st.session_state.get("upload_read")
    if kept is None or kept[:2] != (choice, digest):
        try:
            kept = (choice, digest, _READERS[choice](upload.getvalue(), name=upload.name), None)
        except CNFLabError as exc:
            kept = (choice, digest, None, exc)
        st.session_state.upload_read = kept  # one upload kept per session: a new file replaces it
    if kept[3] is not None:
        raise kept[3]
    return kept[2]


def dataset_input(prefix: str, canvas_container) -> tuple[str | Dataset | None, str | None]:
    """The dataset widget (bound to the address as `{prefix}_dataset`) and what it chose: (dataset, label), or (None, None) without one.

    A drawing opens its canvas in `canvas_container` (a wide column a class can see).
    """
    choices = [*datasets.names(), UPLOAD_CSV, UPLOAD_IMAGE, DRAW]
    choice = st.selectbox("Dataset", choices, key=f"{prefix}_dataset", bind=settings.BIND, help=settings.declaration(TrainConfig, "dataset").setting.help)
    if choice == DRAW:
        with canvas_container:
            return drawing.drawing_input(prefix), drawing.DATASET_NAME
    if choice not in _READERS:
        return choice, choice
    is_csv = choice == UPLOAD_CSV
    upload = st.file_uploader(
        "CSV of x, y rows" if is_csv else "Image (darker = more mass)",
        type=["csv", "txt"] if is_csv else ["png", "jpg", "jpeg", "bmp", "gif"],
        key=f"{prefix}_upload_csv" if is_csv else f"{prefix}_upload_image",
    )
    if upload is None:
        return None, None
    try:
        return read_upload(upload, choice), upload.name
    except CNFLabError as exc:
        st.error(f"{upload.name}: {exc}")
        return None, None
