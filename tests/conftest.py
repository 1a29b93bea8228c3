"""Shared test setup."""

import torch

# Tests, the app under test and other processes share two cores: one torch thread
# per process avoids OpenMP oversubscription, which slows every op many times over.
torch.set_num_threads(1)
