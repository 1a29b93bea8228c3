"""Streamlit glue shared by the pages: session state and the sidebar (cnf_core stays UI-free)."""
