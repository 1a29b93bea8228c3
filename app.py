"""CNF Lab: the Streamlit entry point (`streamlit run app.py`).

Sets up the page, this session's state and the shared sidebar, then hands
over to the page the visitor picked (`st.navigation` over `pages/`).
"""

import streamlit as st
import torch

from ui import sidebar, state

# Sessions and training threads run torch side by side in this one process; with
# several OpenMP threads each they oversubscribe the cores and everything slows
# down many times over. One thread per computation is nearly as fast for these
# small networks and degrades gracefully under load.
torch.set_num_threads(1)

st.set_page_config(page_title="CNF Lab", page_icon="🌀", layout="wide")
state.init()

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
]

page = st.navigation(PAGES)
sidebar.render()
page.run()
