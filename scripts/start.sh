#!/usr/bin/env bash
# Install CNF Lab's runtime dependencies in .venv and start the app.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
if [ -z "${CNF_LAB_TEACHER_KEY:-}" ]; then  # the class board's key: made at start, printed once (README, "Deploying for a class")
    CNF_LAB_TEACHER_KEY=$(.venv/bin/python -c 'from cnf_core.classroom import new_key; print(new_key())')
    export CNF_LAB_TEACHER_KEY
    echo "CNF Lab: the teacher's board is /board?teacher=$CNF_LAB_TEACHER_KEY on this server (http://localhost:8501/board?teacher=$CNF_LAB_TEACHER_KEY by default)"
fi
exec .venv/bin/streamlit run app.py "$@"
