use yew::prelude::*;

/// The empty state shown before any chat exists.
#[function_component(Welcome)]
pub fn welcome() -> Html {
    html! {
        <main class="welcome">
            <p>{ "Messages here are encrypted end to end and travel directly between peers." }</p>
            <p>{ "To chat from the browser, run a local p2pchat node; the page connects to its relay." }</p>
        </main>
    }
}
