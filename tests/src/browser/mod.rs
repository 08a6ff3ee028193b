//! The web UI in headless Chromium over WebDriver, as a page object.
//!
//! - [`Browser`] (`driver`): ChromeDriver and the WebDriver session, the
//!   generic moves (type, click, tabs, reload, console, screenshot), every
//!   command and retry bounded.
//! - [`ChatPage`] (`chat_page`): what a user does on p2pchat's page
//!   (sign in, create or join a room, send, reload, a second tab), by name.
//! - [`Page`] (`page`): a snapshot of what the page shows (connection,
//!   rooms, timeline, members, errors), read in one script.
//!
//! The selectors are known to `chat_page` and `page` only.

mod chat_page;
mod driver;
mod page;

pub use chat_page::ChatPage;
pub use driver::{Browser, BrowserOptions, Tab};
pub use page::{short, Member, Message, Page, Room};
