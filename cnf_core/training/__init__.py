"""Training a CNF: its settings (`config`), its loss parts (`losses`) and the one loop every fit uses (`loop`).

- `TrainConfig`: everything a run needs, each setting declared once;
- `MaximumLikelihood` and `FlowMatching`: the CNF's loss parts;
- `Trainer`: the loop (stop and resume, one iteration at a time, a state to
  continue in another process with `save_state`/`load_state`).
"""

from ..device import pick_device
from .config import COUPLINGS, MAX_BATCH, MAX_ITERATIONS, MAX_SECONDS, OBJECTIVES, REFLOW, TrainConfig
from .losses import FlowMatching, Loss, MaximumLikelihood, PairedFlowMatching, optimal_pairing
from .loop import SNAPSHOT_ITERATIONS, IterationReport, LoopSettings, Progress, Trainer, initial_field, load_state, save_state, seeded_rng

__all__ = [
    "TrainConfig",
    "OBJECTIVES",
    "REFLOW",
    "COUPLINGS",
    "MAX_BATCH",
    "MAX_ITERATIONS",
    "MAX_SECONDS",
    "Loss",
    "MaximumLikelihood",
    "FlowMatching",
    "PairedFlowMatching",
    "optimal_pairing",
    "Trainer",
    "Progress",
    "IterationReport",
    "LoopSettings",
    "SNAPSHOT_ITERATIONS",
    "seeded_rng",
    "initial_field",
    "pick_device",
    "save_state",
    "load_state",
]
