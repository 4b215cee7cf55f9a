//! A running node reloads its IVR script on SIGHUP: a broken version is refused with file,
//! line and reason while the node keeps running; a good version is taken.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const TOKEN: &str = "an-admin-token-for-tests";

const GOOD: &str = "start = \"hello\"\n[nodes.hello]\ntype = \"play\"\n\
    prompt = { text = \"您好\" }\nnext = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n";

#[test]
fn sighup_reloads_the_ivr_script_and_refuses_a_broken_one() {
    let db = TestDb::create();
    let dir = shared_tempdir();
    let config = write_config(dir.path());
    let script = dir.path().join("ivr.toml");
    std::fs::write(&script, GOOD).unwrap();
    let mut cmd = hotline();
    cmd.env("HOTLINE_DATABASE__URL", &db.url)
        .env("HOTLINE_IVR__SCRIPT", &script)
        .env("HOTLINE_HTTP__ADMIN_TOKEN", TOKEN);
    let mut node = Node::start_with(cmd, &config);
    let line = node.wait_for_line("IVR script loaded", Duration::from_secs(60));
    assert!(line.contains("nodes=2"), "{line}");
    let base = node.wait_http();
    let pid = Pid::from_raw(node.child.id() as i32);

    std::fs::write(&script, GOOD.replace("next = \"bye\"", "next = \"by\"")).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let line = node.wait_for_line("IVR script reload refused", Duration::from_secs(10));
    assert!(
        line.contains(&format!(
            "{}:2: node \"hello\" leads to \"by\", which does not exist",
            script.display()
        )),
        "{line}"
    );
    node.wait_for_line("the script in force stays", Duration::from_secs(10));

    let three = GOOD.replace("next = \"bye\"", "next = \"q\"")
        + "[nodes.q]\ntype = \"queue\"\nqueue = \"general\"\n";
    std::fs::write(
        &script,
        three.replace("[nodes.bye]\ntype = \"hangup\"\n", ""),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let line = node.wait_for_line("IVR script reloaded", Duration::from_secs(10));
    assert!(line.contains("nodes=2"), "{line}");

    // Now "bye" is reachable again, by a key pressed in the queue.
    std::fs::write(
        &script,
        three.replace(
            "queue = \"general\"\n",
            "queue = \"general\"\ndigits = { \"9\" = \"bye\" }\n",
        ),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let line = node.wait_for_line("IVR script reloaded", Duration::from_secs(10));
    assert!(line.contains("nodes=3"), "{line}");

    // The same through the admin API: the token is required; a broken version is refused with
    // its problems and the script in force stays; a good one is taken; both are audited.
    let http = reqwest::blocking::Client::new();
    let url = format!("{base}/api/admin/ivr/reload");
    let r = http.post(&url).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = http
        .post(&url)
        .bearer_auth("not-the-token-at-all")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    std::fs::write(&script, GOOD.replace("next = \"bye\"", "next = \"gone\"")).unwrap();
    let r = http.post(&url).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().unwrap();
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(
        problems.len(),
        2,
        "the broken link and the node it orphans: {body}"
    );
    assert_eq!(
        problems[0].as_str().unwrap(),
        format!(
            "{}:2: node \"hello\" leads to \"gone\", which does not exist",
            script.display()
        )
    );
    assert!(
        problems[1]
            .as_str()
            .unwrap()
            .ends_with("node \"bye\" is unreachable from \"hello\"")
    );
    std::fs::write(&script, GOOD).unwrap();
    let r = http.post(&url).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["nodes"], 2, "{body}");
    let actions: Vec<String> = db
        .rows("SELECT action FROM audit_log WHERE actor = 'admin-token' ORDER BY id")
        .iter()
        .map(|r| sqlx::Row::get(r, "action"))
        .collect();
    assert_eq!(actions, ["ivr.reload.refused", "ivr.reload"]);

    assert_eq!(
        node.signal_and_wait(Signal::SIGTERM, Duration::from_secs(30)),
        0
    );
}
