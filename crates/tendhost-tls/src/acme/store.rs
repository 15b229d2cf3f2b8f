//! What ACME mode keeps under `<data_dir>/tls/acme/` (0700), every file 0600: the account
//! (`account.json`: the directory it belongs to and instant-acme's credentials, the account
//! key included), the issued chain (`cert.pem`) and its key (`key.pem`). Written through a
//! temporary file and a rename.

use std::path::{Path, PathBuf};

use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::fsio::{self, KEY_MODE};

pub(crate) struct Paths {
    pub account: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `account.json`.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    /// The directory URL the account was registered at.
    directory: String,
    credentials: AccountCredentials,
}

impl Paths {
    pub(crate) fn new(dir: &Path) -> Paths {
        Paths {
            account: dir.join("account.json"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Makes the stored files 0600 where others could read them.
    pub(crate) fn restrict(&self) -> Result<(), Error> {
        for path in [&self.account, &self.cert, &self.key] {
            if path.exists() {
                fsio::restrict_key(path)
                    .map_err(|err| Error::file(path, format!("cannot make it 0600: {err}")))?;
            }
        }
        Ok(())
    }

    /// The stored account when it belongs to `directory`.
    pub(crate) fn load_account(
        &self,
        directory: &str,
    ) -> Result<Option<AccountCredentials>, Error> {
        let text = match std::fs::read_to_string(&self.account) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::file(&self.account, format!("cannot read: {err}"))),
        };
        match serde_json::from_str::<StoredAccount>(&text) {
            Ok(stored) if stored.directory == directory => Ok(Some(stored.credentials)),
            Ok(stored) => {
                tracing::info!(old = %stored.directory, new = %directory, "the ACME directory changed; registering a new account");
                Ok(None)
            }
            Err(err) => {
                tracing::warn!(path = %self.account.display(), %err, "stored ACME account unusable; registering a new one");
                Ok(None)
            }
        }
    }

    pub(crate) fn store_account(
        &self,
        directory: &str,
        credentials: &AccountCredentials,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            directory: &'a str,
            credentials: &'a AccountCredentials,
        }
        let json = serde_json::to_string_pretty(&Borrowed {
            directory,
            credentials,
        })
        .map_err(|err| Error::file(&self.account, format!("cannot encode: {err}")))?;
        Self::write(&self.account, json.as_bytes())
    }

    /// Stores an issued pair: the key first, so a crash in between leaves a pair that does
    /// not match, which the next start refuses (and orders again) rather than serving.
    pub(crate) fn store_pair(&self, chain_pem: &str, key_pem: &str) -> Result<(), Error> {
        Self::write(&self.key, key_pem.as_bytes())?;
        Self::write(&self.cert, chain_pem.as_bytes())
    }

    fn write(path: &Path, contents: &[u8]) -> Result<(), Error> {
        fsio::write_atomic(path, contents, KEY_MODE)
            .map_err(|err| Error::file(path, format!("cannot write: {err}")))
    }
}
