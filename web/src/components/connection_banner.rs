use yew::prelude::*;

use crate::state::RelayStatus;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub status: RelayStatus,
}

/// The strip that says whether the page can reach its local node.
#[function_component(ConnectionBanner)]
pub fn connection_banner(props: &Props) -> Html {
    html! {
        <div id="connection-status"
             class={classes!("banner", props.status.css_class())}
             data-status={props.status.code()}
             role="status">
            { props.status.label() }
        </div>
    }
}
