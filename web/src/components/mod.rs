//! What the user sees, one small component per thing on screen.

mod composer;
mod connection_banner;
mod error_list;
mod header;
mod member_list;
mod onboarding;
mod other_tab;
mod room_view;
mod sidebar;
mod timeline;
mod welcome;

pub use connection_banner::ConnectionBanner;
pub use error_list::ErrorList;
pub use header::Header;
pub use member_list::MemberList;
pub use onboarding::Onboarding;
pub use other_tab::OtherTab;
pub use room_view::RoomView;
pub use sidebar::Sidebar;
pub use welcome::Welcome;

use web_sys::HtmlInputElement;
use yew::{Callback, NodeRef, SubmitEvent};

/// A form's submit handler: hands the text of `input` to `submit` (instead
/// of reloading the page), and empties the field if `clear`.
fn on_submit_text(
    input: &NodeRef,
    clear: bool,
    submit: impl Fn(String) + 'static,
) -> Callback<SubmitEvent> {
    let input = input.clone();
    Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        if let Some(el) = input.cast::<HtmlInputElement>() {
            submit(el.value());
            if clear {
                el.set_value("");
            }
        }
    })
}
