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

#[test]
fn sweep_probes_every_target_once_and_summarises() {
    let out = Command::new(bin())
        .args(["sweep", "127.0.0.0/28", "127.0.0.200"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 17);
    let targets: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), 17);
    assert!(lines
        .iter()
        .all(|l| l["ok"] == true && l["probe"] == "icmp"));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("swept 17 target(s)") && summary.contains("up 17, down 0"),
        "{summary}"
    );

    // A closed TCP port, results to a file, reasons in the summary.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    let out = Command::new(bin())
        .args([
            "sweep",
            "127.0.0.1",
            "--probe",
            "tcp",
            "--port",
            &port.to_string(),
            "--results",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("down 1 (refused 1)"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);

    // Bad input is refused like a config's.
    let out = Command::new(bin())
        .args(["sweep", "127.0.0.0/8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin())
        .args(["sweep", "not a host"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is neither an IP address nor a valid host name"));
}
