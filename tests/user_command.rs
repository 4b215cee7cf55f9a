//! `hotline user`: the first administrator is made from the command line, with only an
//! argon2id hash stored, and can then log in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::process::Output;

use common::{TestDb, block_on, hotline, run_with_stdin};

fn user(db: &TestDb, args: &[&str], password: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hotline();
    cmd.current_dir(dir.path())
        .env("HOTLINE_DATABASE__URL", &db.url)
        .arg("user")
        .args(args);
    run_with_stdin(cmd, &format!("{password}\n"))
}

#[test]
fn the_first_administrator_is_made_on_the_command_line_and_logs_in() {
    let db = TestDb::create();
    let out = user(&db, &["chief", "--role", "root"], "a long enough password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected intake"));
    let out = user(&db, &["chief"], "short");
    assert!(!out.status.success(), "too short a password");
    let out = user(
        &db,
        &["staff", "--role", "unit_staff", "--unit", "nowhere"],
        "a long enough password",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no handling unit"));

    let out = user(
        &db,
        &["chief", "--display-name", "值班长"],
        "a long enough password",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "user chief: created"
    );
    let rows =
        db.rows("SELECT role, display_name, password_hash FROM users WHERE username = 'chief'");
    use sqlx::Row;
    assert_eq!(rows[0].get::<String, _>("role"), "admin");
    assert_eq!(rows[0].get::<String, _>("display_name"), "值班长");
    let hash: String = rows[0].get("password_hash");
    assert!(
        hash.starts_with("$argon2id$") && !hash.contains("long enough"),
        "{hash}"
    );

    let url = db.url.clone();
    let login = |pw: &'static str| {
        let url = url.clone();
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let s = hotline::users::login(&pool, "chief", pw, 1).await.unwrap();
            pool.close().await;
            s.map(|s| s.user.role)
        })
    };
    assert_eq!(
        login("a long enough password"),
        Some(hotline::users::Role::Admin)
    );
    assert_eq!(login("another long password"), None);
    // Running it again changes the password.
    let out = user(&db, &["chief"], "another long password");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "user chief: password changed"
    );
    assert_eq!(
        login("another long password"),
        Some(hotline::users::Role::Admin)
    );
    assert_eq!(login("a long enough password"), None);
}
