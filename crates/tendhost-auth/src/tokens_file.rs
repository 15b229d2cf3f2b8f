//! The rules for one token entry (`{ name, token_hash, role }`), written once for the config
//! file's `[daemon.auth] tokens` and for a `tokens_file`, and the parser of a `tokens_file`:
//! the same TOML shape, `tokens = [{ name, token_hash, role }]` (or `[[tokens]]` tables). Every
//! problem is reported with its 1-based line and column; a file with any problem yields no set
//! at all, so the caller keeps the last good one in force.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::role::Role;
use crate::token::{TokenEntry, TokenHash, TokenSet};

/// A problem with one field of an entry, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `name`, `token_hash` or `role`.
    pub field: &'static str,
    pub message: String,
}

/// A problem at a place in a tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Longest token name accepted (it shows in logs and audit rows).
const MAX_NAME_LEN: usize = 64;

/// Checks one entry's fields. Names are 1-64 characters of `[A-Za-z0-9._-]`, so they are
/// safe to print anywhere.
pub fn entry(name: &str, token_hash: &str, role: &str) -> Result<TokenEntry, Vec<FieldError>> {
    let mut errors = Vec::new();
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        errors.push(FieldError {
            field: "name",
            message: format!(
                "token name must be 1-{MAX_NAME_LEN} characters of letters, digits, '.', '_' \
                 or '-', got {name:?}"
            ),
        });
    }
    let hash = TokenHash::parse(token_hash).map_err(|err| FieldError {
        field: "token_hash",
        message: err.to_string(),
    });
    let role = role.parse::<Role>().map_err(|message| FieldError {
        field: "role",
        message,
    });
    match (hash, role) {
        (Ok(hash), Ok(role)) if errors.is_empty() => Ok(TokenEntry {
            name: name.to_owned(),
            hash,
            role,
        }),
        (hash, role) => {
            errors.extend(hash.err());
            errors.extend(role.err());
            Err(errors)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tokens: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Spanned<String>,
    token_hash: Spanned<String>,
    role: Spanned<String>,
}

/// Parses a tokens file's text.
pub fn parse_tokens_file(text: &str) -> Result<TokenSet, Vec<EntryError>> {
    let at = |span: Range<usize>, message: String| {
        let (line, col) = line_col(text, span.start);
        EntryError { line, col, message }
    };
    let raw: RawFile = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        vec![at(span, err.message().to_owned())]
    })?;
    let mut errors = Vec::new();
    let mut entries = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for raw_entry in raw.tokens {
        match entry(
            raw_entry.name.get_ref(),
            raw_entry.token_hash.get_ref(),
            raw_entry.role.get_ref(),
        ) {
            Ok(token) => {
                let (line, _) = line_col(text, raw_entry.name.span().start);
                if let Some(first) = first_line.insert(token.name.clone(), line) {
                    errors.push(at(
                        raw_entry.name.span(),
                        format!(
                            "duplicate token name {:?} (first defined on line {first})",
                            token.name
                        ),
                    ));
                } else {
                    entries.push(token);
                }
            }
            Err(field_errors) => {
                for field_error in field_errors {
                    let span = match field_error.field {
                        "name" => raw_entry.name.span(),
                        "token_hash" => raw_entry.token_hash.span(),
                        _ => raw_entry.role.span(),
                    };
                    errors.push(at(span, field_error.message));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(TokenSet::new(entries))
    } else {
        Err(errors)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:abababababababababababababababababababababababababababababababab";

    #[test]
    fn a_good_file_parses() {
        let text = format!(
            "tokens = [\n  {{ name = \"grafana\", token_hash = \"{HASH}\", role = \"read\" }},\n]\n\n\
             [[tokens]]\nname = \"ops\"\ntoken_hash = \"{}\"\nrole = \"admin\"\n",
            HASH.replace("ab", "cd")
        );
        // Mixing both spellings is a TOML error; each alone is fine.
        assert!(parse_tokens_file(&text).is_err());
        let inline = format!(
            "tokens = [\n  {{ name = \"grafana\", token_hash = \"{HASH}\", role = \"read\" }},\n]\n"
        );
        let set = parse_tokens_file(&inline).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.entries()[0].role, Role::Read);
        let tables =
            format!("[[tokens]]\nname = \"ops\"\ntoken_hash = \"{HASH}\"\nrole = \"admin\"\n");
        assert_eq!(parse_tokens_file(&tables).unwrap().entries()[0].name, "ops");
        assert!(parse_tokens_file("").unwrap().is_empty());
    }

    #[test]
    fn every_bad_entry_is_placed() {
        let text = format!(
            "tokens = [\n\
             {{ name = \"a\", token_hash = \"md5:1\", role = \"read\" }},\n\
             {{ name = \"b\", token_hash = \"{HASH}\", role = \"root\" }},\n\
             {{ name = \"a b\", token_hash = \"{HASH}\", role = \"read\" }},\n\
             {{ name = \"c\", token_hash = \"{HASH}\", role = \"read\" }},\n\
             {{ name = \"c\", token_hash = \"{HASH}\", role = \"read\" }},\n\
             ]\n"
        );
        let errors = parse_tokens_file(&text).unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 4, "{rendered:#?}");
        assert!(
            rendered[0].starts_with("2:28: token_hash must be"),
            "{}",
            rendered[0]
        );
        assert!(
            rendered[1].starts_with("3:110: unknown role \"root\""),
            "{}",
            rendered[1]
        );
        assert!(
            rendered[2].starts_with("4:10: token name must be"),
            "{}",
            rendered[2]
        );
        assert_eq!(
            rendered[3],
            "6:10: duplicate token name \"c\" (first defined on line 5)"
        );
    }

    #[test]
    fn a_missing_role_or_unknown_key_is_an_error_with_a_place() {
        let errors = parse_tokens_file(&format!(
            "tokens = [{{ name = \"a\", token_hash = \"{HASH}\" }}]\n"
        ))
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("role"), "{errors:?}");
        assert_eq!(errors[0].line, 1);
        let errors = parse_tokens_file("colour = 1\n").unwrap_err();
        assert!(errors[0].message.contains("colour"), "{errors:?}");
        assert_eq!((errors[0].line, errors[0].col), (1, 1));
    }
}
