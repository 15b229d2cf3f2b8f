//! Which upgrades a job installs: [`Packages`] (`all`, `security`, or named packages, as a
//! request or a schedule asks), exclude globs ([`ExcludeGlob`], `linux-image-*`) that are never
//! upgraded whatever the request says, and [`Target`], the selection resolved against what a
//! check found on one host, which the job script builders (`command::job`) turn into the upgrade
//! command line. Pure values; nothing here runs anything.
//!
//! - apt: `packages = "all"` with no excluded pending update is today's `apt-get dist-upgrade`
//!   (or `upgrade`); anything else is `apt-get install --only-upgrade NAME...` with the selected
//!   pending updates, plus `NAME=CURRENT` for every excluded pending update, so apt keeps those
//!   at their installed version (and refuses, failing the job, when a selected upgrade needs a
//!   newer one) rather than pulling them in as a dependency.
//! - dnf/yum: `upgrade`, `upgrade --security` or `upgrade NAME...`, each with one
//!   `--exclude=GLOB` per exclude pattern (dnf hides what they match from the whole
//!   transaction).
//! - A selection that matches nothing pending on the host runs no upgrade at all (a bare
//!   `dnf upgrade` would upgrade everything).

use crate::types::{CheckReport, PackageManager, PendingUpdate, UpgradedPackage};

/// The longest package name or exclude pattern accepted.
pub const MAX_NAME_LEN: usize = 128;

/// What an update installs, before excludes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Packages {
    /// Every pending update (the default).
    #[default]
    All,
    /// Only updates from a security suite (apt) or with a security advisory (dnf).
    Security,
    /// Only these packages (and what the package manager needs for them).
    Names(Vec<String>),
}

impl Packages {
    /// `all`, `security` or the names joined by `, `, for logs.
    pub fn describe(&self) -> String {
        match self {
            Packages::All => "all".to_owned(),
            Packages::Security => "security".to_owned(),
            Packages::Names(names) => names.join(", "),
        }
    }

    /// Whether a pending update is one this selection asks for (excludes aside).
    pub fn selects(&self, update: &PendingUpdate) -> bool {
        match self {
            Packages::All => true,
            Packages::Security => update.security,
            Packages::Names(names) => names.contains(&update.name),
        }
    }
}

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-' | b':' | b'~')
}

/// Checks a package name: 1 to 128 characters from `[A-Za-z0-9+._:~-]`, starting with a
/// letter or digit (so it can never read as an option).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "package name {name:?} must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() || !name.bytes().all(name_char) {
        return Err(format!(
            "package name {name:?} must start with a letter or digit and use only \
             letters, digits and + . _ : ~ -"
        ));
    }
    Ok(())
}

/// An exclude pattern: a package name where `*` matches any run of characters and `?` one
/// character (`linux-image-*`, `docker-ce`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeGlob(String);

impl ExcludeGlob {
    /// Checks `pattern`: 1 to 128 characters of a package name or `*`/`?`, not starting with
    /// `-`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let valid_chars = pattern
            .bytes()
            .all(|b| name_char(b) || b == b'*' || b == b'?');
        if pattern.is_empty()
            || pattern.len() > MAX_NAME_LEN
            || pattern.starts_with('-')
            || !valid_chars
        {
            return Err(format!(
                "exclude pattern {pattern:?} must be 1 to {MAX_NAME_LEN} characters of a package \
                 name (letters, digits, + . _ : ~ -) or the wildcards * and ?, not starting with -"
            ));
        }
        Ok(Self(pattern.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*` and `?` glob matching over bytes, linear in practice (one backtrack point).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// Whether any of `exclude` matches `name`.
pub fn is_excluded(exclude: &[ExcludeGlob], name: &str) -> bool {
    exclude.iter().any(|glob| glob.matches(name))
}

/// Marks the pending updates the exclude patterns match (`excluded = true`); they stay listed.
pub fn mark_excluded(report: &mut CheckReport, exclude: &[ExcludeGlob]) {
    for update in &mut report.pending {
        update.excluded = is_excluded(exclude, &update.name);
    }
}

/// The form of the upgrade command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// Every pending update: apt's `dist-upgrade`/`upgrade`, dnf's `upgrade` (with excludes).
    Everything,
    /// dnf's `upgrade --security` (with excludes).
    Security,
    /// The named packages only.
    Names(Vec<String>),
    /// Nothing to install: the job runs no upgrade.
    Nothing,
}

/// A selection resolved against one host's check: the upgrade command's form, the apt
/// versions kept back for excluded packages, the dnf exclude globs, and which names the
/// selection picked (to tell `also_installed` apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    /// apt: `NAME=CURRENT` arguments keeping excluded pending updates where they are.
    pub keep: Vec<(String, String)>,
    /// dnf: `--exclude=GLOB` arguments.
    pub exclude: Vec<String>,
    /// The pending updates the selection picked; `None` for every pending update.
    pub selected: Option<Vec<String>>,
    /// Names asked for that have no pending update on this host (not installed, or current).
    pub not_pending: Vec<String>,
}

impl Target {
    /// Every pending update, no excludes: today's upgrade.
    pub fn everything() -> Target {
        Target {
            kind: TargetKind::Everything,
            keep: Vec::new(),
            exclude: Vec::new(),
            selected: None,
            not_pending: Vec::new(),
        }
    }

    /// Resolves `packages` minus `exclude` against `report` (whose pending updates
    /// `mark_excluded` has marked) for `manager`.
    pub fn resolve(
        manager: PackageManager,
        packages: &Packages,
        exclude: &[ExcludeGlob],
        report: &CheckReport,
    ) -> Target {
        let excluded =
            |update: &PendingUpdate| update.excluded || is_excluded(exclude, &update.name);
        let picked: Vec<String> = report
            .pending
            .iter()
            .filter(|update| packages.selects(update) && !excluded(update))
            .map(|update| update.name.clone())
            .collect();
        let not_pending = match packages {
            Packages::Names(names) => names
                .iter()
                .filter(|name| !report.pending.iter().any(|update| update.name == **name))
                .cloned()
                .collect(),
            Packages::All | Packages::Security => Vec::new(),
        };
        let any_excluded = report.pending.iter().any(excluded);
        let mut target = Target {
            selected: Some(picked.clone()),
            not_pending,
            ..Target::everything()
        };
        match manager {
            PackageManager::Apt => {
                if *packages == Packages::All && !any_excluded {
                    target.selected = None;
                } else if picked.is_empty() {
                    target.kind = TargetKind::Nothing;
                } else {
                    target.kind = TargetKind::Names(dedup(picked));
                    target.keep = report
                        .pending
                        .iter()
                        .filter(|update| excluded(update))
                        .filter_map(|update| {
                            Some((update.name.clone(), update.current_version.clone()?))
                        })
                        .collect();
                    target.keep.sort();
                    target.keep.dedup();
                }
            }
            PackageManager::Dnf | PackageManager::Yum => {
                target.exclude = exclude.iter().map(|g| g.as_str().to_owned()).collect();
                match packages {
                    Packages::All => target.selected = None,
                    Packages::Security => target.kind = TargetKind::Security,
                    Packages::Names(_) if picked.is_empty() => target.kind = TargetKind::Nothing,
                    Packages::Names(_) => target.kind = TargetKind::Names(dedup(picked)),
                }
            }
        }
        target
    }

    /// Of the packages an upgrade changed, those the selection did not pick: what the package
    /// manager pulled in for them. Empty when every pending update was selected.
    pub fn also_installed(&self, upgraded: &[UpgradedPackage]) -> Vec<UpgradedPackage> {
        let Some(selected) = &self.selected else {
            return Vec::new();
        };
        upgraded
            .iter()
            .filter(|package| !selected.contains(&package.name))
            .cloned()
            .collect()
    }
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

#[cfg(test)]
mod tests {
    use crate::selection::{
        ExcludeGlob, Packages, Target, TargetKind, mark_excluded, validate_name,
    };
    use crate::types::{CheckReport, PackageManager, PendingUpdate, UpgradedPackage};

    fn pending(name: &str, security: bool) -> PendingUpdate {
        PendingUpdate {
            name: name.into(),
            current_version: Some("1.0".into()),
            new_version: "1.1".into(),
            origin: "o".into(),
            arch: "all".into(),
            security,
            excluded: false,
        }
    }

    fn globs(patterns: &[&str]) -> Vec<ExcludeGlob> {
        patterns
            .iter()
            .map(|p| ExcludeGlob::new(p).unwrap())
            .collect()
    }

    #[test]
    fn globs_match_whole_names() {
        for (pattern, name, expected) in [
            ("linux-image-*", "linux-image-6.1.0-18-amd64", true),
            ("linux-image-*", "linux-headers-6.1", false),
            ("docker-ce", "docker-ce", true),
            ("docker-ce", "docker-ce-cli", false),
            ("*-dev", "libc6-dev", true),
            ("lib?", "libc", true),
            ("lib?", "libcc", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
            ("*", "", true),
        ] {
            assert_eq!(
                ExcludeGlob::new(pattern).unwrap().matches(name),
                expected,
                "{pattern} vs {name}"
            );
        }
        for bad in ["", "-x", "a b", "a;b", "$(x)", "a/b", &"x".repeat(129)] {
            assert!(ExcludeGlob::new(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "-x", "a*", "a b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("libstdc++6:amd64").is_ok());
    }

    #[test]
    fn apt_selections() {
        let mut report = CheckReport {
            pending: vec![pending("a", true), pending("b", false), pending("k", false)],
            ..CheckReport::default()
        };
        let apt = PackageManager::Apt;
        assert_eq!(
            Target::resolve(apt, &Packages::All, &[], &report),
            Target::everything()
        );
        let exclude = globs(&["k*"]);
        mark_excluded(&mut report, &exclude);
        assert!(report.pending[2].excluded && !report.pending[0].excluded);
        let all = Target::resolve(apt, &Packages::All, &exclude, &report);
        assert_eq!(all.kind, TargetKind::Names(vec!["a".into(), "b".into()]));
        assert_eq!(all.keep, [("k".to_owned(), "1.0".to_owned())]);
        let security = Target::resolve(apt, &Packages::Security, &exclude, &report);
        assert_eq!(security.kind, TargetKind::Names(vec!["a".into()]));
        let named = Target::resolve(
            apt,
            &Packages::Names(vec!["k".into(), "zz".into()]),
            &exclude,
            &report,
        );
        assert_eq!(named.kind, TargetKind::Nothing);
        assert_eq!(named.not_pending, ["zz"]);
        let changed = |name: &str| UpgradedPackage {
            name: name.into(),
            from: None,
            to: "1".into(),
        };
        assert_eq!(
            security.also_installed(&[changed("a"), changed("dep")]),
            [changed("dep")]
        );
        assert!(
            Target::everything()
                .also_installed(&[changed("a")])
                .is_empty()
        );
    }

    #[test]
    fn dnf_selections() {
        let report = CheckReport {
            pending: vec![pending("a", true), pending("b", false)],
            ..CheckReport::default()
        };
        let exclude = globs(&["b*"]);
        let dnf = PackageManager::Dnf;
        let all = Target::resolve(dnf, &Packages::All, &exclude, &report);
        assert_eq!(
            (all.kind, all.exclude),
            (TargetKind::Everything, vec!["b*".to_owned()])
        );
        let security = Target::resolve(dnf, &Packages::Security, &exclude, &report);
        assert_eq!(security.kind, TargetKind::Security);
        assert_eq!(security.selected, Some(vec!["a".to_owned()]));
        let none = Target::resolve(dnf, &Packages::Names(vec!["b".into()]), &exclude, &report);
        assert_eq!(none.kind, TargetKind::Nothing);
    }
}
