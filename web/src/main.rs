//! The p2pchat web UI: a Yew app that will run the core engine in wasm and
//! reach peers through the local node's relay.
//!
//! State lives in one place ([`state`]); components are small functions named
//! for what the user sees.

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg_attr(
    all(not(target_arch = "wasm32"), not(test)),
    expect(
        dead_code,
        reason = "natively only the tests use the state; the UI that does is wasm-only"
    )
)]
mod state;

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
