//! OpenSSH `known_hosts`, read once and kept in memory (russh's helpers re-read the file on
//! every call, which 10,000 targets a minute cannot afford).
//!
//! Supported, as OpenSSH documents them (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): comma-
//! separated host patterns with `*` and `?` wildcards and `!` negation; `[host]:port` for
//! non-standard ports; hashed hosts (`|1|salt|hmac-sha1`); `@revoked` lines (a revoked key is
//! never accepted). `@cert-authority` lines are skipped: ringpoll checks plain host keys.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64_MIME;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// One host pattern of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// A name or address pattern, possibly with wildcards, possibly negated.
    Plain { pattern: String, negated: bool },
    /// `|1|salt|hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Clone, Debug)]
struct Entry {
    patterns: Vec<Pattern>,
    revoked: bool,
    key: PublicKey,
}

/// What the file says about a host's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for the host.
    Known,
    /// Nothing is recorded for the host.
    Unknown,
    /// Other keys are recorded for the host (their SHA256 fingerprints), or the key is revoked.
    Changed {
        /// Fingerprints of the recorded keys.
        known: Vec<String>,
    },
}

/// A known_hosts file in memory.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
    cache: Mutex<HashMap<String, Vec<(bool, PublicKey)>>>,
}

/// The SHA256 fingerprint of a key as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22.
pub fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Entry {
    fn matches(&self, name: &str) -> bool {
        let mut hit = false;
        for p in &self.patterns {
            match p {
                Pattern::Plain { pattern, negated } => {
                    if glob(pattern, name) {
                        if *negated {
                            return false;
                        }
                        hit = true;
                    }
                }
                Pattern::Hashed { salt, hash } => {
                    if let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) {
                        if mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok() {
                            hit = true;
                        }
                    }
                }
            }
        }
        hit
    }
}

fn parse_patterns(field: &str) -> Option<Vec<Pattern>> {
    field
        .split(',')
        .map(|p| {
            if let Some(rest) = p.strip_prefix("|1|") {
                let (salt, hash) = rest.split_once('|')?;
                Some(Pattern::Hashed {
                    salt: BASE64_MIME.decode(salt.as_bytes()).ok()?,
                    hash: BASE64_MIME.decode(hash.as_bytes()).ok()?,
                })
            } else if let Some(neg) = p.strip_prefix('!') {
                Some(Pattern::Plain {
                    pattern: neg.to_string(),
                    negated: true,
                })
            } else {
                Some(Pattern::Plain {
                    pattern: p.to_string(),
                    negated: false,
                })
            }
        })
        .collect()
}

/// Parses known_hosts text; returns the entries and how many lines were not understood.
fn parse(text: &str) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority: not used
            }
            first = fields.next().unwrap_or("");
        }
        let rest: Vec<&str> = fields.collect();
        let parsed = parse_patterns(first).and_then(|patterns| {
            let key = PublicKey::from_openssh(&rest.join(" ")).ok()?;
            Some(Entry {
                patterns,
                revoked,
                key,
            })
        });
        match parsed {
            Some(e) => entries.push(e),
            None => bad += 1,
        }
    }
    (entries, bad)
}

impl KnownHosts {
    /// Reads `path`; a missing file is an empty one (so accept-new can create it).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let (entries, bad) = parse(&text);
        if bad > 0 {
            tracing::warn!(path = %path.display(), lines = bad, "known_hosts lines not understood were skipped");
        }
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            cache: Mutex::default(),
        })
    }

    /// Parses `text` as the content of `path` (tests).
    pub fn from_text(path: &Path, text: &str) -> Self {
        KnownHosts {
            path: path.to_path_buf(),
            entries: Mutex::new(parse(text).0),
            cache: Mutex::default(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn keys_for(&self, name: &str) -> Vec<(bool, PublicKey)> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return k.clone();
        }
        let keys: Vec<(bool, PublicKey)> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.matches(name))
            .map(|e| (e.revoked, e.key.clone()))
            .collect();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), keys.clone());
        keys
    }

    /// What the file says about `key` for `host` on `port`.
    pub fn verdict(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let keys = self.keys_for(&host_key_name(host, port));
        let same = |k: &PublicKey| k.key_data() == key.key_data();
        if keys.iter().any(|(revoked, k)| *revoked && same(k)) {
            return Verdict::Changed {
                known: vec!["@revoked".to_string()],
            };
        }
        let valid: Vec<&PublicKey> = keys.iter().filter(|(r, _)| !r).map(|(_, k)| k).collect();
        if valid.iter().any(|k| same(k)) {
            Verdict::Known
        } else if valid.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed {
                known: valid.iter().map(|k| fingerprint(k)).collect(),
            }
        }
    }

    /// Records `key` for `host` (trust on first use): appended to the file and to memory.
    /// Serialised, so concurrent probes never interleave lines.
    pub fn learn(&self, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
        let name = host_key_name(host, port);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Another probe may have learnt it meanwhile.
        if entries
            .iter()
            .any(|e| e.matches(&name) && e.key.key_data() == key.key_data())
        {
            return Ok(());
        }
        let line = format!(
            "{name} {}\n",
            key.to_openssh().map_err(std::io::Error::other)?
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let needs_newline = std::fs::metadata(&self.path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
            && std::fs::read(&self.path)
                .map(|b| b.last() != Some(&b'\n'))
                .unwrap_or(false);
        let text = if needs_newline {
            format!("\n{line}")
        } else {
            line
        };
        f.write_all(text.as_bytes())?;
        entries.push(Entry {
            patterns: vec![Pattern::Plain {
                pattern: name.clone(),
                negated: false,
            }],
            revoked: false,
            key: key.clone(),
        });
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";
    const K3: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn plain_ports_wildcards_and_negation() {
        let text = format!(
            "# comment\n[127.0.0.1]:2222 {K1}\n127.0.0.1 {K2}\n127.1.*,!127.1.9.9 {K3}\ngarbage line\n@cert-authority *.example {K1}\n"
        );
        let kh = KnownHosts::from_text(Path::new("kh"), &text);
        assert_eq!(kh.verdict("127.0.0.1", 2222, &key(K1)), Verdict::Known);
        assert_eq!(kh.verdict("127.0.0.1", 22, &key(K2)), Verdict::Known);
        assert_eq!(
            kh.verdict("127.0.0.1", 22, &key(K1)),
            Verdict::Changed {
                known: vec![fingerprint(&key(K2))]
            }
        );
        assert_eq!(kh.verdict("127.1.5.5", 22, &key(K3)), Verdict::Known);
        assert_eq!(
            kh.verdict("127.1.9.9", 22, &key(K3)),
            Verdict::Unknown,
            "negated"
        );
        assert_eq!(kh.verdict("127.2.0.1", 22, &key(K3)), Verdict::Unknown);
        assert!(fingerprint(&key(K1)).starts_with("SHA256:"));
    }

    #[test]
    fn hashed_hosts_match() {
        // Hashed by `ssh-keygen -H` from "ringpoll.test" and "[127.0.0.1]:2222".
        let text = format!(
            "|1|lvfGA4ukAOSmc8qfiEqRuVjg88E=|KZJRVL2Z5/mLmYKjjDFTax6o/qo= {K3}\n\
             |1|wRCblVCQg5GqXh2SWmqFX0DM6wk=|ZrRwRv6LeE72GDimuOLTUBqm0h8= {K3}\n"
        );
        let kh = KnownHosts::from_text(Path::new("kh"), &text);
        assert_eq!(kh.verdict("ringpoll.test", 22, &key(K3)), Verdict::Known);
        assert_eq!(kh.verdict("127.0.0.1", 2222, &key(K3)), Verdict::Known);
        assert_eq!(kh.verdict("127.0.0.1", 22, &key(K3)), Verdict::Unknown);
        assert_eq!(kh.verdict("example.org", 22, &key(K3)), Verdict::Unknown);
    }

    #[test]
    fn revoked_keys_are_never_known() {
        let text = format!("127.0.0.1 {K1}\n@revoked * {K1}\n");
        let kh = KnownHosts::from_text(Path::new("kh"), &text);
        assert!(matches!(
            kh.verdict("127.0.0.1", 22, &key(K1)),
            Verdict::Changed { .. }
        ));
    }

    #[test]
    fn learning_appends_a_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, format!("127.0.0.9 {K2}")).unwrap(); // no trailing newline
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.verdict("127.0.0.1", 2200, &key(K1)), Verdict::Unknown);
        kh.learn("127.0.0.1", 2200, &key(K1)).unwrap();
        kh.learn("127.0.0.1", 2200, &key(K1)).unwrap();
        assert_eq!(kh.verdict("127.0.0.1", 2200, &key(K1)), Verdict::Known);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("[127.0.0.1]:2200 ssh-ed25519 "));
        let again = KnownHosts::load(&path).unwrap();
        assert_eq!(again.verdict("127.0.0.1", 2200, &key(K1)), Verdict::Known);
    }

    #[test]
    fn glob_matching() {
        assert!(glob("*", "anything"));
        assert!(glob("127.0.0.?", "127.0.0.7"));
        assert!(!glob("127.0.0.?", "127.0.0.17"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(glob("HOST", "host"));
    }
}
