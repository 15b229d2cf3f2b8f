//! API tokens. A token is `th_` followed by 256 random bits (base64url, no padding); only its
//! SHA-256 is ever stored (`sha256:<64 hex>`), so a leaked config or database gives no
//! credential. [`TokenSet::authenticate`] hashes the presented token once and compares it with
//! every entry in constant time, so neither a match's position nor a near miss shows in timing.
//! Secrets never reach `Debug` output.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::role::Role;

/// Prefix of every API token, so secret scanners and people can tell one apart.
pub const TOKEN_PREFIX: &str = "th_";

/// Random bytes in a token (256 bits; the floor is 128).
const TOKEN_BYTES: usize = 32;

/// Longest presented token looked at; anything longer is refused unhashed.
pub const MAX_TOKEN_LEN: usize = 512;

/// Why a `token_hash` or a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "token_hash must be \"sha256:\" followed by 64 hex digits \
         (e.g. `printf %s \"$TOKEN\" | sha256sum`)"
    )]
    BadHash,
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

/// The stored form of a token: its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token as presented.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses `sha256:<64 hex digits>` (either case).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let hex = text.strip_prefix("sha256:").ok_or(TokenError::BadHash)?;
        if hex.len() != 64 {
            return Err(TokenError::BadHash);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or(TokenError::BadHash);
            let value = digit(pair[0])? * 16 + digit(pair[1])?;
            *byte = u8::try_from(value).map_err(|_| TokenError::BadHash)?;
        }
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for TokenHash {
    /// `sha256:<hex>`, the config form (a hash is not a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A new random token and its stored hash.
pub fn new_token() -> Result<(String, TokenHash), TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| TokenError::Random(err.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = TokenHash::of(&token);
    Ok((token, hash))
}

/// One configured token: a name for logs and audit, its hash, and its role.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub hash: TokenHash,
    pub role: Role,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("role", &self.role)
            .finish()
    }
}

/// Who made a request: the token's name and role (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The tokens in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    entries: Vec<TokenEntry>,
}

impl TokenSet {
    pub fn new(entries: Vec<TokenEntry>) -> Self {
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The caller a presented token belongs to. Every entry is compared (constant time each,
    /// no early exit), so the answer's timing does not depend on which entry matched.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        if presented.len() > MAX_TOKEN_LEN {
            return None;
        }
        let hash = TokenHash::of(presented);
        let mut found: Option<&TokenEntry> = None;
        for entry in &self.entries {
            let equal: bool = entry.hash.0.ct_eq(&hash.0).into();
            if equal && found.is_none() {
                found = Some(entry);
            }
        }
        found.map(|entry| Caller {
            name: entry.name.clone(),
            role: entry.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_prefixed_random_and_match_their_hash() {
        let (a, hash_a) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX), "{a}");
        assert_ne!(a, b);
        // 32 bytes in base64url without padding.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(TokenHash::of(&a), hash_a);
        assert_eq!(TokenHash::parse(&hash_a.to_string()).unwrap(), hash_a);
    }

    #[test]
    fn hash_text_matches_sha256sum() {
        // `printf %s th_test | sha256sum`
        assert_eq!(
            TokenHash::of("th_test").to_string(),
            "sha256:8aa60c7150eea6300b44361af57e4fed29aaee86ec18e1aa8b8c705077bb0eb0"
        );
        let hash = TokenHash::parse(
            "sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
        )
        .unwrap();
        assert_eq!(hash.as_bytes(), &[0xab; 32]);
    }

    #[test]
    fn bad_hashes_are_refused() {
        for text in [
            "",
            "md5:abc",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}", "a".repeat(65)),
            &format!("sha256:{}é", "a".repeat(62)),
        ] {
            assert_eq!(TokenHash::parse(text), Err(TokenError::BadHash), "{text:?}");
        }
    }

    #[test]
    fn authenticate_finds_the_entry_and_nothing_else() {
        let (read, read_hash) = new_token().unwrap();
        let (admin, admin_hash) = new_token().unwrap();
        let set = TokenSet::new(vec![
            TokenEntry {
                name: "grafana".to_owned(),
                hash: read_hash,
                role: Role::Read,
            },
            TokenEntry {
                name: "ops".to_owned(),
                hash: admin_hash,
                role: Role::Admin,
            },
        ]);
        assert_eq!(
            set.authenticate(&read),
            Some(Caller {
                name: "grafana".to_owned(),
                role: Role::Read
            })
        );
        assert_eq!(set.authenticate(&admin).unwrap().role, Role::Admin);
        assert_eq!(set.authenticate(&read[..read.len() - 1]), None);
        assert_eq!(set.authenticate(""), None);
        assert_eq!(set.authenticate(&"x".repeat(MAX_TOKEN_LEN + 1)), None);
        assert_eq!(TokenSet::default().authenticate(&read), None);
    }

    #[test]
    fn debug_output_never_shows_a_hash() {
        let (_, hash) = new_token().unwrap();
        let entry = TokenEntry {
            name: "ci".to_owned(),
            hash,
            role: Role::Operate,
        };
        let text = format!("{entry:?} {:?}", TokenSet::new(vec![entry.clone()]));
        let hex = hash.to_string();
        assert!(!text.contains(&hex[7..19]), "{text}");
        assert!(text.contains("ci"), "{text}");
    }
}
