//! Expanding `[[targets]]` groups into targets: host lists, CIDR blocks and host files, with
//! duplicates across all groups rejected and the `max_targets` cap enforced before anything big
//! is allocated.
//!
//! A CIDR block yields every address in it, the network and broadcast addresses included
//! (`127.0.0.0/24` is 256 targets); list hosts, or use narrower blocks, to leave some out.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4AddrRange, Ipv6AddrRange};
use toml::Spanned;

use ringpoll_actors::model::{Check, Host, Labels, TargetSpec};
use ringpoll_actors::probe::health::Thresholds;

use super::defaults::{DEFAULT_FILE_REFRESH, DEFAULT_HTTP_REFRESH};
use super::error::{ConfigError, Locator};
use super::raw::RawGroup;
use super::sources::{parse_sd, Read, SourceReader};

/// Collects the targets of all groups.
pub(super) struct Expander<'a> {
    loc: &'a Locator<'a>,
    base: &'a Path,
    max: usize,
    /// Where each target was listed, in the order of `out` (rendered only for a duplicate's
    /// error message).
    origins: Vec<Origin>,
    /// The places targets are listed in; `Origin::source` indexes this.
    sources: Vec<Source>,
    out: Vec<Arc<TargetSpec>>,
}

/// A place targets are listed in.
#[derive(Debug)]
enum Source {
    /// The config file, under `key`; positions are byte offsets.
    Config { key: String },
    /// A hosts file; positions are line numbers.
    File { path: std::path::PathBuf },
    /// A file_sd file or an http_sd URL; positions are entry numbers, columns target numbers.
    Sd { id: String },
}

/// Where a target was listed: a source, a position in it (a byte offset in the config, a line
/// in a hosts file) and, for hosts files, the column. Small and `Copy`: one is kept per target.
#[derive(Clone, Copy, Debug)]
struct Origin {
    source: usize,
    pos: usize,
    col: usize,
}

/// The settings shared by a group's targets.
#[derive(Clone)]
pub(super) struct GroupTemplate {
    /// How they are checked.
    pub(super) check: Check,
    /// Rise/fall and retry interval.
    pub(super) health: (Thresholds, Duration),
    /// Probe interval.
    pub(super) interval: Duration,
    /// Probe timeout.
    pub(super) timeout: Duration,
    /// The group's labels.
    pub(super) labels: Labels,
    /// The address probes are sent from, if set.
    pub(super) source: Option<IpAddr>,
    /// Owners that must see a target down (`confirm`).
    pub(super) confirm: u32,
}

impl<'a> Expander<'a> {
    pub(super) fn new(loc: &'a Locator<'a>, base: &'a Path, max: usize) -> Self {
        Expander {
            loc,
            base,
            max,
            origins: Vec::new(),
            sources: Vec::new(),
            out: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// The targets, once none is listed twice. Duplicates are found here, after every group
    /// is expanded, by sorting hashes of the keys: at 65,536 targets that is about a third of
    /// the cost of a hash map filled as targets are added. The duplicate reported is the first
    /// repeat in listing order, with where it was first listed.
    pub(super) fn finish(self) -> Result<Vec<Arc<TargetSpec>>, ConfigError> {
        let hash = |t: &TargetSpec| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(t.check.kind().as_str().as_bytes());
            h.update(&[0]);
            h.update(t.id.as_bytes());
            h.digest()
        };
        let mut keyed: Vec<(u64, usize)> = self
            .out
            .iter()
            .enumerate()
            .map(|(i, t)| (hash(t), i))
            .collect();
        keyed.sort_unstable();
        // (repeat, first listing), with the smallest repeat index.
        let mut found: Option<(usize, usize)> = None;
        for run in keyed.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
            for (k, &(_, later)) in run.iter().enumerate() {
                let first = run[..k]
                    .iter()
                    .map(|&(_, i)| i)
                    .find(|&i| self.out[i].key() == self.out[later].key());
                if let Some(first) = first {
                    if found.is_none_or(|(r, _)| later < r) {
                        found = Some((later, first));
                    }
                }
            }
        }
        match found {
            None => Ok(self.out),
            Some((later, first)) => Err(self.duplicate(later, first)),
        }
    }

    /// The error for target `later`, which repeats target `first`.
    fn duplicate(&self, later: usize, first: usize) -> ConfigError {
        let key = self.out[later].key();
        let first = self.origins[first];
        let first = match &self.sources[first.source] {
            Source::Config { key } => where_in(self.loc, first.pos, key),
            Source::File { path } => format!("{}:{}", path.display(), first.pos),
            Source::Sd { id } => format!("{id} entry {} target {}", first.pos, first.col),
        };
        let msg =
            format!("duplicate target {key}: already listed by {first}; list each target once");
        let at = self.origins[later];
        match &self.sources[at.source] {
            Source::Config { .. } => self.loc.at(at.pos, msg),
            Source::File { path } => ConfigError::At {
                path: path.clone(),
                line: at.pos,
                col: at.col,
                msg,
            },
            Source::Sd { id } => ConfigError::Read {
                path: id.into(),
                msg: format!("entry {} target {}: {msg}", at.pos, at.col),
            },
        }
    }

    /// Adds the targets of group `i`, reading its sources through `sources`; returns a short
    /// description of where they came from.
    pub(super) fn group(
        &mut self,
        i: usize,
        g: &Spanned<RawGroup>,
        t: GroupTemplate,
        sources: &mut SourceReader<'_>,
    ) -> Result<String, ConfigError> {
        let raw = g.get_ref();
        let given = [
            raw.hosts.as_ref().map(|h| h.span().start),
            raw.cidr.as_ref().map(|c| c.span().start),
            raw.file.as_ref().map(|f| f.span().start),
            raw.file_sd.as_ref().map(|f| f.span().start),
            raw.http_sd.as_ref().map(|f| f.span().start),
        ];
        let set: Vec<usize> = given.iter().flatten().copied().collect();
        match set.len() {
            0 => {
                return Err(self.loc.at(
                    g.span().start,
                    format!("targets[{i}]: set exactly one of hosts = [..], cidr, file, file_sd or http_sd"),
                ))
            }
            1 => {}
            _ => {
                return Err(self.loc.at(
                    set[1],
                    format!("targets[{i}]: hosts, cidr, file, file_sd and http_sd are exclusive; set exactly one per [[targets]] group"),
                ))
            }
        }
        if let Some(hosts) = &raw.hosts {
            if hosts.get_ref().is_empty() {
                return Err(self.loc.at(
                    hosts.span().start,
                    format!("targets[{i}].hosts is empty; list at least one host"),
                ));
            }
            let source = self.source(Source::Config {
                key: format!("targets[{i}].hosts"),
            });
            for h in hosts.get_ref() {
                let at = h.span().start;
                let host = Host::parse(h.get_ref())
                    .map_err(|m| self.loc.at(at, format!("targets[{i}].hosts: {m}")))?;
                let loc = self.loc;
                let origin = Origin {
                    source,
                    pos: at,
                    col: 0,
                };
                self.add(host, &t, origin, |msg| loc.at(at, msg))?;
            }
            return Ok(format!("hosts ({})", hosts.get_ref().len()));
        }
        if let Some(cidr) = &raw.cidr {
            let at = cidr.span().start;
            self.cidr(i, cidr.get_ref(), at, &t)?;
            return Ok(format!("cidr {}", cidr.get_ref()));
        }
        let refresh = raw.refresh_interval.as_ref().map(|r| r.get_ref().0);
        if let Some(file) = &raw.file {
            sources.refresh_every(refresh.unwrap_or(DEFAULT_FILE_REFRESH));
            self.file(i, file, &t, sources)?;
            return Ok(format!("file {}", file.get_ref()));
        }
        if let Some(sd) = &raw.file_sd {
            sources.refresh_every(refresh.unwrap_or(DEFAULT_FILE_REFRESH));
            self.file_sd(i, sd, &t, sources)?;
            return Ok(format!("file_sd {}", sd.get_ref()));
        }
        let url = raw.http_sd.as_ref().expect("exactly one source is set");
        sources.refresh_every(refresh.unwrap_or(DEFAULT_HTTP_REFRESH));
        let token = match &raw.http_sd_token_file {
            None => None,
            Some(f) => {
                let path = self.base.join(f.get_ref());
                let text = crate::config::text::read_text(&path).map_err(|e| {
                    self.loc.at(
                        f.span().start,
                        format!(
                            "targets[{i}].http_sd_token_file: cannot read {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
        };
        let body = sources.http(url.get_ref(), token.as_deref());
        self.sd_list(url.get_ref(), &body, &t, sources, true)?;
        Ok(format!("http_sd {}", url.get_ref()))
    }
}

/// "`key` at PATH:LINE:COL", for duplicate-target messages.
fn where_in(loc: &Locator<'_>, at: usize, key: &str) -> String {
    match loc.at(at, "") {
        ConfigError::At {
            path, line, col, ..
        } => format!("{key} at {}:{line}:{col}", path.display()),
        other => other.to_string(),
    }
}

impl<'a> Expander<'a> {
    fn cidr(
        &mut self,
        i: usize,
        text: &str,
        at: usize,
        t: &GroupTemplate,
    ) -> Result<(), ConfigError> {
        let key = format!("targets[{i}].cidr");
        let net: IpNet = text.trim().parse().map_err(|_| {
            self.loc.at(
                at,
                format!("{key}: {text:?} is not a CIDR block; expected e.g. \"127.0.0.0/24\""),
            )
        })?;
        if net.trunc() != net {
            return Err(self.loc.at(
                at,
                format!(
                    "{key}: {net} has host bits set; did you mean {}?",
                    net.trunc()
                ),
            ));
        }
        let bits = u32::from(net.max_prefix_len() - net.prefix_len());
        let size: u128 = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
        let room = (self.max - self.out.len()) as u128;
        if size > room {
            return Err(self.loc.at(
                at,
                format!(
                    "{key}: {net} has {size} addresses, more than the {room} left under probe.max_targets = {}; \
                     use a smaller block or raise probe.max_targets",
                    self.max
                ),
            ));
        }
        let origin = Origin {
            source: self.source(Source::Config { key }),
            pos: at,
            col: 0,
        };
        self.reserve(size as usize);
        let addrs: Box<dyn Iterator<Item = IpAddr>> = match net {
            IpNet::V4(n) => {
                Box::new(Ipv4AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V4))
            }
            IpNet::V6(n) => {
                Box::new(Ipv6AddrRange::new(n.network(), n.broadcast()).map(IpAddr::V6))
            }
        };
        for ip in addrs {
            let loc = self.loc;
            self.add(Host::Ip(ip), t, origin, |msg| loc.at(at, msg))?;
        }
        Ok(())
    }

    fn file(
        &mut self,
        i: usize,
        file: &Spanned<String>,
        t: &GroupTemplate,
        sources: &mut SourceReader<'_>,
    ) -> Result<(), ConfigError> {
        let key = format!("targets[{i}].file");
        let path = self.base.join(file.get_ref());
        let id = path.display().to_string();
        let text = match sources.file(&path) {
            Ok(Read::Content(text)) => text,
            Ok(Read::Nothing) => return Ok(()),
            Err(why) => return Err(self.loc.at(file.span().start, format!("{key}: {why}"))),
        };
        let mark = self.mark();
        match self.hosts_file(&key, &path, &text, t, file.span().start) {
            Ok(()) => sources.good(&id, text),
            Err(err) => {
                self.rollback(mark);
                match sources.failed(&id, Some(&text), err.to_string()) {
                    Err(_) => return Err(err),
                    Ok(Read::Nothing) => {}
                    Ok(Read::Content(last)) => {
                        self.hosts_file(&key, &path, &last, t, file.span().start)?;
                        sources.good(&id, last);
                    }
                }
            }
        }
        Ok(())
    }

    /// The hosts of one hosts file's `text`.
    fn hosts_file(
        &mut self,
        key: &str,
        path: &Path,
        text: &str,
        t: &GroupTemplate,
        at_key: usize,
    ) -> Result<(), ConfigError> {
        let floc = Locator::new(path, text);
        self.reserve(text.lines().count().min(self.max - self.out.len()));
        let source = self.source(Source::File {
            path: path.to_path_buf(),
        });
        let mut offset = 0usize;
        let mut count = 0usize;
        for (line_no, line) in text.split_inclusive('\n').enumerate() {
            let start = offset;
            offset += line.len();
            let content = line.split('#').next().unwrap_or("");
            let entry = content.trim();
            if entry.is_empty() {
                continue;
            }
            let at = start + (content.len() - content.trim_start().len());
            let host = Host::parse(entry).map_err(|m| {
                floc.at(
                    at,
                    format!("{m}; expected one host per line (# starts a comment)"),
                )
            })?;
            let origin = Origin {
                source,
                pos: line_no + 1,
                col: at - start + 1,
            };
            self.add(host, t, origin, |msg| floc.at(at, msg))?;
            count += 1;
        }
        if count == 0 {
            return Err(self
                .loc
                .at(at_key, format!("{key}: {} lists no hosts", path.display())));
        }
        Ok(())
    }

    /// Every file matching the group's file_sd glob (a `*` pattern in the last segment).
    fn file_sd(
        &mut self,
        i: usize,
        sd: &Spanned<String>,
        t: &GroupTemplate,
        sources: &mut SourceReader<'_>,
    ) -> Result<(), ConfigError> {
        let key = format!("targets[{i}].file_sd");
        let pattern = self.base.join(sd.get_ref());
        let (dir, glob) = match (pattern.parent(), pattern.file_name()) {
            (Some(d), Some(g)) => (d.to_path_buf(), g.to_string_lossy().into_owned()),
            _ => {
                return Err(self.loc.at(
                    sd.span().start,
                    format!("{key}: expected a path such as \"sd/*.json\""),
                ))
            }
        };
        let files = sources
            .glob(&dir, &glob)
            .map_err(|why| self.loc.at(sd.span().start, format!("{key}: {why}")))?;
        for path in files {
            let text = match sources.read(&path) {
                Ok(Read::Content(text)) => text,
                Ok(Read::Nothing) => continue,
                Err(why) => return Err(self.loc.at(sd.span().start, format!("{key}: {why}"))),
            };
            let id = path.display().to_string();
            self.sd_list(&id, &text, t, sources, false)?;
        }
        Ok(())
    }

    /// The targets of one file_sd or http_sd list (`text`, from source `id`). A list that does
    /// not parse, or names a bad target, is handled as `sources` says (for http_sd, always by
    /// keeping the last good list).
    fn sd_list(
        &mut self,
        id: &str,
        text: &Arc<String>,
        t: &GroupTemplate,
        sources: &mut SourceReader<'_>,
        http: bool,
    ) -> Result<(), ConfigError> {
        let mark = self.mark();
        let attempt = |me: &mut Self, text: &str| me.sd_entries(id, text, t);
        match attempt(self, text) {
            Ok(()) => {
                sources.good(id, text.clone());
                Ok(())
            }
            Err(why) => {
                self.rollback(mark);
                let fallback = if http {
                    sources.failed_keeping(id, Some(text), why.clone())
                } else {
                    sources.failed(id, Some(text), why.clone())
                };
                match fallback {
                    Err(_) => Err(ConfigError::Read {
                        path: id.into(),
                        msg: why,
                    }),
                    Ok(Read::Nothing) => Ok(()),
                    Ok(Read::Content(last)) => {
                        attempt(self, &last).map_err(|msg| ConfigError::Read {
                            path: id.into(),
                            msg,
                        })?;
                        sources.good(id, last);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Parses and adds a file_sd or http_sd list.
    fn sd_entries(&mut self, id: &str, text: &str, t: &GroupTemplate) -> Result<(), String> {
        let entries = parse_sd(id, text)?;
        let source = self.source(Source::Sd { id: id.to_string() });
        for (e, entry) in entries.iter().enumerate() {
            for name in entry.labels.keys() {
                check_label(name).map_err(|m| format!("{id}: entry {}: {m}", e + 1))?;
            }
            let labels: Labels = if entry.labels.is_empty() {
                t.labels.clone()
            } else {
                let mut merged = (*t.labels).clone();
                merged.extend(entry.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                Arc::new(merged)
            };
            for (n, target) in entry.targets.iter().enumerate() {
                let at = |m: String| format!("{id}: entry {} target {}: {m}", e + 1, n + 1);
                let (host, port) = sd_target(target, &t.check).map_err(at)?;
                let check = match (&t.check, port) {
                    (Check::Tcp { .. }, Some(port)) => Check::Tcp { port },
                    (Check::Ssh { settings, .. }, Some(port)) => Check::Ssh {
                        port,
                        settings: settings.clone(),
                    },
                    (c, _) => c.clone(),
                };
                let template = GroupTemplate {
                    check,
                    labels: labels.clone(),
                    ..t.clone()
                };
                let origin = Origin {
                    source,
                    pos: e + 1,
                    col: n + 1,
                };
                self.add(host, &template, origin, |msg| ConfigError::Read {
                    path: id.into(),
                    msg,
                })
                .map_err(|err| err.to_string())?;
            }
        }
        Ok(())
    }

    /// Where the lists stand now (to roll back a source that turns out bad).
    fn mark(&self) -> (usize, usize) {
        (self.out.len(), self.sources.len())
    }

    fn rollback(&mut self, (out, sources): (usize, usize)) {
        self.out.truncate(out);
        self.origins.truncate(out);
        self.sources.truncate(sources);
    }

    fn source(&mut self, source: Source) -> usize {
        self.sources.push(source);
        self.sources.len() - 1
    }

    /// Makes room for `n` more targets at once.
    fn reserve(&mut self, n: usize) {
        self.origins.reserve(n);
        self.out.reserve(n);
    }

    fn add(
        &mut self,
        host: Host,
        t: &GroupTemplate,
        origin: Origin,
        err: impl Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if self.out.len() >= self.max {
            return Err(err(format!(
                "more than probe.max_targets = {} targets; raise probe.max_targets or probe fewer targets",
                self.max
            )));
        }
        let spec = TargetSpec::new(
            host,
            t.check.clone(),
            t.interval,
            t.timeout,
            t.labels.clone(),
        )
        .with_health(t.health.0, t.health.1);
        let spec = TargetSpec {
            source: t.source,
            confirm: t.confirm,
            ..spec
        };
        self.origins.push(origin);
        self.out.push(Arc::new(spec));
        Ok(())
    }
}

/// A file_sd or http_sd target: a host, or `host:port` for the kinds with a port (IPv6 as
/// `[addr]:port`; a bare address is a host). Returns the host and the port given, if any.
fn sd_target(target: &str, check: &Check) -> Result<(Host, Option<u16>), String> {
    let target = target.trim();
    if let Ok(ip) = target.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), None));
    }
    let split = match target.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .map(|(h, p)| (h, Some(p)))
            .ok_or_else(|| format!("{target:?}: expected [ADDRESS]:PORT"))?,
        None => match target.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (target, None),
        },
    };
    let (host, port) = split;
    let host = Host::parse(host)?;
    let port = match port {
        None => None,
        Some(p) => {
            if matches!(check, Check::Icmp(_)) {
                return Err(format!("{target:?}: icmp targets take no port"));
            }
            match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return Err(format!("{target:?}: expected a port from 1 to 65535")),
            }
        }
    };
    Ok((host, port))
}

/// Label names follow Prometheus: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, and not
/// one of the names results already use.
pub(super) fn check_label(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.starts_with("__")
    {
        return Err(format!(
            "label name {name:?} is invalid; expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __"
        ));
    }
    if matches!(name, "target" | "probe" | "node" | "instance" | "job") {
        return Err(format!("label name {name:?} is reserved; choose another"));
    }
    Ok(())
}
