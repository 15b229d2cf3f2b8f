//! Browser sessions: the `tendhost_session` cookie that `POST /session` sets after a valid
//! token. The cookie holds no token. It is a signed statement "token `name`, whose hash has
//! this fingerprint, until `expires`": HMAC-SHA256 with a key kept in
//! `data_dir/session.key` (32 random bytes, mode 0600), so sessions survive a daemon restart.
//! Every request re-reads the token set in force: a session dies with its token (removed, or
//! replaced by another token of the same name), and it carries the token's current role.
//! `DELETE /session` revokes the cookie until it would have expired; the browser drops it at
//! once. The revoked set (bounded, swept of expired entries) is kept in
//! `data_dir/session.revoked` (mode 0600, rewritten whole on each logout), so a restart does
//! not bring a logged-out cookie back. The file holds SHA-256 digests of cookie values, never
//! a value: nothing in it opens a session.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token::{Caller, TokenHash, TokenSet};

/// Name of the cookie.
pub const SESSION_COOKIE: &str = "tendhost_session";

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// File name of the signing key inside the data directory.
pub const SESSION_KEY_FILE: &str = "session.key";

/// File name of the revoked sessions inside the data directory.
pub const REVOKED_FILE: &str = "session.revoked";

/// Prefix of a cookie value (format version 1).
const PREFIX: &str = "ths1.";

/// Longest cookie value looked at.
const MAX_VALUE_LEN: usize = 1024;

/// Most revoked sessions remembered at once.
const MAX_REVOKED: usize = 10_000;

/// Signs and checks session cookies.
pub struct Sessions {
    key: hmac::Key,
    /// Revoked cookie values (their SHA-256) and when they would have expired.
    revoked: Mutex<HashMap<[u8; 32], u64>>,
    /// Where the revoked set is kept (`None`: in memory only, for tests).
    revoked_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// A session just issued: the cookie value and when it expires (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub value: String,
    pub expires_unix: u64,
}

/// Why a cookie does not stand for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Not a value this daemon signed (forged or damaged): counts as a wrong credential.
    Invalid,
    /// Signed, but expired, logged out, or its token is gone.
    Ended,
}

impl Sessions {
    /// Sessions signed with `key` (tests; the daemon uses [`Sessions::load_or_create`]).
    pub fn with_key(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            revoked: Mutex::new(HashMap::new()),
            revoked_file: None,
        }
    }

    /// Keeps the revoked set in `path` from now on, starting from what it holds (entries
    /// expired by `now_unix` are dropped; a line that is not `HEX EXPIRES` is skipped).
    fn with_revoked_file(
        mut self,
        path: std::path::PathBuf,
        now_unix: u64,
    ) -> Result<Self, String> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == ErrorKind::NotFound => String::new(),
            Err(err) => return Err(format!("{}: {err}", path.display())),
        };
        let revoked = text
            .lines()
            .filter_map(|line| {
                let (digest, expires) = line.split_once(' ')?;
                let expires: u64 = expires.parse().ok()?;
                Some((parse_digest(digest)?, expires))
            })
            .filter(|(_, expires)| *expires > now_unix)
            .take(MAX_REVOKED)
            .collect();
        self.revoked = Mutex::new(revoked);
        self.revoked_file = Some(path);
        Ok(self)
    }

    /// The key in `data_dir/session.key`, created (0600) on first use, and the sessions
    /// revoked before (`data_dir/session.revoked`).
    pub fn load_or_create(data_dir: &Path, now_unix: u64) -> Result<Self, String> {
        Self::load_or_create_key(data_dir)?.with_revoked_file(data_dir.join(REVOKED_FILE), now_unix)
    }

    fn load_or_create_key(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(SESSION_KEY_FILE);
        let shown = path.display();
        let mut key = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(|err| format!("{shown}: {err}"))?;
                if bytes.len() != key.len() {
                    return Err(format!(
                        "{shown}: is not a session key ({} bytes, expected 32); delete it to get \
                         a new one (every browser session ends)",
                        bytes.len()
                    ));
                }
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                key.copy_from_slice(&bytes);
                return Ok(Self::with_key(&key));
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(format!("{shown}: {err}")),
        }
        getrandom::fill(&mut key).map_err(|err| format!("no randomness for {shown}: {err}"))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| format!("{shown}: cannot create: {err}"))?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(|err| format!("{shown}: cannot write: {err}"))?;
        Ok(Self::with_key(&key))
    }

    /// A session for the holder of the token whose hash is `token`, named `name`.
    pub fn issue(&self, name: &str, token: &TokenHash, now_unix: u64) -> Issued {
        let expires_unix = now_unix.saturating_add(SESSION_TTL.as_secs());
        let payload = format!(
            "{expires_unix}\n{}\n{name}",
            URL_SAFE_NO_PAD.encode(fingerprint(token))
        );
        let tag = hmac::sign(&self.key, payload.as_bytes());
        Issued {
            value: format!(
                "{PREFIX}{}.{}",
                URL_SAFE_NO_PAD.encode(payload.as_bytes()),
                URL_SAFE_NO_PAD.encode(tag.as_ref())
            ),
            expires_unix,
        }
    }

    /// The caller a cookie value stands for, with the role its token has now in `tokens`.
    pub fn verify(
        &self,
        value: &str,
        tokens: &TokenSet,
        now_unix: u64,
    ) -> Result<Caller, Rejected> {
        let (name, expires_unix, print) = self.open(value)?;
        if expires_unix <= now_unix || self.is_revoked(value, now_unix) {
            return Err(Rejected::Ended);
        }
        tokens
            .entries()
            .iter()
            .find(|entry| entry.name == name && bool::from(fingerprint(&entry.hash).ct_eq(&print)))
            .map(|entry| Caller {
                name: entry.name.clone(),
                role: entry.role,
            })
            .ok_or(Rejected::Ended)
    }

    /// When a value this daemon signed expires (Unix seconds).
    pub fn expires_unix(&self, value: &str) -> Option<u64> {
        self.open(value).ok().map(|(_, expires, _)| expires)
    }

    /// Ends a session until it would have expired, across restarts (a value this daemon did
    /// not sign is ignored). `Err` names the revoked file when it could not be written: the
    /// session is refused for the rest of this run all the same.
    pub fn revoke(&self, value: &str, now_unix: u64) -> Result<(), String> {
        let Ok((_, expires_unix, _)) = self.open(value) else {
            return Ok(());
        };
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.retain(|_, expires| *expires > now_unix);
        if revoked.len() >= MAX_REVOKED
            && let Some(oldest) = revoked
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(key, _)| *key)
        {
            revoked.remove(&oldest);
        }
        revoked.insert(value_key(value), expires_unix);
        let Some(path) = &self.revoked_file else {
            return Ok(());
        };
        let mut text = String::with_capacity(revoked.len() * 80);
        for (digest, expires) in revoked.iter() {
            for byte in digest {
                text.push_str(&format!("{byte:02x}"));
            }
            text.push_str(&format!(" {expires}\n"));
        }
        // Written while the set is locked, so two logouts never write an older set last.
        write_private(path, text.as_bytes()).map_err(|err| format!("{}: {err}", path.display()))
    }

    fn is_revoked(&self, value: &str, now_unix: u64) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&value_key(value))
            .is_some_and(|expires| *expires > now_unix)
    }

    /// Name, expiry and token fingerprint of a value whose signature checks out.
    fn open(&self, value: &str) -> Result<(String, u64, [u8; 16]), Rejected> {
        if value.len() > MAX_VALUE_LEN {
            return Err(Rejected::Invalid);
        }
        let rest = value.strip_prefix(PREFIX).ok_or(Rejected::Invalid)?;
        let (payload, tag) = rest.split_once('.').ok_or(Rejected::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Rejected::Invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Rejected::Invalid)?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| Rejected::Invalid)?;
        let text = String::from_utf8(payload).map_err(|_| Rejected::Invalid)?;
        let mut parts = text.splitn(3, '\n');
        let (Some(expires), Some(print), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejected::Invalid);
        };
        let expires_unix = expires.parse::<u64>().map_err(|_| Rejected::Invalid)?;
        let print: [u8; 16] = URL_SAFE_NO_PAD
            .decode(print)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(Rejected::Invalid)?;
        Ok((name.to_owned(), expires_unix, print))
    }
}

/// What a session remembers of its token: 128 bits of a hash of the token's hash (neither the
/// token nor its stored hash appears in the cookie).
fn fingerprint(token: &TokenHash) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"tendhost session v1\n")
        .chain_update(token.as_bytes())
        .finalize();
    let mut print = [0u8; 16];
    print.copy_from_slice(&digest[..16]);
    print
}

/// Replaces `path` with `bytes` (mode 0600): a temporary file beside it, synced, renamed over.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A 64-digit hex SHA-256 digest.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (idx, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[idx * 2..idx * 2 + 2], 16).ok()?;
    }
    Some(digest)
}

fn value_key(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;
    use crate::token::TokenEntry;

    const NOW: u64 = 1_800_000_000;

    fn tokens(role: Role, token: &str) -> TokenSet {
        TokenSet::new(vec![TokenEntry {
            name: "dash".to_owned(),
            hash: TokenHash::of(token),
            role,
        }])
    }

    #[test]
    fn a_session_stands_for_its_token_with_the_role_it_has_now() {
        let sessions = Sessions::with_key(&[7; 32]);
        let issued = sessions.issue("dash", &TokenHash::of("th_a"), NOW);
        assert_eq!(issued.expires_unix, NOW + SESSION_TTL.as_secs());
        assert!(!issued.value.contains("th_a"));
        let caller = sessions
            .verify(&issued.value, &tokens(Role::Operate, "th_a"), NOW + 1)
            .unwrap();
        assert_eq!(caller.name, "dash");
        assert_eq!(caller.role, Role::Operate);
        let demoted = sessions.verify(&issued.value, &tokens(Role::Read, "th_a"), NOW + 1);
        assert_eq!(demoted.unwrap().role, Role::Read);
    }

    #[test]
    fn a_session_ends_with_its_expiry_its_token_or_a_logout() {
        let sessions = Sessions::with_key(&[7; 32]);
        let issued = sessions.issue("dash", &TokenHash::of("th_a"), NOW);
        let set = tokens(Role::Admin, "th_a");
        let expiry = issued.expires_unix;
        assert_eq!(
            sessions.verify(&issued.value, &set, expiry),
            Err(Rejected::Ended)
        );
        // Same name, another token: the old session is not the new token's.
        assert_eq!(
            sessions.verify(&issued.value, &tokens(Role::Admin, "th_b"), NOW),
            Err(Rejected::Ended)
        );
        assert_eq!(
            sessions.verify(&issued.value, &TokenSet::default(), NOW),
            Err(Rejected::Ended)
        );
        assert!(sessions.verify(&issued.value, &set, NOW).is_ok());
        sessions.revoke(&issued.value, NOW).unwrap();
        assert_eq!(
            sessions.verify(&issued.value, &set, NOW),
            Err(Rejected::Ended)
        );
    }

    #[test]
    fn forged_or_damaged_values_are_invalid() {
        let sessions = Sessions::with_key(&[7; 32]);
        let other = Sessions::with_key(&[8; 32]);
        let set = tokens(Role::Admin, "th_a");
        let issued = other.issue("dash", &TokenHash::of("th_a"), NOW);
        assert_eq!(
            sessions.verify(&issued.value, &set, NOW),
            Err(Rejected::Invalid)
        );
        let mine = sessions.issue("dash", &TokenHash::of("th_a"), NOW).value;
        let (head, tag) = mine.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(format!("{}\nAAAA\ndash", u64::MAX));
        for bad in [
            String::new(),
            "th_a".to_owned(),
            format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            format!("{PREFIX}{forged_payload}.{tag}"),
            format!("{mine}x"),
            "ths1.".repeat(300),
        ] {
            assert_eq!(
                sessions.verify(&bad, &set, NOW),
                Err(Rejected::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_key_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sessions::load_or_create(dir.path(), NOW).unwrap();
        let path = dir.path().join(SESSION_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let issued = first.issue("dash", &TokenHash::of("th_a"), NOW);
        let again = Sessions::load_or_create(dir.path(), NOW).unwrap();
        assert!(
            again
                .verify(&issued.value, &tokens(Role::Read, "th_a"), NOW)
                .is_ok(),
            "a restarted daemon keeps its sessions"
        );
        std::fs::write(&path, b"short").unwrap();
        let err = Sessions::load_or_create(dir.path(), NOW).unwrap_err();
        assert!(err.contains("is not a session key"), "{err}");
    }

    #[test]
    fn a_logout_survives_a_restart_until_the_session_would_have_expired() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = tokens(Role::Operate, "th_b");
        let sessions = Sessions::load_or_create(dir.path(), NOW).unwrap();
        let out = sessions.issue("dash", &TokenHash::of("th_b"), NOW);
        let kept = sessions.issue("dash", &TokenHash::of("th_b"), NOW + 1);
        sessions.revoke(&out.value, NOW + 2).unwrap();
        let path = dir.path().join(REVOKED_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&out.value), "digests only, never a cookie");

        let restarted = Sessions::load_or_create(dir.path(), NOW + 3).unwrap();
        assert_eq!(
            restarted.verify(&out.value, &tokens, NOW + 3),
            Err(Rejected::Ended),
            "logged out before the restart"
        );
        assert!(restarted.verify(&kept.value, &tokens, NOW + 3).is_ok());
        // A damaged line is skipped; the rest still holds.
        std::fs::write(&path, format!("not a digest 12\n{text}")).unwrap();
        let again = Sessions::load_or_create(dir.path(), NOW + 4).unwrap();
        assert_eq!(
            again.verify(&out.value, &tokens, NOW + 4),
            Err(Rejected::Ended)
        );
        // Past its expiry the entry is dropped at load.
        let later = NOW + SESSION_TTL.as_secs() + 10;
        let after_expiry = Sessions::load_or_create(dir.path(), later).unwrap();
        assert!(after_expiry.revoked.lock().unwrap().is_empty());
    }
}
