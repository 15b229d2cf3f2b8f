//! schemathesis against the daemon's own `/openapi.json`: at least 1,000 generated cases over
//! every operation, mutating ones included, with auth on and an admin token, on a config whose
//! hosts are Docker test-fleet containers only (never `local`: a generated reboot must not
//! reach this machine) and whose `POST /hosts` registration is limited to the fleet's subnet.
//! The run must find 0 server errors and 0 responses that break the document's schemas.
//! Host, group and tag names follow the document's examples (`web-01`, `frontend`, `web`), so
//! the example phase reaches real hosts. schemathesis is the PyPI package in the virtual
//! environment `scripts/test` makes (`TENDHOST_SCHEMATHESIS` names its executable).

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::Fleet;

/// Where `scripts/test` puts schemathesis when `TENDHOST_SCHEMATHESIS` is not set.
const DEFAULT_SCHEMATHESIS: &str = "/var/tmp/tendhost-venv/bin/schemathesis";
/// Generated cases per operation and phase; about 1,500 to 2,500 cases in all.
const MAX_EXAMPLES: &str = "25";
const MIN_CASES: u64 = 1000;

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("TENDHOST_SCHEMATHESIS")
        .map_or_else(|| PathBuf::from(DEFAULT_SCHEMATHESIS), PathBuf::from);
    assert!(
        path.is_file(),
        "schemathesis is not installed at {} (set TENDHOST_SCHEMATHESIS, or run scripts/test, \
         which makes the virtual environment)",
        path.display()
    );
    path
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(fleet) = Fleet::builder().apt(3).start().await else {
        return;
    };
    let schemathesis = schemathesis();
    let (token, hash) = tendhost_auth::new_token().expect("random token");
    let subnet = match fleet.hosts()[0].addr() {
        std::net::IpAddr::V4(addr) => {
            let [a, b, c, _] = addr.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(addr) => panic!("fleet hosts are IPv4, not {addr}"),
    };
    let mut config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n\
         [daemon.auth]\ntokens = [{{ name = \"fuzz\", token_hash = \"{hash}\", role = \"admin\" }}]\n\n\
         [daemon.api_hosts]\nallow = [\"{subnet}\"]\nresolve_timeout = \"1s\"\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"5s\"\ncommand_timeout = \"60s\"\njob_timeout = \"2m\"\n\n\
         [groups]\nfrontend = [\"web-01\", \"web-02\"]\n",
        fleet.ssh_key().display()
    );
    for (host, name) in fleet.hosts().iter().zip(["web-01", "web-02", "web-09"]) {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{name}\"\naddr = \"{}\"\ntags = [\"web\", \"prod\"]\n\
             reboot_command = [\"reboot\"]\n",
            host.addr()
        ));
    }
    assert!(!config.contains("\"local\""), "fleet hosts only");
    let app = spawn_app(&config).await;
    let report = app.dir.path().join("schemathesis.json");
    let output = tokio::process::Command::new(&schemathesis)
        .arg("--no-color")
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", MAX_EXAMPLES])
        // Generated tokens at the login endpoint are wrong tokens: they feed the per-address
        // limiter, which then answers 429 to everything from this address (as it must against
        // guessing), leaving the rest untested. `it/dashboard_api.rs` tests the session routes.
        .args(["--exclude-path", "/session"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--request-timeout", "60", "--seed", "14"])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        // Its cache of found crashes (`.schemathesis/`) goes to the test's temp dir, not
        // into the checkout.
        .current_dir(app.dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&report)
            .unwrap_or_else(|err| panic!("no schemathesis report ({err}):\n{stdout}\n{stderr}")),
    )
    .expect("the report is JSON");
    eprintln!("{stdout}");
    let cases = report["test_cases"]["generated"].as_u64().unwrap_or(0);
    assert!(
        cases >= MIN_CASES,
        "only {cases} cases generated:\n{stdout}"
    );
    // Every operation of the document but the three under the excluded `/session` path.
    let total = report["operations"]["total"].as_u64().unwrap_or(0);
    assert_eq!(
        report["operations"]["tested"].as_u64(),
        Some(total.saturating_sub(3)),
        "{stdout}"
    );
    // Mutating operations ran and were accepted at least once (a 2xx answer). Whether a
    // generated `DELETE /hosts/{name}` meets a host registered through the API (the others are
    // config hosts: 409) depends on the generator's draw, so for it running is enough.
    let rates = report["valid_rates"].as_object().expect("valid_rates");
    let answered = |operation: &str, outcome: Option<&str>| -> u64 {
        rates
            .get(operation)
            .and_then(Value::as_object)
            .map_or(0, |phases| {
                phases
                    .values()
                    .filter_map(Value::as_object)
                    .flat_map(|counts| {
                        counts
                            .iter()
                            .filter(|(name, _)| outcome.is_none_or(|o| o == name.as_str()))
                    })
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
    };
    for operation in [
        "POST /hosts",
        "POST /hosts/{name}/update",
        "POST /fleet/update",
    ] {
        assert!(
            answered(operation, Some("accepted")) > 0,
            "{operation} was never accepted: {:#}",
            report["valid_rates"]
        );
    }
    assert!(
        answered("DELETE /hosts/{name}", None) > 0,
        "DELETE /hosts/{{name}} never ran: {:#}",
        report["valid_rates"]
    );
    assert_eq!(report["failures"], serde_json::json!([]), "{stdout}");
    assert_eq!(report["errors"], serde_json::json!([]), "{stdout}");
    assert!(
        output.status.success(),
        "schemathesis: {}\n{stdout}\n{stderr}",
        output.status
    );
    app.stop().await.unwrap();
}
