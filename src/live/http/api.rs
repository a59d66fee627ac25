//! The read-only JSON API under `/api/v1/` (docs/api.md has every field and curl examples):
//! `jobs` (the fields of `queue --json`, with expected starts), `jobs/ID`, `nodes`, `stats`,
//! `users` (usage per user over a window) and `history` (utilization and queue length).
//! Every body carries `now_ms`, the server's wall clock, so a page computes elapsed times
//! without trusting the browser's clock.

use super::routes::{App, json_error};
use super::server::{Request, Response};
use crate::live::client::queue_filter;
use crate::live::now_ms;
use crate::live::store::{Db, JobRow};
use crate::model::JobState;
use serde::Serialize;
use std::collections::BTreeMap;

/// Ended jobs a listing considers by default (the most recent), and at most.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

fn json(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => Response::new(200, "application/json", b),
        Err(e) => json_error(500, &e.to_string()),
    }
}

/// Routes `/api/v1{rest}`.
pub fn serve(app: &App, st: &mut Option<Db>, req: &Request, rest: &str) -> Response {
    let result = match rest.trim_end_matches('/') {
        "" => Ok(index()),
        "/jobs" => jobs(app, st, req),
        "/nodes" => Ok(nodes(app)),
        "/stats" => stats(app, st),
        "/users" => users(app, st, req),
        "/history" => history(app, req),
        r => match r.strip_prefix("/jobs/").map(str::parse::<i64>) {
            Some(Ok(id)) => job(app, st, id),
            Some(Err(_)) => Err(json_error(400, "a job id is a number")),
            None => Err(json_error(404, &format!("no such endpoint: /api/v1{rest}"))),
        },
    };
    result.unwrap_or_else(|e| e)
}

fn index() -> Response {
    json(&serde_json::json!({
        "endpoints": ["/api/v1/jobs", "/api/v1/jobs/ID", "/api/v1/nodes", "/api/v1/stats",
                      "/api/v1/users", "/api/v1/history"],
        "docs": "docs/api.md",
    }))
}

/// A query parameter as a number within bounds, or a 400 naming it.
fn num_param(req: &Request, name: &str, default: i64, lo: i64, hi: i64) -> Result<i64, Response> {
    match req.param(name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(json_error(
                400,
                &format!("{name}: expected a whole number from {lo} to {hi}, found '{v}'"),
            )),
        },
    }
}

/// Whose expected start the plan gives, for the bodies that show expected starts.
#[derive(Serialize)]
struct Plan {
    scope: &'static str,
    description: &'static str,
}

fn plan(app: &App) -> Plan {
    let s = app.published.fixed().scope;
    Plan {
        scope: s.name(),
        description: s.describe(),
    }
}

#[derive(Serialize)]
struct JobsBody<'a> {
    now_ms: i64,
    plan: Plan,
    /// Some ended jobs were left out (more than `limit`).
    truncated: bool,
    jobs: &'a [JobRow],
}

/// `GET /api/v1/jobs?state=&user=&all=&since=&limit=`: as `queue` (pending and running by
/// default; `state` and `user` as its flags); `all` or an ended state adds the `limit` jobs
/// that ended last; `since=MS` those that ended since then.
fn jobs(app: &App, st: &mut Option<Db>, req: &Request) -> Result<Response, Response> {
    // `since` asks for ended jobs too, as `all` does.
    let all =
        req.param("all").is_some_and(|v| v != "0" && v != "false") || req.param("since").is_some();
    let filter = queue_filter(req.param("state"), req.param("user").map(String::from), all)
        .map_err(|e| json_error(400, &format!("state: {e}")))?;
    let limit = num_param(req, "limit", DEFAULT_LIMIT as i64, 0, MAX_LIMIT as i64)? as usize;
    let wants_ended = all
        || filter
            .states
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| !s.is_active()));
    let since = match req.param("since") {
        Some(_) => num_param(req, "since", 0, i64::MIN, i64::MAX)?,
        None if wants_ended => i64::MIN,
        None => i64::MAX,
    };
    let db = app.db(st)?;
    let mut rows = db
        .jobs_since(since, limit)
        .map_err(|e| json_error(503, &e.to_string()))?;
    let ended = rows.iter().filter(|r| !r.state.is_active()).count();
    rows.retain(|r| {
        filter.states.as_ref().is_none_or(|s| s.contains(&r.state))
            && filter.user.as_ref().is_none_or(|u| *u == r.user)
    });
    app.shown(&mut rows);
    Ok(json(&JobsBody {
        now_ms: now_ms(),
        plan: plan(app),
        truncated: ended >= limit && since != i64::MAX,
        jobs: &rows,
    }))
}

/// `GET /api/v1/jobs/ID`.
fn job(app: &App, st: &mut Option<Db>, id: i64) -> Result<Response, Response> {
    let mut row = app
        .db(st)?
        .job(id)
        .map_err(|e| json_error(503, &e.to_string()))?
        .ok_or_else(|| json_error(404, &format!("job {id} does not exist")))?;
    app.shown(std::slice::from_mut(&mut row));
    Ok(json(&serde_json::json!({
        "now_ms": now_ms(),
        "plan": plan(app),
        "job": row,
    })))
}

#[derive(Serialize)]
struct NodeJob {
    id: u64,
    cpus: u32,
    gpus: u32,
}

#[derive(Serialize)]
struct NodeBody {
    name: String,
    cpus: u32,
    cpus_alloc: u32,
    mem_mb: u64,
    mem_alloc_mb: u64,
    gpus: u32,
    gpus_alloc: u32,
    /// The names (nvidia-smi indices) of the node's GPUs.
    gpu_names: Vec<String>,
    jobs: Vec<NodeJob>,
}

/// `GET /api/v1/nodes`.
fn nodes(app: &App) -> Response {
    let snap = app.published.latest();
    let fixed = app.published.fixed();
    let nodes: Vec<NodeBody> = snap
        .node_use(&fixed.cluster)
        .into_iter()
        .enumerate()
        .map(|(i, u)| NodeBody {
            name: u.name,
            cpus: u.total[0] as u32,
            cpus_alloc: u.alloc[0] as u32,
            mem_mb: u.total[1],
            mem_alloc_mb: u.alloc[1],
            gpus: u.total[2] as u32,
            gpus_alloc: u.alloc[2] as u32,
            gpu_names: if i == 0 {
                fixed.gpus.clone()
            } else {
                Vec::new()
            },
            jobs: snap
                .running
                .iter()
                .flat_map(|r| {
                    r.alloc
                        .iter()
                        .filter(|s| s.node as usize == i)
                        .map(|s| NodeJob {
                            id: r.spec.id.0,
                            cpus: s.cpus,
                            gpus: s.gpus,
                        })
                })
                .collect(),
        })
        .collect();
    json(&serde_json::json!({ "now_ms": now_ms(), "nodes": nodes }))
}

/// `GET /api/v1/stats`: capacity and allocation, jobs per state, the scheduler's counters.
fn stats(app: &App, st: &mut Option<Db>) -> Result<Response, Response> {
    let db = app.db(st)?;
    let by_state: BTreeMap<&str, u64> = db
        .state_counts()
        .map_err(|e| json_error(503, &e.to_string()))?
        .into_iter()
        .map(|(s, n)| (s.name(), n))
        .collect();
    let snap = app.published.latest();
    let fixed = app.published.fixed();
    let usage = snap.node_use(&fixed.cluster);
    let total = |k: usize| usage.iter().map(|u| u.total[k]).sum::<u64>();
    let alloc = |k: usize| usage.iter().map(|u| u.alloc[k]).sum::<u64>();
    let c = &snap.counters;
    Ok(json(&serde_json::json!({
        "now_ms": now_ms(),
        "policy": fixed.policy,
        "plan": plan(app),
        "last_pass_ms": (snap.at.0 > 0).then_some(snap.at.0),
        "capacity": { "cpus": total(0), "mem_mb": total(1), "gpus": total(2) },
        "allocated": { "cpus": alloc(0), "mem_mb": alloc(1), "gpus": alloc(2) },
        "jobs": { "total": by_state.values().sum::<u64>(), "by_state": by_state },
        "queue_depth": snap.pending.len(),
        "planned": snap.plan.len(),
        "scheduler": {
            "passes": c.passes,
            "started": c.started,
            "backfilled": c.backfilled,
            "pass_last_us": c.pass_last_us,
            "pass_max_us": c.pass_max_us,
            "pass_mean_us": c.pass_total_us.checked_div(c.passes).unwrap_or(0),
        },
    })))
}

/// One user's share of the machine over a window.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct UserUsage {
    pub user: String,
    pub running: u64,
    pub pending: u64,
    pub cpus_alloc: u64,
    /// CPU-seconds used within the window (running jobs up to now).
    pub cpu_seconds: f64,
    /// Of all users' CPU-seconds in the window, 0 to 1.
    pub share: f64,
}

/// What usage per user needs of a job.
#[derive(Clone, Copy, Debug)]
pub struct UsageRow<'a> {
    pub user: &'a str,
    pub state: JobState,
    /// CPUs held (or asked for, pending).
    pub cpus: u32,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl<'a> From<&'a JobRow> for UsageRow<'a> {
    fn from(r: &'a JobRow) -> UsageRow<'a> {
        UsageRow {
            user: &r.user,
            state: r.state,
            cpus: r.alloc_cpus.unwrap_or(r.cpus),
            start_ms: r.start_ms,
            end_ms: r.end_ms,
        }
    }
}

/// Usage per user over `[since, now]`, the heaviest first (then by name).
pub fn usage_by_user(rows: &[UsageRow<'_>], since: i64, now: i64) -> Vec<UserUsage> {
    let mut per: BTreeMap<&str, UserUsage> = BTreeMap::new();
    for r in rows {
        let u = per.entry(r.user).or_insert_with(|| UserUsage {
            user: r.user.to_string(),
            ..UserUsage::default()
        });
        let cpus = u64::from(r.cpus);
        match r.state {
            JobState::Pending => u.pending += 1,
            JobState::Configuring | JobState::Running => {
                u.running += 1;
                u.cpus_alloc += cpus;
            }
            _ => {}
        }
        if let (Some(s), false) = (r.start_ms, r.state == JobState::Pending) {
            let (from, to) = (s.max(since), r.end_ms.unwrap_or(now).min(now));
            if to > from {
                u.cpu_seconds += (to - from) as f64 / 1000.0 * cpus as f64;
            }
        }
    }
    let mut out: Vec<UserUsage> = per.into_values().collect();
    for u in &mut out {
        // To the millisecond: sums of fractions print as 11.466999999999999 otherwise.
        u.cpu_seconds = (u.cpu_seconds * 1000.0).round() / 1000.0;
    }
    let total: f64 = out.iter().map(|u| u.cpu_seconds).sum();
    for u in &mut out {
        u.share = if total > 0.0 {
            u.cpu_seconds / total
        } else {
            0.0
        };
    }
    out.sort_by(|a, b| {
        b.cpu_seconds
            .total_cmp(&a.cpu_seconds)
            .then(a.user.cmp(&b.user))
    });
    out
}

/// `GET /api/v1/users?hours=H` (default 24).
fn users(app: &App, st: &mut Option<Db>, req: &Request) -> Result<Response, Response> {
    let hours = num_param(req, "hours", 24, 1, 24 * 90)?;
    let now = now_ms();
    let since = now - hours * 3_600_000;
    let rows = app
        .db(st)?
        .jobs_since(since, MAX_LIMIT)
        .map_err(|e| json_error(503, &e.to_string()))?;
    Ok(json(&serde_json::json!({
        "now_ms": now,
        "since_ms": since,
        "users": usage_by_user(&rows.iter().map(UsageRow::from).collect::<Vec<_>>(), since, now),
    })))
}

/// `GET /api/v1/history?hours=H` (default 6).
fn history(app: &App, req: &Request) -> Result<Response, Response> {
    let hours = num_param(req, "hours", 6, 1, 24 * 7)?;
    let now = now_ms();
    Ok(json(&serde_json::json!({
        "now_ms": now,
        "every_ms": app.sample_every.as_millis() as u64,
        "samples": app.history.since(now - hours * 3_600_000),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_counted_within_the_window() {
        let row = |user, state, start_ms, end_ms| UsageRow {
            user,
            state,
            cpus: 2,
            start_ms,
            end_ms,
        };
        let rows = [
            row("ann", JobState::Completed, Some(0), Some(10_000)),
            row("bob", JobState::Running, Some(5_000), None),
            row("bob", JobState::Pending, None, None),
        ];
        let u = usage_by_user(&rows, 5_000, 15_000);
        assert_eq!(u[0].user, "bob");
        assert_eq!((u[0].running, u[0].pending, u[0].cpus_alloc), (1, 1, 2));
        assert_eq!(u[0].cpu_seconds, 20.0);
        assert_eq!(
            u[1].cpu_seconds, 10.0,
            "ann's job counts from the window's start"
        );
        assert!((u[0].share - 2.0 / 3.0).abs() < 1e-9);
    }
}
