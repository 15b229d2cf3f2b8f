//! The installed-package listing our snapshot commands print (`dpkg-query -W -f` on apt hosts,
//! `rpm -qa --qf` on dnf/yum hosts, one `NAME<TAB>ARCH<TAB>VERSION<TAB>STATUS` line per
//! package). Shared by the check (`parse::dnf` pairs it with available updates) and the job
//! judgement (`parse::job` diffs the snapshots before and after an upgrade). Pure.

use crate::parse::ParseError;

/// One installed package as printed by our `rpm -qa --qf` (or `dpkg-query -W -f`) format:
/// `NAME<TAB>ARCH<TAB>VERSION<TAB>STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Installed {
    pub name: String,
    pub arch: String,
    pub version: String,
    /// dpkg's three-letter `db:Status-Abbrev` (`ii `, `iF `, `rc `...); rpm rows use `ii`.
    pub status: String,
}

impl Installed {
    /// Fully installed and configured (dpkg status letter `i`).
    pub fn is_installed_ok(&self) -> bool {
        self.status.as_bytes().get(1) == Some(&b'i')
    }

    /// dpkg knows the package as installed in some state, complete or not.
    pub fn is_present(&self) -> bool {
        !matches!(self.status.as_bytes().get(1), None | Some(b'n' | b'c'))
    }
}

/// Parses our installed-package listing; blank lines are skipped, a malformed line is an error.
pub fn parse_installed(text: &str) -> Result<Vec<Installed>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(idx, line)| {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(arch), Some(version), status) if !name.is_empty() => {
                    Ok(Installed {
                        name: name.to_owned(),
                        arch: arch.to_owned(),
                        version: version.to_owned(),
                        status: status.unwrap_or("ii").to_owned(),
                    })
                }
                _ => Err(ParseError::new(
                    "installed package list",
                    idx + 1,
                    format!("expected NAME<TAB>ARCH<TAB>VERSION<TAB>STATUS, got {line:?}"),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::parse::capture;
    use crate::parse::installed::parse_installed;

    #[test]
    fn dpkg_query_capture() {
        // After the upgrade that left cap-fail half-configured (see tests/data/README.md).
        let installed = parse_installed(&capture("dpkg-query-installed.txt")).unwrap();
        assert_eq!(installed.len(), 122);
        let status = |name: &str| {
            let row = installed.iter().find(|i| i.name == name).unwrap();
            (row.version.as_str(), row.status.as_str())
        };
        assert_eq!(status("cap-held"), ("1.0", "hi "));
        assert_eq!(status("cap-fail"), ("1.1", "iF "));
        let fail = installed.iter().find(|i| i.name == "cap-fail").unwrap();
        assert!(fail.is_present() && !fail.is_installed_ok());
        // cap-old was removed by the upgrade (cap-conflict conflicts with it).
        assert!(installed.iter().all(|i| i.name != "cap-old"));
        let not_ok: Vec<&str> = installed
            .iter()
            .filter(|i| !i.is_installed_ok())
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(not_ok, ["cap-fail"]);
    }
}
