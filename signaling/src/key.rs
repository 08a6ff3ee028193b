//! The server's key: with one, every answer is signed, and nodes that pin
//! its public key (`--signal ADDR=KEY`) take answers from that address
//! only with its signature (see core's `signaling` module) — so nobody
//! squatting the server's port, or on the path, can answer for it.
//!
//! The secret is kept as 64 hex digits in a file of the operator's
//! choosing, created (readable by its owner only) the first time; the
//! public key is printed at every start, for the operator to hand out.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use p2pchat_core::Identity;
use rand_core::{OsRng, RngCore};

/// The key in `path`, made there first if there is no such file.
pub fn load_or_create(path: &Path) -> Result<Identity> {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("reading the key in {}", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => create(path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn parse(text: &str) -> Result<Identity> {
    let text = text.trim();
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    if text.len() != 64 || hex::decode_to_slice(text, secret.as_mut()).is_err() {
        bail!("a key file holds 64 hex digits and nothing else");
    }
    Ok(Identity::from_secret_bytes(&secret))
}

fn create(path: &Path) -> Result<Identity> {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(secret.as_ref())));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the key file {}", path.display()))?;
    tracing::info!(path = %path.display(), "created a new server key");
    Ok(Identity::from_secret_bytes(&secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_then_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("server.key");
        let made = load_or_create(&path).expect("made");
        let again = load_or_create(&path).expect("read");
        assert_eq!(made.peer_id(), again.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_file_that_is_not_a_key_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("server.key");
        fs::write(&path, "not a key").expect("write");
        let err = format!("{:#}", load_or_create(&path).expect_err("refused"));
        assert!(
            err.contains("64 hex digits") && err.contains("server.key"),
            "{err}"
        );
    }
}
