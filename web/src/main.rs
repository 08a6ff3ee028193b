//! The p2pchat web UI: a Yew app that will run the core engine in wasm and
//! reach peers through the local node's relay.
//!
//! State lives in one place ([`state`]); components are small functions named
//! for what the user sees.

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod database;
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "natively only the tests use it")
)]
mod pacer;
#[cfg(target_arch = "wasm32")]
mod peer;
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "natively only the tests use the state; the UI that does is wasm-only"
    )
)]
mod state;
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "natively only the tests use storage; the browser peer that does is wasm-only"
    )
)]
mod storage;
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "natively only the tests use it")
)]
mod tab;

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<app::App>::new().render();
}

/// Natively there is nothing to render: say how to get the UI.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("p2pchat-web runs in the browser: build it with `trunk build` (or serve it with `trunk serve`) from the repository root.");
    std::process::exit(2);
}

// The UI's state and storage tests run in headless Chromium too (wasm-pack),
// where localStorage is real.
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
