//! One tab at a time: the browser's identity is one peer.
//!
//! Every tab of this origin shares browser storage, and so the identity. Two
//! tabs running the engine at once would be two peers signing as one author:
//! both would write event number N of that author with different contents,
//! and members would keep whichever copy reached them first — histories
//! would differ. So a tab runs the peer only while it holds the **tab
//! lease**: a storage entry naming the tab and a time until which it holds.
//! The holder renews it every [`RENEW_MS`] and checks, before each message it
//! writes, that it still holds it; it gives it up when the page goes away, so
//! a reload takes it back at once. A second tab finds the lease held and
//! says so, and may take it over: the first tab then stops at its next
//! check, and the new one waits [`TAKEOVER_WAIT_MS`] (longer than a renewal)
//! before it loads, so that the old tab has stopped writing.

use serde::{Deserialize, Serialize};

use crate::storage::{KeyValue, StorageError};

/// Where the lease is kept.
const LEASE_KEY: &str = "p2pchat/v1/tab-lease";
/// How long a lease holds without renewal.
pub const LEASE_MS: u64 = 6_000;
/// How often the holder renews (and checks) it.
pub const RENEW_MS: u32 = 2_000;
/// How long a tab that takes the lease over waits before it starts.
pub const TAKEOVER_WAIT_MS: u32 = 2_500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    tab: String,
    until: u64,
}

/// Whether this tab may run the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This tab holds the lease (now renewed).
    Held,
    /// Another tab holds it.
    Elsewhere,
}

/// Claims or renews the lease for `tab` at `now`. With `take_over`, takes
/// it even from a live holder.
pub fn claim(
    kv: &mut impl KeyValue,
    tab: &str,
    now: u64,
    take_over: bool,
) -> Result<Claim, StorageError> {
    let current: Option<Lease> = kv
        .get(LEASE_KEY)?
        .and_then(|json| serde_json::from_str(&json).ok());
    if let Some(lease) = current {
        if lease.tab != tab && lease.until > now && !take_over {
            return Ok(Claim::Elsewhere);
        }
    }
    let lease = Lease {
        tab: tab.to_owned(),
        until: now.saturating_add(LEASE_MS),
    };
    let json = serde_json::to_string(&lease)
        .map_err(|e| StorageError::Corrupt(format!("cannot encode the tab lease: {e}")))?;
    kv.set(LEASE_KEY, &json)?;
    Ok(Claim::Held)
}

/// Whether `tab` still holds the lease (without renewing it).
pub fn holds(kv: &impl KeyValue, tab: &str) -> Result<bool, StorageError> {
    Ok(kv
        .get(LEASE_KEY)?
        .and_then(|json| serde_json::from_str::<Lease>(&json).ok())
        .is_some_and(|lease| lease.tab == tab))
}

/// Gives the lease up if `tab` holds it (the page is going away).
pub fn release(kv: &mut impl KeyValue, tab: &str) -> Result<(), StorageError> {
    if holds(kv, tab)? {
        kv.remove(LEASE_KEY)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::storage::MemoryStore;

    #[test]
    fn one_tab_holds_the_lease_until_it_lapses_or_is_taken() {
        let mut kv = MemoryStore::default();
        assert_eq!(claim(&mut kv, "a", 1_000, false), Ok(Claim::Held));
        assert_eq!(claim(&mut kv, "b", 2_000, false), Ok(Claim::Elsewhere));
        // The holder renews.
        assert_eq!(claim(&mut kv, "a", 5_000, false), Ok(Claim::Held));
        assert_eq!(claim(&mut kv, "b", 10_000, false), Ok(Claim::Elsewhere));
        // A lapsed lease (the tab crashed) is free.
        assert_eq!(
            claim(&mut kv, "b", 5_000 + LEASE_MS + 1, false),
            Ok(Claim::Held)
        );
        assert!(!holds(&kv, "a").unwrap());
        // Taking over a live lease: the old holder sees it lost.
        assert_eq!(claim(&mut kv, "a", 12_000, true), Ok(Claim::Held));
        assert!(!holds(&kv, "b").unwrap());
        assert_eq!(claim(&mut kv, "b", 12_500, false), Ok(Claim::Elsewhere));
    }

    #[test]
    fn leaving_releases_the_lease_and_only_the_holder_can() {
        let mut kv = MemoryStore::default();
        claim(&mut kv, "a", 0, false).unwrap();
        release(&mut kv, "b").unwrap();
        assert!(holds(&kv, "a").unwrap());
        release(&mut kv, "a").unwrap();
        assert_eq!(claim(&mut kv, "b", 1, false), Ok(Claim::Held));
    }

    #[test]
    fn a_damaged_lease_is_free() {
        let mut kv = MemoryStore::default();
        kv.set(LEASE_KEY, "not json").unwrap();
        assert_eq!(claim(&mut kv, "a", 0, false), Ok(Claim::Held));
    }
}
