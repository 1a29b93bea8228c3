#!/usr/bin/env bash
# Install CNF Lab with its test dependencies in .venv (plus Debian's Chromium for
# the real-browser tests and nginx for the deployment test) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q && apt-get install -y -q "${missing[@]}"
    else
        sudo apt-get update -q && sudo apt-get install -y -q "${missing[@]}"
    fi
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
