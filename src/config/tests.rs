use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringpoll_actors::model::{Check, Host, ProbeKind, TargetSpec};
use ringpoll_actors::restart::RestartPolicy;
use ringpoll_actors::sink::SinkSpec;

use super::*;

fn parse_str(text: &str) -> Result<Settings, ConfigError> {
    parse(
        Path::new("test.toml"),
        text,
        Path::new("."),
        &Overrides::default(),
    )
}

fn err(text: &str) -> String {
    parse_str(text)
        .expect_err("config should be rejected")
        .to_string()
}

const NODE: &str = "[node]\nname = \"n1\"\n";

#[test]
fn the_shipped_config_is_valid() {
    let text = include_str!("../../config.toml");
    let s = parse(
        Path::new("config.toml"),
        text,
        Path::new("."),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.node.as_str(), "n1");
    assert_eq!(s.targets.len(), 256);
    assert!(s.targets.iter().all(|t| t.kind() == ProbeKind::Icmp));
    assert_eq!(&*s.targets[0].id, "127.0.0.0");
    assert_eq!(&*s.targets[255].id, "127.0.0.255");
    assert_eq!(
        s.targets[0].labels.get("site").map(String::as_str),
        Some("loopback")
    );
    assert_eq!(s.interval, Duration::from_secs(10));
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!(s.supervision, RestartPolicy::default());
    // Every address the example probes is loopback.
    for t in &s.targets {
        match &t.host {
            Host::Ip(ip) => assert!(ip.is_loopback(), "{ip}"),
            Host::Name(n) => panic!("example probes a name: {n}"),
        }
    }
}

#[test]
fn defaults_apply() {
    let s = parse_str(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n"
    ))
    .unwrap();
    assert_eq!(s.interval, DEFAULT_INTERVAL);
    assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    assert_eq!(s.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(
        s.results.sinks,
        vec![SinkSpec::Jsonl {
            path: PathBuf::from(DEFAULT_RESULTS)
        }]
    );
    assert_eq!(
        s.http.as_ref().map(|h| h.listen.to_string()).as_deref(),
        Some(DEFAULT_HTTP)
    );
    assert!(s.http.as_ref().unwrap().token.is_none());
    let t = &s.targets[0];
    assert_eq!(
        (t.thresholds.rise, t.thresholds.fall, t.retry_interval),
        (2, 2, DEFAULT_INTERVAL / 4)
    );
    assert!(s.cluster.seeds.is_empty() && s.cluster.net.is_none());
    assert_eq!((s.cluster.weight, s.cluster.replicas), (1, 1));
}

#[test]
fn group_settings_override_probe_defaults() {
    let s = parse_str(&format!(
        "{NODE}[probe]\ninterval = \"30s\"\n[[targets]]\nhosts = [\"127.0.0.1\", \"localhost\"]\nprobe = \"tcp\"\nport = 22\ninterval = \"5s\"\ntimeout = \"500ms\"\nlabels = {{ dc = \"x\" }}\n"
    ))
    .unwrap();
    assert_eq!(s.targets.len(), 2);
    let t = &s.targets[1];
    assert_eq!(&*t.id, "localhost:22");
    assert_eq!(t.host, Host::Name("localhost".into()));
    assert_eq!(t.check.port(), Some(22));
    assert_eq!(t.interval, Duration::from_secs(5));
    assert_eq!(t.timeout, Duration::from_millis(500));
    assert_eq!(s.interval, Duration::from_secs(30));
}

#[test]
fn overrides_win_over_the_file() {
    let ov = Overrides {
        name: Some("n9".into()),
        listen: Some("127.0.0.9:4709".into()),
        seeds: vec!["127.0.0.1:4701".into(), "[::1]:4702".into()],
        http: Some("off".into()),
        results: Some(PathBuf::from("/tmp/x.jsonl")),
        sqlite: None,
        cookie_env: None,
        http_token_env: None,
        host_name: Some("host".into()),
        log_format: None,
    };
    let text = format!("{NODE}[cluster]\nlisten = \"127.0.0.1:1\"\nseeds = [\"127.0.0.1:2\"]\n");
    let s = parse(Path::new("t.toml"), &text, Path::new("."), &ov).unwrap();
    assert_eq!(s.node.as_str(), "n9");
    let net = s.cluster.net.as_ref().unwrap();
    assert_eq!(net.listen.to_string(), "127.0.0.9:4709");
    assert_eq!(net.advertise.to_string(), "127.0.0.9:4709");
    assert_eq!(net.cookie_source, CookieSource::LoopbackDefault);
    assert_eq!(s.cluster.seeds, vec!["127.0.0.1:4701", "[::1]:4702"]);
    assert!(s.http.is_none());
    assert_eq!(
        s.results.sinks,
        vec![SinkSpec::Jsonl {
            path: PathBuf::from("/tmp/x.jsonl")
        }]
    );
}

#[test]
fn bad_flags_name_the_flag() {
    let bad = |ov: Overrides| {
        parse(Path::new("t.toml"), NODE, Path::new("."), &ov)
            .unwrap_err()
            .to_string()
    };
    assert!(bad(Overrides {
        listen: Some("nope".into()),
        ..Default::default()
    })
    .starts_with("--listen: "));
    assert!(bad(Overrides {
        seeds: vec!["127.0.0.1:0".into()],
        ..Default::default()
    })
    .starts_with("--seed: "));
    assert!(bad(Overrides {
        http: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .starts_with("--http: "));
    assert!(bad(Overrides {
        name: Some("a b".into()),
        ..Default::default()
    })
    .starts_with("--name: "));
}

#[test]
fn syntax_and_type_errors_have_a_location() {
    let e = err("[node]\nname = \"n1\"\n[probe]\nmax_in_flight = \"lots\"\n");
    assert!(e.starts_with("test.toml:4:17: "), "{e}");
    assert!(e.contains("invalid type"), "{e}");
    let e = err("[node\nname = 1\n");
    assert!(e.starts_with("test.toml:1:"), "{e}");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let e = err(&format!("{NODE}[probe]\nintervall = \"10s\"\n"));
    assert!(e.starts_with("test.toml:4:1: "), "{e}");
    assert!(e.contains("unknown field `intervall`"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\ncolour = \"red\"\n"
    ));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err(&format!("{NODE}[extra]\n"));
    assert!(e.contains("unknown field `extra`"), "{e}");
}

#[test]
fn durations_must_be_strings_with_units() {
    let e = err(&format!("{NODE}[probe]\ninterval = 10\n"));
    assert!(e.starts_with("test.toml:4:12: "), "{e}");
    assert!(
        e.contains("expected a duration string such as \"30s\""),
        "{e}"
    );
    let e = err(&format!("{NODE}[probe]\ninterval = \"10 parsecs\"\n"));
    assert!(e.contains("expected a duration string"), "{e}");
}

#[test]
fn timeout_must_be_less_than_interval() {
    let e = err(&format!(
        "{NODE}[probe]\ninterval = \"1s\"\ntimeout = \"1s\"\n"
    ));
    assert!(
        e.starts_with("test.toml:5:11: probe.timeout (1s) must be less than the interval (1s)"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\ninterval = \"500ms\"\n"
    ));
    assert!(
        e.contains("targets[0].timeout (1s) must be less than the interval (500ms)"),
        "{e}"
    );
}

#[test]
fn node_name_defaults_to_the_host_name_and_is_checked() {
    let e = err("[probe]\n");
    assert!(
        e.contains("node.name is not set and this host's name could not be read"),
        "{e}"
    );
    let host = |h: &str| {
        let ov = Overrides {
            host_name: Some(h.into()),
            ..Overrides::default()
        };
        parse(Path::new("test.toml"), "[probe]\n", Path::new("."), &ov)
    };
    assert_eq!(
        host("web-01.example").unwrap().node.as_str(),
        "web-01.example"
    );
    let e = host("bad host").unwrap_err().to_string();
    assert!(
        e.contains("this host's name does not make one (invalid node name \"bad host\""),
        "{e}"
    );
    // The file's name, and --name, win over the host name.
    let ov = Overrides {
        host_name: Some("web-01".into()),
        ..Overrides::default()
    };
    let s = parse(Path::new("test.toml"), NODE, Path::new("."), &ov).unwrap();
    assert_eq!(s.node.as_str(), "n1");
    let e = err("[node]\nname = \"bad name\"\n");
    assert!(
        e.starts_with("test.toml:2:8: node.name: invalid node name"),
        "{e}"
    );
}

#[test]
fn cluster_addresses_are_checked() {
    let e = err(&format!("{NODE}[cluster]\nlisten = \"localhost\"\n"));
    assert!(
        e.contains("cluster.listen") && e.contains("expected IP:PORT"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[cluster]\nlisten = \"127.0.0.1:4701\"\nseeds = [\"127.0.0.1:4701\", \"127.0.0.1:99999\"]\n"
    ));
    assert!(e.starts_with("test.toml:5:28: cluster.seeds"), "{e}");
    let e = err(&format!("{NODE}[http]\nlisten = \"nowhere\"\n"));
    assert!(e.contains("http.listen") && e.contains("\"off\""), "{e}");
}

#[test]
fn a_group_needs_exactly_one_source() {
    let e = err(&format!("{NODE}[[targets]]\nprobe = \"icmp\"\n"));
    assert!(e.contains("targets[0]: set exactly one of hosts"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\ncidr = \"127.0.0.0/30\"\nprobe = \"icmp\"\n"
    ));
    assert!(
        e.starts_with(
            "test.toml:5:8: targets[0]: hosts, cidr, file, file_sd and http_sd are exclusive"
        ),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = []\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("targets[0].hosts is empty"), "{e}");
}

#[test]
fn probe_kinds_and_ports() {
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"smtp\"\n"
    ));
    assert!(
        e.contains("unknown variant `smtp`, expected one of `icmp`, `tcp`, `ssh`"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\n"
    ));
    assert!(
        e.contains("targets[0].port: probe = \"tcp\" needs a port"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\nport = 22\n"
    ));
    assert!(e.contains("only tcp and ssh targets take a port"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 70000\n"
    ));
    assert!(e.starts_with("test.toml:6:8: "), "{e}");
}

#[test]
fn bad_hosts_and_cidrs() {
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\", \"not a host\"]\nprobe = \"icmp\"\n"
    ));
    assert!(
        e.starts_with("test.toml:4:23: targets[0].hosts: \"not a host\" is neither"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"127.0.0.0/33\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("is not a CIDR block"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"127.0.0.5/24\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("did you mean 127.0.0.0/24?"), "{e}");
}

#[test]
fn a_cidr_larger_than_max_targets_fails_before_expanding() {
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"127.0.0.0/8\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("127.0.0.0/8 has 16777216 addresses, more than the 262144 left under probe.max_targets = 262144"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"::/0\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("addresses, more than"), "{e}");
    let e = err(&format!(
        "{NODE}[probe]\nmax_targets = 300\n[[targets]]\ncidr = \"127.0.0.0/24\"\nprobe = \"icmp\"\n[[targets]]\ncidr = \"127.0.1.0/24\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("more than the 44 left"), "{e}");
}

#[test]
fn duplicates_and_overlaps_are_rejected_with_both_places() {
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"127.0.0.0/30\"\nprobe = \"icmp\"\n[[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\n"
    ));
    assert!(e.starts_with("test.toml:7:10: duplicate target icmp/127.0.0.2: already listed by targets[0].cidr at test.toml:4:8"), "{e}");
    let e = err(&format!(
        "{NODE}[[targets]]\ncidr = \"127.0.0.0/24\"\nprobe = \"icmp\"\n[[targets]]\ncidr = \"127.0.0.128/25\"\nprobe = \"icmp\"\n"
    ));
    assert!(e.contains("duplicate target icmp/127.0.0.128"), "{e}");
    // The same host under another probe kind or port is a different target.
    parse_str(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 1\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 2\n"
    ))
    .unwrap();
}

#[test]
fn host_files_are_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hosts.txt"),
        "# fleet\n127.0.0.1\n\n  127.0.0.2   # second\nlocalhost\n",
    )
    .unwrap();
    let text = format!("{NODE}[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n");
    let s = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
    let ids: Vec<&str> = s.targets.iter().map(|t| &*t.id).collect();
    assert_eq!(ids, ["127.0.0.1", "127.0.0.2", "localhost"]);
}

#[test]
fn host_file_errors_point_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "127.0.0.1\n  bad!host\n").unwrap();
    let text = format!("{NODE}[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, format!("{}:2:3: \"bad!host\" is neither an IP address nor a valid host name; expected one host per line (# starts a comment)", hosts.display()));

    std::fs::write(&hosts, "127.0.0.1\n127.0.0.1\n").unwrap();
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!(
            "{}:2:1: duplicate target icmp/127.0.0.1: already listed by {}:1",
            hosts.display(),
            hosts.display()
        )),
        "{e}"
    );

    std::fs::write(&hosts, "# nothing\n\n").unwrap();
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lists no hosts"), "{e}");

    let text = format!("{NODE}[[targets]]\nfile = \"missing.txt\"\nprobe = \"icmp\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(":4:8: targets[0].file: cannot read") && e.contains("missing.txt"),
        "{e}"
    );
}

#[test]
fn a_huge_host_file_stops_at_max_targets() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..2_000u32 {
        body.push_str(&format!("127.1.{}.{}\n", i >> 8, i & 255));
    }
    std::fs::write(dir.path().join("h.txt"), body).unwrap();
    let text = format!(
        "{NODE}[probe]\nmax_targets = 1000\n[[targets]]\nfile = \"h.txt\"\nprobe = \"icmp\"\n"
    );
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("h.txt:1001:1: more than probe.max_targets = 1000 targets"),
        "{e}"
    );
}

#[test]
fn labels_are_checked() {
    let e = err(&format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\nlabels = {{ \"bad-name\" = \"x\" }}\n"));
    assert!(e.contains("label name \"bad-name\" is invalid"), "{e}");
    let e = err(&format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\nlabels = {{ target = \"x\" }}\n"));
    assert!(e.contains("is reserved"), "{e}");
}

#[test]
fn icmp_pacing_has_a_per_network_default_and_zero_lifts_a_limit() {
    use ringpoll_actors::probe::pace::{PaceLimits, DEFAULT_PER_NETWORK};
    let pace = |probe: &str| parse_str(&format!("{NODE}[probe]\n{probe}")).unwrap().pace;
    assert_eq!(
        pace(""),
        PaceLimits {
            per_network: Some(DEFAULT_PER_NETWORK),
            node: None
        }
    );
    assert_eq!(
        pace("max_rate_per_network = 100\nmax_pps = 5000\n"),
        PaceLimits {
            per_network: Some(100),
            node: Some(5000)
        }
    );
    assert_eq!(
        pace("max_rate_per_network = 0\nmax_pps = 0\n"),
        PaceLimits::NONE
    );
    let e = err(&format!("{NODE}[probe]\nmax_pps = -5\n"));
    assert!(
        e.ends_with(":4:11: probe.max_pps: invalid value: integer `-5`, expected u32"),
        "{e}"
    );
}

#[test]
fn limits_and_supervision_are_checked() {
    assert!(err(&format!("{NODE}[probe]\nmax_in_flight = 0\n"))
        .contains("probe.max_in_flight must be at least 1"));
    assert!(err(&format!("{NODE}[probe]\nmax_in_flight = -1\n")).contains("invalid value"));
    assert!(err(&format!("{NODE}[results]\nbuffer = 0\n"))
        .contains("results.buffer must be at least 1"));
    assert!(err(&format!(
        "{NODE}[supervision]\nbackoff_min = \"10s\"\nbackoff_max = \"1s\"\n"
    ))
    .contains("backoff_max must be at least"));
}

#[test]
fn the_summary_fits_on_one_screen() {
    let s = parse(
        Path::new("config.toml"),
        include_str!("../../config.toml"),
        Path::new("."),
        &Overrides::default(),
    )
    .unwrap();
    let out = s.to_string();
    assert!(
        out.contains("targets        256 (icmp 256, tcp 0, ssh 0) in 1 group(s)"),
        "{out}"
    );
    assert!(out.contains("interval 10s, timeout 1s"), "{out}");
    assert!(out.lines().count() < 25);
}

fn with_cookie(cookie: Option<&str>) -> Overrides {
    Overrides {
        cookie_env: cookie.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn cluster_settings_parse_with_defaults() {
    let s = parse_str(&format!("{NODE}[cluster]\nlisten = \"127.0.1.1:4701\"\nseeds = [\"127.0.1.2:4701\", \"localhost:4701\"]\nweight = 3\nreplicas = 2\n")).unwrap();
    let net = s.cluster.net.unwrap();
    assert_eq!(net.heartbeat, DEFAULT_HEARTBEAT);
    assert_eq!(net.suspect_after, DEFAULT_SUSPECT);
    assert_eq!(net.dead_after, DEFAULT_DEAD);
    assert_eq!((s.cluster.weight, s.cluster.replicas), (3, 2));
    assert_eq!(s.cluster.seeds.len(), 2);
}

#[test]
fn a_non_loopback_listener_needs_a_cookie() {
    // Parsing only: nothing listens, and no packet is sent.
    let text =
        format!("{NODE}[cluster]\nlisten = \"0.0.0.0:4701\"\nadvertise = \"127.0.1.1:4701\"\n");
    let e = parse(
        Path::new("test.toml"),
        &text,
        Path::new("."),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is not a loopback address, and no cookie is set")
            && e.contains("RINGPOLL_COOKIE"),
        "{e}"
    );
    let s = parse(
        Path::new("test.toml"),
        &text,
        Path::new("."),
        &with_cookie(Some("s3cret")),
    )
    .unwrap();
    let net = s.cluster.net.unwrap();
    assert_eq!(
        (net.cookie.as_str(), &net.cookie_source),
        ("s3cret", &CookieSource::Env)
    );
    // --listen on a wildcard without advertise is an error too.
    let ov = Overrides {
        listen: Some("0.0.0.0:4701".into()),
        cookie_env: Some("x".into()),
        ..Default::default()
    };
    let e = parse(Path::new("t.toml"), NODE, Path::new("."), &ov)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "--listen: 0.0.0.0:4701 is a wildcard address: set cluster.advertise to the IP:PORT other nodes reach this node at",
        "the flag is named, not the file"
    );
    // So is --seed without any listen address.
    let ov = Overrides {
        seeds: vec!["127.0.0.1:4701".into()],
        ..Default::default()
    };
    let e = parse(Path::new("t.toml"), NODE, Path::new("."), &ov)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--seed: needs cluster.listen (or --listen)"),
        "{e}"
    );
}

#[test]
fn the_cookie_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cookie"), "  abc123  \n").unwrap();
    let text = format!("{NODE}[cluster]\nlisten = \"127.0.1.1:4701\"\ncookie_file = \"cookie\"\n");
    let s = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.cluster.net.unwrap().cookie, "abc123");
    std::fs::write(dir.path().join("cookie"), "\n").unwrap();
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is empty"), "{e}");
    let text = format!("{NODE}[cluster]\nlisten = \"127.0.1.1:4701\"\ncookie_file = \"missing\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(":5:15: cluster.cookie_file: cannot read"), "{e}");
}

#[test]
fn cluster_values_are_checked() {
    let e = err(&format!("{NODE}[cluster]\nlisten = \"localhost:4701\"\n"));
    assert!(
        e.contains("cluster.listen") && e.contains("expected IP:PORT"),
        "{e}"
    );
    let e = err(&format!("{NODE}[cluster]\nlisten = \"127.0.0.1:0\"\n"));
    assert!(e.contains("must be fixed"), "{e}");
    let e = err(&format!("{NODE}[cluster]\nseeds = [\"127.0.0.1:4701\"]\n"));
    assert!(e.contains("cluster.seeds needs cluster.listen"), "{e}");
    let e = err(&format!("{NODE}[cluster]\nweight = 0\n"));
    assert!(e.contains("cluster.weight must be from 1 to 1000"), "{e}");
    let e = err(&format!("{NODE}[cluster]\nreplicas = 17\n"));
    assert!(e.contains("cluster.replicas must be from 1 to 16"), "{e}");
    let e = err(&format!(
        "{NODE}[cluster]\nsuspect_after = \"3s\"\ndead_after = \"2s\"\n"
    ));
    assert!(
        e.contains("dead_after must be longer than cluster.suspect_after"),
        "{e}"
    );
    let e = err(&format!("{NODE}[cluster]\nheartbeat_interval = \"1s\"\n"));
    assert!(
        e.contains("suspect_after must be longer than cluster.heartbeat_interval"),
        "{e}"
    );
    let e = err(&format!("{NODE}[cluster]\ncookie = \"inline\"\n"));
    assert!(e.contains("unknown field `cookie`"), "{e}");
}

/// A fresh ed25519 key (made by ssh-keygen) in `dir`, mode 600; returns its path.
fn keygen(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", "test", "-f"])
        .arg(&path)
        .args(if extra.is_empty() {
            &["-N", ""][..]
        } else {
            extra
        })
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn ssh_groups_take_defaults_from_probe_ssh() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "id", &[]);
    std::fs::write(dir.path().join("kh"), "").unwrap();
    let text = format!(
        "{NODE}[probe.ssh]\nuser = \"monitor\"\nidentity = \"id\"\nknown_hosts = \"kh\"\nmax_concurrent_ssh = 64\n\
         max_sessions = 10\nmax_new_logins_per_s = 0\nmax_session_age = \"1m\"\n\
         [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"ssh\"\ncommand = \"uptime\"\nexpect_output = \"load\"\n\
         [[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"ssh\"\nport = 2222\nuser = \"other\"\nhost_key_policy = \"accept-new\"\nsession = \"fresh\"\n"
    );
    let s = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        (
            s.ssh.max_concurrent,
            s.ssh.max_sessions,
            s.ssh.max_new_logins_per_s
        ),
        (64, 10, 0)
    );
    let ssh = |t: &TargetSpec| match &t.check {
        Check::Ssh { settings, .. } => settings.clone(),
        other => panic!("not an SSH check: {other:?}"),
    };
    let a = ssh(&s.targets[0]);
    assert_eq!(&*s.targets[0].id, "127.0.0.1:22");
    assert_eq!(
        (a.user.as_str(), a.command.as_deref(), a.max_output),
        ("monitor", Some("uptime"), 4096)
    );
    assert!(a.expect_output.is_some());
    use ringpoll_actors::probe::ssh::SessionMode;
    assert_eq!(
        (a.session, a.max_session_age),
        (SessionMode::Persistent, Duration::from_secs(60))
    );
    let b = ssh(&s.targets[1]);
    assert_eq!(b.session, SessionMode::Fresh);
    assert_eq!(&*s.targets[1].id, "127.0.0.2:2222");
    assert_eq!(b.user, "other");
    assert_eq!(
        b.policy,
        ringpoll_actors::probe::ssh::HostKeyPolicy::AcceptNew
    );
    assert!(
        std::sync::Arc::ptr_eq(&a.identity, &b.identity),
        "a key file is loaded once"
    );
    assert!(s.to_string().contains("ssh as monitor, host keys strict"));
}

#[test]
fn ssh_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "id", &[]);
    std::fs::write(dir.path().join("kh"), "").unwrap();
    let bad = |group: &str| {
        let text = format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"ssh\"\n{group}");
        parse(
            &dir.path().join("c.toml"),
            &text,
            dir.path(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad("identity = \"id\"\nknown_hosts = \"kh\"\n")
        .contains("targets[0].user: probe = \"ssh\" needs user"));
    assert!(bad("user = \"u\"\nknown_hosts = \"kh\"\n").contains("needs identity"));
    assert!(bad("user = \"u\"\nidentity = \"id\"\n").contains("needs known_hosts"));
    let e = bad("user = \"u\"\nidentity = \"id\"\nknown_hosts = \"nope\"\n");
    assert!(
        e.contains("known_hosts") && e.contains("does not exist") && e.contains("accept-new"),
        "{e}"
    );
    let e = bad("user = \"u\"\nidentity = \"missing\"\nknown_hosts = \"kh\"\n");
    assert!(
        e.contains("targets[0].identity:") && e.contains("missing"),
        "{e}"
    );
    let e = bad("user = \"u\"\nidentity = \"id\"\nknown_hosts = \"kh\"\ncommand = \"x\"\nexpect_output = \"(\"\n");
    assert!(
        e.contains("targets[0].expect_output: not a valid regular expression"),
        "{e}"
    );
    let e = bad("user = \"u\"\nidentity = \"id\"\nhost_key_policy = \"maybe\"\n");
    assert!(e.contains("unknown variant `maybe`"), "{e}");
    let e = bad("user = \"u\"\nidentity = \"id\"\nknown_hosts = \"kh\"\nmax_output = 0\n");
    assert!(e.contains("targets[0].max_output: expected 1 to"), "{e}");
    // host_key_policy = "off" needs no known_hosts.
    let text = format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"ssh\"\nuser = \"u\"\nidentity = \"id\"\nhost_key_policy = \"off\"\n");
    parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
    // SSH keys on another kind of group.
    let text =
        format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\nuser = \"u\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("targets[0].user: only ssh targets take user"),
        "{e}"
    );
}

#[test]
fn ssh_keys_are_checked_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let id = keygen(dir.path(), "id", &[]);
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.path().join("kh"), "").unwrap();
    let text = format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"ssh\"\nuser = \"u\"\nidentity = \"id\"\nknown_hosts = \"kh\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(":7:12: targets[0].identity:") && e.contains("permissions 0644 are too open"),
        "{e}"
    );

    // An encrypted key takes its passphrase from the environment variable named in the config.
    keygen(dir.path(), "enc", &["-N", "s3cret"]);
    let text = format!("{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"ssh\"\nuser = \"u\"\nidentity = \"enc\"\nknown_hosts = \"kh\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("the key is encrypted") && e.contains("identity_passphrase_env"),
        "{e}"
    );
    let with_env = format!("{text}identity_passphrase_env = \"RINGPOLL_TEST_PASSPHRASE_UNSET\"\n");
    let e = parse(
        &dir.path().join("c.toml"),
        &with_env,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("RINGPOLL_TEST_PASSPHRASE_UNSET is not set"),
        "{e}"
    );
    // SAFETY (edition 2021: set_var is safe): a variable no other test reads.
    std::env::set_var("RINGPOLL_TEST_PASSPHRASE_A", "s3cret");
    let ok = format!("{text}identity_passphrase_env = \"RINGPOLL_TEST_PASSPHRASE_A\"\n");
    parse(
        &dir.path().join("c.toml"),
        &ok,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
}

#[test]
fn sinks_rise_fall_and_http_are_checked() {
    let s = parse_str(&format!(
        "{NODE}[probe]\nrise = 3\nfall = 1\nretry_interval = \"1s\"\n[[sinks]]\nkind = \"sqlite\"\npath = \"h.db\"\nretention = \"7d\"\n\
         [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\nfall = 4\n"
    ))
    .unwrap();
    assert_eq!(
        s.results.sinks.len(),
        2,
        "the JSON-lines file stays beside the SQLite sink"
    );
    assert!(
        matches!(&s.results.sinks[1], SinkSpec::Sqlite { retention: Some(r), .. } if *r == Duration::from_secs(7 * 86400))
    );
    let t = &s.targets[0];
    assert_eq!(
        (t.thresholds.rise, t.thresholds.fall, t.retry_interval),
        (3, 4, Duration::from_secs(1))
    );
    assert!(err(&format!(
        "{NODE}[probe]\nrise = 0\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n"
    ))
    .contains("targets[0].rise: expected 1 to 100"));
    assert!(err(&format!("{NODE}[probe]\nretry_interval = \"1h\"\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n")).contains("retry_interval must be more than 0 and at most the interval"));
    assert!(err(&format!(
        "{NODE}[[sinks]]\nkind = \"kafka\"\npath = \"x\"\n"
    ))
    .contains("unknown variant `kafka`"));
    assert!(err(&format!(
        "{NODE}[[sinks]]\nkind = \"jsonl\"\npath = \"x\"\nretention = \"1d\"\n"
    ))
    .contains("only sqlite sinks take a retention"));
    let e = err(&format!("{NODE}[http]\nlisten = \"0.0.0.0:9464\"\n"));
    assert!(
        e.starts_with("test.toml:4:10: http.listen: 0.0.0.0:9464 is not a loopback address"),
        "{e}"
    );
    let s = parse_str(&format!(
        "{NODE}[http]\nlisten = \"0.0.0.0:9464\"\ntoken = \"t\"\n"
    ))
    .unwrap();
    assert_eq!(s.http.unwrap().token.as_deref(), Some("t"));
    assert!(
        err(&format!("{NODE}[http]\nlisten = \"localhost:9464\"\n")).contains("expected IP:PORT")
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Arbitrary text never panics the parser: it is a config or an error.
        #[test]
        fn arbitrary_text_is_a_config_or_an_error(text in ".{0,400}") {
            let _ = parse(Path::new("f.toml"), &text, Path::new("/nonexistent"), &Overrides::default());
        }

        /// TOML-shaped input with arbitrary keys and values, too.
        #[test]
        fn arbitrary_tables_are_a_config_or_an_error(
            table in prop::sample::select(vec!["node", "cluster", "probe", "results", "supervision", "http", "probe.ssh", "x"]),
            key in "[a-z_]{1,16}",
            value in prop::sample::select(vec!["1", "-1", "\"s\"", "\"10s\"", "true", "[]", "[\"127.0.0.1\"]", "{}", "1e400", "\"127.0.0.0/8\""]),
        ) {
            let text = format!("[node]\nname = \"n\"\n[{table}]\n{key} = {value}\n[[targets]]\ncidr = \"127.0.0.0/30\"\nprobe = \"icmp\"\n");
            let _ = parse(Path::new("f.toml"), &text, Path::new("/nonexistent"), &Overrides::default());
        }
    }
}

mod duplicates {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The sort-based duplicate check agrees with the obvious one: the error names the first
        /// host (in listing order) that repeats an earlier one, and where that one was listed.
        #[test]
        fn the_first_repeat_in_listing_order_is_reported(
            // Two groups drawn from a small pool, so repeats are common but not certain.
            a in prop::collection::vec(0u8..24, 1..12),
            b in prop::collection::vec(0u8..24, 1..12),
        ) {
            let list = |v: &[u8]| v.iter().map(|x| format!("\"127.0.0.{x}\"")).collect::<Vec<_>>().join(", ");
            let text = format!(
                "{NODE}[[targets]]\nhosts = [{}]\nprobe = \"icmp\"\n[[targets]]\nhosts = [{}]\nprobe = \"icmp\"\n",
                list(&a),
                list(&b)
            );
            let all: Vec<u8> = a.iter().chain(&b).copied().collect();
            let repeat = (0..all.len()).find(|&i| all[..i].contains(&all[i]));
            match (repeat, parse_str(&text)) {
                (None, Ok(s)) => prop_assert_eq!(s.targets.len(), all.len()),
                (Some(i), Err(e)) => {
                    let e = e.to_string();
                    let first = all.iter().position(|x| *x == all[i]).unwrap();
                    let key = |j: usize| if j < a.len() { "targets[0].hosts" } else { "targets[1].hosts" };
                    prop_assert!(e.contains(&format!("duplicate target icmp/127.0.0.{}: already listed by {}", all[i], key(first))), "{}", e);
                    // The error points at the repeat: line 4 holds group 0's hosts, line 7
                    // group 1's, each entry after `hosts = [` and the entries before it.
                    let (line, before) = if i < a.len() { (4, &a[..i]) } else { (7, &b[..i - a.len()]) };
                    let col = 10 + before.iter().map(|x| format!("\"127.0.0.{x}\", ").len()).sum::<usize>();
                    prop_assert!(e.starts_with(&format!("test.toml:{line}:{col}: ")), "{}", e);
                }
                (want, got) => prop_assert!(false, "expected repeat {:?}, got {:?}", want, got.map(|s| s.targets.len())),
            }
        }
    }
}

/// The README's tables of defaults say what the code does.
#[test]
fn the_readme_defaults_match_the_code() {
    use ringpoll_actors::probe::health::Thresholds;
    use ringpoll_actors::probe::ssh::{DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_OUTPUT};
    let readme = include_str!("../../README.md");
    // Key cell → default cell, for every table row of the form `| key | default | meaning |`.
    let rows: BTreeMap<&str, &str> = readme
        .lines()
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| ")?.splitn(3, " | ");
            Some((cells.next()?, cells.next()?))
        })
        .collect();
    let q = |d: Duration| format!("`\"{}\"`", humantime::format_duration(d));
    let c = |v: &dyn std::fmt::Display| format!("`{v}`");
    let (p, t) = (RestartPolicy::default(), Thresholds::default());
    let expected = [
        ("`[cluster] weight`", c(&DEFAULT_WEIGHT)),
        ("`[cluster] replicas`", c(&DEFAULT_REPLICAS)),
        ("`[cluster] heartbeat_interval`", q(DEFAULT_HEARTBEAT)),
        ("`[cluster] suspect_after`", q(DEFAULT_SUSPECT)),
        ("`[cluster] dead_after`", q(DEFAULT_DEAD)),
        ("`[cluster] rebalance_delay`", q(DEFAULT_REBALANCE)),
        ("`[cluster] redial_max`", q(DEFAULT_REDIAL_MAX)),
        (
            "`[cluster.tls] cert`, `key`, `ca`, `server_name`",
            format!("none, `\"{DEFAULT_TLS_SERVER_NAME}\"`"),
        ),
        ("`[http] listen`", format!("`\"{DEFAULT_HTTP}\"`")),
        (
            "`[probe] rise`, `fall`",
            format!("`{}`, `{}`", t.rise, t.fall),
        ),
        ("`[probe] interval`", q(DEFAULT_INTERVAL)),
        ("`[probe] timeout`", q(DEFAULT_TIMEOUT)),
        ("`[probe] max_in_flight`", c(&DEFAULT_MAX_IN_FLIGHT)),
        ("`[probe] max_targets`", c(&DEFAULT_MAX_TARGETS)),
        (
            "`[probe] max_rate_per_network`",
            c(&ringpoll_actors::probe::pace::DEFAULT_PER_NETWORK),
        ),
        ("`[results] path`", format!("`\"{DEFAULT_RESULTS}\"`")),
        ("`[results] buffer`", c(&DEFAULT_BUFFER)),
        ("`[results] flush_interval`", q(DEFAULT_FLUSH)),
        (
            "`[supervision] max_restarts`, `within`",
            format!("`{}`, {}", p.max_restarts, q(p.within)),
        ),
        (
            "`[supervision] backoff_min`, `backoff_max`",
            format!("{}, {}", q(p.backoff_min), q(p.backoff_max)),
        ),
        ("`[supervision] quarantine`", q(p.quarantine)),
        ("`port`", c(&DEFAULT_SSH_PORT)),
        ("`expect_exit`", c(&DEFAULT_EXPECT_EXIT)),
        ("`max_output`", c(&DEFAULT_MAX_OUTPUT)),
        (
            "`max_concurrent_ssh` (`[probe.ssh]` only)",
            c(&DEFAULT_MAX_CONCURRENT),
        ),
        (
            "`max_sessions` (`[probe.ssh]` only)",
            c(&ringpoll_actors::probe::ssh::DEFAULT_MAX_SESSIONS),
        ),
        (
            "`max_new_logins_per_s` (`[probe.ssh]` only)",
            c(&ringpoll_actors::probe::ssh::DEFAULT_MAX_NEW_LOGINS_PER_S),
        ),
        (
            "`max_session_age`",
            q(ringpoll_actors::probe::ssh::DEFAULT_MAX_SESSION_AGE),
        ),
    ];
    for (key, want) in expected {
        let got = rows
            .get(key)
            .unwrap_or_else(|| panic!("README.md has no table row for {key}"));
        assert_eq!(*got, want, "README.md's default of {key}");
    }
    // The retry interval's default is described, not a constant.
    assert_eq!(rows.get("`[probe] retry_interval`"), Some(&"interval / 4"));
    assert_eq!(
        ringpoll_actors::model::default_retry_interval(Duration::from_secs(4)),
        Duration::from_secs(1)
    );
}

/// A config in `dir` with `groups` appended, parsed through `reader`.
fn parse_in(
    dir: &Path,
    groups: &str,
    reader: super::sources::SourceReader<'_>,
) -> Result<Settings, ConfigError> {
    let text = format!("{NODE}{groups}");
    super::parse_with(
        &dir.join("config.toml"),
        &text,
        dir,
        &Overrides::default(),
        reader,
    )
}

#[test]
fn file_sd_groups_read_json_and_yaml_with_ports_and_merged_labels() {
    use super::sources::{Mode, SourceCache, SourceReader};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(
        dir.path().join("sd/a.json"),
        r#"[{"targets": ["127.0.0.1", "127.0.0.2:2222"], "labels": {"env": "lab", "team": "sd"}}]"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("sd/b.yaml"), "- targets: ['[::1]:80']\n").unwrap();
    std::fs::write(dir.path().join("sd/ignored.txt"), "not a list").unwrap();
    let none = SourceCache::default();
    let s = parse_in(
        dir.path(),
        "[[targets]]\nfile_sd = \"sd/*.json\"\nprobe = \"tcp\"\nport = 22\nlabels = { team = \"ops\", site = \"lo\" }\n\
         [[targets]]\nfile_sd = \"sd/*.yaml\"\nprobe = \"tcp\"\nport = 22\n",
        SourceReader::new(Mode::Strict, &none),
    )
    .unwrap();
    let ids: Vec<&str> = s.targets.iter().map(|t| &*t.id).collect();
    assert_eq!(ids, ["127.0.0.1:22", "127.0.0.2:2222", "[::1]:80"]);
    let labels = &s.targets[0].labels;
    assert_eq!(
        (
            labels["env"].as_str(),
            labels["team"].as_str(),
            labels["site"].as_str()
        ),
        ("lab", "sd", "lo"),
        "the entry's labels win over the group's"
    );
    assert_eq!(s.sources.watch.len(), 2);
    assert_eq!(s.sources.refresh, Some(DEFAULT_FILE_REFRESH));
    assert_eq!(s.groups[0].source, "file_sd sd/*.json");
}

#[test]
fn file_sd_errors_name_the_file_entry_and_target_and_duplicates_both_places() {
    use super::sources::{Mode, SourceCache, SourceReader};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"[{"targets": ["127.0.0.1"]}, {"targets": ["127.0.0.2", "127.0.0.3:80"]}]"#,
    )
    .unwrap();
    let none = SourceCache::default();
    let e = parse_in(
        dir.path(),
        "[[targets]]\nfile_sd = \"*.json\"\nprobe = \"icmp\"\n",
        SourceReader::new(Mode::Strict, &none),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.ends_with("a.json: entry 2 target 2: \"127.0.0.3:80\": icmp targets take no port"),
        "{e}"
    );
    std::fs::write(dir.path().join("a.json"), r#"[{"targets": ["127.0.0.1"]}]"#).unwrap();
    std::fs::write(dir.path().join("hosts.txt"), "127.0.0.1\n").unwrap();
    let e = parse_in(
        dir.path(),
        "[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n[[targets]]\nfile_sd = \"*.json\"\nprobe = \"icmp\"\n",
        SourceReader::new(Mode::Strict, &none),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("a.json: entry 1 target 1: duplicate target icmp/127.0.0.1: already listed by")
            && e.contains("hosts.txt:1"),
        "{e}"
    );
}

#[test]
fn a_source_that_breaks_keeps_its_last_good_content_when_refreshed() {
    use super::sources::{Mode, SourceCache, SourceReader};
    let dir = tempfile::tempdir().unwrap();
    let groups = "[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n[[targets]]\nfile_sd = \"sd-*.json\"\nprobe = \"icmp\"\n";
    std::fs::write(dir.path().join("hosts.txt"), "127.0.0.1\n127.0.0.2\n").unwrap();
    std::fs::write(
        dir.path().join("sd-a.json"),
        r#"[{"targets": ["127.0.0.3"]}]"#,
    )
    .unwrap();
    let none = SourceCache::default();
    let good = parse_in(dir.path(), groups, SourceReader::new(Mode::Strict, &none)).unwrap();
    assert_eq!(good.targets.len(), 3);
    // The hosts file gets a bad line, the file_sd file bad JSON, and a new bad file appears.
    std::fs::write(
        dir.path().join("hosts.txt"),
        "127.0.0.1\n127.0.0.2\nno such host!\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sd-a.json"), "[{").unwrap();
    std::fs::write(dir.path().join("sd-b.json"), "{}").unwrap();
    let cache = good.sources.cache.clone();
    assert!(parse_in(dir.path(), groups, SourceReader::new(Mode::Strict, &cache)).is_err());
    let kept = parse_in(
        dir.path(),
        groups,
        SourceReader::new(Mode::KeepLastGood, &cache),
    )
    .unwrap();
    let ids: Vec<&str> = kept.targets.iter().map(|t| &*t.id).collect();
    assert_eq!(ids, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert_eq!(kept.sources.errors.len(), 3, "{:?}", kept.sources.errors);
    let hosts_error = &kept.sources.errors[&dir.path().join("hosts.txt").display().to_string()];
    assert!(hosts_error.contains("hosts.txt:3:1"), "{hosts_error}");
    // Fixed: the new content is read, and no error is left.
    std::fs::write(dir.path().join("hosts.txt"), "127.0.0.1\n127.0.0.4\n").unwrap();
    std::fs::write(dir.path().join("sd-a.json"), "[]").unwrap();
    std::fs::remove_file(dir.path().join("sd-b.json")).unwrap();
    let cache = kept.sources.cache.clone();
    let fixed = parse_in(
        dir.path(),
        groups,
        SourceReader::new(Mode::KeepLastGood, &cache),
    )
    .unwrap();
    let ids: Vec<&str> = fixed.targets.iter().map(|t| &*t.id).collect();
    assert_eq!(ids, ["127.0.0.1", "127.0.0.4"]);
    assert!(fixed.sources.errors.is_empty());
}

#[test]
fn log_format_is_text_or_json_and_the_flag_wins() {
    let group = "[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n";
    assert_eq!(
        parse_str(&format!("{NODE}{group}")).unwrap().log_format,
        LogFormat::Text
    );
    let json = format!("{NODE}[log]\nformat = \"json\"\n{group}");
    assert_eq!(parse_str(&json).unwrap().log_format, LogFormat::Json);
    let ov = Overrides {
        log_format: Some(LogFormat::Text),
        ..Overrides::default()
    };
    let s = parse(Path::new("t.toml"), &json, Path::new("."), &ov).unwrap();
    assert_eq!(s.log_format, LogFormat::Text);
    let e = err(&format!("{NODE}[log]\nformat = \"xml\"\n{group}"));
    assert!(
        e.contains(":4:10: log.format: unknown variant `xml`, expected `text` or `json`"),
        "{e}"
    );
}

#[test]
fn sqlite_flag_replaces_the_first_sqlite_sink_or_adds_one() {
    let group = "[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n";
    let ov = Overrides {
        sqlite: Some(PathBuf::from("/tmp/n2.db")),
        ..Overrides::default()
    };
    let with_sink = format!(
        "{NODE}[[sinks]]\nkind = \"sqlite\"\npath = \"shared.db\"\nretention = \"1h\"\n{group}"
    );
    let s = parse(Path::new("t.toml"), &with_sink, Path::new("/etc/rp"), &ov).unwrap();
    assert!(s.results.sinks.contains(&SinkSpec::Sqlite {
        path: PathBuf::from("/tmp/n2.db"),
        retention: Some(Duration::from_secs(3600)),
    }));
    assert!(!s
        .results
        .sinks
        .iter()
        .any(|k| matches!(k, SinkSpec::Sqlite { path, .. } if path.ends_with("shared.db"))));
    let s = parse(
        Path::new("t.toml"),
        &format!("{NODE}{group}"),
        Path::new("."),
        &ov,
    )
    .unwrap();
    assert_eq!(
        s.results.sinks.last(),
        Some(&SinkSpec::Sqlite {
            path: PathBuf::from("/tmp/n2.db"),
            retention: None,
        })
    );
}

#[test]
fn icmp_echoes_default_to_three_and_are_checked() {
    let icmp = |extra: &str| {
        format!("{NODE}[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n{extra}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n")
    };
    let echoes = |s: &Settings| match &s.targets[0].check {
        Check::Icmp(e) => *e,
        other => panic!("{other:?}"),
    };
    let e = echoes(&parse_str(&icmp("")).unwrap());
    assert_eq!(
        (e.count, e.packet_interval, e.max_loss),
        (3, Duration::from_millis(100), None)
    );
    let e = echoes(
        &parse_str(&icmp(
            "count = 5\npacket_interval = \"20ms\"\nmax_loss = 0.2\nmax_rtt = \"50ms\"\n",
        ))
        .unwrap(),
    );
    assert_eq!(
        (e.count, e.packet_interval, e.max_loss, e.max_rtt),
        (
            5,
            Duration::from_millis(20),
            Some(0.2),
            Some(Duration::from_millis(50))
        )
    );
    for (extra, want) in [
        ("count = 0\n", "test.toml:6:9: targets[0].count: expected 1 to 100 echoes per probe"),
        ("max_loss = 1.5\n", "targets[0].max_loss: expected the share of echoes that may be lost, from 0 to 1"),
        ("max_rtt = \"2s\"\n", "targets[0].max_rtt must be more than 0 and at most the timeout (500ms)"),
        ("packet_interval = \"0s\"\n", "targets[0].packet_interval must be at least 1ms"),
        ("count = 10\n", "targets[0]: 10 echoes 100ms apart, each waited for up to the timeout (500ms), take up to 1s 400ms: not less than the interval (1s)"),
    ] {
        let e = err(&icmp(extra));
        assert!(e.contains(want), "{extra}: {e}");
    }
    // A tcp group's own count is an error; [probe]'s applies to icmp groups only.
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 22\ncount = 3\n"
    ));
    assert!(
        e.contains("targets[0].count is for icmp probes, not tcp"),
        "{e}"
    );
    assert!(parse_str(&format!("{NODE}[probe]\ncount = 5\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 22\n")).is_ok());
}

#[test]
fn source_addresses_are_checked_and_a_group_overrides_the_default() {
    let s = parse_str(&format!(
        "{NODE}[probe]\nsource = \"127.0.0.1\"\n\
         [[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\n\
         [[targets]]\nhosts = [\"127.0.0.3\"]\nprobe = \"tcp\"\nport = 22\nsource = \"127.0.1.2\"\n\
         [[targets]]\nhosts = [\"::1\"]\nprobe = \"icmp\"\nsource = \"::1\"\n"
    ))
    .unwrap();
    let sources: Vec<String> = s
        .targets
        .iter()
        .map(|t| t.source.unwrap().to_string())
        .collect();
    assert_eq!(sources, ["127.0.0.1", "127.0.1.2", "::1"]);
    assert!(parse_str(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\n"
    ))
    .unwrap()
    .targets[0]
        .source
        .is_none());
    let e = err(&format!(
        "{NODE}[[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\nsource = \"lo\"\n"
    ));
    assert!(
        e.starts_with("test.toml:6:10: targets[0].source: \"lo\": expected an IP address"),
        "{e}"
    );
    // Not an address of this host (only ::1 is IPv6 loopback): refused at load, nothing sent.
    let e = err(&format!(
        "{NODE}[probe]\nsource = \"::2\"\n[[targets]]\nhosts = [\"::1\"]\nprobe = \"icmp\"\n"
    ));
    assert!(
        e.contains("probe.source: ::2 is not an address of this host"),
        "{e}"
    );
}

#[test]
fn confirm_is_one_to_replicas() {
    let group = "[[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\n";
    let s = parse_str(&format!(
        "{NODE}[cluster]\nreplicas = 3\n[probe]\nconfirm = 2\n{group}\
         [[targets]]\nhosts = [\"127.0.0.3\"]\nprobe = \"icmp\"\nconfirm = 3\n"
    ))
    .unwrap();
    let k: Vec<u32> = s.targets.iter().map(|t| t.confirm).collect();
    assert_eq!(k, [2, 3]);
    assert_eq!(
        parse_str(&format!("{NODE}{group}")).unwrap().targets[0].confirm,
        1
    );
    let e = err(&format!("{NODE}{group}confirm = 2\n"));
    assert!(
        e.starts_with("test.toml:6:11: targets[0].confirm: expected 1 to cluster.replicas (1)"),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}[cluster]\nreplicas = 2\n[probe]\nconfirm = 0\n{group}"
    ));
    assert!(
        e.contains("probe.confirm: expected 1 to cluster.replicas (2)"),
        "{e}"
    );
}

#[test]
fn the_readme_confirmation_example_is_valid() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Confirming from several vantage points")
        .nth(1)
        .expect("the README section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its example");
    let s = parse_str(&format!("{NODE}{block}")).unwrap();
    assert_eq!(
        (s.targets[0].confirm, s.targets[0].source.is_some()),
        (2, true)
    );
}

#[test]
fn notifiers_are_checked() {
    use ringpoll_actors::notify::spec::NotifySpec;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("am.token"), "s3cret\n").unwrap();
    let text = format!(
        "{NODE}[[notify]]\nkind = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093\", \"http://127.0.0.2:9093\"]\n\
         bearer_token_file = \"am.token\"\nresend = \"30s\"\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:8080/hook\"\nqueue = 50\n"
    );
    let s = parse(
        Path::new("t.toml"),
        &text,
        dir.path(),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.notify,
        [
            NotifySpec::Alertmanager {
                urls: vec![
                    "http://127.0.0.1:9093".into(),
                    "http://127.0.0.2:9093".into()
                ],
                token: Some("s3cret".into()),
                resend: Duration::from_secs(30),
            },
            NotifySpec::Webhook {
                url: "http://127.0.0.1:8080/hook".into(),
                token: None,
                queue: 50,
            },
        ]
    );
    let am = "[[notify]]\nkind = \"alertmanager\"\n";
    let e = err(&format!("{NODE}{am}url = \"https://127.0.0.1:9093\"\n"));
    assert!(
        e.starts_with(
            "test.toml:5:7: notify[0].url: \"https://127.0.0.1:9093\": expected an http:// URL"
        ),
        "{e}"
    );
    let e = err(&format!("{NODE}{am}"));
    assert!(e.contains("notify[0].url: a notifier needs url"), "{e}");
    let e = err(&format!(
        "{NODE}{am}url = \"http://127.0.0.1:9093\"\nqueue = 5\n"
    ));
    assert!(
        e.contains("notify[0].queue: not a setting of kind = \"alertmanager\""),
        "{e}"
    );
    let e = err(&format!(
        "{NODE}{am}url = \"http://127.0.0.1:9093\"\nresend = \"100ms\"\n"
    ));
    assert!(e.contains("notify[0].resend: expected 1s to 1h"), "{e}");
    let e = err(&format!(
        "{NODE}[[notify]]\nkind = \"pager\"\nurl = \"http://127.0.0.1:1\"\n"
    ));
    assert!(e.contains("unknown variant `pager`"), "{e}");
}

#[test]
fn the_readme_notification_example_is_valid() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("## Notifications")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("the README's example");
    let s = parse_str(&format!("{NODE}{block}")).unwrap();
    assert_eq!(s.notify.len(), 2);
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_file_is_skipped() {
    // Windows editors save UTF-8 with a BOM; every file ringpoll reads takes it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hosts.txt"),
        "\u{feff}127.0.0.1\n127.0.0.2\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(
        dir.path().join("sd/a.json"),
        "\u{feff}[{\"targets\": [\"127.0.0.3\"]}]",
    )
    .unwrap();
    std::fs::write(dir.path().join("cookie"), "\u{feff}s3cret\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "\u{feff}{NODE}[cluster]\nlisten = \"127.0.1.1:4701\"\ncookie_file = \"cookie\"\n\
             [[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n\
             [[targets]]\nfile_sd = \"sd/*.json\"\nprobe = \"icmp\"\n"
        ),
    )
    .unwrap();
    let s = crate::config::load(&config, &Overrides::default()).unwrap();
    let ids: Vec<&str> = s.targets.iter().map(|t| &*t.id).collect();
    assert_eq!(ids, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert_eq!(s.cluster.net.unwrap().cookie, "s3cret");
}
