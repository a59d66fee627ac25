//! The dashboard as a person sees it: a real headless Chromium (Debian's `chromium`) loads
//! `scheduler --http`'s page from a daemon running real jobs, runs its scripts, and the page
//! it rendered must show every job with its state, and each waiting job's expected start as
//! the scheduler planned it. A screenshot is taken too (`$MINI_SLURM_SCREENSHOT` keeps it:
//! that is how docs/dashboard.png is made).
//!
//! Skipped when no Chromium is installed, except under `CI=true` (`.ci/run` installs it).

use crate::live_http::{conservative_2_cpus_http, iso, stored_starts, two_running_three_waiting};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is required under CI=true (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn run_chromium(chrome: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr>` of a job in the table with id `table`.
fn row<'a>(dom: &'a str, table: &str, job: i64) -> &'a str {
    let t = dom
        .find(&format!("<table id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}:\n{dom}"));
    let t = &dom[t..];
    let t = &t[..t.find("</table>").unwrap()];
    let r = t
        .find(&format!("<tr data-job=\"{job}\""))
        .unwrap_or_else(|| panic!("job {job} not in {table}:\n{t}"));
    &t[r..r + t[r..].find("</tr>").unwrap()]
}

#[test]
fn dashboard_shows_jobs_states_and_expected_starts() {
    let Some(chrome) = chromium() else {
        return;
    };
    // A browser is CPU-heavy: not alongside the timing tests.
    let _heavy = crate::util::heavy();
    let (l, addr) = conservative_2_cpus_http(&[("MINI_SLURM_HTTP_SAMPLE_MS", "1000")]);
    let done = l.submit(&["-J", "prep", "--", "sleep", "1"]);
    l.wait_state(done, 20);
    let (run, wait) = two_running_three_waiting(&l);
    let starts = stored_starts(&l, &wait);
    let url = format!("http://{addr}/");

    let dom = run_chromium(&chrome, &url, &["--dump-dom"]);
    for id in run {
        let r = row(&dom, "running", id);
        assert!(r.contains(">RUNNING<") && r.contains(">train<"), "{r}");
    }
    for (id, at) in wait.iter().zip(&starts) {
        let r = row(&dom, "queue", *id);
        assert!(r.contains(">PENDING<") && r.contains(">eval<"), "{r}");
        let shown = format!("data-expected-start=\"{}\"", iso(*at));
        assert!(r.contains(&shown), "job {id} should show {shown}: {r}");
    }
    assert!(dom.contains("the policy plans every waiting job"), "{dom}");
    assert!(!dom.contains("cannot reach the scheduler"), "{dom}");
    // The timeline has a bar per job, finished, running and planned.
    for id in [done, run[0], wait[2]] {
        assert!(
            dom.contains(&format!("<title>{id} ")),
            "no bar for job {id}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let shot = std::env::var_os("MINI_SLURM_SCREENSHOT")
        .map_or_else(|| dir.path().join("dashboard.png"), PathBuf::from);
    let arg = format!("--screenshot={}", shot.display());
    run_chromium(&chrome, &url, &[&arg, "--window-size=1400,1250"]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let o = l.cmd(&["cancel", &run[0].to_string(), &run[1].to_string()]);
    assert!(o.status.success());
}
