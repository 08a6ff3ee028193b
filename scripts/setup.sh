#!/usr/bin/env bash
# Installs whatever p2pchat needs and is missing, idempotently: on a machine
# that already has everything it only checks versions (a second or two).
#
#   scripts/setup.sh native   Rust toolchain with rustfmt and clippy
#   scripts/setup.sh web      + what serving the web UI needs: the wasm32
#                               target, the wasm-bindgen CLI and trunk
#   scripts/setup.sh test     + wasm32 target, wasm-bindgen CLI (the version
#                               in Cargo.lock), wasm-pack, trunk, Chromium
#                               and ChromeDriver
#
# Only the package registries are reachable here, so nothing is downloaded
# behind our back: tools are built with `cargo install`, browsers come from apt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TRUNK_VERSION=0.21.14

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

setup_rust() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        log "adding rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
}

setup_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}

# The wasm-bindgen version Cargo.lock resolved; the CLI must match it exactly.
locked_wasm_bindgen() {
    awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

setup_wasm_bindgen() {
    local want have
    want=$(locked_wasm_bindgen)
    [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
    grep -q "wasm_bindgen = \"$want\"" Trunk.toml \
        || die "Trunk.toml [tools] wasm_bindgen must be \"$want\" (the version in Cargo.lock)"
    have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
    if [ "$have" != "$want" ]; then
        log "installing wasm-bindgen-cli $want (have: ${have:-none}; ~4 min)"
        # No --locked: its lock file names a crate version the registry lacks.
        cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

setup_wasm_pack() {
    if ! wasm-pack --version >/dev/null 2>&1; then
        log "installing wasm-pack (~4 min)"
        cargo install wasm-pack --locked
    fi
}

setup_trunk() {
    local have
    have=$(trunk --version 2>/dev/null | awk '{print $2}' || true)
    if [ "$have" != "$TRUNK_VERSION" ]; then
        log "installing trunk $TRUNK_VERSION (have: ${have:-none}; ~16 min)"
        # trunk 0.22 needs a newer rustc than this machine has.
        cargo install trunk --version "$TRUNK_VERSION" --locked --force
    fi
}

setup_chromium() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        return
    fi
    log "installing chromium and chromium-driver from apt"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    # The first install can fail half-way on this kind of machine; the
    # second one completes it.
    as_root apt-get install -y -q chromium chromium-driver \
        || as_root apt-get install -y -q chromium chromium-driver
    command -v chromedriver >/dev/null 2>&1 || die "chromedriver still missing after apt install"
}

want=${1:-test}
case "$want" in
    native) setup_rust ;;
    web)
        setup_rust
        setup_wasm_target
        setup_wasm_bindgen
        setup_trunk
        ;;
    test)
        setup_rust
        setup_wasm_target
        setup_chromium
        setup_wasm_bindgen
        setup_wasm_pack
        setup_trunk
        ;;
    *) die "usage: scripts/setup.sh [native|web|test]" ;;
esac
log "ready ($want)"
