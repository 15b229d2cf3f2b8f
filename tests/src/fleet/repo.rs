//! A fleet's own package repositories on the test machine: test packages (`Pkg`) built with
//! `dpkg-deb` and `rpmbuild`, an apt repository with two suites (`bookworm` and
//! `bookworm-security`, Release files by `apt-ftparchive`) and an rpm repository indexed by
//! `createrepo_c` with an `updateinfo.xml` marking security advisories (`modifyrepo_c`).
//! Hosts mount these folders read-only; starting hosts lives in `fleet.rs`.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::fleet::FleetError;
use crate::fleet::docker::run;

/// The apt suite ordinary test packages are published to.
pub const APT_SUITE: &str = "bookworm";
/// The apt suite security updates are published to (named like Debian's security suite).
pub const APT_SECURITY_SUITE: &str = "bookworm-security";
/// Where a test package installs a file holding its version, with `{name}` replaced by
/// the package name (the same path for both flavours), for checking installs out of band.
pub const VERSION_FILE: &str = "/usr/share/tendhost-test/{name}/version";

/// A test package, built as a `.deb` (architecture `all`) and/or a `.rpm` (`noarch`,
/// release `1`) when published. It installs [`VERSION_FILE`] and runs the optional
/// maintainer-script bodies (`/bin/sh`, `set -e` for the deb).
///
/// ```
/// use tendhost_tests::fleet::Pkg;
/// let slow = Pkg::new("tendhost-demo", "1.1").postinst("sleep 20");
/// let broken = Pkg::new("tendhost-demo", "1.2").postinst("exit 1");
/// let fix = Pkg::new("tendhost-demo", "1.3").security();
/// assert_eq!(fix.version(), "1.3");
/// # let _ = (slow, broken);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkg {
    name: String,
    version: String,
    preinst: Option<String>,
    postinst: Option<String>,
    security: bool,
    /// `(name, version)`: needs that package at that version or newer.
    depends: Vec<(String, String)>,
}

impl Pkg {
    /// A package `name` at `version`.
    ///
    /// # Panics
    /// When `name` is not a Debian package name of lowercase letters, digits, `+`, `-`
    /// and `.` (at least two characters, starting alphanumeric), or `version` is not
    /// digits-first letters, digits, `.`, `+` and `~` (no `-` or `:`, so the same
    /// string is valid for dpkg and rpm): a test that names such a package is broken.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        let name = name.into();
        let version = version.into();
        let name_ok = name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        assert!(
            name_ok,
            "test package name {name:?} is not a valid Debian package name"
        );
        let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c));
        assert!(
            version_ok,
            "test package version {version:?} must start with a digit and use only letters, digits, '.', '+', '~'"
        );
        Self {
            name,
            version,
            preinst: None,
            postinst: None,
            security: false,
            depends: Vec::new(),
        }
    }

    /// Needs `other` at its version or newer (deb `Depends: N (>= V)`, rpm
    /// `Requires: N >= V-1`), so upgrading this one pulls `other` in.
    #[must_use]
    pub fn depends(mut self, other: &Pkg) -> Self {
        self.depends
            .push((other.name.clone(), other.version.clone()));
        self
    }

    /// Runs `body` (shell) after unpacking: deb `postinst configure`, rpm `%post`. A
    /// failing body leaves a deb half-configured; rpm only warns about a failing `%post`
    /// (use [`Pkg::preinst`] for an rpm install that fails).
    #[must_use]
    pub fn postinst(mut self, body: impl Into<String>) -> Self {
        self.postinst = Some(body.into());
        self
    }

    /// Runs `body` (shell) before unpacking: deb `preinst`, rpm `%pre`. A failing body
    /// makes the install or upgrade fail with the old version still in place.
    #[must_use]
    pub fn preinst(mut self, body: impl Into<String>) -> Self {
        self.preinst = Some(body.into());
        self
    }

    /// Publishes this version as a security update: in the apt suite
    /// [`APT_SECURITY_SUITE`], and with a `type="security"` advisory in the rpm
    /// repository's `updateinfo.xml`.
    #[must_use]
    pub fn security(mut self) -> Self {
        self.security = true;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn is_security(&self) -> bool {
        self.security
    }

    /// The apt suite this version is published to.
    pub fn apt_suite(&self) -> &'static str {
        if self.security {
            APT_SECURITY_SUITE
        } else {
            APT_SUITE
        }
    }

    /// `name=version`, the apt argument that installs exactly this version.
    pub fn apt_spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }

    /// `name-version-1`, the dnf argument that installs exactly this version.
    pub fn rpm_spec(&self) -> String {
        format!("{}-{}-1", self.name, self.version)
    }

    /// The path of the file this package installs, holding its version.
    pub fn version_file(&self) -> String {
        VERSION_FILE.replace("{name}", &self.name)
    }
}

/// The folders of one fleet's repositories and what has been published to them.
pub(crate) struct Repos {
    apt: PathBuf,
    rpm: PathBuf,
    build: PathBuf,
    arch: String,
    rpm_published: Vec<Pkg>,
    n_builds: u64,
}

async fn create_dir(path: &Path, mode: u32) -> Result<(), FleetError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| FleetError::io(format!("creating {}", path.display()), source))?;
    set_mode(path, mode).await
}

async fn set_mode(path: &Path, mode: u32) -> Result<(), FleetError> {
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|source| FleetError::io(format!("chmod {}", path.display()), source))
}

async fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), FleetError> {
    // Write then rename, so a host reading the repository never sees half a file.
    let tmp = path.with_extension("tendhost-tmp");
    tokio::fs::write(&tmp, contents)
        .await
        .map_err(|source| FleetError::io(format!("writing {}", tmp.display()), source))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|source| FleetError::io(format!("renaming to {}", path.display()), source))
}

/// Maintainer-script text for a deb: `/bin/sh` with `set -e`.
fn deb_script(body: &str) -> String {
    format!("#!/bin/sh\nset -e\n{body}\n")
}

/// Escapes `%` so rpm does not expand macros in a script body.
fn rpm_escape(body: &str) -> String {
    body.replace('%', "%%")
}

impl Repos {
    /// Creates empty, indexed repositories under `root` (`apt/`, `rpm/`; world-readable, as
    /// apt reads `file:` repositories as the unprivileged `_apt` user) and a `build/`
    /// scratch folder.
    pub(crate) async fn create(root: &Path) -> Result<Self, FleetError> {
        let arch = run("dpkg", ["--print-architecture"], None)
            .await?
            .trim()
            .to_owned();
        let repos = Self {
            apt: root.join("apt"),
            rpm: root.join("rpm"),
            build: root.join("build"),
            arch,
            rpm_published: Vec::new(),
            n_builds: 0,
        };
        create_dir(&repos.apt, 0o755).await?;
        create_dir(&repos.rpm, 0o755).await?;
        create_dir(&repos.build, 0o700).await?;
        for suite in [APT_SUITE, APT_SECURITY_SUITE] {
            create_dir(&repos.apt.join("pool").join(suite), 0o755).await?;
            create_dir(&repos.apt_binary_dir(suite), 0o755).await?;
        }
        repos.index_apt().await?;
        repos.index_rpm().await?;
        Ok(repos)
    }

    /// The folder mounted at `/srv/tendhost/apt` in the hosts.
    pub(crate) fn apt_dir(&self) -> &Path {
        &self.apt
    }

    /// The folder mounted at `/srv/tendhost/rpm` in the hosts.
    pub(crate) fn rpm_dir(&self) -> &Path {
        &self.rpm
    }

    fn apt_binary_dir(&self, suite: &str) -> PathBuf {
        self.apt
            .join("dists")
            .join(suite)
            .join("main")
            .join(format!("binary-{}", self.arch))
    }

    fn next_build_dir(&mut self, kind: &str) -> PathBuf {
        self.n_builds += 1;
        self.build.join(format!("{kind}-{}", self.n_builds))
    }

    /// Builds each package as a `.deb` into its suite's pool and re-indexes both suites.
    pub(crate) async fn publish_debs(&mut self, pkgs: &[Pkg]) -> Result<(), FleetError> {
        for pkg in pkgs {
            let staging = self.next_build_dir("deb");
            let debian = staging.join("DEBIAN");
            create_dir(&debian, 0o755).await?;
            let share = staging.join(format!("usr/share/tendhost-test/{}", pkg.name));
            create_dir(&share, 0o755).await?;
            write(&share.join("version"), format!("{}\n", pkg.version)).await?;
            let control = format!(
                "Package: {name}\nVersion: {version}\nArchitecture: all\n\
                 Maintainer: tendhost tests <tests@tendhost.invalid>\nSection: misc\n\
                 Priority: optional\n{depends}Description: tendhost test package {name}\n \
                 Published by the tendhost test fleet harness.\n",
                name = pkg.name,
                version = pkg.version,
                depends = if pkg.depends.is_empty() {
                    String::new()
                } else {
                    let list: Vec<String> = pkg
                        .depends
                        .iter()
                        .map(|(name, version)| format!("{name} (>= {version})"))
                        .collect();
                    format!("Depends: {}\n", list.join(", "))
                },
            );
            write(&debian.join("control"), control).await?;
            for (script, body) in [("preinst", &pkg.preinst), ("postinst", &pkg.postinst)] {
                if let Some(body) = body {
                    let path = debian.join(script);
                    write(&path, deb_script(body)).await?;
                    set_mode(&path, 0o755).await?;
                }
            }
            let deb = self
                .apt
                .join("pool")
                .join(pkg.apt_suite())
                .join(format!("{}_{}_all.deb", pkg.name, pkg.version));
            run(
                "dpkg-deb",
                [
                    "--root-owner-group".as_ref(),
                    "-Zgzip".as_ref(),
                    "-z1".as_ref(),
                    "--build".as_ref(),
                    staging.as_os_str(),
                    deb.as_os_str(),
                ],
                None,
            )
            .await?;
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        self.index_apt().await
    }

    async fn index_apt(&self) -> Result<(), FleetError> {
        for suite in [APT_SUITE, APT_SECURITY_SUITE] {
            let pool = format!("pool/{suite}");
            let packages = run(
                "apt-ftparchive",
                ["packages", pool.as_str()],
                Some(&self.apt),
            )
            .await?;
            write(&self.apt_binary_dir(suite).join("Packages"), packages).await?;
            let dist = self.apt.join("dists").join(suite);
            let release_path = dist.join("Release");
            // apt-ftparchive would list an old Release among the files it hashes.
            let _ = tokio::fs::remove_file(&release_path).await;
            let label = if suite == APT_SECURITY_SUITE {
                "Tendhost-Security"
            } else {
                "Tendhost"
            };
            let options = [
                "Origin=Tendhost".to_owned(),
                format!("Label={label}"),
                format!("Suite={suite}"),
                format!("Codename={suite}"),
                format!("Architectures={}", self.arch),
                "Components=main".to_owned(),
                "Description=tendhost test fleet repository".to_owned(),
            ];
            let mut args = Vec::new();
            for option in &options {
                args.push("-o".to_owned());
                args.push(format!("APT::FTPArchive::Release::{option}"));
            }
            args.push("release".to_owned());
            args.push(format!("dists/{suite}"));
            let release = run("apt-ftparchive", &args, Some(&self.apt)).await?;
            write(&release_path, release).await?;
        }
        Ok(())
    }

    /// Builds each package as a noarch `.rpm` into the rpm repository and re-indexes it.
    pub(crate) async fn publish_rpms(&mut self, pkgs: &[Pkg]) -> Result<(), FleetError> {
        for pkg in pkgs {
            let topdir = self.next_build_dir("rpm");
            create_dir(&topdir, 0o755).await?;
            let mut spec = format!(
                "Name: {name}\nVersion: {version}\nRelease: 1\n\
                 Summary: tendhost test package {name}\nLicense: MIT\nBuildArch: noarch\n{requires}\n\
                 %description\nPublished by the tendhost test fleet harness.\n\n\
                 %install\nmkdir -p %{{buildroot}}/usr/share/tendhost-test/{name}\n\
                 echo {version} > %{{buildroot}}/usr/share/tendhost-test/{name}/version\n\n",
                name = pkg.name,
                version = pkg.version,
                requires = pkg
                    .depends
                    .iter()
                    .fold(String::new(), |mut out, (name, version)| {
                        let _ = writeln!(out, "Requires: {name} >= {version}-1");
                        out
                    }),
            );
            if let Some(body) = &pkg.preinst {
                let _ = write!(spec, "%pre\n{}\n\n", rpm_escape(body));
            }
            if let Some(body) = &pkg.postinst {
                let _ = write!(spec, "%post\n{}\n\n", rpm_escape(body));
            }
            let _ = write!(spec, "%files\n/usr/share/tendhost-test/{}\n", pkg.name);
            let spec_path = topdir.join(format!("{}.spec", pkg.name));
            write(&spec_path, spec).await?;
            let topdir_define = format!("_topdir {}", topdir.display());
            let rpmdir_define = format!("_rpmdir {}", self.rpm.display());
            run(
                "rpmbuild",
                [
                    "-bb".as_ref(),
                    "--quiet".as_ref(),
                    "--define".as_ref(),
                    topdir_define.as_ref(),
                    "--define".as_ref(),
                    rpmdir_define.as_ref(),
                    "--define".as_ref(),
                    "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm".as_ref(),
                    "--define".as_ref(),
                    "_binary_payload w1.gzdio".as_ref(),
                    spec_path.as_os_str(),
                ],
                None,
            )
            .await?;
            let _ = tokio::fs::remove_dir_all(&topdir).await;
            self.rpm_published.push(pkg.clone());
        }
        self.index_rpm().await
    }

    async fn index_rpm(&self) -> Result<(), FleetError> {
        run(
            "createrepo_c",
            [
                "--update".as_ref(),
                "--quiet".as_ref(),
                "--no-database".as_ref(),
                self.rpm.as_os_str(),
            ],
            None,
        )
        .await?;
        let updateinfo = self.build.join("updateinfo.xml");
        write(&updateinfo, updateinfo_xml(&self.rpm_published)).await?;
        run(
            "modifyrepo_c",
            [
                "--mdtype=updateinfo".as_ref(),
                updateinfo.as_os_str(),
                self.rpm.join("repodata").as_os_str(),
            ],
            None,
        )
        .await?;
        Ok(())
    }
}

/// An `updateinfo.xml` with one `type="security"` advisory per published security rpm.
fn updateinfo_xml(published: &[Pkg]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n");
    for (idx, pkg) in published.iter().filter(|pkg| pkg.security).enumerate() {
        let _ = write!(
            xml,
            "  <update from=\"tests@tendhost.invalid\" status=\"stable\" type=\"security\" version=\"1\">\n\
             \x20   <id>TENDHOST-SA-{n}</id>\n\
             \x20   <title>{name} {version} security update</title>\n\
             \x20   <issued date=\"2025-01-01 00:00:00\"/>\n\
             \x20   <severity>Important</severity>\n\
             \x20   <description>Security update published by the tendhost test fleet.</description>\n\
             \x20   <pkglist>\n\
             \x20     <collection short=\"tendhost\">\n\
             \x20       <name>tendhost</name>\n\
             \x20       <package name=\"{name}\" version=\"{version}\" release=\"1\" epoch=\"0\" arch=\"noarch\">\n\
             \x20         <filename>{name}-{version}-1.noarch.rpm</filename>\n\
             \x20       </package>\n\
             \x20     </collection>\n\
             \x20   </pkglist>\n\
             \x20 </update>\n",
            n = idx + 1,
            name = pkg.name,
            version = pkg.version,
        );
    }
    xml.push_str("</updates>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_and_versions_are_accepted() {
        let pkg = Pkg::new("tendhost-demo", "1.0+b1~rc2");
        assert_eq!(pkg.apt_spec(), "tendhost-demo=1.0+b1~rc2");
        assert_eq!(pkg.rpm_spec(), "tendhost-demo-1.0+b1~rc2-1");
        assert_eq!(
            pkg.version_file(),
            "/usr/share/tendhost-test/tendhost-demo/version"
        );
        assert_eq!(pkg.apt_suite(), APT_SUITE);
        assert_eq!(pkg.security().apt_suite(), APT_SECURITY_SUITE);
    }

    #[test]
    #[should_panic(expected = "not a valid Debian package name")]
    fn shell_in_a_name_is_refused() {
        let _ = Pkg::new("x; rm -rf /", "1");
    }

    #[test]
    #[should_panic(expected = "must start with a digit")]
    fn dash_in_a_version_is_refused() {
        let _ = Pkg::new("tendhost-demo", "1.0-2");
    }

    #[test]
    fn updateinfo_lists_only_security_packages() {
        let xml = updateinfo_xml(&[
            Pkg::new("tendhost-a", "1.1"),
            Pkg::new("tendhost-b", "2.0").security(),
        ]);
        assert!(xml.contains("<package name=\"tendhost-b\" version=\"2.0\""));
        assert!(!xml.contains("tendhost-a"));
        assert_eq!(xml.matches("type=\"security\"").count(), 1);
    }

    #[test]
    fn rpm_bodies_escape_macros() {
        assert_eq!(rpm_escape("date +%s"), "date +%%s");
    }
}
