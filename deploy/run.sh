#!/usr/bin/env bash
# Serve CNF Lab to a class: several app processes behind nginx with sticky sessions.
#
#   bash deploy/run.sh [--processes K] [--port P] [--first-app-port Q]
#
# Starts K `streamlit run app.py` processes on 127.0.0.1:Q..Q+K-1, each with its own
# training pool of CNF_LAB_WORKERS workers (default: the cores shared out between
# them), and nginx on port P (default 8080, all interfaces) in front of them, from
# deploy/nginx.conf.template. An app process that stops is started again (nginx
# sends its visitors to the others meanwhile). The files (config, logs, pid) live
# in a private temporary folder, removed on exit; Ctrl-C stops everything.
#
# The class board: every app process shares one class store in that private folder
# (CNF_LAB_CLASS_DIR), so the teacher's board shows the students of both processes.
# The teacher's key is CNF_LAB_TEACHER_KEY, or a random one made here and printed once
# with the board's address.
set -euo pipefail
cd "$(dirname "$0")/.."

processes=2 port=8080 first_app_port=8601
while [ $# -gt 0 ]; do
    case "$1" in
        --processes) processes=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --first-app-port) first_app_port=$2; shift 2 ;;
        *) echo "deploy/run.sh: unknown argument $1 (see the header of deploy/run.sh)" >&2; exit 2 ;;
    esac
done
case "$processes$port$first_app_port" in
    *[!0-9]*) echo "deploy/run.sh: --processes, --port and --first-app-port take whole numbers" >&2; exit 2 ;;
esac
[ "$processes" -ge 1 ] || { echo "deploy/run.sh: --processes must be at least 1" >&2; exit 2; }
command -v nginx >/dev/null || { echo "deploy/run.sh: nginx is missing (Debian: apt-get install nginx-light)" >&2; exit 2; }

if [ ! -x .venv/bin/streamlit ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi

cores=$(nproc)
export CNF_LAB_WORKERS=${CNF_LAB_WORKERS:-$(( cores / processes > 0 ? cores / processes : 1 ))}
runtime=$(mktemp -d -t cnf-lab-deploy.XXXXXX)  # private (0700): nothing here is another user's to change
mkdir -m 700 "$runtime/class"
export CNF_LAB_CLASS_DIR="$runtime/class"
if [ -z "${CNF_LAB_TEACHER_KEY:-}" ]; then
    CNF_LAB_TEACHER_KEY=$(.venv/bin/python -c 'from cnf_core.classroom import new_key; print(new_key())')
    export CNF_LAB_TEACHER_KEY
    key_note="the teacher's board: http://localhost:$port/board?teacher=$CNF_LAB_TEACHER_KEY (a new key at every start; set CNF_LAB_TEACHER_KEY to keep one)"
else
    key_note="the teacher's board: http://localhost:$port/board?teacher=<CNF_LAB_TEACHER_KEY>"
fi
pids=()
cleanup() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$runtime"
}
trap cleanup EXIT INT TERM

supervise() {  # one app process, started again whenever it stops
    local app_port=$1 child=""
    trap '[ -n "$child" ] && kill "$child" 2>/dev/null; wait 2>/dev/null; exit 0' TERM INT
    while true; do
        .venv/bin/streamlit run app.py --server.headless true --server.address 127.0.0.1 --server.port "$app_port" \
            >>"$runtime/app-$app_port.log" 2>&1 &
        child=$!
        wait "$child" || true
        echo "deploy/run.sh: the app process on port $app_port stopped; starting it again" >>"$runtime/app-$app_port.log"
        sleep 1
    done
}

servers=""
for ((i = 0; i < processes; i++)); do
    app_port=$((first_app_port + i))
    supervise "$app_port" &
    pids+=($!)
    servers+="        server 127.0.0.1:$app_port max_fails=1 fail_timeout=10s;"$'\n'
done
for ((i = 0; i < processes; i++)); do
    app_port=$((first_app_port + i))
    for _ in $(seq 120); do
        if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$app_port/_stcore/health', timeout=2)" 2>/dev/null; then
            break
        fi
        sleep 0.5
    done
done

template=$(<deploy/nginx.conf.template)
template=${template//@RUNTIME@/$runtime}
template=${template//@LISTEN@/$port}
printf '%s\n' "${template//@SERVERS@/${servers%$'\n'}}" >"$runtime/nginx.conf"
nginx -t -q -c "$runtime/nginx.conf" -p "$runtime"
nginx -c "$runtime/nginx.conf" -p "$runtime" &
nginx_pid=$!
pids+=("$nginx_pid")
echo "CNF Lab: $processes app processes ($CNF_LAB_WORKERS training workers each) behind nginx on http://localhost:$port (logs in $runtime)"
echo "CNF Lab: $key_note"
wait "$nginx_pid"
