#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use p2pchat_core::identity::{VerifyError, SHORT_ID_LEN};
use p2pchat_core::{Identity, PeerId, PeerIdError};

use crate::rng;

#[test]
fn generation_is_driven_by_the_rng() {
    let a = Identity::generate(&mut rng(1));
    let b = Identity::generate(&mut rng(1));
    let c = Identity::generate(&mut rng(2));
    assert_eq!(a.peer_id(), b.peer_id(), "same seed, same identity");
    assert_ne!(
        a.peer_id(),
        c.peer_id(),
        "different seeds, different identities"
    );
}

#[test]
fn secret_bytes_restore_the_same_identity() {
    let id = Identity::generate(&mut rng(3));
    let restored = Identity::from_secret_bytes(&id.secret_bytes());
    assert_eq!(id.peer_id(), restored.peer_id());
    let sig = restored.sign(b"hello");
    id.peer_id()
        .verify(b"hello", &sig)
        .expect("restored key signs as the original");
}

#[test]
fn signatures_verify_only_for_the_signed_message_and_key() {
    let alice = Identity::generate(&mut rng(4));
    let bob = Identity::generate(&mut rng(5));
    let sig = alice.sign(b"pay bob 5");
    assert_eq!(alice.peer_id().verify(b"pay bob 5", &sig), Ok(()));
    assert_eq!(
        alice.peer_id().verify(b"pay bob 500", &sig),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        bob.peer_id().verify(b"pay bob 5", &sig),
        Err(VerifyError::BadSignature),
        "alice's signature is not bob's"
    );
    for i in [0, 31, 32, 63] {
        let mut bad = sig;
        bad[i] ^= 0x01;
        assert_eq!(
            alice.peer_id().verify(b"pay bob 5", &bad),
            Err(VerifyError::BadSignature),
            "flipped bit in byte {i}"
        );
    }
}

#[test]
fn peer_id_text_round_trips_and_short_form_is_its_prefix() {
    let id = Identity::generate(&mut rng(6)).peer_id();
    let text = id.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.parse::<PeerId>(), Ok(id));
    assert_eq!(id.short().len(), SHORT_ID_LEN);
    assert!(text.starts_with(&id.short()));
    assert_eq!(PeerId::from_bytes(*id.as_bytes()), id);
}

#[test]
fn malformed_peer_ids_are_clear_errors() {
    let good = Identity::generate(&mut rng(7)).peer_id().to_string();
    assert_eq!(
        "".parse::<PeerId>(),
        Err(PeerIdError::Length {
            expected: 64,
            got: 0
        })
    );
    assert_eq!(
        good[..63].parse::<PeerId>(),
        Err(PeerIdError::Length {
            expected: 64,
            got: 63
        })
    );
    assert_eq!(
        format!("{good}0").parse::<PeerId>(),
        Err(PeerIdError::Length {
            expected: 64,
            got: 65
        })
    );
    let upper = good.to_uppercase();
    if upper != good {
        assert_eq!(upper.parse::<PeerId>(), Err(PeerIdError::NotHex));
    }
    let not_hex = format!("g{}", &good[1..]);
    assert_eq!(not_hex.parse::<PeerId>(), Err(PeerIdError::NotHex));
    // 64 characters, but multi-byte: must not be sliced mid-character.
    let wide = "é".repeat(64);
    assert_eq!(wide.parse::<PeerId>(), Err(PeerIdError::NotHex));
}

#[test]
fn bytes_that_are_not_a_curve_point_are_refused_not_panicked_on() {
    // About half of all y-coordinates are not on the curve; find some among
    // small candidates and check both the parser and `verify` refuse them.
    let mut refused = 0;
    for first in 0u8..=255 {
        let mut bytes = [0u8; 32];
        bytes[0] = first;
        bytes[1] = 0x55;
        let text = hex::encode(bytes);
        if let Err(e) = text.parse::<PeerId>() {
            assert_eq!(e, PeerIdError::NotAKey);
            let err = PeerId::from_bytes(bytes).verify(b"x", &[0u8; 64]);
            assert_eq!(err, Err(VerifyError::PeerId(PeerIdError::NotAKey)));
            refused += 1;
        }
    }
    assert!(refused > 0, "expected some candidates off the curve");
}

#[test]
fn debug_output_never_shows_the_secret() {
    let id = Identity::generate(&mut rng(8));
    let secret_hex = hex::encode(*id.secret_bytes());
    let shown = format!("{id:?}");
    assert!(!shown.contains(&secret_hex[..16]), "{shown}");
    assert!(shown.contains(&id.peer_id().short()));
}
