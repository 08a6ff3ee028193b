//! `chat_id`: parsing a Chat ID (`str::parse::<ChatId>`).

use p2pchat_core::addr;
use p2pchat_core::chat_id::{MAX_BOOTSTRAP, MAX_TEXT_LEN, PREFIX};
use p2pchat_core::ChatId;
use sha2::{Digest, Sha256};

use crate::input::Input;

/// The first byte picks how the rest is read:
///
/// - even: as the text someone pasted;
/// - odd: as the binary body of a Chat ID, to which the check appends a
///   valid checksum and which it writes in base58 with the prefix — the
///   way past the checksum to the field parsing, without a hook.
///
/// A Chat ID that parses keeps its limits (bootstrap addresses, usable
/// addresses, text length), prints as a Chat ID that parses to the same
/// value, and is the same as building it from its parts; one built from a
/// body prints as exactly the text it was parsed from.
pub fn chat_id(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let rest = input.rest();
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(id) = text.parse::<ChatId>() {
            check_parsed(&id);
        }
    } else {
        let text = text_of_body(rest);
        match text.parse::<ChatId>() {
            Ok(id) => {
                check_parsed(&id);
                assert_eq!(id.to_string(), text, "a Chat ID has one text form");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// `p2pchat:` + base58 of `body` and its checksum.
pub fn text_of_body(body: &[u8]) -> String {
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&Sha256::digest(body)[..4]);
    format!("{PREFIX}{}", bs58::encode(bytes).into_string())
}

fn check_parsed(id: &ChatId) {
    assert!(id.bootstrap().len() <= MAX_BOOTSTRAP);
    assert!(id.bootstrap().iter().all(addr::usable));
    let text = id.to_string();
    assert!(
        text.len() <= MAX_TEXT_LEN,
        "{} > {MAX_TEXT_LEN}",
        text.len()
    );
    assert_eq!(text.parse::<ChatId>().as_ref(), Ok(id));
    let rebuilt = ChatId::new(
        *id.room_id(),
        id.key().clone(),
        id.name().clone(),
        id.bootstrap().to_vec(),
    )
    .and_then(|c| c.with_quota(id.quota()))
    .map(|c| if id.chained() { c } else { c.unchained() });
    assert_eq!(rebuilt.as_ref(), Ok(id));
    let q = id.quota();
    assert!(q.events_per_s >= 1 && q.burst_events >= 1 && q.bytes_per_s >= 1);
    assert!(q.burst_bytes >= 1 && q.total_bytes >= 1);
}
