#!/usr/bin/env bash
# Install CNF Lab's runtime dependencies in .venv and start the app.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/streamlit run app.py "$@"
