//! `ringpoll check-config` and command-line errors, through the real binary.

mod common;

use std::process::Command;

use common::{bin, repo};

/// Runs `ringpoll check-config --config PATH`: exit code, stdout, stderr.
fn check_config(path: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_summarises_a_valid_file() {
    let (code, text, _) = check_config(&repo().join("config.toml"));
    assert_eq!(code, Some(0));
    assert!(text.contains("config.toml: OK"), "{text}");
    assert!(text.contains("node           n1"), "{text}");
    assert!(text.contains("256 (icmp 256, tcp 0, ssh 0)"), "{text}");
    assert!(text.contains("interval 10s, timeout 1s"), "{text}");
    assert!(text.contains("3 echo(es) 100ms apart"), "{text}");
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
    let (code, _, err) = check_config(&path);
    assert_eq!(code, Some(2));
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
    // One echo each by default, as fping; --count sends several, as fping -C.
    assert!(lines.iter().all(|l| l["sent"] == 1 && l["received"] == 1));
    let out = Command::new(bin())
        .args([
            "sweep",
            "--count",
            "4",
            "--packet-interval",
            "10ms",
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (line["sent"].as_u64(), line["received"].as_u64()),
        (Some(4), Some(4)),
        "{line}"
    );
    assert!(line["rtt_stddev_ms"].as_f64().unwrap() >= 0.0, "{line}");

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
    assert_eq!(out.status.code(), Some(1), "any target down: 1, as fping");

    // Bad input is refused like a config's, with fping's usage status.
    let out = Command::new(bin())
        .args(["sweep", "127.0.0.0/8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin())
        .args(["sweep", "not a host"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is neither an IP address nor a valid host name"));
    // An error about a flag names the flag, not the config made of the command line.
    let out = Command::new(bin())
        .args(["sweep", "--probe", "tcp", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringpoll sweep: --port: --probe tcp needs a port, e.g. --port 22\n"
    );

    // Targets from a file, one per line, as fping -f; a bad line is named by its line.
    let list = dir.path().join("targets.txt");
    std::fs::write(
        &list,
        "# loopback\n127.0.0.1\n127.0.0.2  # a comment\n\n127.0.1.1\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sweep", "-f"])
        .arg(&list)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert!(summary.contains("swept 3 target(s)"), "{summary}");
    std::fs::write(&list, "127.0.0.1\nnot a host\n").unwrap();
    let out = Command::new(bin())
        .args(["sweep", "--file"])
        .arg(&list)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:2", list.display())), "{err}");
}

/// Issue 7: a hosts file of a million lines, with blank lines, comments, a duplicate, an
/// invalid address, and a /8 block: each gets a clear error or a clear limit naming where, and
/// a valid file is taken whole (no silent truncation).
#[test]
fn a_million_line_hosts_file_gets_clear_errors_and_a_clear_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    let config = dir.path().join("c.toml");
    // 1,000,000 distinct loopback addresses (127.1.0.0 upwards) on 1,100,000 lines: every
    // tenth line is blank or a comment.
    let addr = |i: u32| std::net::Ipv4Addr::from(0x7f01_0000u32 + i);
    let mut text = String::with_capacity(20 << 20);
    let mut line_of = Vec::with_capacity(1_000_000);
    let mut line = 0usize;
    for i in 0..1_000_000u32 {
        if i % 10 == 0 {
            line += 1;
            text.push_str(if i % 20 == 0 { "\n" } else { "# a comment\n" });
        }
        line += 1;
        line_of.push(line);
        text.push_str(&format!("{}\n", addr(i)));
    }
    std::fs::write(&hosts, &text).unwrap();
    let check = |max: Option<usize>| {
        let limit = max.map_or(String::new(), |m| format!("[probe]\nmax_targets = {m}\n"));
        std::fs::write(
            &config,
            format!("[node]\nname = \"n1\"\n{limit}[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n"),
        )
        .unwrap();
        check_config(&config)
    };

    // All of it, when the limit allows.
    let (code, out, err) = check(Some(1_048_576));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("targets        1000000 (icmp 1000000"),
        "{out}"
    );

    // The default limit (262,144) stops at the first target over it, named by line.
    let (code, _, err) = check(None);
    assert_eq!(code, Some(2));
    let over = line_of[262_144];
    assert!(
        err.contains(&format!(
            "hosts.txt:{over}:1: more than probe.max_targets = 262144 targets"
        )),
        "{err}"
    );

    // A repeat near the end names both lines.
    let mut dup = text.clone();
    dup.push_str(&format!("{}\n", addr(123_456)));
    std::fs::write(&hosts, &dup).unwrap();
    let (code, _, err) = check(Some(1_048_576));
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!(
            "hosts.txt:{}:1: duplicate target icmp/{}: already listed by {}:{}",
            line + 1,
            addr(123_456),
            hosts.display(),
            line_of[123_456]
        )),
        "{err}"
    );

    // An invalid address in the middle is named by line.
    let bad = text.replacen(&format!("\n{}\n", addr(500_000)), "\n127.1.300.1\n", 1);
    std::fs::write(&hosts, &bad).unwrap();
    let (code, _, err) = check(Some(1_048_576));
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("hosts.txt:{}:1: ", line_of[500_000])) && err.contains("127.1.300.1"),
        "{err}"
    );

    // A /8 is refused before anything is expanded.
    std::fs::write(
        &config,
        "[node]\nname = \"n1\"\n[[targets]]\ncidr = \"127.0.0.0/8\"\nprobe = \"icmp\"\n",
    )
    .unwrap();
    let (code, _, err) = check_config(&config);
    assert_eq!(code, Some(2));
    assert!(err.contains(
        "127.0.0.0/8 has 16777216 addresses, more than the 262144 left under probe.max_targets"
    ));
}

/// `ringpoll ARGS`: exit status and stdout; panics with stderr on failure.
fn ringpoll_ok(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ringpoll {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `shell` with `args` and `script` on stdin... as a file: success and what it printed.
fn run_shell(shell: &str, args: &[&str], script: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(shell).args(args).arg(&path).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn completions_complete_commands_and_flags_in_bash_and_parse_in_zsh_and_fish() {
    let bash = ringpoll_ok(&["completions", "bash"]);
    // Loaded in a real bash, the completion function offers `node` for `ringpoll no` and
    // `--log-format` for `ringpoll node --log-f`.
    let complete = |line: &str| {
        let script = format!(
            "{bash}\nCOMP_LINE='{line}'; read -ra COMP_WORDS <<< \"$COMP_LINE\"; \
             COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_POINT=${{#COMP_LINE}}; \
             _ringpoll ringpoll \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
        );
        let (ok, said) = run_shell("bash", &[], &script);
        assert!(ok, "{said}");
        said
    };
    assert_eq!(complete("ringpoll no").trim(), "node");
    assert_eq!(complete("ringpoll node --log-f").trim(), "--log-format");
    assert!(complete("ringpoll comp").contains("completions"));

    let zsh = ringpoll_ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef ringpoll"), "{zsh}");
    let (ok, said) = run_shell("zsh", &["-n"], &zsh);
    assert!(ok, "zsh -n: {said}");
    let fish = ringpoll_ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c ringpoll"), "{fish}");
    let (ok, said) = run_shell("fish", &["--no-execute"], &fish);
    assert!(ok, "fish --no-execute: {said}");
}

/// Renders a man page file as `man` shows it.
fn man_text(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "man -l {}", page.display());
    // Bold and underline are overstrikes (`N\x08N`): keep the last character of each.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\x08' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

#[test]
fn man_pages_cover_every_command_and_the_systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man/man1");
    ringpoll_ok(&["man", "--dir", man1.to_str().unwrap()]);
    for page in [
        "ringpoll.1",
        "ringpoll-node.1",
        "ringpoll-check-config.1",
        "ringpoll-status.1",
        "ringpoll-reload.1",
        "ringpoll-owner.1",
        "ringpoll-sweep.1",
        "ringpoll-completions.1",
        "ringpoll-man.1",
    ] {
        assert!(man1.join(page).is_file(), "{page} missing");
    }
    let top = man_text(&man1.join("ringpoll.1"));
    assert!(top.contains("NAME") && top.contains("SUBCOMMANDS"), "{top}");
    assert!(top.contains("ringpoll-node(1)"), "{top}");
    let node = man_text(&man1.join("ringpoll-node.1"));
    for flag in ["--config", "--seed", "--log-format"] {
        assert!(node.contains(flag), "{flag} missing:\n{node}");
    }
    // Without --dir, the top page goes to stdout.
    assert!(ringpoll_ok(&["man"]).starts_with(".ie \\n(.g .ds Aq"));

    // The shipped unit passes systemd-analyze verify, which also checks that its binary exists
    // and its Documentation= man pages are found (here: the ones just written).
    let unit = std::fs::read_to_string(repo().join("contrib/systemd/ringpoll.service")).unwrap();
    for line in [
        "User=ringpoll",
        "AmbientCapabilities=CAP_NET_RAW",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    let local = unit.replace("/usr/local/bin/ringpoll", bin());
    assert_ne!(local, unit);
    let path = dir.path().join("ringpoll.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
