#!/usr/bin/env bash
# Runs p2pchat: builds what is missing, starts a local signaling server
# (unless one is already running on 127.0.0.1:5555) and an interactive node.
#
#   scripts/chat.sh [username] [udp-port]
#
# For a second peer, run the same command in another terminal with another
# name and port, e.g. `scripts/chat.sh bob 5001`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

username=${1:-${USER:-me}}
port=${2:-5000}

scripts/setup.sh native
cargo build --release --quiet --locked -p p2pchat-node -p p2pchat-signaling

signaling_pid=
cleanup() {
    if [ -n "$signaling_pid" ]; then
        kill "$signaling_pid" 2>/dev/null || true
        wait "$signaling_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

log_file=$(mktemp -t p2pchat-signaling.XXXXXX)
target/release/p2pchat-signaling --listen 127.0.0.1:5555 >"$log_file" 2>&1 &
signaling_pid=$!
sleep 0.3
if kill -0 "$signaling_pid" 2>/dev/null; then
    echo "signaling server running on 127.0.0.1:5555 (log: $log_file)"
else
    signaling_pid=
    echo "signaling server already running on 127.0.0.1:5555 (or could not start: see $log_file)"
fi
echo "start another peer in a second terminal: scripts/chat.sh bob $((port + 1))"
echo

target/release/p2pchat-node --host 127.0.0.1 --port "$port" --username "$username" \
    --signal 127.0.0.1:5555
