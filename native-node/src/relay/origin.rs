//! Who may use the relay: the `Origin` a browser sends with its WebSocket
//! handshake, checked before the connection is admitted.
//!
//! Any web page the user visits can open a WebSocket to localhost, so
//! without a check a page of another site — or another local dev server on
//! another port — could use the user's node to send UDP from the user's
//! machine. Only these get in:
//!
//! - browsers whose `Origin` is exactly one of the relay's allowed origins:
//!   the page the node serves (`trunk serve` on port 8080, under the names
//!   `127.0.0.1`, `localhost` and `[::1]`) and any given with
//!   `--relay-origin`;
//! - local programs that send no `Origin` at all (browsers always send
//!   one); they could send UDP themselves anyway.
//!
//! Everything else gets HTTP 403. Checking the origin also defeats DNS
//! rebinding, since a rebound page keeps its own origin. A request with two
//! `Origin` headers is refused.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tracing::info;

use super::slots::{Admission, Slots};

/// The origins of the page the node serves by default (`trunk serve`).
pub const DEFAULT_ORIGINS: [&str; 3] = [
    "http://127.0.0.1:8080",
    "http://localhost:8080",
    "http://[::1]:8080",
];

/// Whether a browser `Origin` may use the relay: an exact match.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|o| o == origin)
}

/// What a handshake's `Origin` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// No `Origin`: a local program.
    None,
    /// One allowed `Origin`: a page we serve.
    Page(String),
    /// Anything else.
    Refused,
}

/// Reads the `Origin` of a handshake request.
fn claimed(req: &Request, allowed: &[String]) -> Claimed {
    let mut origins = req.headers().get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => Claimed::None,
        (Some(origin), None) => match origin.to_str() {
            Ok(o) if origin_allowed(o, allowed) => Claimed::Page(o.to_owned()),
            _ => Claimed::Refused,
        },
        (Some(_), Some(_)) => Claimed::Refused,
    }
}

/// The handshake's origin check and admission, for one connection.
pub struct Gate<'a> {
    pub allowed: &'a [String],
    pub peer: SocketAddr,
    pub slots: Arc<Slots>,
    pub id: u64,
    /// What was admitted, read by the connection after the handshake.
    pub admitted: &'a mut Option<Option<String>>,
}

impl Callback for Gate<'_> {
    fn on_request(self, req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
        let origin = match claimed(req, self.allowed) {
            Claimed::Refused => {
                let origin: Vec<&HeaderValue> =
                    req.headers().get_all(header::ORIGIN).iter().collect();
                info!(peer = %self.peer, ?origin, "relay refused a WebSocket from a disallowed origin");
                return Err(refusal(StatusCode::FORBIDDEN, "origin not allowed\n"));
            }
            Claimed::None => None,
            Claimed::Page(origin) => Some(origin),
        };
        match self.slots.admit(self.id, origin.is_some()) {
            Admission::Admitted => {
                *self.admitted = Some(origin);
                Ok(resp)
            }
            Admission::Full => {
                info!(peer = %self.peer, "relay full: refused a connection");
                Err(refusal(StatusCode::SERVICE_UNAVAILABLE, "relay is full\n"))
            }
        }
    }
}

/// An HTTP refusal with a short plain-text body.
fn refusal(status: StatusCode, body: &str) -> ErrorResponse {
    let mut refusal = ErrorResponse::new(Some(body.to_owned()));
    *refusal.status_mut() = status;
    let headers = refusal.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    refusal
}
