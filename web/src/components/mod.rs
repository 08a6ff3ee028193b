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
