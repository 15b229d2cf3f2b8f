//! Package selection on real hosts: `packages = "security"`, named packages with what they
//! pull in (`also_installed`), and `exclude` globs from `[defaults]` and a host's own, on apt
//! and dnf, through the daemon's API (in-process, real HTTP, real SSH). Installed versions are
//! read out of band (`docker exec`, the version file each test package installs).

use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::fleet::{Flavour, Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, post_json, wait_job};

/// The packages every host starts with at 1.0; 1.1 of each is published, `tendhost-sec` in
/// the security suite / with a security advisory, `tendhost-app` needing `tendhost-lib` 1.1.
const NAMES: [&str; 5] = [
    "tendhost-sec",
    "tendhost-main",
    "tendhost-lib",
    "tendhost-app",
    "tendhost-kernel",
];

fn updates() -> Vec<Pkg> {
    let lib = Pkg::new("tendhost-lib", "1.1");
    vec![
        Pkg::new("tendhost-sec", "1.1").security(),
        Pkg::new("tendhost-main", "1.1"),
        Pkg::new("tendhost-app", "1.1").depends(&lib),
        lib,
        Pkg::new("tendhost-kernel", "1.1"),
    ]
}

/// A daemon managing `hosts`; `[defaults]` excludes `tendhost-kern*`, and `extra_exclude`
/// is the first host's own `exclude`.
fn config_for(fleet: &Fleet, hosts: &[&Host], extra_exclude: &str) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\nexclude = [\"tendhost-kern*\"]\n",
        fleet.ssh_key().display()
    );
    for (idx, host) in hosts.iter().enumerate() {
        // The dnf image is Debian underneath, with apt too: say which manager drives it.
        let manager = match host.flavour() {
            Flavour::Apt => "apt",
            Flavour::Dnf => "dnf",
        };
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\npackage_manager = \"{manager}\"\n",
            host.name(),
            host.addr()
        ));
        if idx == 0 {
            config.push_str(&format!("exclude = [{extra_exclude:?}]\n"));
        }
    }
    config
}

async fn version(host: &Host, name: &str) -> String {
    host.exec_ok(&["cat", &format!("/usr/share/tendhost-test/{name}/version")])
        .await
        .trim()
        .to_owned()
}

/// Every test package's installed version on `host`, in [`NAMES`] order.
async fn versions(host: &Host) -> Vec<String> {
    let mut all = Vec::new();
    for name in NAMES {
        all.push(version(host, name).await);
    }
    all
}

/// Runs an update of `host` with `body` to its end; the finished job.
async fn update(app: &TestApp, host: &Host, body: Value) -> Value {
    let (status, accepted) = post_json(
        &app.base_url,
        &format!("/hosts/{}/update", host.name()),
        body,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = wait_job(&app.base_url, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    job
}

fn names(packages: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = packages
        .as_array()
        .unwrap_or_else(|| panic!("{packages}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

/// One host through the whole sequence: security only, then one named package (pulling in
/// its dependency), then everything; the excluded package never moves. `manager_word` is
/// the word the dry run's upgrade line must carry.
async fn selection_sequence(app: &TestApp, host: &Host, security_word: &str) {
    let name = host.name();
    let at = |v: &str| vec![v.to_owned(); NAMES.len()];
    assert_eq!(versions(host).await, at("1.0"), "{name} starts at 1.0");

    // A dry run of the security selection shows the exact command and changes nothing.
    let (status, accepted) = post_json(
        &app.base_url,
        &format!("/hosts/{name}/update"),
        json!({"dry_run": true, "packages": "security"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let dry = wait_job(&app.base_url, accepted["job_id"].as_str().unwrap()).await;
    let commands: Vec<&str> = dry["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let upgrade = commands.last().unwrap_or_else(|| panic!("{dry:#}"));
    assert!(upgrade.contains(security_word), "{name}: {upgrade}");
    let kernel = dry["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tendhost-kernel")
        .unwrap_or_else(|| panic!("{dry:#}"));
    assert_eq!(kernel["excluded"], true, "{kernel}");
    assert_eq!(
        versions(host).await,
        at("1.0"),
        "{name}: a dry run changes nothing"
    );

    let job = update(app, host, json!({"packages": "security"})).await;
    assert_eq!(names(&job["packages_changed"]), ["tendhost-sec"], "{job:#}");
    assert_eq!(names(&job["also_installed"]), Vec::<&str>::new(), "{job:#}");
    assert_eq!(
        versions(host).await,
        ["1.1", "1.0", "1.0", "1.0", "1.0"],
        "{name}: only the security update"
    );

    let job = update(app, host, json!({"packages": ["tendhost-app"]})).await;
    assert_eq!(
        names(&job["packages_changed"]),
        ["tendhost-app", "tendhost-lib"],
        "{job:#}"
    );
    assert_eq!(names(&job["also_installed"]), ["tendhost-lib"], "{job:#}");
    assert_eq!(
        versions(host).await,
        ["1.1", "1.0", "1.1", "1.1", "1.0"],
        "{name}: the named package and its dependency"
    );

    let job = update(app, host, json!({})).await;
    assert_eq!(
        names(&job["packages_changed"]),
        ["tendhost-main"],
        "{job:#}"
    );
    assert_eq!(
        versions(host).await,
        ["1.1", "1.1", "1.1", "1.1", "1.0"],
        "{name}: everything but the excluded package"
    );
    // Still listed, still marked, never installed.
    let detail = get_json(&app.base_url, &format!("/hosts/{name}")).await;
    let pending = detail["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{detail:#}");
    assert_eq!(pending[0]["name"], "tendhost-kernel", "{detail:#}");
    assert_eq!(pending[0]["excluded"], true, "{detail:#}");
    let job = update(app, host, json!({"packages": ["tendhost-kernel"]})).await;
    assert_eq!(
        names(&job["packages_changed"]),
        Vec::<&str>::new(),
        "{job:#}"
    );
    assert_eq!(version(host, "tendhost-kernel").await, "1.0", "{name}");
}

#[tokio::test]
async fn security_named_and_excluded_selections_on_apt_and_dnf() {
    let mut builder = Fleet::builder().apt(1).dnf(1);
    for name in NAMES {
        builder = builder.install(Pkg::new(name, "1.0"));
    }
    let Some(fleet) = builder.start().await else {
        return;
    };
    fleet.publish_all(&updates()).await;
    let apt = fleet.apt_hosts().next().unwrap();
    let dnf = fleet.dnf_hosts().next().unwrap();
    // The apt host's own exclude adds to [defaults]'s (nothing it names is published).
    let app = spawn_app(&config_for(&fleet, &[apt, dnf], "tendhost-other")).await;

    let (apt_run, dnf_run) = tokio::join!(
        selection_sequence(&app, apt, "install --only-upgrade tendhost-sec"),
        selection_sequence(&app, dnf, "upgrade --security '--exclude=tendhost-kern*'"),
    );
    let ((), ()) = (apt_run, dnf_run);

    // Bad names are refused naming the field.
    let (status, body) = post_json(
        &app.base_url,
        &format!("/hosts/{}/update", apt.name()),
        json!({"packages": ["ok", "-rf"]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "packages[1]", "{body}");
    app.stop().await.unwrap();
}
