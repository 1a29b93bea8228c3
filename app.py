"""CNF Lab: the Streamlit entry point (`streamlit run app.py`).

Sets up the page, this session's state and the shared sidebar, then hands
over to the page the visitor picked (`st.navigation` over `pages/`).
"""

import sys

# Plotly looks pandas up in sys.modules without importing it, and Streamlit imports it lazily
# (tables): one session's thread could meet the half-imported module another is loading (an
# AttributeError drawing a chart). Importing it here makes every script run wait until it is whole.
import pandas  # noqa: F401
import streamlit as st
import torch

from ui import address, classroom, projector, settings, sidebar, state
from ui.navigation import BOARD, PAGES, ROOT

# Sessions run torch side by side in this one process (training runs in worker processes); with
# several OpenMP threads each they oversubscribe the cores and everything slows
# down many times over. One thread per computation is nearly as fast for these
# small networks and degrades gracefully under load.
torch.set_num_threads(1)
# Every session's script runs on a thread of this one process, beside the event loop that
# answers the browsers and the health check. With a dozen script runs at once (a class
# pressing Start together), each hand-over of the GIL to the event loop waited behind
# them 5 ms at a time (the default switch interval); 1 ms keeps the server answering.
sys.setswitchinterval(0.001)

settings.read_infinite_address_numbers_as_defaults()  # a Streamlit 1.67 crash on ?train_batch=inf (ui/settings.py)
st.set_page_config(page_title="CNF Lab", page_icon=":material/cyclone:", layout="wide")
state.mark_app_run()
state.init()
classroom.admit_teacher()  # ?teacher=KEY: this session is the teacher's
classroom.join()

presenting = projector.enabled()  # ?projector=true: no sidebar, no navigation, larger type (ui/projector.py)
if presenting:
    projector.apply()
shown = PAGES + [BOARD] if classroom.is_teacher() else PAGES  # without the key the board has no address at all
page = st.navigation(
    [st.Page(path, title=title, icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(shown) if (ROOT / path).exists()],
    position="hidden" if presenting else "sidebar",
)
classroom.drop_key_from_address()
# the active model travels in the address too, read once per session (only names every session has: the pretrained ones)
if not st.session_state.get("address_model_read"):
    st.session_state.address_model_read = True
    pretrained = [name for name, entry in state.models().items() if entry.source == "pretrained"]
    st.session_state.active_model = address.read("model", lambda name: pretrained[pretrained.index(name)], st.session_state.active_model)
state.collect_finished_runs()  # runs that ended since the last rerun join the model list first
if not presenting:
    sidebar.render()
classroom.banner()  # the link the teacher sent, on every student's page
page.run()
address.write("model", st.session_state.get("active_model"), default=state.DEFAULT_MODEL)
