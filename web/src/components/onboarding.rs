use yew::prelude::*;

use super::on_submit_text;

use crate::app::Commands;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub commands: Commands,
}

/// First visit: pick the name others will see.
#[function_component(Onboarding)]
pub fn onboarding(props: &Props) -> Html {
    let input = use_node_ref();
    let commands = props.commands.clone();
    let onsubmit = on_submit_text(&input, false, move |name| commands.start(name));
    html! {
        <main class="onboarding">
            <h2>{ "Welcome" }</h2>
            <p>{ "Pick the name other members will see. Your identity key is created here and never leaves this browser." }</p>
            <form {onsubmit}>
                <input id="username" ref={input} placeholder="your name" maxlength="32" autofocus=true />
                <button id="start" type="submit">{ "Start chatting" }</button>
            </form>
        </main>
    }
}
