//! Live mode seen from outside: expected starts in `queue --start`, `queue --json` and `show`,
//! and `scheduler --http`'s metrics (by value, against a known state), JSON API, refusals of
//! bad requests, scheduling that keeps its latency while the server is hammered, and a shared
//! scheduler's API showing jobs as `queue` shows other users' (root only; never skipped under
//! CI=true).

use crate::live_util::{Live, root_or_skip, wait_for};
use mini_slurm::live::store::JobRow;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A response: status, body.
pub struct Got {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` as is and reads the whole response (the server closes the connection).
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Got> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Got {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

pub fn get(addr: SocketAddr, path: &str) -> Got {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    raw(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let g = get(addr, path);
    assert_eq!(g.status, 200, "GET {path}: {}", g.body);
    serde_json::from_str(&g.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", g.body))
}

/// Where the daemon serves HTTP (recorded once it listens).
pub fn http_addr(l: &Live) -> SocketAddr {
    let mut addr = String::new();
    wait_for(
        || {
            addr = l.db().daemon_meta().unwrap().http.unwrap_or_default();
            !addr.is_empty()
        },
        10,
        "the HTTP address",
    );
    addr.parse().unwrap()
}

/// The value of an unlabelled or labelled sample in a metrics text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Slurm's time format, as `queue --start` and `show` print it.
pub fn iso(ms: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", ms.div_euclid(1000)),
            "+%Y-%m-%dT%H:%M:%S",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name)
}

/// Two 1-CPU jobs of 2 minutes run on 2 CPUs; three of 1 minute wait. Returns their ids.
pub fn two_running_three_waiting(l: &Live) -> ([i64; 2], [i64; 3]) {
    let run = [0, 1].map(|_| l.submit(&["--time", "2", "-J", "train", "--", "sleep", "300"]));
    for id in run {
        wait_for(
            || l.job(id).state.name() == "RUNNING",
            10,
            "a long job to run",
        );
    }
    let wait = [0, 1, 2].map(|_| l.submit(&["--time", "1", "-J", "eval", "--", "sleep", "1"]));
    for id in wait {
        wait_for(|| l.job(id).state.name() == "PENDING", 10, "a job to wait");
    }
    (run, wait)
}

/// Waits until each pending job has an expected start stored, and returns them.
pub fn stored_starts(l: &Live, ids: &[i64]) -> Vec<i64> {
    let mut rows: Vec<JobRow> = Vec::new();
    wait_for(
        || {
            rows = ids.iter().map(|&id| l.job(id)).collect();
            rows.iter().all(|r| r.expected_start_ms.is_some())
        },
        10,
        "expected starts to be stored",
    );
    rows.iter().filter_map(|r| r.expected_start_ms).collect()
}

/// A daemon with 2 CPUs under `--policy conservative`, serving HTTP on a free loopback port;
/// `env` for the daemon.
pub fn conservative_2_cpus_http(env: &[(&str, &str)]) -> (Live, SocketAddr) {
    let mut l = Live::new();
    l.start_with(
        &[
            "--cpus",
            "2",
            "--policy",
            "conservative",
            "--http",
            "127.0.0.1:0",
        ],
        env,
    );
    let addr = http_addr(&l);
    (l, addr)
}

#[test]
fn expected_starts_metrics_and_api_by_value() {
    let (mut l, addr) = conservative_2_cpus_http(&[]);
    let (run, wait) = two_running_three_waiting(&l);
    let [s1, s2] = run.map(|id| l.job(id).start_ms.unwrap());
    // Conservative: each waiting job gets a CPU when the first one it can have frees up.
    let want = [s1 + 120_000, s2 + 120_000, s1.min(s2) + 180_000];
    assert_eq!(stored_starts(&l, &wait), want);

    let o = l.cmd(&["queue", "--start"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "JOBID",
            "PARTITION",
            "NAME",
            "USER",
            "ST",
            "START_TIME",
            "NODES",
            "SCHEDNODES",
            "NODELIST(REASON)"
        ]
    );
    for (id, at) in wait.iter().zip(want) {
        let line = lines.next().unwrap_or_else(|| panic!("{text}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (f[0], f[4], f[5]),
            (id.to_string().as_str(), "PD", iso(at).as_str()),
            "{text}"
        );
    }
    assert!(lines.next().is_none(), "only pending jobs: {text}");
    let show = String::from_utf8_lossy(&l.cmd(&["show", &wait[2].to_string()]).stdout).into_owned();
    assert!(
        show.contains(&format!(" StartTime={} ", iso(want[2]))),
        "{show}"
    );
    let show = String::from_utf8_lossy(&l.cmd(&["show", &run[0].to_string()]).stdout).into_owned();
    assert!(show.contains(&format!(" StartTime={} ", iso(s1))), "{show}");
    let json: serde_json::Value =
        serde_json::from_slice(&l.cmd(&["queue", "--json"]).stdout).unwrap();
    let starts: Vec<Option<i64>> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["expected_start_ms"].as_i64())
        .collect();
    assert_eq!(
        starts,
        [None, None, Some(want[0]), Some(want[1]), Some(want[2])]
    );

    // The JSON API: the same jobs and fields as `queue --json`.
    let api = get_json(addr, "/api/v1/jobs");
    assert_eq!(api["plan"]["scope"], "every");
    let api_jobs = api["jobs"].as_array().unwrap();
    assert_eq!(api_jobs, json.as_array().unwrap());
    let one = get_json(addr, &format!("/api/v1/jobs/{}", wait[1]));
    assert_eq!(one["job"]["expected_start_ms"], want[1]);
    assert_eq!(get(addr, "/api/v1/jobs/999").status, 404);
    assert_eq!(get(addr, "/api/v1/jobs?state=LIMBO").status, 400);
    let nodes = get_json(addr, "/api/v1/nodes");
    assert_eq!(nodes["nodes"][0]["cpus_alloc"], 2);
    assert_eq!(nodes["nodes"][0]["jobs"].as_array().unwrap().len(), 2);
    let stats = get_json(addr, "/api/v1/stats");
    assert_eq!(
        (
            &stats["jobs"]["by_state"]["RUNNING"],
            &stats["jobs"]["by_state"]["PENDING"]
        ),
        (&2.into(), &3.into())
    );
    assert_eq!(
        (&stats["allocated"]["cpus"], &stats["planned"]),
        (&2.into(), &3.into())
    );
    let users = get_json(addr, "/api/v1/users");
    assert_eq!(users["users"][0]["user"], me());
    assert_eq!(
        (&users["users"][0]["running"], &users["users"][0]["pending"]),
        (&2.into(), &3.into())
    );

    let stats = String::from_utf8_lossy(&l.cmd(&["stats"]).stdout).into_owned();
    assert!(
        stats.contains(&format!("Dashboard: http://{addr}/")),
        "{stats}"
    );

    // Metrics by value: 2 running, 3 pending, 2 CPUs held, the node fully allocated.
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.head.contains("application/openmetrics-text"),
        "{}",
        m.head
    );
    let host = nodes["nodes"][0]["name"].as_str().unwrap().to_string();
    for (series, want) in [
        ("slurm_jobs", 5.0),
        ("slurm_jobs_running", 2.0),
        ("slurm_jobs_pending", 3.0),
        ("slurm_jobs_completed", 0.0),
        ("slurm_jobs_cpus_alloc", 2.0),
        ("slurm_nodes", 1.0),
        ("slurm_nodes_alloc", 1.0),
        ("slurm_nodes_idle", 0.0),
        (&format!("slurm_node_cpus{{node=\"{host}\"}}"), 2.0),
        (&format!("slurm_node_cpus_idle{{node=\"{host}\"}}"), 0.0),
        ("slurm_partition_jobs_pending{partition=\"all\"}", 3.0),
        ("slurm_partition_jobs_running{partition=\"all\"}", 2.0),
        (
            &format!("slurm_user_jobs_pending{{username=\"{}\"}}", me()),
            3.0,
        ),
        (
            &format!("slurm_user_jobs_cpus_alloc{{username=\"{}\"}}", me()),
            2.0,
        ),
        ("slurm_schedule_queue_len", 3.0),
        ("mini_slurm_queue_depth", 3.0),
        ("mini_slurm_jobs_planned", 3.0),
        ("mini_slurm_jobs_started_total", 2.0),
    ] {
        assert_eq!(metric(&m.body, series), Some(want), "{series}:\n{}", m.body);
    }
    assert!(metric(&m.body, "mini_slurm_pass_duration_seconds_count").unwrap() >= 3.0);
    assert!(m.body.ends_with("# EOF\n"));
    // Slurm's per-kind paths serve their own families only.
    let jobs = get(addr, "/metrics/jobs").body;
    assert_eq!(metric(&jobs, "slurm_jobs_pending"), Some(3.0));
    assert!(!jobs.contains("slurm_node_cpus"), "{jobs}");
    let users = get(addr, "/metrics/jobs-users-accts").body;
    assert!(
        users.contains("slurm_user_jobs_running{username="),
        "{users}"
    );
    assert_eq!(get(addr, "/metrics/nope").status, 404);

    // EASY plans only the head; without a daemon nothing holds.
    l.stop();
    l.start(&["--cpus", "2", "--policy", "easy"]);
    wait_for(
        || {
            let rows: Vec<JobRow> = wait.iter().map(|&id| l.job(id)).collect();
            rows[0].expected_start_ms.is_some()
                && rows[1..].iter().all(|r| r.expected_start_ms.is_none())
        },
        10,
        "EASY's single reservation",
    );
    let o = l.cmd(&["queue", "--start"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches(" N/A ").count(), 2, "{text}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("only the job at the head"));
    assert!(
        l.db().daemon_meta().unwrap().http.unwrap().is_empty(),
        "no --http this time"
    );
    l.stop();
    let text = String::from_utf8_lossy(&l.cmd(&["queue", "--start"]).stdout).into_owned();
    assert_eq!(
        text.matches(" N/A ").count(),
        3,
        "no scheduler runs: {text}"
    );
    let o = l.cmd(&["cancel", &run[0].to_string(), &run[1].to_string()]);
    assert!(o.status.success());
}

#[test]
fn bad_requests_are_refused_and_slow_clients_cut_off() {
    let mut l = Live::new();
    l.start(&["--cpus", "1", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&l);
    let status = |req: &[u8]| raw(addr, req).map(|g| g.status).unwrap_or(0);
    assert_eq!(status(b"POST /api/v1/jobs HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
        413
    );
    assert_eq!(status(b"GET /nowhere HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(status(b"nonsense\r\n\r\n"), 400);
    let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    assert_eq!(status(&big), 431);
    let head = raw(addr, b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert!(
        head.head.contains("Content-Security-Policy"),
        "{}",
        head.head
    );
    // A client that never finishes its request head is answered 408 and cut off.
    let t = Instant::now();
    let slow = raw(addr, b"GET / HTT").unwrap();
    assert_eq!(slow.status, 408);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Far more idle connections than the server reads heads from (64): the surplus gets 503
    // at once, and once they go the server answers again.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let mut busy = 0;
    for mut s in idle.iter().skip(80).take(10) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut b = [0u8; 12];
        if s.read_exact(&mut b).is_ok() && &b == b"HTTP/1.1 503" {
            busy += 1;
        }
    }
    assert!(busy > 0, "no connection beyond the queue was refused");
    drop(idle);
    wait_for(
        || raw(addr, b"GET /api/v1/stats HTTP/1.1\r\n\r\n").is_ok_and(|g| g.status == 200),
        15,
        "the server to answer again",
    );
}

/// Median of submit→start latencies (ms) of `n` trivial jobs, one after the other.
fn latencies(l: &Live, n: usize) -> Vec<i64> {
    let mut v: Vec<i64> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            let id = l.submit(&["--", "true"]);
            let r = l.wait_state(id, 30);
            r.start_ms.unwrap() - r.submit_ms
        })
        .collect();
    v.sort_unstable();
    v
}

/// The API hammered by a bounded loop (busy clients, slow clients that hold connections, a
/// flood beyond the connection queue) on loopback: jobs still start as fast, within a generous
/// factor of the unhammered baseline.
#[test]
fn hammering_the_api_does_not_stall_scheduling() {
    // CPU-heavy, and it compares latencies: not alongside the other heavy or timing tests.
    let _heavy = crate::util::heavy();
    let mut l = Live::new();
    l.start(&["--cpus", "2", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&l);
    let _ = latencies(&l, 2); // warm up
    let base = latencies(&l, 15);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for k in 0..4 {
        let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
        threads.push(std::thread::spawn(move || {
            let paths = [
                "/api/v1/jobs?all=1",
                "/metrics",
                "/",
                "/api/v1/stats",
                "/api/v1/users",
            ];
            let t = Instant::now();
            let mut i = k;
            while !stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(120) {
                if k == 3 {
                    // Slow clients: half a request head, held until the server gives up.
                    let held: Vec<_> = (0..8)
                        .filter_map(|_| TcpStream::connect(addr).ok())
                        .map(|mut s| {
                            let _ = s.write_all(b"GET /metr");
                            s
                        })
                        .collect();
                    std::thread::sleep(Duration::from_millis(500));
                    drop(held);
                    continue;
                }
                let req = format!("GET {} HTTP/1.1\r\n\r\n", paths[i % paths.len()]);
                if raw(addr, req.as_bytes()).is_ok_and(|g| g.status == 200 || g.status == 503) {
                    served.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let hammered = latencies(&l, 15);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let (b, h) = (base[base.len() / 2], hammered[hammered.len() / 2]);
    eprintln!(
        "submit→start median: {b} ms unhammered, {h} ms hammered ({} requests answered) {base:?} {hammered:?}",
        served.load(Ordering::Relaxed)
    );
    assert!(
        served.load(Ordering::Relaxed) > 20,
        "the hammer did hit the server"
    );
    // Generous: four times the baseline, with a floor for baselines of a millisecond or two
    // (a loop blocked behind a request's handling shows hundreds of milliseconds).
    assert!(
        h <= 4 * b.max(10) + 100,
        "hammered {hammered:?} vs baseline {base:?}"
    );
}

/// A shared scheduler (`--multi-user`, root only): the server does not know who asks, so it
/// shows every job as `queue` shows another user's — the queue line without the command,
/// working directory and output paths — while the owner's `queue --json` has them.
#[test]
fn shared_scheduler_api_withholds_job_details() {
    if !root_or_skip("a shared scheduler") {
        return;
    }
    let mut l = Live::new();
    l.start(&["--multi-user", "--cpus", "1", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&l);
    let id = l.submit(&["-J", "secret", "--", "sleep", "300"]);
    wait_for(|| l.job(id).state.name() == "RUNNING", 10, "the job to run");
    let own = l.cmd(&["queue", "--json"]);
    let own: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(own[0]["argv"], serde_json::json!(["sleep", "300"]), "{own}");
    for path in ["/api/v1/jobs".to_string(), format!("/api/v1/jobs/{id}")] {
        let body = get_json(addr, &path);
        let job = body
            .get("job")
            .cloned()
            .unwrap_or_else(|| body["jobs"][0].clone());
        assert_eq!(job["id"], id, "{path}: {body}");
        assert_eq!(job["name"], "secret", "{path}: {body}");
        assert_eq!(job["state"], "RUNNING", "{path}: {body}");
        assert_eq!(job["details_hidden"], true, "{path}: {body}");
        assert_eq!(job["argv"], serde_json::json!([]), "{path}: {body}");
        assert_eq!(job["cwd"], "", "{path}: {body}");
    }
    let o = l.cmd(&["cancel", &id.to_string()]);
    assert!(o.status.success());
}
