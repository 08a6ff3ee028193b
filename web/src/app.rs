//! The root component: holds the state and lays out the screen.

use yew::prelude::*;

use crate::components::{ConnectionBanner, Header, Welcome};
use crate::state::RelayStatus;

#[function_component(App)]
pub fn app() -> Html {
    // The relay connection arrives with the browser-peer issue; until then
    // the page truthfully reports that it is not connected.
    let status = use_state(|| RelayStatus::NotConnected);
    html! {
        <div class="app">
            <Header />
            <ConnectionBanner status={*status} />
            <Welcome />
        </div>
    }
}
