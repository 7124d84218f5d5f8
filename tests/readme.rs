//! The README is a contract: every `sh` block in it is either run here, as written, or listed
//! below with the reason it is not. The quick start is run from `cargo install` to `kill -9`, in
//! a temporary directory holding a copy of `config.toml` (the install goes to a temporary root:
//! only paths are substituted), and what the README says each command shows is checked.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{repo, wait_until};

/// Blocks not run here, and why.
const NOT_RUN: [(&str, &str); 3] = [
    ("bash tests/run.sh", "the test command: it runs this test"),
    (
        "install -m 0755 ~/.cargo/bin/ringpoll /usr/local/bin/ringpoll",
        "installs a system service and needs systemd as PID 1; tests/cli.rs checks the unit with systemd-analyze verify",
    ),
    ("bench/run ", "the benchmark (15 minutes), run by hand; BENCHMARKS.md reports it"),
];

/// Every fenced `sh` block of the README: its section and its lines.
fn sh_blocks(readme: &str) -> Vec<(String, Vec<String>)> {
    let (mut blocks, mut section, mut current) = (Vec::new(), String::new(), None::<Vec<String>>);
    for line in readme.lines() {
        match &mut current {
            Some(lines) if line.starts_with("```") => {
                blocks.push((section.clone(), std::mem::take(lines)));
                current = None;
            }
            Some(lines) => lines.push(line.to_string()),
            None if line == "```sh" => current = Some(Vec::new()),
            None if line.starts_with("## ") || line.starts_with("### ") => {
                section = line.trim_start_matches('#').trim().to_string()
            }
            None => {}
        }
    }
    blocks
}

/// The plain block right after the README's `sh` block of `command`: what it shows.
fn shown_after(readme: &str, command: &str) -> String {
    let block = format!("```sh\n{command}\n```\n\n```\n");
    let at = readme
        .find(&block)
        .expect("the command's block, then its output's")
        + block.len();
    let len = readme[at..].find("```\n").expect("the output block's end");
    readme[at..at + len].to_string()
}

/// A command line of the README, run by bash in `dir` with `path` first on the PATH.
fn shell(line: &str, dir: &Path, path: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(line).current_dir(dir).env(
        "PATH",
        format!("{}:{}", path.display(), std::env::var("PATH").unwrap()),
    );
    c
}

/// A node started from a README line; killed when dropped.
struct Started {
    child: Child,
    log: PathBuf,
}

impl Started {
    fn new(line: &str, dir: &Path, path: &Path, log: &str) -> Started {
        let log = dir.join(log);
        let child = shell(&format!("exec {line}"), dir, path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Started { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        wait_until(
            &format!("{needle:?} in {}", self.log.display()),
            Duration::from_secs(20),
            || self.log().contains(needle).then_some(()),
        );
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Targets with an ok result in a JSON-lines results file.
fn ok_targets(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["ok"] == true)
        .filter_map(|v| v["target"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn every_readme_command_works_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    let tmp = tempfile::tempdir().unwrap();
    let (root, work) = (tmp.path().join("root"), tmp.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(repo().join("config.toml"), work.join("config.toml")).unwrap();
    let bin = root.join("bin");

    let mut run = Vec::new();
    for (section, lines) in &blocks {
        let first = lines[0].as_str();
        if let Some((_, why)) = NOT_RUN.iter().find(|(start, _)| first.starts_with(start)) {
            eprintln!("not run ({why}): {first}");
            continue;
        }
        run.push((section.as_str(), lines.clone()));
    }
    let expected: Vec<(&str, &str)> = vec![
        ("Quick start", "cargo install --path . --locked"),
        ("Quick start", "ringpoll node --config config.toml"),
        (
            "Quick start",
            "ringpoll node --config config.toml --name n2",
        ),
        ("Quick start", "ringpoll status"),
        ("Alerting and dashboards", "promtool check config"),
        ("Install and run as a service", "ringpoll completions bash"),
    ];
    let firsts: Vec<(&str, &str)> = run.iter().map(|(s, l)| (*s, l[0].as_str())).collect();
    let known = firsts.len() == expected.len()
        && firsts
            .iter()
            .zip(&expected)
            .all(|((s, l), (es, el))| s == es && l.starts_with(el));
    assert!(
        known,
        "the README's sh blocks changed: {firsts:#?}\nrun new ones here or list them in NOT_RUN"
    );

    // Quick start. The install: cargo's release build into a temporary root (the repository's
    // target directory is reused when it has one).
    let install = &run[0].1;
    assert_eq!(install, &["cargo install --path . --locked"]);
    let out = shell(&install[0], &repo(), &bin)
        .env("CARGO_INSTALL_ROOT", &root)
        .env("CARGO_TARGET_DIR", repo().join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(bin.join("ringpoll")).unwrap().len();
    assert!(
        size <= 25_000_000,
        "the release binary is {size} bytes, over 25 MB"
    );

    // The first node: an ok result for each of 127.0.0.0/24 within one interval (10 s).
    let n1 = Started::new(&run[1].1[0], &work, &bin, "n1.log");
    let all: BTreeSet<String> = (0..=255).map(|i| format!("127.0.0.{i}")).collect();
    wait_until("256 ok results", Duration::from_secs(15), || {
        (ok_targets(&work.join("ringpoll-results.jsonl")) == all).then_some(())
    });
    n1.wait_log("first results: 256 up, 0 down");

    // Two more nodes: they join, the ring is rebuilt over three members.
    let pair = &run[2].1;
    assert_eq!(pair.len(), 2);
    let n2 = Started::new(&pair[0], &work, &bin, "n2.log");
    let n3 = Started::new(&pair[1], &work, &bin, "n3.log");
    n2.wait_log("member n1 joined (2 alive)");
    n2.wait_log("member n3 joined (3 alive)");
    n1.wait_log("ring rebuilt: 3 member(s), this node owns 86 of 256 targets");
    let since = std::fs::read_to_string(work.join("ringpoll-results.jsonl"))
        .unwrap()
        .len();
    // Together the three files hold every target again, probed under the new ring.
    wait_until(
        "every target probed by the three",
        Duration::from_secs(15),
        || {
            let n1_new: BTreeSet<String> =
                std::fs::read_to_string(work.join("ringpoll-results.jsonl")).unwrap()[since..]
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["target"].as_str().map(str::to_string))
                    .collect();
            let mut union = n1_new;
            union.extend(ok_targets(&work.join("n2.jsonl")));
            union.extend(ok_targets(&work.join("n3.jsonl")));
            (union == all).then_some(())
        },
    );

    // `ringpoll status` shows what the README shows, once every first result is in.
    assert_eq!(run[3].1, ["ringpoll status"]);
    let shown = shown_after(&readme, "ringpoll status");
    let mut last = String::new();
    let matched = wait_until_or(Duration::from_secs(20), || {
        let out = shell("ringpoll status", &work, &bin).output().unwrap();
        last = String::from_utf8_lossy(&out.stdout).to_string();
        out.status.success() && last == shown
    });
    assert!(
        matched,
        "ringpoll status shows\n{last}\nthe README shows\n{shown}"
    );

    // kill -9 one of them: the others take its targets over.
    let mut n3 = n3;
    n3.child.kill().unwrap();
    n1.wait_log("member n3 dead");
    n1.wait_log("ring rebuilt: 2 member(s)");
    drop((n1, n2, n3));

    // Alerting: promtool checks the shipped config and runs the rules' tests.
    for line in &run[4].1 {
        let out = shell(line, &repo(), &bin).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("SUCCESS"),
            "{line}: {said}"
        );
    }

    // Completions and man pages, into a temporary root instead of the system's directories.
    let sys = tmp.path().join("sys");
    for line in &run[5].1 {
        let local = line.replace(" /usr/", &format!(" {}/usr/", sys.display()));
        assert_ne!(&local, line, "every install path is substituted: {line}");
        if let Some((_, file)) = local.split_once(" > ") {
            std::fs::create_dir_all(Path::new(file).parent().unwrap()).unwrap();
        }
        let out = shell(&local, &work, &bin).output().unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for file in [
        "usr/share/bash-completion/completions/ringpoll",
        "usr/local/share/zsh/site-functions/_ringpoll",
        "usr/share/fish/vendor_completions.d/ringpoll.fish",
        "usr/local/share/man/man1/ringpoll-node.1",
    ] {
        let len = std::fs::metadata(sys.join(file)).map_or(0, |m| m.len());
        assert!(len > 1000, "{file}: {len} bytes");
    }
}

/// Polls `cond` every 250 ms until it holds or `within` passes.
fn wait_until_or(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
