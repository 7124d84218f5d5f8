//! `ringpoll check-config` and command-line errors, through the real binary.

mod common;

use std::process::Command;

use common::{bin, repo};

#[test]
fn check_config_summarises_a_valid_file() {
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(repo().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("config.toml: OK"), "{text}");
    assert!(text.contains("node           n1"), "{text}");
    assert!(text.contains("256 (icmp 256, tcp 0, ssh 0)"), "{text}");
    assert!(text.contains("interval 10s, timeout 1s"), "{text}");
}

#[test]
fn check_config_reports_path_line_col_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[node]\nname = \"n1\"\n[probe]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!(
            "{}:5:11: probe.timeout (2s) must be less than the interval (1s)",
            path.display()
        )
    );
}

#[test]
fn node_refuses_a_bad_config_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[node]\nname = \"n1\"\n[[targets]]\ncidr = \"127.0.0.0/8\"\nprobe = \"icmp\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["node", "--config"])
        .arg(&path)
        .arg("--results")
        .arg(dir.path().join("r.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(":4:8: targets[0].cidr: 127.0.0.0/8 has 16777216 addresses"),
        "{err}"
    );
    assert!(!dir.path().join("r.jsonl").exists(), "nothing started");
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(bin())
        .args(["check-config", "--config", "/nonexistent/ringpoll.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("/nonexistent/ringpoll.toml: cannot read the config file"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_with_exit_2() {
    let out = Command::new(bin())
        .args(["node", "--config"])
        .arg(repo().join("config.toml"))
        .args(["--listen", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen: "));
    let out = Command::new(bin())
        .args(["node", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["node", "--help"],
        &["check-config", "--help"],
    ] {
        let out = Command::new(bin()).args(sub).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
}
