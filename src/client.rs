//! `ringpoll status` and `ringpoll owner`: ask a node's HTTP endpoint and print tables.

use anyhow::{anyhow, Context};
use serde_json::Value;

use crate::cli::{OwnerArgs, StatusArgs};
use crate::config::HTTP_TOKEN_ENV;

fn get(http: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("http://{http}{path}");
    let mut req = ureq::get(&url);
    if let Ok(token) = std::env::var(HTTP_TOKEN_ENV) {
        req = req.header("Authorization", &format!("Bearer {}", token.trim()));
    }
    let mut resp = req
        .config()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("cannot reach {url} (is a node running with --http {http}?)"))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string()?;
    if !status.is_success() {
        return Err(anyhow!("{url}: {status}: {}", body.trim()));
    }
    serde_json::from_str(&body).with_context(|| format!("{url}: not JSON"))
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ringpoll status`.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let st = get(&args.http, "/status?scope=cluster")?;
    let down = get(&args.http, "/targets?state=down&scope=cluster")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"status": st, "down": down}))?
        );
        return Ok(());
    }
    println!(
        "ring {}  epoch {}  replicas {}  targets {}  (asked {})",
        s(&st["ring_digest"]),
        s(&st["epoch"]),
        s(&st["replicas"]),
        s(&st["targets"]["total"]),
        s(&st["node"])
    );
    println!(
        "{:<16} {:<8} {:>6} {:>8} {:>7} {:>7} {:>9}",
        "MEMBER", "STATE", "SHARE", "TARGETS", "UP", "DOWN", "RESTARTS"
    );
    let (mut up, mut dn) = (0u64, 0u64);
    for m in st["members"].as_array().into_iter().flatten() {
        up += m["up"].as_u64().unwrap_or(0);
        dn += m["down"].as_u64().unwrap_or(0);
        println!(
            "{:<16} {:<8} {:>5.1}% {:>8} {:>7} {:>7} {:>9}",
            s(&m["name"]),
            s(&m["state"]),
            m["share"].as_f64().unwrap_or(0.0) * 100.0,
            s(&m["targets"]),
            s(&m["up"]),
            s(&m["down"]),
            s(&m["restarts"])
        );
    }
    println!(
        "{:<16} {:<8} {:>6} {:>8} {:>7} {:>7}",
        "total",
        "",
        "",
        s(&st["targets"]["total"]),
        up,
        dn
    );
    if let Some(missing) = st["not_answering"].as_array().filter(|m| !m.is_empty()) {
        println!(
            "not answering: {}",
            missing.iter().map(s).collect::<Vec<_>>().join(", ")
        );
    }
    let list = down["targets"].as_array().cloned().unwrap_or_default();
    println!("\n{} target(s) down", list.len());
    for t in list.iter().take(50) {
        println!(
            "  {:<24} {:<5} {:<12} {:<10} {}",
            s(&t["target"]),
            s(&t["probe"]),
            s(&t["error"]),
            s(&t["node"]),
            s(&t["ts"])
        );
    }
    if list.len() > 50 {
        println!("  ... and {} more (--json for all)", list.len() - 50);
    }
    Ok(())
}

/// `ringpoll owner`.
pub fn owner(args: &OwnerArgs) -> anyhow::Result<()> {
    if args.if_leaves.is_some() || args.if_joins.is_some() {
        let q = match (&args.if_leaves, &args.if_joins) {
            (Some(n), _) => format!("leaves={n}"),
            (_, Some(j)) => format!("joins={j}"),
            _ => unreachable!(),
        };
        let plan = get(&args.http, &format!("/plan?{q}"))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
            return Ok(());
        }
        let total = plan["targets"].as_u64().unwrap_or(0).max(1);
        let moved = plan["moved"].as_u64().unwrap_or(0);
        println!(
            "{moved} of {total} targets would move ({:.1}%)",
            moved as f64 * 100.0 / total as f64
        );
        for m in plan["moves"].as_array().into_iter().flatten() {
            println!(
                "  {:<16} -> {:<16} {:>7}",
                s(&m["from"]),
                s(&m["to"]),
                s(&m["targets"])
            );
        }
        if args.list {
            for t in plan["moved_targets"].as_array().into_iter().flatten() {
                println!("  {}", s(t));
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
    let o = get(&args.http, &format!("/owner/{target}{q}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(());
    }
    let owners: Vec<String> = o["owners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    println!(
        "{} ({}) is owned by {}  [ring {}, epoch {}]",
        s(&o["target"]),
        s(&o["probe"]),
        owners.join(", "),
        s(&o["ring_digest"]),
        s(&o["epoch"])
    );
    let prefs: Vec<String> = o["why"]["preference"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(&p["member"]))
        .collect();
    println!("  ring preference: {}", prefs.join(" > "));
    match &o["last_result"] {
        Value::Null => println!("  last result: none on this node (ask an owner: --http)"),
        r => println!(
            "  last result: ok={} error={} rtt_ms={} at {} by {}",
            s(&r["ok"]),
            s(&r["error"]),
            s(&r["rtt_ms"]),
            s(&r["ts"]),
            s(&r["node"])
        ),
    }
    Ok(())
}
