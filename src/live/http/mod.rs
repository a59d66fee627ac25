//! The daemon's HTTP side (`scheduler --http ADDR:PORT`, off by default): a dashboard at `/`,
//! Prometheus metrics at `/metrics` (and Slurm 25.11's per-kind paths `/metrics/jobs`, ...),
//! and a read-only JSON API under `/api/v1/` (docs/api.md).
//!
//! It never touches the engine: it reads the snapshots the scheduling loop publishes after
//! each step (`live::publish`) and the database through read-only connections of its own (one
//! per worker thread). The server (`server.rs`) bounds what a client can take: a fixed pool of
//! low-priority worker threads, a bounded queue of connections (`503` beyond), deadlines to
//! send a request head and to take a response, a cap on the head's size, no bodies, no
//! keep-alive. A sampler thread keeps the last hours of utilization and queue length
//! (`history.rs`) for the dashboard's chart. Everything the dashboard needs is compiled into
//! the binary (`assets/`): it works offline.
//!
//! Who may see what: the API shows every job, as `queue` does; it listens on the loopback
//! interface unless the administrator names another address, and has no authentication.

mod api;
mod history;
mod metrics;
mod routes;
pub mod server;

pub use history::{History, Sample};

use super::publish::Published;
use super::{Home, LiveError};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the HTTP side runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// Worker threads, hence requests served at once.
    pub workers: usize,
    /// How often the utilization history takes a sample (also after each pass, at most once a
    /// second).
    pub sample_every: Duration,
    /// How much history is kept.
    pub keep: Duration,
    /// Withhold every job's command, working directory and output paths, as `queue` does for
    /// other users' jobs (a shared scheduler: the server does not know who asks).
    pub hide_details: bool,
}

impl HttpOptions {
    /// Defaults for `addr`: 4 workers, a sample every 15 s (`$MINI_SLURM_HTTP_SAMPLE_MS`
    /// overrides it), 6 hours kept.
    pub fn new(addr: SocketAddr) -> HttpOptions {
        let sample_ms = std::env::var("MINI_SLURM_HTTP_SAMPLE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(15_000);
        HttpOptions {
            addr,
            workers: 4,
            sample_every: Duration::from_millis(sample_ms),
            keep: Duration::from_secs(6 * 3600),
            hide_details: false,
        }
    }
}

/// Parses `--http`'s value: `PORT` or `:PORT` (the loopback interface), or `HOST:PORT` /
/// `[V6]:PORT` (the administrator's choice). The result, and whether it is loopback only.
pub fn parse_addr(s: &str) -> Result<(SocketAddr, bool), String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    let text = if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("'{s}': the port must be at most 65535"))?;
        return Ok((SocketAddr::from(([127, 0, 0, 1], port)), true));
    } else {
        s
    };
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("'{s}': expected PORT or ADDRESS:PORT ({e})"))?;
    let addr = addrs
        .next()
        .ok_or_else(|| format!("'{s}': the name resolves to no address"))?;
    Ok((addr, addr.ip().is_loopback()))
}

/// The running HTTP side: stops its threads when dropped.
pub struct HttpServer {
    server: server::Server,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
    }
}

/// Binds and starts the HTTP side over `home`'s database and the published snapshots.
pub fn start(
    opts: &HttpOptions,
    home: &Home,
    published: Published,
) -> Result<HttpServer, LiveError> {
    let listener = TcpListener::bind(opts.addr)
        .map_err(|e| LiveError::Other(format!("--http {}: cannot listen: {e}", opts.addr)))?;
    let history = Arc::new(History::new(opts.keep));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (h, p, s, every) = (
            Arc::clone(&history),
            published.clone(),
            Arc::clone(&stop),
            opts.sample_every,
        );
        std::thread::Builder::new()
            .name("http-sampler".into())
            .spawn(move || history::sample(&h, &p, &s, every))
            .ok()
    };
    let app = routes::App {
        db_path: home.db(),
        published,
        history,
        sample_every: opts.sample_every,
        hide_details: opts.hide_details,
    };
    let server = server::Server::start(listener, opts.workers, app);
    Ok(HttpServer {
        server,
        stop,
        sampler,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            parse_addr("8080").unwrap(),
            ("127.0.0.1:8080".parse().unwrap(), true)
        );
        assert!(parse_addr(":0").unwrap().1);
        assert!(parse_addr("[::1]:9").unwrap().1);
        assert_eq!(
            parse_addr("0.0.0.0:8080").unwrap(),
            ("0.0.0.0:8080".parse().unwrap(), false)
        );
        assert!(parse_addr("70000").unwrap_err().contains("65535"));
        assert!(parse_addr("nonsense").is_err());
        assert!(parse_addr("").is_err());
    }
}
