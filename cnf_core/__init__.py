"""CNF Lab's engine: continuous normalizing flows on 2-D toy data.

Pure Python over PyTorch and torchdiffeq (never imports Streamlit). One
module per idea: `datasets`, `field` (vector field networks), `divergence`,
`solvers`, `flow` (augmented ODE, log-densities, sampling), `grid`,
`density`, `training`, `evaluation`, `metrics`, `checkpoints`, the teaching
packages `neural_ode` and `solver_lab`, Plotly builders in `figures`, an
optional compiled accelerator behind one door in `kernels`, and the command
line in `cli` (`python -m cnf_core`).
"""

from .checkpoints import load_model, save_checkpoint
from .flow import CNF, log_density

__all__ = ["CNF", "load_model", "save_checkpoint", "log_density"]
