use yew::prelude::*;

/// The empty state shown before any chat is open.
#[function_component(Welcome)]
pub fn welcome() -> Html {
    html! {
        <main class="welcome">
            <p>{ "Create a chat, or join one with the Chat ID someone shared with you." }</p>
            <p>{ "Messages are encrypted end to end and travel directly between peers; this page is a full peer and keeps its history in this browser." }</p>
        </main>
    }
}
