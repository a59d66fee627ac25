//! A small HTTP/1.1 server for GET and HEAD, on `std::net`, built to stay out of the
//! scheduler's way whatever clients do:
//!
//! - one acceptor thread reads request heads from up to [`OPEN`] connections at once without
//!   blocking (a poll over them all), so a slow client holds one of those slots, never a
//!   worker; a head must arrive whole within [`HEAD_DEADLINE`] (`408` otherwise: a client
//!   sending one byte a second is cut off) and fit in [`MAX_HEAD`] bytes (`431`); bodies are
//!   refused (`413`), as is any method but GET and HEAD (`405`);
//! - a fixed pool of worker threads (at a lower CPU priority than the scheduling loop)
//!   answers complete requests from a queue of at most [`QUEUE`]; a connection beyond either
//!   bound gets `503 Service Unavailable` at once and is closed;
//! - a response must be taken within [`WRITE_DEADLINE`], written in chunks so a client that
//!   stops reading is dropped;
//! - every connection is closed after its response (`Connection: close`): nothing stays open.
//!
//! Handlers get a parsed [`Request`] and return a [`Response`]; they never see the socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client has to take its whole response.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections whose request head is still arriving, at most.
pub const OPEN: usize = 64;
/// Complete requests waiting for a worker, at most.
pub const QUEUE: usize = 32;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HEAD: the same headers as GET, no body.
    pub head: bool,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters in order, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
}

impl Request {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, content type, body and extra headers.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut b = body.into();
        b.push('\n');
        Response::new(status, "text/plain; charset=utf-8", b)
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Handles one request on a worker; `state` is the worker's own (e.g. its database connection).
pub trait Handler: Send + Sync + 'static {
    type State;
    fn new_state(&self) -> Self::State;
    fn handle(&self, state: &mut Self::State, req: &Request) -> Response;
}

/// What a worker is handed: a complete request, or an error to answer.
enum Work {
    Request(TcpStream, Request),
    Refuse(TcpStream, Response),
}

/// A running server: stops and joins its threads when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serves `handler` on `listener` with `workers` worker threads.
    pub fn start<H: Handler>(listener: TcpListener, workers: usize, handler: H) -> Server
    where
        H::State: 'static,
    {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<Work>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let handler = Arc::new(handler);
        let mut threads = Vec::with_capacity(workers + 1);
        for i in 0..workers.max(1) {
            let (rx, handler) = (Arc::clone(&rx), Arc::clone(&handler));
            let t = std::thread::Builder::new()
                .name(format!("http-worker-{i}"))
                .spawn(move || worker(&rx, handler.as_ref()));
            threads.extend(t.ok());
        }
        let stop2 = Arc::clone(&stop);
        let t = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || Acceptor::new(listener, tx).run(&stop2));
        threads.extend(t.ok());
        Server {
            addr,
            stop,
            threads,
        }
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Lowers the calling thread's CPU priority (nice +10): a busy server yields to the scheduling
/// loop. Best effort.
fn lower_priority() {
    // SAFETY: setpriority on the calling thread's id changes only that thread's nice value.
    unsafe {
        let tid = nix::libc::gettid();
        let _ = nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, 10);
    }
}

/// A connection whose request head is still arriving.
struct Incoming {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
}

/// The acceptor: one thread that accepts connections and reads their request heads without
/// blocking (a poll over all of them), so a slow client holds a slot of [`OPEN`], never a
/// worker; complete requests go to the workers' queue.
struct Acceptor {
    listener: TcpListener,
    tx: SyncSender<Work>,
    open: Vec<Incoming>,
}

impl Acceptor {
    fn new(listener: TcpListener, tx: SyncSender<Work>) -> Acceptor {
        let _ = listener.set_nonblocking(true);
        Acceptor {
            listener,
            tx,
            open: Vec::new(),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        lower_priority();
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let wait = self
                .open
                .iter()
                .map(|c| c.deadline.saturating_duration_since(now))
                .fold(Duration::from_millis(200), Duration::min);
            let ready: Vec<bool> = {
                let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                fds.extend(
                    self.open
                        .iter()
                        .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)),
                );
                let ms = u16::try_from(wait.as_millis()).unwrap_or(200);
                if poll(&mut fds, PollTimeout::from(ms)).is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                fds.iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect()
            };
            for i in (0..self.open.len()).rev() {
                if ready[i + 1] {
                    self.read_more(i);
                } else if self.open[i].deadline <= Instant::now() {
                    let c = self.open.swap_remove(i);
                    let r = Response::text(408, "request head not received in time");
                    self.dispatch(Work::Refuse(c.stream, r));
                }
            }
            if ready[0] {
                self.accept_all();
            }
        }
    }

    fn accept_all(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.open.len() >= OPEN || stream.set_nonblocking(true).is_err() {
                busy(stream);
                continue;
            }
            self.open.push(Incoming {
                stream,
                buf: Vec::new(),
                deadline: Instant::now() + HEAD_DEADLINE,
            });
        }
    }

    /// Reads what connection `i` sent; hands it on once its head is complete (or wrong).
    fn read_more(&mut self, i: usize) {
        let c = &mut self.open[i];
        let mut chunk = [0u8; 4096];
        let outcome = loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => break Some(None), // the client went away
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = head_end(&c.buf) {
                        let req = std::str::from_utf8(&c.buf[..end])
                            .map_err(|_| Response::text(400, "request head is not UTF-8"))
                            .and_then(parse_head);
                        break Some(Some(req));
                    }
                    if c.buf.len() > MAX_HEAD {
                        break Some(Some(Err(Response::text(431, "request head too large"))));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break None,
                Err(_) => break Some(None),
            }
        };
        let Some(done) = outcome else {
            return; // more to come
        };
        let c = self.open.swap_remove(i);
        match done {
            None => {}
            Some(Ok(req)) => self.dispatch(Work::Request(c.stream, req)),
            Some(Err(resp)) => self.dispatch(Work::Refuse(c.stream, resp)),
        }
    }

    /// Queues work for the workers; with the queue full, the client is told so at once.
    fn dispatch(&self, work: Work) {
        if let Err(TrySendError::Full(w) | TrySendError::Disconnected(w)) = self.tx.try_send(work) {
            let (Work::Request(s, _) | Work::Refuse(s, _)) = w;
            busy(s);
        }
    }
}

/// Answers `503` without waiting on the client (one non-blocking write) and closes. What the
/// client already sent is read first (without waiting), so that the close does not reset the
/// connection and lose the answer.
fn busy(mut s: TcpStream) {
    let r = Response::text(503, "busy: too many connections, retry later")
        .with_header("Retry-After", "1");
    let _ = s.set_nonblocking(true);
    let _ = s.write(head_text(&r).as_bytes());
    let _ = s.write(&r.body);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..(MAX_HEAD / sink.len() + 1) {
        if !matches!(s.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

fn worker<H: Handler>(rx: &Mutex<Receiver<Work>>, handler: &H) {
    lower_priority();
    let mut state = handler.new_state();
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(work) = next else {
            return; // the acceptor stopped
        };
        let (mut stream, resp, head) = match work {
            Work::Request(s, req) => (s, handler.handle(&mut state, &req), req.head),
            Work::Refuse(s, resp) => (s, resp, false),
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let _ = write_response(&mut stream, &resp, head, Instant::now() + WRITE_DEADLINE);
        if resp.status >= 400 {
            drain(&mut stream);
        }
    }
}

/// Reads and drops what the client still sends (briefly, boundedly) before the socket is
/// closed: closing with unread input would reset the connection and could destroy the error
/// response before the client reads it.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Where the head ends (the blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a request head; the error is the response to send.
pub fn parse_head(text: &str) -> Result<Request, Response> {
    let mut lines = text.lines();
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::text(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Response::text(400, "only HTTP/1.x is served"));
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Err(Response::text(405, "only GET and HEAD are served")
                .with_header("Allow", "GET, HEAD"));
        }
    };
    for h in lines {
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        let has_body = (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding");
        if has_body {
            return Err(Response::text(413, "requests with a body are not served"));
        }
    }
    if !target.starts_with('/') {
        return Err(Response::text(400, "the request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path, false).ok_or_else(|| Response::text(400, "bad path"))?;
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true);
        let v = percent_decode(v, true);
        let (Some(k), Some(v)) = (k, v) else {
            return Err(Response::text(400, "bad query string"));
        };
        params.push((k, v));
    }
    Ok(Request {
        head,
        path,
        query: params,
    })
}

/// `%XX` decoding (and `+` as a space in a query); `None` for a bad escape or non-UTF-8.
fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The status line and headers of a response.
fn head_text(r: &Response) -> String {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.status,
        reason_phrase(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Writes a response in chunks, each bounded by the time left until `deadline`.
fn write_response(
    s: &mut TcpStream,
    r: &Response,
    head_only: bool,
    deadline: Instant,
) -> std::io::Result<()> {
    let head = head_text(r);
    let body: &[u8] = if head_only { &[] } else { &r.body };
    for part in [head.as_bytes(), body] {
        for chunk in part.chunks(64 * 1024) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            s.set_write_timeout(Some(left))?;
            s.write_all(chunk)?;
        }
    }
    s.flush()?;
    // Let the client read everything before the close (no reset of unread data).
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse_or_get_their_error() {
        let r = parse_head("GET /api/v1/jobs?state=PENDING%2CRUNNING&user=a+b HTTP/1.1\r\nHost: x")
            .unwrap();
        assert_eq!(r.path, "/api/v1/jobs");
        assert_eq!(r.param("state"), Some("PENDING,RUNNING"));
        assert_eq!(r.param("user"), Some("a b"));
        assert!(!r.head);
        assert!(parse_head("HEAD / HTTP/1.0").unwrap().head);
        let status = |t: &str| parse_head(t).map_or_else(|r| r.status, |_| 200);
        assert_eq!(status("POST / HTTP/1.1"), 405);
        assert_eq!(status("GET / HTTP/1.1\r\nContent-Length: 5"), 413);
        assert_eq!(status("GET /"), 400);
        assert_eq!(status("GET http://x/ HTTP/1.1"), 400);
        assert_eq!(status("GET /%zz HTTP/1.1"), 400);
        assert_eq!(status("GET / SPDY/3"), 400);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
