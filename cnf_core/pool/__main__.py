"""`python -m cnf_core.pool --fd N`: a training worker serving the pool on an inherited socket (see worker.py)."""

from .worker import main

main()
