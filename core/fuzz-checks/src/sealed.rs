//! `sealed`: tokens (`RoomCipher::open`), and what is inside them
//! (`wire::Sealed`) and what a room does with it.

use p2pchat_core::seal::{MAX_PAYLOAD_LEN, MAX_TOKEN_LEN};
use p2pchat_core::wire::{Control, RoomKind, Sealed};
use p2pchat_core::{DropReason, SealError};

use crate::fixtures;
use crate::input::Input;
use crate::node::{Harness, Via};

/// The first byte picks one of three checks for the rest:
///
/// - 0: the rest is a token (text) to open. Garbage is refused without a
///   panic; only a real token of the room opens, and never in another
///   room.
/// - 1: the rest is a payload, as a token holds it after decryption. It is
///   parsed on its own ([`check_payload`]), then sealed by a member (no
///   hook needed: the check holds the room key) and delivered to a fresh
///   node as an event or a control message, whole or in fragments. A
///   payload that is not a `Sealed` is counted as a bad payload; the node
///   keeps every check of the node harness and restores from its store.
/// - 2: seal then open at any time stamp: the same author and payload come
///   back, and a token with one byte changed opens to the very same
///   contents or not at all.
pub fn sealed(data: &[u8]) {
    let fx = fixtures::get();
    let mut input = Input::new(data);
    match input.u8() % 3 {
        0 => {
            let token = String::from_utf8_lossy(input.rest());
            match fx.cipher.open(&token) {
                Ok(opened) => {
                    assert!(opened.payload.len() <= MAX_PAYLOAD_LEN);
                    assert!(fx.other_cipher.open(&token).is_err());
                }
                Err(SealError::TokenTooLarge { len, .. }) => assert!(len > MAX_TOKEN_LEN),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        1 => {
            let peer = usize::from(input.u8());
            let ev = input.bool();
            let via = Via {
                addr: input.u8(),
                how: input.u8(),
            };
            let mtu = 512 + usize::from(input.u8()) * 4;
            let payload = input.rest();
            let parsed = check_payload(payload);
            let sealer = fx.sealer(peer);
            let mut h = Harness::new(mtu, false);
            let token = h.seal(sealer, payload);
            let opened = fx.cipher.open(&token).expect("a sealed token opens");
            assert_eq!(opened.author, sealer.peer_id());
            assert_eq!(opened.payload, payload);
            assert!(fx.other_cipher.open(&token).is_err());
            let kind = if ev { RoomKind::Ev } else { RoomKind::Ctl };
            let bad_before = h.node.counters().get(DropReason::BadPayload);
            let delivered = h.deliver(kind, sealer.peer_id(), &token, via);
            let reached_room = delivered && via.how & 4 == 0;
            if parsed.is_none() && reached_room {
                assert!(
                    h.node.counters().get(DropReason::BadPayload) > bad_before,
                    "a payload that is not a Sealed was not counted"
                );
            }
            h.finish();
        }
        _ => {
            let peer = usize::from(input.u8());
            let now = input.u64();
            let at = usize::from(input.u16());
            let flip = input.u8().max(1);
            let payload = input.rest();
            let sealer = fx.sealer(peer);
            let token = match fx.cipher.seal(sealer, payload, now) {
                Ok(t) => t,
                Err(e) => {
                    assert!(payload.len() > MAX_PAYLOAD_LEN, "{e}");
                    return;
                }
            };
            assert!(token.len() <= MAX_TOKEN_LEN);
            let opened = fx.cipher.open(&token).expect("a sealed token opens");
            assert_eq!(opened.author, sealer.peer_id());
            assert_eq!(opened.payload, payload);
            assert_eq!(opened.sealed_at_secs, now / 1000);
            let mut bytes = token.into_bytes();
            let at = at % bytes.len();
            bytes[at] ^= flip;
            let tampered = String::from_utf8_lossy(&bytes);
            if let Ok(o) = fx.cipher.open(&tampered) {
                assert_eq!(
                    o.author,
                    sealer.peer_id(),
                    "a changed token changed its author"
                );
                assert_eq!(o.payload, payload, "a changed token changed its payload");
            }
        }
    }
}

/// Parses a decrypted payload as `wire::Sealed`, and on its own as a
/// `wire::Control`: whatever parses serialises back to the same value, and
/// checking a control message's limits never panics. Returns the `Sealed`.
pub fn check_payload(payload: &[u8]) -> Option<Sealed> {
    if let Ok(control) = serde_json::from_slice::<Control>(payload) {
        let again = serde_json::to_vec(&control).unwrap();
        assert_eq!(serde_json::from_slice::<Control>(&again).unwrap(), control);
        let _ = (control.is_valid(), control.stamp());
    }
    let sealed = serde_json::from_slice::<Sealed>(payload).ok()?;
    let again = serde_json::to_vec(&sealed).unwrap();
    assert_eq!(
        serde_json::from_slice::<Sealed>(&again).unwrap(),
        sealed,
        "re-encoding changed the payload"
    );
    if let Sealed::Ctl(c) = &sealed {
        let _ = (c.is_valid(), c.stamp());
    }
    Some(sealed)
}
