//! The status page in a real browser: Debian's chromium, headless, against real nodes on
//! loopback (127.97.1.N; HTTP on port 9464 of each). `--dump-dom` gives the page after its
//! scripts ran; a browser left running on the page shows what it does without reloading (the
//! page logs each member state change to the console, which chromium writes to its stderr).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo, wait_converged, wait_until, Cluster, Node};

/// Sixteen ICMP targets up, and one TCP target refused (down from its first result).
const CONFIG: &str =
    "[node]\nname = \"unset\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\ncount = 1\n\
    [[targets]]\ncidr = \"127.0.0.0/28\"\nprobe = \"icmp\"\n\
    [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 1\n";

fn cluster() -> Cluster {
    Cluster::new("127.97.1", CONFIG)
}

fn start(n: u8, seeds: &[u8], env: &[(&str, &str)]) -> Node {
    let http = format!("127.97.1.{n}:9464");
    cluster().start_with(n, seeds, &["--http", &http], env)
}

fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The page at `url` after its scripts ran for a few seconds of virtual time.
fn dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .args(["--virtual-time-budget=4000", "--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("chromium (the test command installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A browser showing `url` until dropped, its stderr (console included) in `log`.
struct Browser {
    child: Child,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str, log: PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = chromium(profile.path())
            .args(["--enable-logging=stderr", "--v=0", url])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("chromium (the test command installs it)");
        Browser {
            child,
            log,
            _profile: profile,
        }
    }

    /// The page's console messages so far.
    fn console(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium's helper processes for this profile.
        let _ = Command::new("pkill")
            .args(["-f", &self._profile.path().display().to_string()])
            .status();
    }
}

/// The `data-state` of member `name`'s row in `dom`.
fn member_state(dom: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("data-member=\"{name}\""))?;
    let rest = &dom[at..];
    let s = rest.split("data-state=\"").nth(1)?;
    Some(s.split('"').next()?.to_string())
}

#[test]
fn the_page_shows_the_cluster_follows_a_death_live_and_finds_a_targets_prober() {
    let n1 = start(1, &[], &[]);
    let n2 = start(2, &[1], &[]);
    let mut n3 = start(3, &[1], &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(20));
    let url = "http://127.97.1.2:9464/";

    // Served by n2, the page lists the three members alive with their shares.
    let page = wait_until(
        "the page lists three members alive",
        Duration::from_secs(20),
        || {
            let d = dom(url);
            (["n1", "n2", "n3"]
                .iter()
                .all(|n| member_state(&d, n).as_deref() == Some("alive")))
            .then_some(d)
        },
    );
    assert!(page.contains("(this page)"), "the serving member is marked");
    assert!(page.contains('%'), "shares are shown");
    // The refused target is listed down, with since when and its owner.
    let row = page
        .split("<tr>")
        .find(|r| r.contains("<td>127.0.0.1:1</td>"))
        .unwrap_or_else(|| panic!("no row of the down target: {page}"));
    assert!(
        row.contains("state-down") && row.contains("refused"),
        "{row}"
    );
    assert!(row.contains("Z</td>"), "since when: {row}");

    // Screenshots for people, under target/: a laptop's window and a phone's width.
    for (name, size) in [
        ("status-page.png", "1280,900"),
        ("status-page-phone.png", "390,844"),
    ] {
        let shot = repo().join("target").join(name);
        let _ = std::fs::remove_file(&shot);
        let profile = tempfile::tempdir().unwrap();
        let status = chromium(profile.path())
            .args(["--virtual-time-budget=4000", "--hide-scrollbars"])
            .arg(format!("--window-size={size}"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(url)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success() && shot.exists(), "{name}");
    }

    // The search finds a target's owner: the node whose results hold it.
    let target = "127.0.0.5";
    let prober = wait_until("a result of the target", Duration::from_secs(10), || {
        [("n1", &n1), ("n2", &n2), ("n3", &n3)]
            .into_iter()
            .find(|(_, n)| n.results().iter().any(|r| r["target"] == target))
            .map(|(name, _)| name)
    });
    let found = wait_until("the search result", Duration::from_secs(20), || {
        let d = dom(&format!("{url}?target={target}"));
        d.contains("data-probed-by=").then_some(d)
    });
    assert!(
        found.contains(&format!("data-probed-by=\"{prober}\"")),
        "the page names {prober} as the prober"
    );
    assert!(
        found.contains("class=\"spark\"") && found.contains("Rendezvous score"),
        "its recent round trips and why it has its owners: {found}"
    );

    // A browser left on the page sees n3 die without reloading, within 5 s of the kill.
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::open(url, dir.path().join("chromium.log"));
    wait_until("the page running", Duration::from_secs(20), || {
        browser
            .console()
            .iter()
            .any(|l| l.contains("ringpoll: page shows 3 member(s)"))
            .then_some(())
    });
    let killed = Instant::now();
    n3.kill9();
    wait_until("the page shows n3 dead", Duration::from_secs(5), || {
        browser
            .console()
            .iter()
            .any(|l| l.contains("ringpoll: member n3") && l.contains("-> dead"))
            .then_some(())
    });
    assert!(killed.elapsed() <= Duration::from_secs(5));
    let errors: Vec<String> = browser
        .console()
        .into_iter()
        .filter(|l| l.contains("Uncaught") || l.to_lowercase().contains("error"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn with_a_token_the_page_shows_nothing_until_it_is_given() {
    let node = Cluster::new("127.97.2", CONFIG).start_with(
        1,
        &[],
        &["--http", "127.97.2.1:9464"],
        &[("RINGPOLL_HTTP_TOKEN", "s3cret-token")],
    );
    node.wait_log("HTTP endpoint listening", 1, Duration::from_secs(10));
    let url = "http://127.97.2.1:9464/";
    // The shell is served; it asks for the token and shows no data.
    let page = dom(url);
    assert!(page.contains("Token needed"), "{page}");
    assert_eq!(
        member_state(&page, "n1"),
        None,
        "no member shown without the token"
    );
    // A wrong token is refused.
    let page = dom(&format!("{url}#token=wrong"));
    assert_eq!(member_state(&page, "n1"), None);
    assert!(page.contains("The token was refused"), "{page}");
    // The right one shows the data.
    let page = wait_until("the data with the token", Duration::from_secs(15), || {
        let d = dom(&format!("{url}#token=s3cret-token"));
        (member_state(&d, "n1").as_deref() == Some("alive")).then_some(d)
    });
    assert!(
        !page.contains("s3cret-token"),
        "the token is not written into the page"
    );
}
