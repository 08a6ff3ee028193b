//! `datagram`: `wire::decode`, the JSON envelope every datagram is.

use p2pchat_core::seal::MAX_TOKEN_LEN;
use p2pchat_core::wire::{self, Datagram, WireError, MAX_DATAGRAM_LEN, MAX_FRAGMENTS, VERSION};

/// Decodes `data` as a datagram. What decodes keeps every limit `decode`
/// promises, and serialises back to a datagram that decodes to the same
/// value; what does not decode is refused for a reason that fits.
pub fn datagram(data: &[u8]) {
    match wire::decode(data) {
        Err(WireError::TooLarge) => assert!(data.len() > MAX_DATAGRAM_LEN),
        Err(_) => assert!(data.len() <= MAX_DATAGRAM_LEN),
        Ok(datagram) => {
            check_decoded(&datagram);
            let again = serde_json::to_vec(&datagram).unwrap();
            let reparsed: Datagram = serde_json::from_slice(&again).unwrap();
            assert_eq!(reparsed, datagram, "re-encoding changed the datagram");
            if again.len() <= MAX_DATAGRAM_LEN {
                assert_eq!(wire::decode(&again).unwrap(), datagram);
            }
        }
    }
}

/// The limits of a decoded datagram.
pub(crate) fn check_decoded(datagram: &Datagram) {
    match datagram {
        Datagram::Ctl(p) | Datagram::Ev(p) => {
            assert_eq!(p.v, VERSION);
            assert!(p.body.len() <= MAX_TOKEN_LEN);
            if let Some(f) = p.frag {
                assert!((2..=MAX_FRAGMENTS).contains(&f.n) && f.i < f.n);
                assert!(!p.body.is_empty());
            }
            p.check().unwrap();
        }
        Datagram::Sig(s) => {
            assert_eq!(s.v, VERSION);
            // Checking a message never panics, whatever it holds.
            let _ = s.msg.verify();
            let _ = s.msg.tag();
        }
    }
}
