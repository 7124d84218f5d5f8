//! `ringpoll status` and `ringpoll owner`: ask a node's HTTP endpoint and print tables.

use std::fmt::Display;

use anyhow::{anyhow, Context};
use serde::de::DeserializeOwned;

use ringpoll_actors::status::answer::{ClusterStatus, OwnerAnswer, Plan, TargetsAnswer};

use crate::cli::{OwnerArgs, ReloadArgs, StatusArgs};
use crate::config::HTTP_TOKEN_ENV;
use crate::reload::ReloadReport;

/// `req` with the HTTP token of the environment, if one is set, as a bearer header.
fn with_token<B>(req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match std::env::var(HTTP_TOKEN_ENV) {
        Ok(token) => req.header("Authorization", &format!("Bearer {}", token.trim())),
        Err(_) => req,
    }
}

fn get<T: DeserializeOwned>(http: &str, path: &str) -> anyhow::Result<T> {
    let url = format!("http://{http}{path}");
    let resp = with_token(ureq::get(&url))
        .config()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("cannot reach {url} (is a node running with --http {http}?)"))?;
    read(&url, resp)
}

/// The JSON body of a successful answer; the body of any other as the error.
fn read<T: DeserializeOwned>(
    url: &str,
    mut resp: ureq::http::Response<ureq::Body>,
) -> anyhow::Result<T> {
    let status = resp.status();
    let body = resp.body_mut().read_to_string()?;
    if !status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| body.trim().to_string());
        return Err(anyhow!("{url}: {status}: {why}"));
    }
    serde_json::from_str(&body).with_context(|| format!("{url}: not the expected JSON"))
}

/// `ringpoll reload`: `POST /-/reload`.
pub fn reload(args: &ReloadArgs) -> anyhow::Result<()> {
    let url = format!("http://{}/-/reload", args.http);
    let resp = with_token(ureq::post(&url))
        .config()
        .timeout_global(Some(std::time::Duration::from_secs(70)))
        .http_status_as_error(false)
        .build()
        .send_empty()
        .with_context(|| {
            format!(
                "cannot reach {url} (is a node running with --http {}?)",
                args.http
            )
        })?;
    let report: ReloadReport = read(&url, resp)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "reloaded: {} target(s), {} added, {} removed, {} changed",
        report.targets, report.added, report.removed, report.changed
    );
    if !report.needs_restart.is_empty() {
        println!(
            "needs a restart to take effect: {}",
            report.needs_restart.join(", ")
        );
    }
    Ok(())
}

/// A value, or `-` when there is none.
fn or_dash<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), ToString::to_string)
}

/// `ringpoll status`.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let st: ClusterStatus = get(&args.http, "/status?scope=cluster")?;
    let mut down: TargetsAnswer = get(&args.http, "/targets?state=down&scope=cluster")?;
    // With several owners each owner reports the target: one row per target is enough.
    dedup(&mut down);
    let degraded = if st.replicas.unwrap_or(1) > 1 {
        let mut up: TargetsAnswer = get(&args.http, "/targets?state=up&scope=cluster")?;
        up.targets.retain(|t| t.degraded);
        dedup(&mut up);
        up.count = up.targets.len();
        Some(up)
    } else {
        None
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"status": st, "down": down, "degraded": degraded})
            )?
        );
        return Ok(());
    }
    println!(
        "ring {}  epoch {}  replicas {}  targets {}  (asked {})",
        or_dash(&st.ring_digest),
        st.epoch,
        or_dash(&st.replicas),
        st.targets.total,
        st.node
    );
    let mut members = table(
        &[
            "MEMBER",
            "STATE",
            "SHARE",
            "TARGETS",
            "UP",
            "DOWN",
            "RESTARTS",
            "TARGET SET",
        ],
        &[2, 3, 4, 5, 6],
    );
    let (mut up, mut dn) = (0, 0);
    for m in &st.members {
        up += m.up.unwrap_or(0);
        dn += m.down.unwrap_or(0);
        let set = match (&m.target_set, m.target_count) {
            (Some(d), Some(n)) => format!("{d} ({n})"),
            _ => "-".into(),
        };
        members.add_row(vec![
            m.name.to_string(),
            m.state.as_str().to_string(),
            format!("{:.1}%", m.share * 100.0),
            m.targets.to_string(),
            or_dash(&m.up),
            or_dash(&m.down),
            or_dash(&m.restarts),
            set,
        ]);
    }
    members.add_row(vec![
        "total".to_string(),
        String::new(),
        String::new(),
        st.targets.total.to_string(),
        up.to_string(),
        dn.to_string(),
    ]);
    print_table(&members, "");
    if st.targets.not_everywhere > 0 {
        println!(
            "{} target(s) not listed by every member (each is probed by the members that list it)",
            st.targets.not_everywhere
        );
    }
    if !st.config.last_reload_successful {
        println!(
            "the last reload was refused: {}",
            st.config.last_error.as_deref().unwrap_or("-")
        );
    }
    if !st.config.needs_restart.is_empty() {
        println!("needs a restart: {}", st.config.needs_restart.join(", "));
    }
    if !st.not_answering.is_empty() {
        let names: Vec<String> = st.not_answering.iter().map(ToString::to_string).collect();
        println!("not answering: {}", names.join(", "));
    }
    println!("\n{} target(s) down", down.targets.len());
    let mut rows = table(&["TARGET", "PROBE", "ERROR", "NODE", "SINCE"], &[]);
    for t in down.targets.iter().take(50) {
        let r = &t.result;
        rows.add_row(vec![
            r.target.to_string(),
            r.probe.to_string(),
            or_dash(&r.error),
            r.node.to_string(),
            r.ts.to_string(),
        ]);
    }
    if !down.targets.is_empty() {
        print_table(&rows, "  ");
    }
    if down.targets.len() > 50 {
        println!(
            "  ... and {} more (--json for all)",
            down.targets.len() - 50
        );
    }
    if let Some(degraded) = degraded {
        println!(
            "\n{} target(s) degraded (seen down from fewer vantages than confirm needs)",
            degraded.targets.len()
        );
        let mut rows = table(&["TARGET", "PROBE", "VIEWS"], &[]);
        for t in degraded.targets.iter().take(50) {
            let views: Vec<String> = t
                .vantages
                .iter()
                .flatten()
                .map(|(n, s)| format!("{n}={}", s.as_str()))
                .collect();
            rows.add_row(vec![
                t.result.target.to_string(),
                t.result.probe.to_string(),
                views.join(" "),
            ]);
        }
        if !degraded.targets.is_empty() {
            print_table(&rows, "  ");
        }
    }
    Ok(())
}

/// A plain table (no borders, columns two spaces apart, each as wide as its content) with
/// the columns numbered in `right` aligned right.
fn table(header: &[&str], right: &[usize]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    for i in 0..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, 2));
            if right.contains(&i) {
                c.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
    }
    t
}

/// Prints `t` line by line, each line after `indent`, without trailing spaces.
fn print_table(t: &comfy_table::Table, indent: &str) {
    for line in t.lines() {
        println!("{indent}{}", line.trim_end());
    }
}

/// Keeps one report per target (the first, from the best-placed answer).
fn dedup(answer: &mut TargetsAnswer) {
    let mut seen = std::collections::HashSet::new();
    answer
        .targets
        .retain(|t| seen.insert((t.result.probe, t.result.target.clone())));
    answer.count = answer.targets.len();
}

/// `ringpoll owner`.
pub fn owner(args: &OwnerArgs) -> anyhow::Result<()> {
    let query = match (&args.if_leaves, &args.if_joins) {
        (Some(n), _) => Some(format!("leaves={n}")),
        (_, Some(j)) => Some(format!("joins={j}")),
        _ => None,
    };
    if let Some(q) = query {
        let plan: Plan = get(&args.http, &format!("/plan?{q}"))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
            return Ok(());
        }
        let total = plan.targets.max(1);
        println!(
            "{} of {} targets would move ({:.1}%)",
            plan.moved,
            plan.targets,
            plan.moved as f64 * 100.0 / total as f64
        );
        let mut moves = table(&["FROM", "TO", "TARGETS"], &[2]);
        for m in &plan.moves {
            moves.add_row(vec![
                m.from.to_string(),
                m.to.to_string(),
                m.targets.to_string(),
            ]);
        }
        if !plan.moves.is_empty() {
            print_table(&moves, "  ");
        }
        if plan.unowned > 0 {
            println!(
                "{} of {} targets would have no owner (no remaining member lists them){}",
                plan.unowned,
                plan.targets,
                if plan.unowned == plan.targets {
                    ": nothing would probe them"
                } else {
                    ""
                }
            );
        }
        if args.list {
            for t in &plan.moved_targets {
                println!("  {t}");
            }
        }
        return Ok(());
    }
    let target = args.target.as_deref().expect("clap requires a target here");
    let q = args
        .probe
        .as_ref()
        .map(|p| format!("?probe={p}"))
        .unwrap_or_default();
    let o: OwnerAnswer = get(&args.http, &format!("/owner/{target}{q}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(());
    }
    let owners: Vec<String> = o.owners.iter().map(ToString::to_string).collect();
    println!(
        "{} ({}) is owned by {}  [ring {}, epoch {}]",
        o.target,
        o.probe,
        owners.join(", "),
        o.ring_digest,
        o.epoch
    );
    let prefs: Vec<String> = o
        .why
        .preference
        .iter()
        .map(|p| p.member.to_string())
        .collect();
    println!("  ring preference: {}", prefs.join(" > "));
    match &o.last_result {
        None => println!("  last result: none on this node (ask an owner: --http)"),
        Some(t) => {
            let r = &t.result;
            println!(
                "  last result: ok={} error={} rtt_ms={} at {} by {}",
                r.ok,
                or_dash(&r.error),
                or_dash(&r.rtt_ms),
                r.ts,
                r.node
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod table_tests {
    use super::table;

    #[test]
    fn columns_are_as_wide_as_their_content_and_numbers_align_right() {
        let mut t = table(&["MEMBER", "STATE", "TARGETS"], &[2]);
        t.add_row(vec!["n1", "alive", "7"]);
        t.add_row(vec!["a-node-name-longer-than-sixteen", "dead", "12345"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(
            lines,
            [
                "MEMBER                           STATE  TARGETS",
                "n1                               alive        7",
                "a-node-name-longer-than-sixteen  dead     12345",
            ]
        );
    }
}
