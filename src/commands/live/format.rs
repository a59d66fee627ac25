//! `queue --format`: squeue's format language (`%i %j %T ...`, `%.10M` right-justified in 10
//! columns, `%-8u` or `%8u` left-justified), over the fields of a stored job. The default is
//! squeue's own default line, so scripts written for squeue read `queue` too.

use super::{exit_code_str, time_limit};
use mini_slurm::live::store::JobRow;
use mini_slurm::model::JobState;
use mini_slurm::time::{Dur, fmt_slurm_duration};

/// squeue's default (`squeue` without `-o`).
pub const DEFAULT: &str = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R";

/// squeue's `--start` format: expected start times of pending jobs.
pub const START: &str = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R";

/// One field of a format: its code, width and justification, or literal text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field {
        code: char,
        width: Option<usize>,
        right: bool,
    },
}

/// The codes `--format` knows, with their column titles (as squeue prints them).
const CODES: &[(char, &str)] = &[
    ('i', "JOBID"),
    ('A', "ARRAY_JOB_ID"),
    ('a', "ARRAY_TASK_ID"),
    ('j', "NAME"),
    ('u', "USER"),
    ('t', "ST"),
    ('T', "STATE"),
    ('M', "TIME"),
    ('l', "TIME_LIMIT"),
    ('L', "TIME_LEFT"),
    ('D', "NODES"),
    ('C', "CPUS"),
    ('m', "MIN_MEMORY"),
    ('b', "TRES_PER_NODE"),
    ('P', "PARTITION"),
    ('Q', "PRIORITY"),
    ('R', "NODELIST(REASON)"),
    ('r', "REASON"),
    ('N', "NODELIST"),
    ('V', "SUBMIT_TIME"),
    ('S', "START_TIME"),
    ('Y', "SCHEDNODES"),
    ('e', "END_TIME"),
    ('o', "COMMAND"),
    ('Z', "WORK_DIR"),
    ('E', "DEPENDENCY"),
    ('q', "QOS"),
    ('y', "NICE"),
    ('X', "EXIT_CODE"),
];

/// A parsed `--format`.
#[derive(Clone, Debug)]
pub struct Format(Vec<Part>);

impl Format {
    /// Parses squeue's format language; an unknown code is an error naming it.
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                text.push('%');
                continue;
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            let right = chars.next_if_eq(&'.').is_some();
            let _ = chars.next_if_eq(&'-');
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            let code = chars
                .next()
                .ok_or_else(|| format!("'{s}' ends after '%'"))?;
            if !CODES.iter().any(|(k, _)| *k == code) {
                let known: String = CODES.iter().map(|(k, _)| *k).collect();
                return Err(format!("unknown field '%{code}' (known: {known})"));
            }
            parts.push(Part::Field {
                code,
                width: digits.parse().ok(),
                right,
            });
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Format(parts))
    }

    /// The header line.
    pub fn header(&self) -> String {
        self.line(|code| {
            CODES
                .iter()
                .find(|(k, _)| *k == code)
                .map_or("", |c| c.1)
                .to_string()
        })
    }

    /// One job's line; `node` names this machine, `now` is the time (ms), `reason` what
    /// the job waits for (pending) or how it ended.
    pub fn row(&self, r: &JobRow, node: &str, now: i64, reason: &str) -> String {
        self.line(|code| field(code, r, node, now, reason))
    }

    fn line(&self, value: impl Fn(char) -> String) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { code, width, right } => {
                    let v = value(*code);
                    match width {
                        // Cut to the width, as squeue does.
                        Some(w) => {
                            let v: String = v.chars().take(*w).collect();
                            if *right {
                                out.push_str(&format!("{v:>w$}"));
                            } else {
                                out.push_str(&format!("{v:<w$}"));
                            }
                        }
                        None => out.push_str(&v),
                    }
                }
            }
        }
        out.trim_end().to_string()
    }
}

/// The job id as squeue prints it: `ARRAYID_TASK` for an array task.
pub fn job_label(r: &JobRow) -> String {
    match (r.array_job_id, r.array_task_id) {
        (Some(a), Some(t)) => format!("{a}_{t}"),
        _ => r.id.to_string(),
    }
}

/// squeue's TIME: `M:SS`, `H:MM:SS` or `D-HH:MM:SS`.
fn elapsed(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60) {
        (0, 0, m, s) => format!("{m}:{s:02}"),
        (0, h, m, s) => format!("{h}:{m:02}:{s:02}"),
        _ => fmt_slurm_duration(Dur(ms)),
    }
}

fn field(code: char, r: &JobRow, node: &str, now: i64, reason: &str) -> String {
    let started = r.state.is_started();
    let run_ms = r.start_ms.map_or(0, |s| r.end_ms.unwrap_or(now) - s);
    let iso = |ms: Option<i64>| ms.map_or("N/A".to_string(), super::iso_time);
    match code {
        'i' => job_label(r),
        'A' => r.array_job_id.unwrap_or(r.id).to_string(),
        'a' => r.array_task_id.map_or("N/A".to_string(), |t| t.to_string()),
        'j' => r.name.clone(),
        'u' => r.user.clone(),
        't' => r.state.short().to_string(),
        'T' => r.state.name().to_string(),
        'M' => elapsed(run_ms),
        'l' => time_limit(r.time_limit_ms),
        'L' => match (r.time_limit_ms, started) {
            (Some(l), true) => elapsed(l - run_ms),
            (Some(l), false) => elapsed(l),
            (None, _) => "UNLIMITED".to_string(),
        },
        'D' => "1".to_string(),
        'C' => match (r.state, r.alloc_cpus) {
            (JobState::Running, Some(n)) => n,
            _ => r.cpus,
        }
        .to_string(),
        'm' => match r.mem_mb {
            0 => "0".to_string(),
            mb => format!("{mb}M"),
        },
        'b' => match r.gpus {
            0 => "N/A".to_string(),
            g => format!("gres:gpu:{g}"),
        },
        'P' => r.partition.clone(),
        'Q' => r.priority.to_string(),
        'R' => {
            if started {
                node.to_string()
            } else {
                format!("({reason})")
            }
        }
        'r' => reason.to_string(),
        'N' => {
            if started || r.start_ms.is_some() {
                node.to_string()
            } else {
                String::new()
            }
        }
        'V' => iso(Some(r.submit_ms)),
        // squeue's "actual or expected start time": a pending job's from the daemon's plan.
        'S' if r.state == JobState::Pending => iso(r.expected_start_ms),
        'S' => iso(r.start_ms),
        // The nodes a pending job is planned on (this machine's, when it has a start).
        'Y' if r.state == JobState::Pending && r.expected_start_ms.is_some() => node.to_string(),
        'Y' => "(null)".to_string(),
        'e' => iso(r.end_ms),
        'o' | 'Z' if r.details_hidden => super::HIDDEN.to_string(),
        'o' => r.argv.join(" "),
        'Z' => r.cwd.clone(),
        'E' => {
            if r.dependency.is_empty() {
                "(null)".to_string()
            } else {
                r.dependency.clone()
            }
        }
        'q' => {
            if r.qos.is_empty() {
                "normal".to_string()
            } else {
                r.qos.clone()
            }
        }
        'y' => r.nice.to_string(),
        'X' => exit_code_str(r.exit_code, r.signal),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_squeue_formats() {
        let f = Format::parse("%.18i %-8u%j %% x").unwrap();
        assert_eq!(
            f.0,
            [
                Part::Field {
                    code: 'i',
                    width: Some(18),
                    right: true
                },
                Part::Text(" ".into()),
                Part::Field {
                    code: 'u',
                    width: Some(8),
                    right: false
                },
                Part::Field {
                    code: 'j',
                    width: None,
                    right: false
                },
                Part::Text(" % x".into()),
            ]
        );
        assert_eq!(
            Format::parse(DEFAULT).unwrap().header(),
            "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
        );
        assert!(
            Format::parse("%z")
                .unwrap_err()
                .contains("unknown field '%z'")
        );
        assert!(Format::parse("%.5").is_err());
        assert_eq!(elapsed(65_000), "1:05");
        assert_eq!(elapsed(3_725_000), "1:02:05");
        assert_eq!(elapsed(90_000_000), "1-01:00:00");
    }
}
