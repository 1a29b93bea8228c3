"""The sidebar every page shares: device, the name the class sees, active model, upload and download."""

from __future__ import annotations

import hashlib

import streamlit as st

from cnf_core import load_model
from cnf_core.errors import CNFLabError

from . import classroom, state


def render() -> None:
    with st.sidebar:
        st.caption(f"Device: **{state.device_label()}**")
        classroom.name_controls()
        for notice in state.take_notices():
            st.warning(notice)
        models = state.models()
        if not models:
            st.warning("No models yet: train one on the Train page.")
        else:
            names = list(models)
            if st.session_state.get("active_model") not in names:
                st.session_state.active_model = names[0]
            # the widget has its own key so other code may change the active model at any time
            st.session_state.active_model_choice = st.session_state.active_model
            st.selectbox(
                "Active model",
                names,
                format_func=lambda name: models[name].label(),
                key="active_model_choice",
                on_change=lambda: st.session_state.update(active_model=st.session_state.active_model_choice),
                help="Every page works on this model. Pretrained ones ship with the app; "
                f"the ones you train or upload in this browser tab are listed too (at most {state.MAX_OWN_MODELS}: "
                "the oldest one makes room for a new one).",
            )
            own = sum(entry.source != "pretrained" for entry in models.values())
            if own >= state.MAX_OWN_MODELS - 2:
                st.caption(f"Your models: {own} of {state.MAX_OWN_MODELS}. The oldest makes room for the next; download one to keep it.")
            entry = state.active()
            if entry is not None:
                info = entry.model.info
                config = entry.model.field.config
                st.caption(
                    f"{entry.source} · data: {info.get('dataset', '?')} · "
                    f"{config.widths} {config.activation} · "
                    f"{info.get('iterations', '?')} iterations"
                )
                try:
                    checkpoint = state.model_download(entry)
                except CNFLabError as exc:
                    st.caption(f"This model cannot be downloaded: {exc}")
                else:
                    st.download_button(
                        "Download checkpoint",
                        data=checkpoint,
                        file_name=f"{entry.file_stem}.pt",
                        mime="application/octet-stream",
                        width="stretch",
                    )
        upload = st.file_uploader("Upload a checkpoint (.pt)", type=["pt"], key="checkpoint_upload")
        data = upload.getvalue() if upload is not None else None
        # the uploader keeps its file across reruns: load each distinct upload once
        upload_key = None if data is None else (upload.name, hashlib.sha1(data).hexdigest())
        if upload_key is not None and st.session_state.get("last_checkpoint_upload") != upload_key:
            st.session_state.last_checkpoint_upload = upload_key
            try:
                model = load_model(data)
            except CNFLabError as exc:
                st.error(f"Could not load {upload.name}: {exc}")
            else:
                name = state.unique_name(f"{upload.name.removesuffix('.pt')} (uploaded)")
                state.add_model(state.ModelEntry(name, model, "uploaded"))
                st.rerun()
