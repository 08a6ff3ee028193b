//! The p2pchat web UI: a Yew app that will run the core engine in wasm and
//! reach peers through the local node's relay.
//!
//! State lives in one place ([`state`]); components are small functions named
//! for what the user sees.

mod app;
mod components;
mod state;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
