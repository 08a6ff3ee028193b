//! The UI's state, kept apart from rendering so it can be tested alone.

/// Where the page stands with the local node's relay WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    all(target_arch = "wasm32", not(test)),
    expect(
        dead_code,
        reason = "the relay connection that moves between these states lands with the browser-peer issue"
    )
)]
pub enum RelayStatus {
    /// No connection has been attempted or none is open.
    NotConnected,
    /// A connection attempt is under way.
    Connecting,
    /// The relay is connected: datagrams flow.
    Connected,
    /// The connection dropped; a retry is scheduled.
    Lost,
}

impl RelayStatus {
    /// The words shown in the connection banner.
    pub fn label(self) -> &'static str {
        match self {
            RelayStatus::NotConnected => "Not connected",
            RelayStatus::Connecting => "Connecting…",
            RelayStatus::Connected => "Connected",
            RelayStatus::Lost => "Connection lost — retrying",
        }
    }

    /// The CSS modifier that colours the banner.
    pub fn css_class(self) -> &'static str {
        match self {
            RelayStatus::NotConnected => "status-offline",
            RelayStatus::Connecting => "status-pending",
            RelayStatus::Connected => "status-online",
            RelayStatus::Lost => "status-lost",
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::RelayStatus;

    #[test]
    fn every_status_has_a_distinct_label_and_class() {
        let all = [
            RelayStatus::NotConnected,
            RelayStatus::Connecting,
            RelayStatus::Connected,
            RelayStatus::Lost,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.label(), b.label());
                assert_ne!(a.css_class(), b.css_class());
            }
        }
        assert_eq!(RelayStatus::NotConnected.label(), "Not connected");
    }
}
