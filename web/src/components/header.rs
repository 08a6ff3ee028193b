use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The user's name, once chosen.
    pub me: Option<String>,
}

/// The top bar: the app's name, what it is, and who you are.
#[function_component(Header)]
pub fn header(props: &Props) -> Html {
    html! {
        <header class="header">
            <h1 id="app-name">{ "p2pchat" }</h1>
            <span class="tagline">{ "serverless, end-to-end encrypted group chat" }</span>
            if let Some(me) = &props.me {
                <span class="me" id="me">{ format!("you are {me}") }</span>
            }
        </header>
    }
}
