use yew::prelude::*;

/// The top bar: the app's name and what it is.
#[function_component(Header)]
pub fn header() -> Html {
    html! {
        <header class="header">
            <h1 id="app-name">{ "p2pchat" }</h1>
            <span class="tagline">{ "serverless, end-to-end encrypted group chat" }</span>
        </header>
    }
}
