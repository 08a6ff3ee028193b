#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use p2pchat_core::room::MAX_ROOM_NAME_LEN;
use p2pchat_core::{RoomId, RoomKey, RoomName, RoomNameError};

use crate::rng;

#[test]
fn room_ids_and_keys_are_random() {
    let mut r = rng(10);
    assert_ne!(RoomId::generate(&mut r), RoomId::generate(&mut r));
    assert_ne!(RoomKey::generate(&mut r), RoomKey::generate(&mut r));
    assert_eq!(
        RoomId::generate(&mut rng(11)),
        RoomId::generate(&mut rng(11))
    );
}

#[test]
fn rendezvous_tag_is_a_stable_one_way_function_of_the_key() {
    // Pinned vectors (computed independently with Python's hashlib): every
    // version of p2pchat must derive the same tag, or members of one room
    // running different versions would never meet.
    let zero = RoomKey::from_bytes([0u8; 32]);
    assert_eq!(
        zero.rendezvous_tag().to_string(),
        "49f36a5fe6dd77e9e149c82c5691e107a64d65a6dc6b164d4e07e9a9a39071be"
    );
    let mut counting = [0u8; 32];
    for (i, b) in counting.iter_mut().enumerate() {
        *b = i as u8;
    }
    let counting = RoomKey::from_bytes(counting);
    assert_eq!(
        counting.rendezvous_tag().to_string(),
        "7c887772656e34af40a2c7697291c2c91592cda87eb8f9fcacb2dbadea8c84c6"
    );

    let mut r = rng(12);
    let key = RoomKey::generate(&mut r);
    let same = RoomKey::from_bytes(*key.as_bytes());
    assert_eq!(key.rendezvous_tag(), same.rendezvous_tag());
    assert_ne!(
        key.rendezvous_tag(),
        RoomKey::generate(&mut r).rendezvous_tag()
    );
    // No 8-byte window of the key shows up in the tag.
    let tag = key.rendezvous_tag();
    for window in key.as_bytes().windows(8) {
        assert!(!tag.as_bytes().windows(8).any(|w| w == window));
    }
}

#[test]
fn room_key_debug_is_redacted() {
    let key = RoomKey::from_bytes([0xab; 32]);
    let shown = format!("{key:?}");
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    assert!(!shown.contains("171"), "{shown}");
}

#[test]
fn good_room_names_are_accepted() {
    for name in [
        "general",
        "a",
        "rust-fans",
        "café",
        "日本語",
        "x".repeat(64).as_str(),
    ] {
        let parsed = RoomName::new(name).expect(name);
        assert_eq!(parsed.as_str(), name);
        assert_eq!(parsed.to_string(), name);
    }
    // 64 bytes of multi-byte characters is still fine.
    let wide = "é".repeat(MAX_ROOM_NAME_LEN / 2);
    assert!(RoomName::new(&wide).is_ok());
}

#[test]
fn bad_room_names_are_clear_errors() {
    assert_eq!(RoomName::new(""), Err(RoomNameError::Empty));
    assert_eq!(
        RoomName::new(&"x".repeat(65)),
        Err(RoomNameError::TooLong { len: 65, max: 64 })
    );
    assert_eq!(
        RoomName::new(&"é".repeat(33)),
        Err(RoomNameError::TooLong { len: 66, max: 64 })
    );
    assert_eq!(
        RoomName::new("rust fans"),
        Err(RoomNameError::Whitespace {
            suggestion: "rust-fans".into()
        })
    );
    for bad in ["tab\there", "new\nline", " lead"] {
        assert!(
            matches!(RoomName::new(bad), Err(RoomNameError::Whitespace { .. })),
            "{bad:?}"
        );
    }
    for bad in [
        "bell\u{7}",
        "nul\0",
        "zero\u{200B}width",
        "bidi\u{202E}txt",
        "\u{FEFF}bom",
    ] {
        assert_eq!(
            RoomName::new(bad),
            Err(RoomNameError::ControlCharacter),
            "{bad:?}"
        );
    }
    assert!("ok-name".parse::<RoomName>().is_ok());
}
