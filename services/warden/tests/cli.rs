//! The `warden` command as an operator meets it: bad configuration stops start-up with
//! one line naming the setting (never a panic trace), and the admin tasks work.
use std::process::{Command, Output};

fn warden(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run warden")
}

fn temp_db() -> String {
    let path = std::env::temp_dir().join(format!("warden-cli-{}.db", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}?mode=rwc", path.display())
}

#[test]
fn bad_configuration_is_one_line_naming_the_setting() {
    let cases: &[(&str, &str, &str)] = &[
        ("WARDEN_ACCESS_TOKEN_TTL", "0", "WARDEN_ACCESS_TOKEN_TTL"),
        ("WARDEN_ACCESS_TOKEN_TTL", "soon", "WARDEN_ACCESS_TOKEN_TTL"),
        ("WARDEN_DATABASE_URL", "mysql://x", "WARDEN_DATABASE_URL"),
        ("WARDEN_HTTP_ADDR", "not-an-address", "WARDEN_HTTP_ADDR"),
        ("WARDEN_REDIS_URL", "http://nope", "WARDEN_REDIS_URL"),
        ("WARDEN_MODE", "prod", "WARDEN_API_KEY_PEPPER"),
        ("WARDEN_TOKEN_ENDPOINTS", "::bad::", "WARDEN_TOKEN_ENDPOINTS"),
        ("WARDEN_WORKER_THREADS", "many", "WARDEN_WORKER_THREADS"),
        ("WARDEN_WORKER_THREADS", "-1", "WARDEN_WORKER_THREADS"),
    ];
    for (name, value, named) in cases {
        let out = warden(&["serve"], &[(name, value)]);
        assert!(!out.status.success(), "{name}={value} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}={value}: one line, got {stderr}");
        assert!(stderr.contains(named), "{name}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = warden(&["serve", "--service", "billing"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service"));
}

#[test]
fn unreachable_database_is_one_line() {
    let out = warden(&["serve"], &[("WARDEN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("WARDEN_DATABASE_URL"), "{stderr}");
}

#[test]
fn admin_create_user_unlock_and_rotate_keys() {
    let db = temp_db();
    let env = [("WARDEN_DATABASE_URL", db.as_str()), ("WARDEN_NEW_PASSWORD", "operator-password-1")];
    let out = warden(&["admin", "create-user", "operator", "--role", "admin"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user operator"));

    let again = warden(&["admin", "create-user", "operator"], &env);
    assert!(!again.status.success(), "a taken username is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));

    let weak = warden(
        &["admin", "create-user", "weak"],
        &[("WARDEN_DATABASE_URL", db.as_str()), ("WARDEN_NEW_PASSWORD", "short")],
    );
    assert!(!weak.status.success(), "the password policy applies");

    let unknown_role = warden(&["admin", "create-user", "x1", "--role", "nope"], &env);
    assert!(!unknown_role.status.success());
    assert!(String::from_utf8_lossy(&unknown_role.stderr).contains("role"));

    let out = warden(&["admin", "unlock", "operator"], &env);
    assert!(out.status.success());
    let out = warden(&["admin", "rotate-keys"], &env);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("new signing key"));
    let out = warden(&["migrate"], &env);
    assert!(out.status.success());
}
