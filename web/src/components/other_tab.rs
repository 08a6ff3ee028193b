use yew::prelude::*;

use crate::app::Commands;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub commands: Commands,
}

/// p2pchat runs in another tab of this browser (one identity, one peer).
#[function_component(OtherTab)]
pub fn other_tab(props: &Props) -> Html {
    let commands = props.commands.clone();
    html! {
        <main class="other-tab" id="other-tab">
            <h2>{ "p2pchat is open in another tab" }</h2>
            <p>{ "This browser's identity can chat from one tab at a time, so that your messages stay in one order everywhere." }</p>
            <button id="use-here" onclick={Callback::from(move |_| commands.take_over())}>{ "Use it here instead" }</button>
        </main>
    }
}
