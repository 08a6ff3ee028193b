#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;

use p2pchat_core::seal::{SealVersion, MAX_PAYLOAD_LEN, MAX_TOKEN_LEN};
use p2pchat_core::{Identity, RoomCipher, RoomId, RoomKey, SealError};

use crate::rng;

const NOW: u64 = 1_795_000_000_123; // ms, 2026-11

struct Room {
    id: RoomId,
    key: RoomKey,
    cipher: RoomCipher,
}

fn room(seed: u64) -> Room {
    let mut r = rng(seed);
    let id = RoomId::generate(&mut r);
    let key = RoomKey::generate(&mut r);
    let cipher = RoomCipher::new(id, &key);
    Room { id, key, cipher }
}

/// The room's raw Fernet, for tests that mint tokens the way a malicious
/// member (who holds the room key) could.
fn raw_fernet(key: &RoomKey) -> fernet::Fernet {
    fernet::Fernet::new(&URL_SAFE.encode(key.as_bytes())).expect("valid fernet key")
}

/// What an author signs for a version 1 token.
fn signed_message(room_id: &RoomId, payload: &[u8]) -> Vec<u8> {
    signed_message_v(1, room_id, payload)
}

fn signed_message_v(version: u8, room_id: &RoomId, payload: &[u8]) -> Vec<u8> {
    let mut msg = format!("p2pchat/v{version}/seal\0").into_bytes();
    msg.extend_from_slice(room_id.as_bytes());
    msg.extend_from_slice(payload);
    msg
}

fn plaintext(version: u8, author: &[u8; 32], sig: &[u8; 64], payload: &[u8]) -> Vec<u8> {
    let mut plain = vec![version];
    plain.extend_from_slice(author);
    plain.extend_from_slice(sig);
    plain.extend_from_slice(payload);
    plain
}

#[test]
fn sealed_payloads_open_with_author_and_time() {
    let room = room(40);
    let alice = Identity::generate(&mut rng(41));
    for payload in [&b""[..], b"hi", "héllo wörld 🙂".as_bytes(), &[0u8; 5000]] {
        let token = room.cipher.seal(&alice, payload, NOW).expect("seal");
        assert!(token.len() <= MAX_TOKEN_LEN);
        let opened = room.cipher.open(&token).expect("open");
        assert_eq!(opened.author, alice.peer_id());
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.sealed_at_secs, NOW / 1000);
    }
    assert_eq!(room.cipher.room_id(), &room.id);
}

#[test]
fn payload_size_limit_is_enforced_with_a_clear_error() {
    let room = room(42);
    let alice = Identity::generate(&mut rng(43));
    let max = vec![b'a'; MAX_PAYLOAD_LEN];
    let token = room
        .cipher
        .seal(&alice, &max, NOW)
        .expect("max payload seals");
    assert!(
        token.len() <= MAX_TOKEN_LEN,
        "{} > {MAX_TOKEN_LEN}",
        token.len()
    );
    assert_eq!(
        room.cipher.open(&token).expect("opens").payload.len(),
        MAX_PAYLOAD_LEN
    );
    let over = vec![b'a'; MAX_PAYLOAD_LEN + 1];
    assert_eq!(
        room.cipher.seal(&alice, &over, NOW),
        Err(SealError::PayloadTooLarge {
            len: MAX_PAYLOAD_LEN + 1,
            max: MAX_PAYLOAD_LEN
        })
    );
}

#[test]
fn the_same_payload_seals_differently_each_time() {
    let room = room(44);
    let alice = Identity::generate(&mut rng(45));
    let a = room.cipher.seal(&alice, b"same", NOW).expect("seal");
    let b = room.cipher.seal(&alice, b"same", NOW).expect("seal");
    assert_ne!(a, b, "fresh IV per token");
    assert_eq!(room.cipher.open(&a).expect("a").payload, b"same");
    assert_eq!(room.cipher.open(&b).expect("b").payload, b"same");
}

#[test]
fn a_token_from_another_room_does_not_open() {
    let ours = room(46);
    let theirs = room(47);
    let alice = Identity::generate(&mut rng(48));
    let token = theirs.cipher.seal(&alice, b"hello", NOW).expect("seal");
    assert_eq!(ours.cipher.open(&token), Err(SealError::Decrypt));
}

#[test]
fn a_member_of_two_rooms_cannot_replay_a_message_across_them() {
    // Same key, different room id: the token decrypts but the signature,
    // which covers the room id, does not verify.
    let a = room(49);
    let b = RoomCipher::new(RoomId::generate(&mut rng(50)), &a.key);
    let alice = Identity::generate(&mut rng(51));
    let token = a
        .cipher
        .seal(&alice, b"for room a only", NOW)
        .expect("seal");
    assert_eq!(b.open(&token), Err(SealError::BadSignature));
}

#[test]
fn tampered_tokens_do_not_open() {
    let room = room(52);
    let alice = Identity::generate(&mut rng(53));
    let token = room
        .cipher
        .seal(&alice, b"the original words", NOW)
        .expect("seal");
    let bytes = token.as_bytes();
    for pos in (0..bytes.len()).step_by(7) {
        let mut t = bytes.to_vec();
        t[pos] = if t[pos] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).expect("ascii");
        assert!(
            room.cipher.open(&t).is_err(),
            "tampered at {pos} still opened"
        );
    }
    // Trailing '=' is base64 padding: dropping it leaves the same bytes (the
    // decoder accepts unpadded input), so cut inside the data itself.
    let data_len = token.trim_end_matches('=').len();
    for cut in [0, 1, 11, 12, 40, data_len / 2, data_len - 1] {
        assert!(
            room.cipher.open(&token[..cut]).is_err(),
            "cut at {cut} opened"
        );
    }
}

#[test]
fn garbage_tokens_are_errors_not_panics() {
    let room = room(54);
    for garbage in [
        "",
        "not a token",
        "gAAAAA",
        "gAAAAAAAAAAAAAAA",
        "💥💥💥💥💥💥💥💥💥💥💥💥",
        "====",
        "\0\0\0",
    ] {
        assert_eq!(
            room.cipher.open(garbage),
            Err(SealError::Decrypt),
            "{garbage:?}"
        );
    }
    let huge = "A".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        room.cipher.open(&huge),
        Err(SealError::TokenTooLarge {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        })
    );
}

#[test]
fn a_member_cannot_forge_another_members_message() {
    // Mallory holds the room key and writes a token claiming to be Alice,
    // signed with her own key.
    let room = room(55);
    let alice = Identity::generate(&mut rng(56));
    let mallory = Identity::generate(&mut rng(57));
    let payload = b"alice says: send mallory the keys";
    let sig = mallory.sign(&signed_message(&room.id, payload));
    let plain = plaintext(1, alice.peer_id().as_bytes(), &sig, payload);
    let forged = raw_fernet(&room.key).encrypt_at_time(&plain, NOW / 1000);
    assert_eq!(room.cipher.open(&forged), Err(SealError::BadSignature));

    // She can't alter Alice's real message either: re-encrypting Alice's
    // signed plaintext with a changed payload breaks the signature.
    let real_sig = alice.sign(&signed_message(&room.id, b"hello"));
    let altered = plaintext(1, alice.peer_id().as_bytes(), &real_sig, b"hellO");
    let altered = raw_fernet(&room.key).encrypt_at_time(&altered, NOW / 1000);
    assert_eq!(room.cipher.open(&altered), Err(SealError::BadSignature));

    // The honest path through the same helpers does open (the forgery test
    // fails for the right reason).
    let honest = plaintext(1, alice.peer_id().as_bytes(), &real_sig, b"hello");
    let honest = raw_fernet(&room.key).encrypt_at_time(&honest, NOW / 1000);
    assert_eq!(
        room.cipher.open(&honest).expect("honest").author,
        alice.peer_id()
    );
}

#[test]
fn malformed_plaintexts_under_the_right_key_are_refused() {
    let room = room(58);
    let alice = Identity::generate(&mut rng(59));
    let f = raw_fernet(&room.key);
    let short = f.encrypt_at_time(&[1u8; 50], NOW / 1000);
    assert!(matches!(
        room.cipher.open(&short),
        Err(SealError::Malformed(_))
    ));
    let empty = f.encrypt_at_time(&[], NOW / 1000);
    assert!(matches!(
        room.cipher.open(&empty),
        Err(SealError::Malformed(_))
    ));
    let sig = alice.sign(&signed_message(&room.id, b"x"));
    for unknown in [0, 3, 255] {
        let token = f.encrypt_at_time(
            &plaintext(unknown, alice.peer_id().as_bytes(), &sig, b"x"),
            NOW / 1000,
        );
        assert!(matches!(
            room.cipher.open(&token),
            Err(SealError::Malformed(_))
        ));
    }
    // An author field that is not a curve point: refused, no panic.
    let mut not_a_key = [0u8; 32];
    not_a_key[0] = 2;
    not_a_key[1] = 0x55;
    let odd = f.encrypt_at_time(&plaintext(1, &[0xff; 32], &sig, b"x"), NOW / 1000);
    assert_eq!(room.cipher.open(&odd), Err(SealError::BadSignature));
    let odd = f.encrypt_at_time(&plaintext(1, &not_a_key, &sig, b"x"), NOW / 1000);
    assert_eq!(room.cipher.open(&odd), Err(SealError::BadSignature));
}

#[test]
fn any_timestamp_opens_without_panicking() {
    // Members' clocks disagree; history is replicated for years. Tokens
    // from the far past, the future and absurd times all open, and the
    // time is reported as stamped.
    let room = room(60);
    let alice = Identity::generate(&mut rng(61));
    for now_ms in [0, 1_000, NOW + 3_600_000, u64::MAX] {
        let token = room.cipher.seal(&alice, b"tick", now_ms).expect("seal");
        let opened = room.cipher.open(&token).expect("opens at any time");
        assert_eq!(opened.sealed_at_secs, now_ms / 1000);
    }
    // A member minting a token stamped u64::MAX seconds is also fine.
    let sig = alice.sign(&signed_message(&room.id, b"far"));
    let plain = plaintext(1, alice.peer_id().as_bytes(), &sig, b"far");
    let token = raw_fernet(&room.key).encrypt_at_time(&plain, u64::MAX);
    assert_eq!(
        room.cipher.open(&token).expect("opens").sealed_at_secs,
        u64::MAX
    );
}

/// The plaintext inside a token (the room's key opens it).
fn inside(room: &Room, token: &str) -> Vec<u8> {
    raw_fernet(&room.key)
        .decrypt_at_time(token, None, NOW / 1000)
        .expect("decrypts")
}

#[test]
fn tokens_are_sealed_as_version_2_and_version_1_tokens_still_open() {
    let room = room(62);
    let alice = Identity::generate(&mut rng(63));
    let token = room.cipher.seal(&alice, b"new", NOW).expect("seal");
    assert_eq!(inside(&room, &token)[0], 2);
    assert_eq!(room.cipher.open(&token).expect("v2").payload, b"new");

    // What earlier releases sealed (and every stored history holds).
    let old = room
        .cipher
        .seal_as(SealVersion::V1Strict, &alice, b"old", NOW)
        .expect("seal v1");
    assert_eq!(inside(&room, &old)[0], 1);
    let opened = room.cipher.open(&old).expect("v1 opens");
    assert_eq!(
        (opened.author, opened.payload),
        (alice.peer_id(), b"old".to_vec())
    );

    // A version 2 token made by hand the same way opens too, so the
    // relabelling test below fails for the right reason.
    let sig = alice.sign(&signed_message_v(2, &room.id, b"hand"));
    let hand = plaintext(2, alice.peer_id().as_bytes(), &sig, b"hand");
    let hand = raw_fernet(&room.key).encrypt_at_time(&hand, NOW / 1000);
    assert!(room.cipher.open(&hand).is_ok());
}

#[test]
fn a_token_relabelled_to_the_other_version_does_not_open() {
    // A member holding the room key re-encrypts an author's words under
    // the other version, hoping for the other rule: the version is signed.
    let room = room(64);
    let alice = Identity::generate(&mut rng(65));
    for (version, relabel) in [(SealVersion::V1Strict, 2u8), (SealVersion::V2Zip215, 1u8)] {
        let token = room
            .cipher
            .seal_as(version, &alice, b"words", NOW)
            .expect("seal");
        let mut plain = inside(&room, &token);
        plain[0] = relabel;
        let relabelled = raw_fernet(&room.key).encrypt_at_time(&plain, NOW / 1000);
        assert_eq!(
            room.cipher.open(&relabelled),
            Err(SealError::BadSignature),
            "{version:?} relabelled as {relabel}"
        );
    }
}

#[test]
fn an_author_key_of_small_order_is_refused_under_both_versions() {
    // Under ZIP 215 a key of small order, an R of small order and s = 0
    // verify for any message: such a key is nobody's, so it is refused.
    let room = room(66);
    let mut identity = [0u8; 32];
    identity[0] = 1; // the neutral point: order 1
    let sig = [[1u8].as_slice(), &[0u8; 63]].concat();
    let sig: [u8; 64] = sig.try_into().expect("64 bytes");
    for version in [1u8, 2] {
        let plain = plaintext(version, &identity, &sig, b"anyone");
        let token = raw_fernet(&room.key).encrypt_at_time(&plain, NOW / 1000);
        assert_eq!(
            room.cipher.open(&token),
            Err(SealError::BadSignature),
            "version {version}"
        );
    }
    // The same signature checked without the key rule does pass ZIP 215:
    // the refusal above is the key rule, not an accident.
    let check = p2pchat_core::verification::Check::new(
        p2pchat_core::verification::Rule::Zip215,
        p2pchat_core::PeerId::from_bytes(identity),
        signed_message_v(2, &room.id, b"anyone"),
        sig,
    );
    assert!(check.verify());
}
