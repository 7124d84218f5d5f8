//! `probe = "ssh"` groups: the SSH keys of a group, defaulting from `[probe.ssh]`, validated and
//! loaded once (each key file and each known_hosts file is read once, however many groups use
//! it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use ringpoll_actors::probe::ssh::known_hosts::KnownHosts;
use ringpoll_actors::probe::ssh::DEFAULT_MAX_SESSION_AGE;
use ringpoll_actors::probe::ssh::{
    load_known_hosts, HostKeyPolicy, SessionMode, SshIdentity, SshTarget, DEFAULT_MAX_OUTPUT,
};

use super::defaults::DEFAULT_EXPECT_EXIT;
use super::error::{ConfigError, Locator};
use super::raw::{RawHostKeyPolicy, RawSessionMode, SshKeys};

/// Largest `max_output`.
pub const MAX_OUTPUT_LIMIT: usize = 1 << 20;

/// Builds the SSH settings of groups.
pub(super) struct SshLoader<'a> {
    loc: &'a Locator<'a>,
    base: &'a Path,
    defaults: SshKeys<'a>,
    identities: HashMap<(PathBuf, Option<String>), Arc<SshIdentity>>,
    known_hosts: HashMap<PathBuf, Arc<KnownHosts>>,
}

/// The group's value of a key, else the default's, with where it was written.
fn pick<'v, T>(
    group: &'v Option<Spanned<T>>,
    default: &'v Option<Spanned<T>>,
) -> Option<&'v Spanned<T>> {
    group.as_ref().or(default.as_ref())
}

impl<'a> SshLoader<'a> {
    pub(super) fn new(loc: &'a Locator<'a>, base: &'a Path, defaults: SshKeys<'a>) -> Self {
        SshLoader {
            loc,
            base,
            defaults,
            identities: HashMap::new(),
            known_hosts: HashMap::new(),
        }
    }

    /// Refuses SSH keys on a group of another probe kind.
    pub(super) fn reject(&self, i: usize, g: SshKeys<'_>, probe: &str) -> Result<(), ConfigError> {
        let set: [(&str, Option<usize>); 11] = [
            ("session", g.session.as_ref().map(|v| v.span().start)),
            (
                "max_session_age",
                g.max_session_age.as_ref().map(|v| v.span().start),
            ),
            ("user", g.user.as_ref().map(|v| v.span().start)),
            ("identity", g.identity.as_ref().map(|v| v.span().start)),
            (
                "identity_passphrase_env",
                g.identity_passphrase_env.as_ref().map(|v| v.span().start),
            ),
            (
                "known_hosts",
                g.known_hosts.as_ref().map(|v| v.span().start),
            ),
            (
                "host_key_policy",
                g.host_key_policy.as_ref().map(|v| v.span().start),
            ),
            ("command", g.command.as_ref().map(|v| v.span().start)),
            (
                "expect_exit",
                g.expect_exit.as_ref().map(|v| v.span().start),
            ),
            (
                "expect_output",
                g.expect_output.as_ref().map(|v| v.span().start),
            ),
            ("max_output", g.max_output.as_ref().map(|v| v.span().start)),
        ];
        match set.iter().find(|(_, at)| at.is_some()) {
            Some((key, Some(at))) => Err(self.loc.at(
                *at,
                format!("targets[{i}].{key}: only ssh targets take {key}; remove it for probe = \"{probe}\""),
            )),
            _ => Ok(()),
        }
    }

    /// The SSH settings of group `i` (at `group_at` in the file).
    pub(super) fn group(
        &mut self,
        i: usize,
        g: SshKeys<'_>,
        group_at: usize,
    ) -> Result<(Arc<SshTarget>, HostKeyPolicy), ConfigError> {
        let d = self.defaults;
        let key = |k: &str| format!("targets[{i}].{k}");
        let missing = |k: &str, example: &str| {
            self.loc.at(group_at, format!("{}: probe = \"ssh\" needs {k} (in the group or in [probe.ssh]), e.g. {k} = {example}", key(k)))
        };

        let user = pick(g.user, d.user).ok_or_else(|| missing("user", "\"monitor\""))?;
        if user.get_ref().is_empty() {
            return Err(self.loc.at(
                user.span().start,
                format!("{}: is empty; expected a login name", key("user")),
            ));
        }

        let policy = match pick(g.host_key_policy, d.host_key_policy).map(|p| *p.get_ref()) {
            None | Some(RawHostKeyPolicy::Strict) => HostKeyPolicy::Strict,
            Some(RawHostKeyPolicy::AcceptNew) => HostKeyPolicy::AcceptNew,
            Some(RawHostKeyPolicy::Off) => HostKeyPolicy::Off,
        };

        let identity = pick(g.identity, d.identity)
            .ok_or_else(|| missing("identity", "\"/etc/ringpoll/id_ed25519\""))?;
        let identity_path = self.base.join(identity.get_ref());
        let passphrase = match pick(g.identity_passphrase_env, d.identity_passphrase_env) {
            None => None,
            Some(var) => Some(std::env::var(var.get_ref()).map_err(|_| {
                self.loc.at(
                    var.span().start,
                    format!("{}: the environment variable {} is not set; it must hold the key's passphrase", key("identity_passphrase_env"), var.get_ref()),
                )
            })?),
        };
        let id_key = (identity_path.clone(), passphrase.clone());
        let identity = match self.identities.get(&id_key) {
            Some(id) => id.clone(),
            None => {
                let loaded =
                    SshIdentity::load(&identity_path, passphrase.as_deref()).map_err(|e| {
                        self.loc
                            .at(identity.span().start, format!("{}: {e}", key("identity")))
                    })?;
                let loaded = Arc::new(loaded);
                self.identities.insert(id_key, loaded.clone());
                loaded
            }
        };

        let known_hosts = match (pick(g.known_hosts, d.known_hosts), policy) {
            (None, HostKeyPolicy::Off) => None,
            (None, _) => return Err(missing("known_hosts", "\"/etc/ringpoll/known_hosts\"")),
            (Some(kh), _) => {
                let path = self.base.join(kh.get_ref());
                if policy == HostKeyPolicy::Strict && !path.exists() {
                    return Err(self.loc.at(
                        kh.span().start,
                        format!(
                            "{}: {} does not exist, so host_key_policy = \"strict\" would refuse every host; fill it (ssh-keyscan) or use host_key_policy = \"accept-new\"",
                            key("known_hosts"),
                            path.display()
                        ),
                    ));
                }
                if policy == HostKeyPolicy::AcceptNew
                    && !path
                        .parent()
                        .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
                {
                    return Err(self.loc.at(
                        kh.span().start,
                        format!(
                            "{}: the directory of {} does not exist",
                            key("known_hosts"),
                            path.display()
                        ),
                    ));
                }
                match self.known_hosts.get(&path) {
                    Some(k) => Some(k.clone()),
                    None => {
                        let loaded = load_known_hosts(&path).map_err(|e| {
                            self.loc
                                .at(kh.span().start, format!("{}: {e}", key("known_hosts")))
                        })?;
                        self.known_hosts.insert(path, loaded.clone());
                        Some(loaded)
                    }
                }
            }
        };

        let command = match pick(g.command, d.command) {
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self.loc.at(
                    c.span().start,
                    format!("{}: is empty; remove it to only log in", key("command")),
                ))
            }
            c => c.map(|c| c.get_ref().clone()),
        };
        let expect_exit =
            pick(g.expect_exit, d.expect_exit).map_or(DEFAULT_EXPECT_EXIT, |e| *e.get_ref());
        let expect_output = match pick(g.expect_output, d.expect_output) {
            None => None,
            Some(re) => Some(regex::Regex::new(re.get_ref()).map_err(|e| {
                self.loc.at(
                    re.span().start,
                    format!(
                        "{}: not a valid regular expression: {e}",
                        key("expect_output")
                    ),
                )
            })?),
        };
        if expect_output.is_some() && command.is_none() {
            return Err(self.loc.at(
                group_at,
                format!("{}: expect_output needs a command", key("expect_output")),
            ));
        }
        let max_output = match pick(g.max_output, d.max_output) {
            None => DEFAULT_MAX_OUTPUT,
            Some(m) if *m.get_ref() == 0 || *m.get_ref() > MAX_OUTPUT_LIMIT => {
                return Err(self.loc.at(
                    m.span().start,
                    format!(
                        "{}: expected 1 to {MAX_OUTPUT_LIMIT} bytes",
                        key("max_output")
                    ),
                ))
            }
            Some(m) => *m.get_ref(),
        };
        let session = match pick(g.session, d.session).map(|s| *s.get_ref()) {
            None | Some(RawSessionMode::Persistent) => SessionMode::Persistent,
            Some(RawSessionMode::Fresh) => SessionMode::Fresh,
        };
        let max_session_age = match pick(g.max_session_age, d.max_session_age) {
            None => DEFAULT_MAX_SESSION_AGE,
            Some(a) if a.get_ref().0 < std::time::Duration::from_secs(1) => {
                return Err(self.loc.at(
                    a.span().start,
                    format!("{}: must be at least 1s", key("max_session_age")),
                ))
            }
            Some(a) => a.get_ref().0,
        };
        let target = SshTarget {
            user: user.get_ref().clone(),
            identity,
            known_hosts,
            policy,
            command,
            expect_exit,
            expect_output,
            max_output,
            session,
            max_session_age,
        };
        Ok((Arc::new(target), policy))
    }
}
