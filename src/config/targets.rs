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

use super::error::{ConfigError, Locator};
use super::raw::RawGroup;

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
        }
    }

    /// Adds the targets of group `i`; returns a short description of where they came from.
    pub(super) fn group(
        &mut self,
        i: usize,
        g: &Spanned<RawGroup>,
        t: GroupTemplate,
    ) -> Result<String, ConfigError> {
        let raw = g.get_ref();
        let sources = [
            raw.hosts.as_ref().map(|h| h.span().start),
            raw.cidr.as_ref().map(|c| c.span().start),
            raw.file.as_ref().map(|f| f.span().start),
        ];
        let set: Vec<usize> = sources.iter().flatten().copied().collect();
        match set.len() {
            0 => {
                return Err(self.loc.at(
                    g.span().start,
                    format!("targets[{i}]: set exactly one of hosts = [..], cidr = \"..\" or file = \"..\""),
                ))
            }
            1 => {}
            _ => {
                return Err(self.loc.at(
                    set[1],
                    format!("targets[{i}]: hosts, cidr and file are exclusive; set exactly one per [[targets]] group"),
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
        let file = raw.file.as_ref().expect("exactly one source is set");
        self.file(i, file, &t)?;
        Ok(format!("file {}", file.get_ref()))
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
    ) -> Result<(), ConfigError> {
        let key = format!("targets[{i}].file");
        let path = self.base.join(file.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            self.loc.at(
                file.span().start,
                format!("{key}: cannot read {}: {e}", path.display()),
            )
        })?;
        let floc = Locator::new(&path, &text);
        self.reserve(text.lines().count().min(self.max - self.out.len()));
        let source = self.source(Source::File { path: path.clone() });
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
            return Err(self.loc.at(
                file.span().start,
                format!("{key}: {} lists no hosts", path.display()),
            ));
        }
        Ok(())
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
        self.origins.push(origin);
        self.out.push(Arc::new(spec));
        Ok(())
    }
}
