//! `hotline check-config` reports what is wrong with a configuration and exits non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::path::Path;

use common::hotline;

fn check(dir: &Path, toml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let path = dir.join("hotline.toml");
    std::fs::write(&path, toml).expect("write config");
    let mut cmd = hotline();
    cmd.current_dir(dir)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .arg("--show");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hotline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_key_fails_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = check(dir.path(), "[sip]\nudp_port = 5060\nudp_prot = 5070\n", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("sip.udp_prot"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn out_of_range_port_fails_naming_the_key_and_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = check(dir.path(), "[sip]\ntcp_port = 70000\n", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("sip.tcp_port"), "{err}");
    assert!(err.contains("0 to 65535"), "{err}");
}

#[test]
fn environment_override_is_named_by_its_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = check(dir.path(), "", &[("HOTLINE_SIP__UDP_PORT", "99999")]);
    assert_ne!(code, 0);
    assert!(err.contains("HOTLINE_SIP__UDP_PORT"), "{err}");
}

#[test]
fn environment_override_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = check(
        dir.path(),
        "[sip]\nudp_port = 5070\n",
        &[
            ("HOTLINE_SIP__UDP_PORT", "5080"),
            ("HOTLINE_LOG__FORMAT", "json"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("udp_port = 5080"), "{out}");
    assert!(out.contains("format = \"json\""), "{out}");
    assert!(out.contains("configuration OK"), "{out}");
}

#[test]
fn every_cross_key_problem_is_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = check(
        dir.path(),
        "[rtp]\nport_min = 30001\nport_max = 30000\n[ivr]\nscript = \"missing.yaml\"\n",
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("rtp.port_min") && err.contains("even"),
        "{err}"
    );
    assert!(err.contains("rtp.port_max"), "{err}");
    assert!(
        err.contains("ivr.script") && err.contains("missing.yaml"),
        "{err}"
    );
    // The SIP listener on every address and no public one: SDP would have nothing to name.
    assert!(
        err.contains("`rtp.public_address` is not set and `sip.listen` is 0.0.0.0"),
        "{err}"
    );
    assert!(err.contains("4 problem(s) found"), "{err}");
}

#[test]
fn serve_refuses_to_start_with_an_invalid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, "[http]\nlisten = \"nowhere\"\n").expect("write");
    let out = hotline()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.listen") && err.contains("127.0.0.1:8080"),
        "{err}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    // Run from the checkout, as scripts/run.sh does: the config names the demo IVR script by
    // a relative path.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("config/hotline.example.toml");
    let out = hotline()
        .current_dir(root)
        .arg("--config")
        .arg(&example)
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = hotline()
        .arg("--config")
        .arg("/nonexistent/hotline.toml")
        .arg("check-config")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hotline.toml"));
}

fn check_ivr(script: &Path, queues: &[&str]) -> (i32, String, String) {
    let mut cmd = hotline();
    cmd.arg("check-ivr").arg(script);
    for q in queues {
        cmd.arg("--queue").arg(q);
    }
    let out = cmd.output().expect("run hotline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_ivr_script_is_valid() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let (code, out, err) = check_ivr(&script, &["general"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("IVR script OK (10 nodes"), "{out}");
    // Without the queue it refers to, it is not.
    let (code, _, err) = check_ivr(&script, &["enterprise"]);
    assert_eq!(code, 2);
    assert!(err.contains("queue \"general\" is not configured"), "{err}");
}

#[test]
fn a_bad_ivr_script_fails_with_file_line_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "start = \"menu\"\n\n[nodes.menu]\ntype = \"menu\"\nprompt = { text = \"按1\" }\n\
         choices = { \"1\" = \"nowhere\" }\ndefault = \"menu\"\n",
    )
    .expect("write script");
    let (code, _, err) = check_ivr(&path, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}:3: node \"menu\" leads to \"nowhere\", which does not exist",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("1 problem(s) found"), "{err}");
}

#[test]
fn check_config_validates_the_ivr_script_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ivr.toml"),
        "start = \"a\"\n[nodes.a]\ntype = \"goto\"\ntarget = \"b\"\n",
    )
    .expect("write script");
    let (code, _, err) = check(dir.path(), "[ivr]\nscript = \"ivr.toml\"\n", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`ivr.script`: ivr.toml:2: node \"a\" leads to \"b\", which does not exist"),
        "{err}"
    );
    // The shipped script passes (queue names are not configured yet, so not checked).
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let toml = format!(
        "[rtp]\npublic_address = \"192.0.2.10\"\n[ivr]\nscript = {:?}\n",
        shipped.display().to_string()
    );
    let (code, out, err) = check(dir.path(), &toml, &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn ivr_walk_prints_what_a_caller_would_hear() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/12345.toml");
    let out = hotline()
        .arg("ivr-walk")
        .arg(&script)
        .arg("2 202611# 246810 h 5")
        .args(["--at", "2026-10-01T09:00:00+08:00"])
        .output()
        .expect("run hotline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("speak the progress of ticket 202611"),
        "{stdout}"
    );
    assert!(stdout.contains("record satisfaction 5\n"), "{stdout}");
    assert!(stdout.ends_with("> survey > thanks > bye)\n"), "{stdout}");
    let out = hotline()
        .arg("ivr-walk")
        .arg(&script)
        .args(["--at", "yesterday"])
        .output()
        .expect("run hotline");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn check_config_refuses_a_script_naming_a_queue_that_is_not_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ivr.toml"),
        "start = \"q\"\n[nodes.q]\ntype = \"queue\"\nqueue = \"nowhere\"\n",
    )
    .expect("write script");
    let (code, _, err) = check(
        dir.path(),
        "[rtp]\npublic_address = \"192.0.2.10\"\n[ivr]\nscript = \"ivr.toml\"\nqueues = [\"general\"]\n",
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`ivr.script`: ivr.toml:2: node \"q\": queue \"nowhere\" is not configured"),
        "{err}"
    );
    // With the queue configured it passes.
    let (code, out, err) = check(
        dir.path(),
        "[rtp]\npublic_address = \"192.0.2.10\"\n[ivr]\nscript = \"ivr.toml\"\nqueues = [\"general\", \"nowhere\"]\n",
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn acd_rules_are_checked_queue_by_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = r#"
[ivr]
queues = ["general", "backup"]
[acd]
strategy = "random"
callback_route = "sip:gateway.example.com"
[acd.emergency_routes]
"110" = "sip:110@police.example.com"
[acd.queues.general]
overflow = "backup"
[acd.queues.backup]
max_wait_secs = 60
overflow = "backup"
ring_timeout_secs = 2
[acd.queues.nowhere]
strategy = "skills"
"#;
    let (code, _, err) = check(dir.path(), toml, &[]);
    assert_ne!(code, 0);
    for needle in [
        "`acd.strategy` is \"random\"",
        "`acd.callback_route`",
        "`acd.emergency_routes.110`",
        "`acd.queues.general`: overflow and max_wait_secs go together",
        "`acd.queues.backup`.overflow is \"backup\"",
        "`acd.queues.backup`.ring_timeout_secs is 2",
        "`acd.queues.nowhere`: no such queue",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // The same rules, right: accepted, and shown as they will apply.
    let good = r#"
[ivr]
queues = ["general", "backup"]
[acd.queues.general]
overflow = "backup"
max_wait_secs = 120
skills = ["mandarin"]
"#;
    let (code, out, err) = check(dir.path(), good, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max_wait_secs = 120"), "{out}");
}
