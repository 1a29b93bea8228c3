"""`python -m cnf_core` runs the command line (see `cnf_core.cli`)."""

import sys

from .cli import main

sys.exit(main())
