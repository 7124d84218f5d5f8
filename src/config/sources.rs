//! Target sources outside the config file: hosts files (`file`), Prometheus file_sd files
//! (`file_sd`, JSON or YAML, a `*` glob in the last path segment) and Prometheus http_sd
//! (`http_sd`), read through one [`SourceReader`] that remembers the last good content of each.
//!
//! How a source that cannot be read or parsed is handled depends on why the config is read:
//! - at start and on a reload ([`Mode::Strict`]), a file that is missing or invalid makes the
//!   whole config invalid (`PATH:LINE:COL`): nothing starts, or the node keeps its config;
//! - when a watched file changes, or every `refresh_interval` ([`Mode::KeepLastGood`]), it keeps
//!   its last good content and the failure is reported (once per change of state in the log, a
//!   counter per source in the metrics).
//!
//! An http_sd source always keeps its last good list (an unreachable server is not a config
//! error); until its first good answer it contributes no targets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// How a failing source is handled (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bad file makes the config invalid.
    Strict,
    /// A bad file keeps its last good content.
    KeepLastGood,
}

/// The last good content of every source, by source id (a path or a URL).
#[derive(Debug, Clone, Default)]
pub struct SourceCache {
    good: HashMap<String, Arc<String>>,
}

/// What a read found: the content each source gave, and why each that failed did.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// The content read (or kept) per source, to be the next read's last good content.
    pub cache: SourceCache,
    /// Sources that failed this time, with why (their last good content was used).
    pub errors: BTreeMap<String, String>,
    /// http_sd sources whose request failed this time (a subset of `errors`).
    pub http_failures: BTreeSet<String>,
    /// Files and file_sd globs to watch: (directory, file name or pattern).
    pub watch: Vec<(PathBuf, String)>,
    /// The shortest `refresh_interval` of any source, if any source is refreshed.
    pub refresh: Option<Duration>,
}

/// Reads sources for one load of the config.
#[derive(Debug)]
pub struct SourceReader<'c> {
    mode: Mode,
    last: &'c SourceCache,
    /// What this read found.
    pub report: SourceReport,
}

/// One entry of a file_sd or http_sd list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdEntry {
    /// Targets: hosts, or `host:port`.
    pub targets: Vec<String>,
    /// Labels added to the group's for these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// How long one http_sd request may take.
pub const HTTP_SD_TIMEOUT: Duration = Duration::from_secs(10);

impl<'c> SourceReader<'c> {
    /// A reader in `mode`, falling back on `last`.
    pub fn new(mode: Mode, last: &'c SourceCache) -> Self {
        SourceReader {
            mode,
            last,
            report: SourceReport::default(),
        }
    }

    /// A reader for a first load: strict, nothing cached.
    pub fn first() -> SourceReader<'static> {
        static EMPTY: std::sync::OnceLock<SourceCache> = std::sync::OnceLock::new();
        SourceReader::new(Mode::Strict, EMPTY.get_or_init(SourceCache::default))
    }

    /// Reads file `path` (watched from now on). Strict: an unreadable file is an error, the
    /// caller's to locate. Keep-last-good: its last good content, or nothing (the failure is
    /// recorded either way).
    pub fn file(&mut self, path: &Path) -> Result<Read, String> {
        self.watch(path);
        self.read(path)
    }

    /// Reads file `path`, as [`SourceReader::file`] does, without watching it (its directory
    /// is watched for a glob).
    pub fn read(&mut self, path: &Path) -> Result<Read, String> {
        match crate::config::text::read_text(path) {
            Ok(text) => Ok(Read::Content(Arc::new(text))),
            Err(e) => {
                let why = format!("cannot read {}: {e}", path.display());
                let id = path.display().to_string();
                self.failed(&id, None, why)
            }
        }
    }

    /// Like [`SourceReader::failed`] in keep-last-good mode whatever the mode (http_sd: a bad
    /// answer is never a config error).
    pub fn failed_keeping(
        &mut self,
        id: &str,
        failed: Option<&str>,
        why: String,
    ) -> Result<Read, String> {
        let mode = std::mem::replace(&mut self.mode, Mode::KeepLastGood);
        let r = self.failed(id, failed, why);
        self.mode = mode;
        r
    }

    /// Source `id`'s content `failed` (`why`): strict, the error; keep-last-good, its last good
    /// content when that differs, else nothing, with the failure recorded.
    pub fn failed(&mut self, id: &str, failed: Option<&str>, why: String) -> Result<Read, String> {
        if self.mode == Mode::Strict {
            return Err(why);
        }
        self.report.errors.insert(id.to_string(), why);
        match self.last.good.get(id) {
            Some(last) if failed != Some(last.as_str()) => Ok(Read::Content(last.clone())),
            _ => Ok(Read::Nothing),
        }
    }

    /// `content` of source `id` was good: it becomes the last good content.
    pub fn good(&mut self, id: &str, content: Arc<String>) {
        self.report.cache.good.insert(id.to_string(), content);
    }

    /// Watches `path` (its directory, for the file's name: writes by rename are seen too).
    pub fn watch(&mut self, path: &Path) {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.report.watch.push((dir, name));
    }

    /// A source is re-read every `every`.
    pub fn refresh_every(&mut self, every: Duration) {
        self.report.refresh = Some(self.report.refresh.map_or(every, |r| r.min(every)));
    }

    /// The files in `dir` whose names match `pattern` (a glob of one path segment), sorted;
    /// the directory is watched for files appearing and going.
    pub fn glob(&mut self, dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
        self.report
            .watch
            .push((dir.to_path_buf(), pattern.to_string()));
        let glob =
            glob::Pattern::new(pattern).map_err(|e| format!("{pattern:?} is not a glob: {e}"))?;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return Err(format!("cannot read the directory {}: {e}", dir.display())),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| glob.matches(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Fetches an http_sd list from `url` (with `token` as bearer token): its body, or the
    /// last good one when the request fails (recorded), or an empty list when there was none.
    pub fn http(&mut self, url: &str, token: Option<&str>) -> Arc<String> {
        let fetched = fetch(url, token);
        match fetched {
            Ok(body) => Arc::new(body),
            Err(why) => {
                self.report.http_failures.insert(url.to_string());
                self.report.errors.insert(url.to_string(), why);
                self.last
                    .good
                    .get(url)
                    .cloned()
                    .unwrap_or_else(|| Arc::new("[]".to_string()))
            }
        }
    }
}

/// What reading a source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Content to use.
    Content(Arc<String>),
    /// Nothing usable (keep-last-good, with no good content yet): the source adds no targets.
    Nothing,
}

/// One GET of an http_sd endpoint: the body of a 200 answer.
fn fetch(url: &str, token: Option<&str>) -> Result<String, String> {
    let mut req = ureq::get(url).header("Accept", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req
        .config()
        .timeout_global(Some(HTTP_SD_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    resp.body_mut()
        .read_to_string()
        .map(crate::config::text::without_bom)
        .map_err(|e| format!("GET {url}: {e}"))
}

/// Parses a file_sd file (JSON, or YAML for `.yml`/`.yaml`) or an http_sd body (JSON).
pub fn parse_sd(name: &str, text: &str) -> Result<Vec<SdEntry>, String> {
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    if yaml {
        yaml_serde::from_str(text).map_err(|e| match e.location() {
            Some(l) => format!("{name}:{}:{}: {e}", l.line(), l.column()),
            None => format!("{name}: {e}"),
        })
    } else {
        serde_json::from_str(text).map_err(|e| format!("{name}:{}:{}: {e}", e.line(), e.column()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_reads_json_and_yaml_and_locates_errors() {
        let json = r#"[{"targets": ["127.0.0.1", "127.0.0.2:22"], "labels": {"env": "lab"}}, {"targets": []}]"#;
        let e = parse_sd("sd/a.json", json).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].targets, ["127.0.0.1", "127.0.0.2:22"]);
        assert_eq!(e[0].labels["env"], "lab");
        assert!(e[1].labels.is_empty());
        let yaml = "- targets: ['127.0.0.3']\n  labels:\n    env: lab\n";
        assert_eq!(parse_sd("b.yaml", yaml).unwrap()[0].targets, ["127.0.0.3"]);
        let err = parse_sd("sd/a.json", "[{\"targets\": [1]}]").unwrap_err();
        assert!(err.starts_with("sd/a.json:1:"), "{err}");
        let err = parse_sd("b.yml", "- targets: [\n").unwrap_err();
        assert!(err.starts_with("b.yml:"), "{err}");
        assert!(parse_sd("c.json", r#"[{"targets": [], "extra": 1}]"#).is_err());
    }

    #[test]
    fn keep_last_good_falls_back_and_strict_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.txt");
        std::fs::write(&path, "127.0.0.1\n").unwrap();
        let none = SourceCache::default();
        let first = {
            let mut r = SourceReader::new(Mode::Strict, &none);
            let Read::Content(text) = r.file(&path).unwrap() else {
                panic!("read")
            };
            r.good(&path.display().to_string(), text);
            r.report.cache
        };
        std::fs::remove_file(&path).unwrap();
        let mut strict = SourceReader::new(Mode::Strict, &first);
        assert!(strict.file(&path).is_err());
        let mut keep = SourceReader::new(Mode::KeepLastGood, &first);
        let good = Read::Content(Arc::new("127.0.0.1\n".to_string()));
        assert_eq!(keep.file(&path).unwrap(), good);
        assert!(keep.report.errors[&path.display().to_string()].contains("cannot read"));
        assert_eq!(
            keep.report.watch,
            [(dir.path().to_path_buf(), "hosts.txt".to_string())]
        );
        // A parse failure falls back to different good content only; never had any: nothing.
        let id = path.display().to_string();
        assert_eq!(
            keep.failed(&id, Some("not a host\n"), "bad".into())
                .unwrap(),
            good
        );
        assert_eq!(
            keep.failed(&id, Some("127.0.0.1\n"), "bad".into()).unwrap(),
            Read::Nothing
        );
        assert_eq!(
            keep.failed("other", None, "bad".into()).unwrap(),
            Read::Nothing
        );
        let mut strict = SourceReader::new(Mode::Strict, &first);
        assert!(strict.failed(&id, Some("x"), "bad".into()).is_err());
    }

    #[test]
    fn globs_match_the_last_segment_and_sort() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.json", "a.json", "c.yaml", "d.txt"] {
            std::fs::write(dir.path().join(f), "[]").unwrap();
        }
        let none = SourceCache::default();
        let mut r = SourceReader::new(Mode::Strict, &none);
        let files = r.glob(dir.path(), "*.json").unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.json", "b.json"]);
        assert!(r.glob(&dir.path().join("missing"), "*.json").is_err());
    }

    #[test]
    fn an_unreachable_http_sd_keeps_its_last_list() {
        let mut cache = SourceCache::default();
        cache.good.insert(
            "http://127.0.0.1:9/sd".into(),
            Arc::new("[{\"targets\":[\"127.0.0.1\"]}]".into()),
        );
        let mut r = SourceReader::new(Mode::Strict, &cache);
        // Port 9 (discard) on loopback: refused.
        let body = r.http("http://127.0.0.1:9/sd", None);
        assert!(body.contains("127.0.0.1"));
        assert!(r.report.http_failures.contains("http://127.0.0.1:9/sd"));
        let none = SourceCache::default();
        let mut fresh = SourceReader::new(Mode::Strict, &none);
        assert_eq!(*fresh.http("http://127.0.0.1:9/sd", None), "[]");
    }
}
