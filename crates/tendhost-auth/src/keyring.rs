//! The tokens in force: the config file's entries, a `tokens_file`'s (re-read when it changes
//! or on request), or the bootstrap token written at first start. A reload that finds a
//! problem changes nothing: the last good set stays in force and the problems are returned,
//! each as `file:line:col: reason`.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::role::Role;
use crate::token::{Caller, TokenEntry, TokenHash, TokenSet, new_token};
use crate::tokens_file::parse_tokens_file;

/// Name of the bootstrap token.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// File name of the bootstrap token inside the data directory.
pub const BOOTSTRAP_FILE: &str = "admin.token";

/// Holds the current token set; cheap to read on every request.
#[derive(Debug)]
pub struct Keyring {
    /// The config file's own entries (replaced by a config reload).
    config_entries: RwLock<Vec<TokenEntry>>,
    file: Option<PathBuf>,
    current: RwLock<Arc<TokenSet>>,
    /// Modification time and length of the tokens file when last read.
    seen: RwLock<Option<(SystemTime, u64)>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The file has not changed since it was last read.
    Unchanged,
    /// The new set is in force.
    Applied { n_tokens: usize },
}

impl Keyring {
    /// A keyring with the config file's entries and, when set, a tokens file read now.
    /// A bad tokens file at start is an error (the daemon must not start with fewer tokens
    /// than its operator wrote down).
    pub fn new(
        config_entries: Vec<TokenEntry>,
        file: Option<PathBuf>,
    ) -> Result<Self, Vec<String>> {
        let keyring = Self {
            current: RwLock::new(Arc::new(TokenSet::new(config_entries.clone()))),
            config_entries: RwLock::new(config_entries),
            file,
            seen: RwLock::new(None),
        };
        if keyring.file.is_some() {
            keyring.reload(true)?;
        }
        Ok(keyring)
    }

    /// A keyring holding only `entries` (the bootstrap token).
    pub fn fixed(entries: Vec<TokenEntry>) -> Self {
        Self {
            current: RwLock::new(Arc::new(TokenSet::new(entries.clone()))),
            config_entries: RwLock::new(entries),
            file: None,
            seen: RwLock::new(None),
        }
    }

    pub fn tokens_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The set in force.
    pub fn current(&self) -> Arc<TokenSet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        self.current().authenticate(presented)
    }

    /// A config reload: `entries` are the config file's tokens from now on (with the tokens
    /// file's, read again). On a problem nothing changes and every problem is returned.
    pub fn set_config_tokens(&self, entries: Vec<TokenEntry>) -> Result<usize, Vec<String>> {
        let before = std::mem::replace(
            &mut *self
                .config_entries
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            entries.clone(),
        );
        if self.file.is_none() {
            let n_tokens = entries.len();
            *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Arc::new(TokenSet::new(entries));
            return Ok(n_tokens);
        }
        match self.reload(true) {
            Ok(Reloaded::Applied { n_tokens }) => Ok(n_tokens),
            Ok(Reloaded::Unchanged) => Ok(self.current().len()),
            Err(problems) => {
                *self
                    .config_entries
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = before;
                Err(problems)
            }
        }
    }

    /// Re-reads the tokens file when `force` or when its modification time or size changed.
    /// On any problem the set in force is kept and every problem is returned.
    pub fn reload(&self, force: bool) -> Result<Reloaded, Vec<String>> {
        let Some(path) = &self.file else {
            return Ok(Reloaded::Unchanged);
        };
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|err| vec![format!("{shown}: {err}")])?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let seen = *self
            .seen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && seen == Some(stamp) {
            return Ok(Reloaded::Unchanged);
        }
        *self
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stamp);
        let text = std::fs::read_to_string(path).map_err(|err| vec![format!("{shown}: {err}")])?;
        let from_file = parse_tokens_file(&text).map_err(|errors| {
            errors
                .iter()
                .map(|err| format!("{shown}:{err}"))
                .collect::<Vec<_>>()
        })?;
        let mut entries = self
            .config_entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut problems = Vec::new();
        for entry in from_file.entries() {
            if entries.iter().any(|e| e.name == entry.name) {
                problems.push(format!(
                    "{shown}: token name {:?} is also defined in the config file",
                    entry.name
                ));
            } else {
                entries.push(entry.clone());
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let n_tokens = entries.len();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(TokenSet::new(entries));
        Ok(Reloaded::Applied { n_tokens })
    }
}

/// What [`load_or_create_bootstrap`] found.
#[derive(Debug)]
pub struct Bootstrap {
    pub entry: TokenEntry,
    pub path: PathBuf,
    /// `true` when the file was written by this call.
    pub created: bool,
}

/// The bootstrap admin token in `data_dir/admin.token`: read when present, else created with
/// mode 0600 (never overwriting a file another process made meanwhile). The file holds the
/// token and a newline; a file that holds anything else is an error naming it.
pub fn load_or_create_bootstrap(data_dir: &Path) -> Result<Bootstrap, String> {
    let path = data_dir.join(BOOTSTRAP_FILE);
    let shown = path.display().to_string();
    let entry = |token: &str| TokenEntry {
        name: BOOTSTRAP_NAME.to_owned(),
        hash: TokenHash::of(token),
        role: Role::Admin,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if !token.starts_with(crate::token::TOKEN_PREFIX) || token.contains(char::is_whitespace)
            {
                return Err(format!(
                    "{shown}: does not hold a tendhost token; delete it to get a new one"
                ));
            }
            // Tighten a file someone loosened.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            return Ok(Bootstrap {
                entry: entry(token),
                path,
                created: false,
            });
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(format!("{shown}: {err}")),
    }
    let (token, _) = new_token().map_err(|err| err.to_string())?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|err| format!("{shown}: cannot create: {err}"))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| format!("{shown}: cannot write: {err}"))?;
    Ok(Bootstrap {
        entry: entry(&token),
        path,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:abababababababababababababababababababababababababababababababab";

    fn entry(name: &str) -> TokenEntry {
        TokenEntry {
            name: name.to_owned(),
            hash: TokenHash::parse(HASH).unwrap(),
            role: Role::Read,
        }
    }

    #[test]
    fn bootstrap_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_bootstrap(dir.path()).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&first.path).unwrap();
        assert_eq!(TokenHash::of(token.trim()), first.entry.hash);
        let again = load_or_create_bootstrap(dir.path()).unwrap();
        assert!(!again.created);
        assert_eq!(again.entry, first.entry);
        std::fs::write(&first.path, "not a token\n").unwrap();
        let err = load_or_create_bootstrap(dir.path()).unwrap_err();
        assert!(err.contains("admin.token"), "{err}");
    }

    #[test]
    fn a_bad_reload_keeps_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let (token, hash) = new_token().unwrap();
        std::fs::write(
            &path,
            format!(
                "tokens = [{{ name = \"ci\", token_hash = \"{hash}\", role = \"operate\" }}]\n"
            ),
        )
        .unwrap();
        let keyring = Keyring::new(vec![entry("cfg")], Some(path.clone())).unwrap();
        assert_eq!(keyring.authenticate(&token).unwrap().role, Role::Operate);
        assert_eq!(keyring.current().len(), 2);
        assert_eq!(keyring.reload(false), Ok(Reloaded::Unchanged));

        std::fs::write(
            &path,
            "tokens = [{ name = \"ci\", token_hash = \"md5:1\", role = \"read\" }]\n",
        )
        .unwrap();
        let errors = keyring.reload(true).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(&format!("{}:1:", path.display())),
            "{errors:?}"
        );
        assert_eq!(keyring.authenticate(&token).unwrap().role, Role::Operate);

        std::fs::write(&path, "").unwrap();
        assert_eq!(keyring.reload(true), Ok(Reloaded::Applied { n_tokens: 1 }));
        assert_eq!(keyring.authenticate(&token), None);
    }

    #[test]
    fn a_file_name_clashing_with_the_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            format!("tokens = [{{ name = \"cfg\", token_hash = \"{HASH}\", role = \"admin\" }}]\n"),
        )
        .unwrap();
        let errors = Keyring::new(vec![entry("cfg")], Some(path)).unwrap_err();
        assert!(
            errors[0].contains("also defined in the config file"),
            "{errors:?}"
        );
    }
}
