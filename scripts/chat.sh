#!/usr/bin/env bash
# Runs p2pchat: builds what is missing, starts a local signaling server
# (unless one is already running on 127.0.0.1:5555), serves the web UI with
# `trunk serve` on http://127.0.0.1:8080 (unless something already serves
# that port), and runs an interactive node in this terminal. The node's
# browser relay listens on 127.0.0.1:9000, where `trunk serve` sends the
# page's WebSocket.
#
#   scripts/chat.sh [username] [udp-port]
#
# For a second peer, run the same command in another terminal with another
# name and port, e.g. `scripts/chat.sh bob 5001`. Set P2PCHAT_WEB=0 to skip
# the web UI (and its one-time tool install, ~20 minutes on a new machine).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

username=${1:-${USER:-me}}
port=${2:-5000}
web=${P2PCHAT_WEB:-1}

if [ "$web" = 1 ]; then
    scripts/setup.sh web
else
    scripts/setup.sh native
fi
cargo build --release --quiet --locked -p p2pchat-node -p p2pchat-signaling

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_file=$(mktemp -t p2pchat-signaling.XXXXXX)
target/release/p2pchat-signaling --listen 127.0.0.1:5555 >"$log_file" 2>&1 &
signaling_pid=$!
sleep 0.3
if kill -0 "$signaling_pid" 2>/dev/null; then
    pids+=("$signaling_pid")
    echo "signaling server running on 127.0.0.1:5555 (log: $log_file)"
else
    echo "signaling server already running on 127.0.0.1:5555 (or could not start: see $log_file)"
fi

if [ "$web" = 1 ]; then
    if port_busy 8080; then
        echo "web UI: something already serves http://127.0.0.1:8080/ (another chat.sh?)"
    else
        web_log=$(mktemp -t p2pchat-web.XXXXXX)
        trunk serve >"$web_log" 2>&1 &
        pids+=("$!")
        echo "web UI: open http://127.0.0.1:8080/ (the first build takes a minute or two; log: $web_log)"
        echo "        the page is a full peer; it reaches other peers through this node's relay"
    fi
fi
echo "start another peer in a second terminal: scripts/chat.sh bob $((port + 1))"
echo

target/release/p2pchat-node --host 127.0.0.1 --port "$port" --username "$username" \
    --signal 127.0.0.1:5555
