//! The web dashboard in a real headless Chromium (DevTools protocol, `tendhost_tests::browser`)
//! against the real daemon: every page renders under its CSP with no script error; on the
//! Docker fleet an operate token logs in, updates a host from its page and watches the output
//! and the state live, runs a 4-host rollout from the form (dry run first), survives a daemon
//! restart (reconnecting, then the missed events replayed), and a read token sees no controls
//! and is refused when it forces a POST; a rollout waiting at its approval gate is approved
//! from the page (a reader sees the gate, no button) and the canary's health check is shown.
//! Screenshots for docs/ come from here.

use std::path::PathBuf;

use serde_json::{Value, json};
use tendhost_tests::browser::{Browser, Page};
use tendhost_tests::daemon::{TestApp, spawn_app, spawn_app_in};
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::http::installed_version;
use tendhost_tests::wait;

struct Tokens {
    operate: String,
    read: String,
}

/// `[daemon.auth]` with an `ops` (operate) and a `viewer` (read) token.
fn auth_section() -> (String, Tokens) {
    let (operate, operate_hash) = tendhost_auth::new_token().unwrap();
    let (read, read_hash) = tendhost_auth::new_token().unwrap();
    let text = format!(
        "[daemon.auth]\ntokens = [\n\
         {{ name = \"ops\", token_hash = \"{operate_hash}\", role = \"operate\" }},\n\
         {{ name = \"viewer\", token_hash = \"{read_hash}\", role = \"read\" }},\n]\n"
    );
    (text, Tokens { operate, read })
}

/// A daemon with `auth` managing every host of `fleet` as root by the fleet's key, no check at
/// start; `host_extra` is added to each `[[host]]` table.
fn fleet_config(fleet: &Fleet, auth: &str, host_extra: &str) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n{auth}\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\n",
        fleet.ssh_key().display()
    );
    for host in fleet.hosts() {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n{host_extra}",
            host.name(),
            host.addr()
        ));
    }
    config
}

/// An API call with a bearer token: `(status, body)`.
async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Logs in through the page's form.
async fn log_in(page: &Page, base_url: &str, token: &str) {
    page.goto(&format!("{base_url}/")).await;
    page.wait_for("document.querySelector('#login-form')", "the login form")
        .await;
    page.fill("#token", token).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for(
        "!document.getElementById('nav').hidden && document.body.dataset.shown === '/'",
        "the overview after logging in",
    )
    .await;
}

/// Goes to a fragment route and waits until its data is on screen.
async fn show(page: &Page, route: &str) {
    page.eval(&format!(
        "delete document.body.dataset.shown; location.hash = {route:?}; true"
    ))
    .await;
    let shown = route.trim_start_matches('#');
    page.wait_for(
        &format!("document.body.dataset.shown === {shown:?}"),
        &format!("{route} showing its data"),
    )
    .await;
}

/// No script error and no CSP report in the console.
fn assert_clean_console(page: &Page) {
    let bad: Vec<String> = page
        .console_lines()
        .into_iter()
        .filter(|line| {
            line.starts_with("exception")
                || line.contains("Content Security Policy")
                || line.starts_with("console.error")
        })
        .collect();
    assert!(bad.is_empty(), "the page logged errors: {bad:#?}");
}

/// Where screenshots go: `docs/screenshots/` with `TENDHOST_SCREENSHOTS=1`, else a temp dir.
fn screenshot_dir(scratch: &tempfile::TempDir) -> PathBuf {
    if std::env::var_os("TENDHOST_SCREENSHOTS").is_some() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    } else {
        scratch.path().to_path_buf()
    }
}

#[tokio::test]
async fn every_page_renders_under_its_policy_at_desktop_and_phone_width() {
    let (auth, tokens) = auth_section();
    let mut config = format!("[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n{auth}\n");
    for idx in 0..3 {
        config.push_str(&format!(
            "[[host]]\nname = \"web-{idx}\"\naddr = \"192.0.2.{}\"\ntags = [\"web\"]\ncheck_interval = \"30d\"\n",
            idx + 1
        ));
    }
    // Far from now in any timezone: it never starts during the test.
    config.push_str(
        "[[schedule]]\nname = \"nightly-security\"\ncron = \"0 3 1 1 *\"\naction = \"update\"\n\
         packages = \"security\"\nfilter = { tags = [\"web\"] }\n",
    );
    let app = spawn_app(&config).await;
    let browser = Browser::launch().await;
    let page = &browser.page;

    // A wrong token: the API's words on the form.
    page.goto(&format!("{}/", app.base_url)).await;
    page.wait_for("document.querySelector('#login-form')", "the login form")
        .await;
    page.fill("#token", "th_not-a-token").await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for(
        "document.getElementById('login-error').textContent.includes('unknown or expired token')",
        "the API's refusal shown on the login form",
    )
    .await;

    log_in(page, &app.base_url, &tokens.operate).await;
    let who = page
        .eval("document.getElementById('who').textContent")
        .await;
    assert_eq!(who, json!("ops (operate)"));
    // Operate sees no audit link (admin only).
    assert_eq!(
        page.eval("document.getElementById('nav-audit').hidden")
            .await,
        json!(true)
    );
    let n_hosts = page
        .eval("document.getElementById('n-hosts').textContent")
        .await;
    assert_eq!(n_hosts, json!("3"));

    for (width, dark) in [(1280, false), (390, true)] {
        page.viewport(width, 900, dark).await;
        for route in [
            "#/",
            "#/hosts",
            "#/hosts/web-1",
            "#/rollouts",
            "#/rollouts/new",
            "#/schedules",
        ] {
            show(page, route).await;
            // Nothing wider than the viewport, apart from tables that scroll in their box.
            let overflow = page
                .eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                .await;
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{route} at {width} px overflows by {overflow}"
            );
        }
    }
    // Sorting and filtering are server-side and reflected in the route.
    show(page, "#/hosts?sort=-name").await;
    let first = page
        .eval("document.querySelector('table.hosts tbody tr').dataset.host")
        .await;
    assert_eq!(first, json!("web-2"));
    show(page, "#/hosts?search=web-1").await;
    let rows = page
        .eval("document.querySelectorAll('table.hosts tbody tr').length")
        .await;
    assert_eq!(rows, json!(1));
    // The configured schedule, with the fields of `GET /schedules`, on the overview and its page.
    let (status, listed) = call(&app, &tokens.operate, "GET", "/schedules", None).await;
    assert_eq!(status, 200, "{listed}");
    let next_run = listed["data"][0]["next_run"].as_str().unwrap().to_owned();
    show(page, "#/").await;
    assert_eq!(
        page.eval("document.querySelector('#next-schedules li').dataset.schedule")
            .await,
        json!("nightly-security")
    );
    show(page, "#/schedules").await;
    let row = page
        .eval(
            "(() => { const r = document.querySelector('#schedule-table tbody tr'); return { \
             name: r.querySelector('.schedule-name').textContent, \
             next: r.querySelector('.schedule-next time').getAttribute('datetime'), \
             enabled: r.querySelector('.schedule-enabled').textContent, \
             paused: r.querySelector('.schedule-paused').textContent, text: r.innerText }; })()",
        )
        .await;
    assert_eq!(row["name"], json!("nightly-security"), "{row}");
    assert_eq!(row["next"], json!(next_run), "{row}");
    assert_eq!(
        (&row["enabled"], &row["paused"]),
        (&json!("yes"), &json!("no")),
        "{row}"
    );
    assert!(
        row["text"].as_str().unwrap().contains("security only"),
        "{row}"
    );
    show(page, "#/hosts/web-1").await;
    // Security-only updates are offered (the API takes `packages`).
    assert_ne!(
        page.eval("document.querySelector('#act-update-security')")
            .await,
        Value::Null,
        "no security-only update button"
    );
    // Every control is a labelled, keyboard-reachable element.
    let unlabelled = page
        .eval(
            "[...document.querySelectorAll('input, select')].filter(el => !el.labels || !el.labels.length).map(el => el.id)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "inputs without a label");
    show(page, "#/rollouts/new").await;
    let options = page
        .eval("[...document.querySelectorAll('#f-packages option')].map(o => o.value)")
        .await;
    assert_eq!(options, json!(["all", "security"]), "the packages choice");
    assert_ne!(
        page.eval("document.querySelector('#f-defer')").await,
        Value::Null,
        "no defer_outside_window option"
    );
    let unlabelled = page
        .eval(
            "[...document.querySelectorAll('input, select')].filter(el => !el.labels || !el.labels.length).map(el => el.id)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "inputs without a label");
    // A rollout the API refuses: its message on the form.
    page.fill("#f-hosts", "nowhere-01").await;
    page.click("#dry-run").await;
    page.wait_for(
        "document.querySelector('#plan .error') && document.querySelector('#plan .error').textContent.includes('nowhere-01')",
        "the API's refusal of an unknown host shown under the form",
    )
    .await;
    show(page, "#/audit").await;
    let text = page.eval("document.querySelector('main').innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("needs a token with the admin role"),
        "{text}"
    );
    assert_clean_console(page);

    // The read token: the same pages without a single action control.
    page.click("#logout").await;
    page.wait_for(
        "document.querySelector('#login-form')",
        "the login form after logging out",
    )
    .await;
    log_in(page, &app.base_url, &tokens.read).await;
    show(page, "#/hosts/web-1").await;
    assert_eq!(
        page.eval("document.querySelectorAll('#host-actions button').length")
            .await,
        json!(0)
    );
    show(page, "#/rollouts").await;
    assert_eq!(
        page.eval("document.querySelector('#new-rollout')").await,
        Value::Null
    );
    assert_clean_console(page);

    // The policy is in force (and its reports reach the console this test reads): a script
    // injected inline is refused.
    page.eval(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; \
         document.body.append(s); return true; })()",
    )
    .await;
    wait::until("Chromium reporting the refused inline script", || async {
        let lines = page.console_lines();
        if lines.iter().any(|l| l.contains("Content Security Policy")) {
            Ok(())
        } else {
            Err(format!("{lines:#?}"))
        }
    })
    .await;
    assert_eq!(page.eval("window.__ran === undefined").await, json!(true));
    drop(browser);
    app.stop().await.unwrap();
}

/// Seqs of the events the overview's activity list shows.
/// An approval gate and a health check in the browser: a rollout waiting after its canary
/// shows the gate and an Approve button to an operator (none to a reader); the click approves
/// it as the operator's token, the rest of the fleet is updated, and the canary's page shows
/// the health check that ran after its update.
#[tokio::test]
async fn an_operator_approves_a_gated_rollout_and_sees_the_health_check() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("tendhost-gate", "1.0"))
        .start()
        .await
    else {
        return;
    };
    fleet.publish(&Pkg::new("tendhost-gate", "1.1")).await;
    let (auth, tokens) = auth_section();
    let config = fleet_config(
        &fleet,
        &auth,
        "health_check = { command = [\"test\", \"-e\", \"/usr/share/tendhost-test/tendhost-gate/version\"] }\n",
    );
    let names: Vec<String> = fleet.hosts().iter().map(|h| h.name().to_owned()).collect();
    let app = spawn_app(&config).await;
    let (status, body) = call(
        &app,
        &tokens.operate,
        "POST",
        "/fleet/update",
        Some(json!({"canary": [names[0]], "batch_size": 1, "approve_after": "canary"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();
    wait::until("the rollout waiting after its canary", || async {
        let (_, rollout) = call(
            &app,
            &tokens.read,
            "GET",
            &format!("/rollouts/{rollout_id}"),
            None,
        )
        .await;
        if rollout["state"] == "awaiting_approval" {
            Ok(())
        } else {
            Err(rollout.to_string())
        }
    })
    .await;

    let browser = Browser::launch().await;
    let page = &browser.page;
    page.viewport(1280, 900, false).await;
    // A reader sees the gate, and no button to pass it.
    log_in(page, &app.base_url, &tokens.read).await;
    show(page, &format!("#/rollouts/{rollout_id}")).await;
    let seen = page
        .eval("[document.querySelector('#approval-gate')?.innerText ?? '', !!document.querySelector('#act-approve')]")
        .await;
    assert!(
        seen[0]
            .as_str()
            .unwrap()
            .contains("Waiting for approval after batch 1"),
        "{seen}"
    );
    assert_eq!(seen[1], false, "a reader gets no Approve button");
    page.click("#logout").await;
    page.wait_for(
        "document.querySelector('#login-form')",
        "the login form after logging out",
    )
    .await;

    // The operator approves from the page; the rest of the fleet follows.
    log_in(page, &app.base_url, &tokens.operate).await;
    show(page, &format!("#/rollouts/{rollout_id}")).await;
    page.wait_for(
        "document.querySelector('#act-approve')",
        "the Approve button",
    )
    .await;
    page.click("#act-approve").await;
    page.wait_for(
        "document.querySelector('#approved-by')?.innerText.includes('ops') \
         && document.querySelector('#rollout-state [data-state]')?.dataset.state === 'completed'",
        "the rollout approved by ops and completed, live on the page",
    )
    .await;
    let (_, rollout) = call(
        &app,
        &tokens.read,
        "GET",
        &format!("/rollouts/{rollout_id}"),
        None,
    )
    .await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    assert_eq!(rollout["approved_by"], "ops", "{rollout:#}");
    for host in fleet.hosts() {
        assert_eq!(installed_version(host, "tendhost-gate").await, "1.1");
    }

    // The canary's page shows the health check that ran after its update.
    show(page, &format!("#/hosts/{}", names[0])).await;
    let health = page
        .eval("document.querySelector('#health-check')?.innerText ?? ''")
        .await;
    assert!(health.as_str().unwrap().contains("passed"), "{health}");
    assert_clean_console(page);
    app.stop().await.unwrap();
}

async fn activity_seqs(page: &Page) -> Vec<u64> {
    let seqs = page
        .eval("[...document.querySelectorAll('#activity li')].map(li => Number(li.dataset.seq))")
        .await;
    seqs.as_array()
        .unwrap()
        .iter()
        .map(|seq| seq.as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn an_operator_updates_rolls_out_and_reconnects_a_reader_only_looks() {
    let Some(fleet) = Fleet::builder()
        .apt(4)
        .install(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    // Slow maintainer scripts with output: the job runs long enough to be watched.
    let slow = |version: &str| {
        Pkg::new("tendhost-demo", version)
            .postinst("echo demo-configuring; sleep 3; echo demo-configured")
    };
    fleet.publish(&slow("1.1")).await;
    let (auth, tokens) = auth_section();
    let mut config = fleet_config(&fleet, &auth, "tags = [\"dash\"]\n");
    // For the screenshots: a schedule far from now (it never starts during the test).
    config.push_str(
        "\n[[schedule]]\nname = \"nightly-security\"\ncron = \"0 3 1 1 *\"\naction = \"update\"\n\
         packages = \"security\"\n",
    );
    let app = spawn_app(&config).await;
    let names: Vec<String> = fleet.hosts().iter().map(|h| h.name().to_owned()).collect();
    let (status, _) = call(
        &app,
        &tokens.operate,
        "POST",
        "/fleet/check",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 202);
    wait::until("every host checked with the update pending", || async {
        let (_, list) = call(&app, &tokens.read, "GET", "/hosts", None).await;
        let states: Vec<&Value> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["state"])
            .collect();
        if states.iter().all(|s| *s == "pending_updates") {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    })
    .await;

    let scratch = tempfile::tempdir().unwrap();
    let shots = screenshot_dir(&scratch);
    // The browser reaches the daemon through a TCP relay the test can hold shut, so events can
    // happen while the page is cut off; the page's origin is the relay's.
    let relay = Relay::start(app.addr).await;
    let page_url = format!("http://{}", relay.addr);
    let browser = Browser::launch().await;
    let page = &browser.page;
    page.viewport(1280, 900, false).await;

    // The operator logs in and sees the fleet's hosts.
    log_in(page, &page_url, &tokens.operate).await;
    show(page, "#/hosts").await;
    let listed = page
        .eval("[...document.querySelectorAll('table.hosts tbody tr')].map(tr => tr.dataset.host)")
        .await;
    assert_eq!(listed, json!(names), "the hosts table lists the fleet");

    // An update from the host page: output lines appear while the host is still updating,
    // then the state turns idle; the page never reloads (the marker survives).
    let target = names[0].clone();
    page.click(&format!("a[href='#/hosts/{target}']")).await;
    page.wait_for(
        &format!("document.body.dataset.shown === '/hosts/{target}' && document.querySelector('#act-update')"),
        "the host page with its update button",
    )
    .await;
    let pending = page
        .eval("document.querySelector('#pending').innerText")
        .await;
    assert!(
        pending.as_str().unwrap().contains("tendhost-demo"),
        "{pending}"
    );
    assert!(pending.as_str().unwrap().contains("1.1"), "{pending}");
    page.eval("window.__noReload = 'still here'; true").await;
    page.click("#act-update").await;
    page.wait_for(
        "document.querySelector('#job-log').textContent.includes('demo-configuring') \
         && document.querySelector('#host-state [data-state]').dataset.state === 'updating'",
        "an output line shown while the host is still updating",
    )
    .await;
    page.wait_for(
        "document.querySelector('#host-state [data-state]').dataset.state === 'idle' \
         && document.querySelector('#job-log').textContent.includes('demo-configured')",
        "the host idle again and the job's last lines shown",
    )
    .await;
    assert_eq!(page.eval("window.__noReload").await, json!("still here"));
    let job_id = page
        .eval("document.getElementById('log-title').textContent.replace('Job output: ', '')")
        .await;
    // The host turns idle as the job settles it; the job's own end is recorded just after.
    let job = tendhost_tests::wait::until("the update job to end", || async {
        let (_, job) = call(
            &app,
            &tokens.read,
            "GET",
            &format!("/jobs/{}", job_id.as_str().unwrap()),
            None,
        )
        .await;
        if job["state"] == "running" {
            Err(format!("still running: {job}"))
        } else {
            Ok(job)
        }
    })
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let shown_log = page
        .eval("document.querySelector('#job-log').textContent")
        .await;
    for line in job["log"].as_array().unwrap() {
        let line = line["line"].as_str().unwrap();
        assert!(
            shown_log.as_str().unwrap().contains(line),
            "{line:?} not shown:\n{shown_log}"
        );
    }
    assert_eq!(
        installed_version(fleet.host(&target), "tendhost-demo").await,
        "1.1"
    );
    page.screenshot(&shots.join("host.png")).await;

    // A 4-host rollout from the form: the dry run shows the plan, then it runs in two
    // batches with a pause between them, and the page follows it live.
    fleet.publish(&slow("1.2")).await;
    show(page, "#/rollouts").await;
    page.click("#new-rollout").await;
    page.wait_for(
        "document.body.dataset.shown === '/rollouts/new'",
        "the rollout form",
    )
    .await;
    page.fill("#f-tags", "dash").await;
    page.fill("#f-batch", "2").await;
    page.fill("#f-delay", "4000").await;
    page.click("#dry-run").await;
    page.wait_for(
        "document.querySelector('#confirm-rollout')",
        "the dry run's plan with a confirm button",
    )
    .await;
    let plan = page.eval("document.querySelector('#plan').innerText").await;
    let plan = plan.as_str().unwrap();
    for name in &names {
        assert!(
            plan.contains(name.as_str()),
            "{name} not in the plan:\n{plan}"
        );
    }
    assert_eq!(
        plan.matches("tendhost-demo").count(),
        4,
        "each host would upgrade the package:\n{plan}"
    );
    assert!(plan.contains("→ 1.2"), "{plan}");
    for name in &names {
        assert_ne!(
            installed_version(fleet.host(name), "tendhost-demo").await,
            "1.2",
            "the dry run changed {name}"
        );
    }
    page.click("#confirm-rollout").await;
    let rollout_id = page
        .wait_for(
            "location.hash.startsWith('#/rollouts/rollout-') && document.body.dataset.shown.startsWith('/rollouts/rollout-') && location.hash.slice('#/rollouts/'.length)",
            "the new rollout's page",
        )
        .await;
    let rollout_id = rollout_id.as_str().unwrap().to_owned();
    page.wait_for(
        "document.querySelector('[data-batch=\"0\"]').dataset.state === 'finished' \
         && document.querySelector('[data-batch=\"1\"]').dataset.state === 'pending'",
        "batch 1 finished while batch 2 waits, shown live",
    )
    .await;
    page.wait_for(
        "document.querySelector('#rollout-state [data-state]').dataset.state === 'completed'",
        "the rollout completed on the page",
    )
    .await;
    assert_eq!(page.eval("window.__noReload").await, json!("still here"));
    let (_, rollout) = call(
        &app,
        &tokens.read,
        "GET",
        &format!("/rollouts/{rollout_id}"),
        None,
    )
    .await;
    assert_eq!(rollout["state"], "completed", "{rollout}");
    let shown_hosts = page
        .eval("Object.fromEntries([...document.querySelectorAll('#batches tr[data-host]')].map(tr => [tr.dataset.host, tr.dataset.state]))")
        .await;
    let api_hosts: serde_json::Map<String, Value> = rollout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_owned(), h["state"].clone()))
        .collect();
    assert_eq!(
        shown_hosts,
        Value::Object(api_hosts.clone()),
        "per-host outcomes on the page and in the API"
    );
    assert!(
        api_hosts.values().all(|state| state == "succeeded"),
        "{rollout}"
    );
    for name in &names {
        assert_eq!(
            installed_version(fleet.host(name), "tendhost-demo").await,
            "1.2",
            "{name}"
        );
    }
    page.screenshot(&shots.join("rollout.png")).await;

    // The daemon restarts. The page says it is reconnecting; the new daemon checks every host
    // at start while the page's stream is held back; then the page reconnects with `since`
    // and lists every event it missed.
    show(page, "#/").await;
    let before = *activity_seqs(page)
        .await
        .iter()
        .max()
        .expect("events listed");
    relay.hold();
    let dir = app.into_dir().await;
    page.wait_for(
        "document.getElementById('live').dataset.status === 'reconnecting'",
        "the page saying it is reconnecting",
    )
    .await;
    let path = dir.path().join("tendhost.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("check_on_start = false", "check_on_start = true"),
    )
    .unwrap();
    let app = spawn_app_in(dir).await;
    let missed = wait::until("the restarted daemon's start-up checks ending", || async {
        let (_, list) = call(
            &app,
            &tokens.read,
            "GET",
            "/jobs?kind=check&per_page=50",
            None,
        )
        .await;
        let fresh: Vec<&Value> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|job| {
                job["state"] == "succeeded"
                    && job["created_at"].as_str() > Some(rollout["finished_at"].as_str().unwrap())
            })
            .collect();
        if fresh.len() >= names.len() {
            Ok(fresh.len())
        } else {
            Err(format!("{list}"))
        }
    })
    .await;
    assert!(missed >= 4);
    assert_eq!(
        page.eval("document.getElementById('live').dataset.status")
            .await,
        json!("reconnecting"),
        "the page's stream was held back while the events happened"
    );
    let events = missed_events(&app, &tokens.read, before).await;
    assert!(
        events.len() >= 8,
        "the start-up checks made events: {events:?}"
    );
    relay.open(app.addr);
    page.wait_for(
        "document.getElementById('live').dataset.status === 'live'",
        "the page live again",
    )
    .await;
    let last = *events.last().unwrap();
    page.wait_for(
        &format!("document.querySelector('#activity li[data-seq=\"{last}\"]')"),
        "the last missed event listed",
    )
    .await;
    let shown = activity_seqs(page).await;
    for seq in &events {
        assert!(
            shown.contains(seq),
            "missed event {seq} not shown; shown {shown:?}"
        );
    }
    assert_eq!(page.eval("window.__noReload").await, json!("still here"));
    page.screenshot(&shots.join("overview.png")).await;
    page.viewport(390, 844, true).await;
    page.screenshot(&shots.join("overview-phone-dark.png"))
        .await;
    page.viewport(1280, 900, false).await;
    show(page, "#/schedules").await;
    page.screenshot(&shots.join("schedules.png")).await;
    assert_clean_console_but_reconnects(page);

    // A read token: no action controls; a POST forced from the page is refused.
    page.click("#logout").await;
    page.wait_for(
        "document.querySelector('#login-form')",
        "the login form after logging out",
    )
    .await;
    log_in(page, &page_url, &tokens.read).await;
    show(page, &format!("#/hosts/{target}")).await;
    assert_eq!(
        page.eval("document.querySelectorAll('#host-actions button').length")
            .await,
        json!(0)
    );
    show(page, &format!("#/rollouts/{rollout_id}")).await;
    assert_eq!(
        page.eval("document.querySelectorAll('main .actions button').length")
            .await,
        json!(0)
    );
    let forced = page
        .eval(&format!(
            "fetch('/hosts/{target}/check', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: '{{}}'}}).then(async r => [r.status, await r.json()])"
        ))
        .await;
    assert_eq!(forced[0], 403, "{forced}");
    assert_eq!(forced[1]["error"]["code"], "forbidden", "{forced}");
    assert_eq!(
        forced[1]["error"]["details"]["required_role"], "operate",
        "{forced}"
    );
    let (_, jobs) = call(
        &app,
        &tokens.read,
        "GET",
        &format!("/jobs?host={target}&kind=check&state=running"),
        None,
    )
    .await;
    assert_eq!(jobs["data"], json!([]), "the refused POST started nothing");
    drop(browser);
    app.stop().await.unwrap();
}

/// A TCP relay from a loopback port to the daemon: open (forwarding every new connection to
/// the daemon's address) or held (new connections are closed at once; open ones stay).
struct Relay {
    addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = std::sync::Arc::new(std::sync::Mutex::new(Some(target)));
        let current = std::sync::Arc::clone(&target);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(to) = *current.lock().unwrap() else {
                    drop(inbound);
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, target, task }
    }

    fn hold(&self) {
        *self.target.lock().unwrap() = None;
    }

    fn open(&self, to: std::net::SocketAddr) {
        *self.target.lock().unwrap() = Some(to);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every event after `since` but output lines and package progress (which the overview
/// leaves to the host page), from the daemon's own stream (read token), up to the newest.
async fn missed_events(app: &TestApp, token: &str, since: u64) -> Vec<u64> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws/events?since={since}", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut seqs = Vec::new();
    // The replay is everything up to now; stop at the first quiet second after it.
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(std::time::Duration::from_secs(1), ws.next()).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            if let Some(seq) = event["seq"].as_u64()
                && !matches!(
                    event["type"].as_str(),
                    Some("job_output" | "update_progress")
                )
            {
                seqs.push(seq);
            }
        }
    }
    seqs
}

/// [`assert_clean_console`], allowing the failed WebSocket attempts of the restart.
fn assert_clean_console_but_reconnects(page: &Page) {
    let bad: Vec<String> = page
        .console_lines()
        .into_iter()
        .filter(|line| {
            !line.contains("/ws/events")
                && !line.contains("ERR_CONNECTION_REFUSED")
                && !line.contains("ERR_BLOCKED")
        })
        .filter(|line| {
            line.starts_with("exception")
                || line.contains("Content Security Policy")
                || line.starts_with("console.error")
        })
        .collect();
    assert!(bad.is_empty(), "the page logged errors: {bad:#?}");
}
