//! Which path serves what: the dashboard's three files (compiled in), `/metrics[/KIND]`, and
//! `/api/v1/...`. Each worker keeps a read-only database connection of its own, opened on
//! first use and reopened after a failure.

use super::History;
use super::server::{Handler, Request, Response};
use super::{api, metrics};
use crate::live::publish::Published;
use crate::live::store::{Db, JobRow};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Scripts and styles only from this server; no frames, no plugins, no form posts.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the workers share.
pub struct App {
    pub db_path: PathBuf,
    pub published: Published,
    pub history: Arc<History>,
    pub sample_every: Duration,
    /// Withhold the details of every job (see `HttpOptions::hide_details`).
    pub hide_details: bool,
}

/// A JSON error body.
pub fn json_error(status: u16, msg: &str) -> Response {
    let body = serde_json::json!({ "error": msg }).to_string();
    Response::new(status, "application/json", body)
}

impl App {
    /// Withholds what only a job's owner may see, where the server must (a shared scheduler).
    pub fn shown(&self, rows: &mut [JobRow]) {
        if self.hide_details {
            rows.iter_mut().for_each(JobRow::hide_details);
        }
    }

    /// The worker's connection, opened if needed.
    pub fn db<'s>(&self, st: &'s mut Option<Db>) -> Result<&'s Db, Response> {
        if st.is_none() {
            match Db::open_read_only(&self.db_path) {
                Ok(db) => *st = Some(db),
                Err(e) => return Err(json_error(503, &format!("database: {e}"))),
            }
        }
        st.as_ref()
            .ok_or_else(|| json_error(503, "database unavailable"))
    }
}

fn asset(body: &str, content_type: &'static str) -> Response {
    Response::new(200, content_type, body)
}

impl Handler for App {
    type State = Option<Db>;

    fn new_state(&self) -> Option<Db> {
        None
    }

    fn handle(&self, st: &mut Option<Db>, req: &Request) -> Response {
        let path = req.path.as_str();
        let resp = match path {
            "/" | "/index.html" => asset(INDEX_HTML, "text/html; charset=utf-8")
                .with_header("Content-Security-Policy", CSP),
            "/app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
            "/app.css" => asset(APP_CSS, "text/css; charset=utf-8"),
            _ if path == "/metrics" || path.starts_with("/metrics/") => {
                metrics::serve(self, st, path.trim_start_matches("/metrics"))
            }
            _ if path == "/api/v1" || path.starts_with("/api/v1/") => {
                api::serve(self, st, req, path.trim_start_matches("/api/v1"))
            }
            _ => Response::text(404, format!("no such page: {path}")),
        };
        if resp.status >= 500 {
            // A failed query may come from a broken connection: open a new one next time.
            *st = None;
        }
        resp
    }
}
