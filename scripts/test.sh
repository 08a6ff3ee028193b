#!/usr/bin/env bash
# Runs every p2pchat check, after installing whatever is missing:
#   formatting, clippy (native and wasm32), the native test suite, core's
#   and the web UI's tests in headless Chromium (wasm-pack), the trunk build
#   of the web UI, and the browser peer's end-to-end test over WebDriver.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Generous per-test budget for the in-browser runner on a slow 2-core box.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-600}

started=$(date +%s)
scripts/setup.sh test
echo "setup took $(( $(date +%s) - started ))s"

passed=0
step() {
    local name=$1; shift
    local t0; t0=$(date +%s)
    echo
    echo "=== $name"
    "$@"
    passed=$((passed + 1))
    echo "=== $name: ok ($(( $(date +%s) - t0 ))s)"
}

step "rustfmt" cargo fmt --all -- --check
step "clippy (native)" cargo clippy --workspace --all-targets --locked -- -D warnings
step "clippy (wasm32: core, web)" \
    cargo clippy -p p2pchat-core -p p2pchat-web --all-targets --locked \
        --target wasm32-unknown-unknown -- -D warnings
# One build of every binary; the end-to-end tests and the browser check run
# these (a `cargo run -p …` would resolve features anew and rebuild).
step "build (native binaries)" cargo build --workspace --bins --locked
step "tests (native)" cargo test --workspace --locked
# The browser runs a test binary's tests one after the other without
# giving the page back, and ChromeDriver gives up on a page busy for 20 s:
# the simulator runs one module per page.
core_in_chromium() {
    local driver; driver=$(command -v chromedriver)
    wasm-pack test --headless --chrome --chromedriver "$driver" core --lib --test crypto
    local module
    for module in hostile insiders outsiders probes rendezvous scenarios; do
        wasm-pack test --headless --chrome --chromedriver "$driver" core --test sim -- "$module::"
    done
}
step "core tests in headless Chromium (wasm-pack)" core_in_chromium
step "web UI state and storage tests in headless Chromium (wasm-pack)" \
    wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" web
step "web UI build (trunk)" trunk build
mkdir -p target/artifacts
step "browser peer end to end (WebDriver: web UI + node + signaling)" \
    target/debug/browser-check \
        --dist dist --screenshot target/artifacts/web-chat.png

echo
echo "all checks done in $(( $(date +%s) - started ))s"
echo "checks: $passed passed, 0 failed"
