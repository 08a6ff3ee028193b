use yew::prelude::*;

use crate::app::Commands;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub errors: Vec<(u64, String)>,
    pub commands: Commands,
}

/// Errors the user has not dismissed yet.
#[function_component(ErrorList)]
pub fn error_list(props: &Props) -> Html {
    html! {
        <div id="errors" role="alert">
            { for props.errors.iter().map(|(id, message)| {
                let commands = props.commands.clone();
                let id = *id;
                html! {
                    <div class="error" key={id}>
                        <span class="error-text">{ message }</span>
                        <button class="dismiss" title="Dismiss"
                                onclick={Callback::from(move |_| commands.dismiss(id))}>{ "×" }</button>
                    </div>
                }
            }) }
        </div>
    }
}
