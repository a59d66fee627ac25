//! The small syntaxes of live mode, after Slurm: dependencies (`afterok:12:13,afterany:7`),
//! job arrays (`0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`), CPU lists (`0-3,6`) and signals
//! (`USR1`, `SIGUSR2`, `10`), and a job's default name from its command line.

/// A dependency kind, as Slurm's `--dependency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// The other job has started.
    After,
    /// The other job has ended, however.
    AfterAny,
    /// The other job completed successfully.
    AfterOk,
    /// The other job ended unsuccessfully.
    AfterNotOk,
}

/// Parses `afterok:12:13,afterany:7` into (kind, job id) pairs.
pub fn parse_dependency(s: &str) -> Result<Vec<(DepKind, i64)>, String> {
    let mut out = Vec::new();
    for part in s.split([',', '?']).filter(|p| !p.is_empty()) {
        let mut it = part.split(':');
        let kind = match it.next().unwrap_or("") {
            "after" => DepKind::After,
            "afterany" => DepKind::AfterAny,
            "afterok" => DepKind::AfterOk,
            "afternotok" => DepKind::AfterNotOk,
            other => {
                return Err(format!(
                    "unknown dependency type '{other}' (expected after, afterany, afterok or afternotok)"
                ));
            }
        };
        let mut any = false;
        for id in it {
            let id: i64 = id
                .parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or_else(|| format!("invalid job id '{id}' in dependency '{part}'"))?;
            out.push((kind, id));
            any = true;
        }
        if !any {
            return Err(format!(
                "dependency '{part}' names no job (expected e.g. afterok:12)"
            ));
        }
    }
    if out.is_empty() {
        return Err("empty dependency (expected e.g. afterok:12)".into());
    }
    Ok(out)
}

/// The most tasks one array may have (Slurm's default `MaxArraySize` is 1001 task ids, 0-1000;
/// mini-slurm allows task ids up to 100000 and this many tasks in all).
pub const MAX_ARRAY_TASKS: usize = 10_001;

/// Parses Slurm's `--array`: `0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`. Returns the task ids and
/// the limit of simultaneously running tasks. At most [`MAX_ARRAY_TASKS`] tasks with ids up to
/// 100000, counted before anything is expanded.
pub fn parse_array(s: &str) -> Result<(Vec<i64>, Option<i64>), String> {
    let bad =
        || format!("invalid array spec '{s}' (expected e.g. 0-15, 1,3,5-7, 0-99%4 or 0-10:2)");
    let (body, limit) = match s.split_once('%') {
        Some((b, l)) => (
            b,
            Some(l.parse::<i64>().ok().filter(|&l| l > 0).ok_or_else(bad)?),
        ),
        None => (s, None),
    };
    let mut ids = Vec::new();
    for part in body.split(',') {
        let (range, step) = match part.split_once(':') {
            Some((r, st)) => (
                r,
                st.parse::<i64>().ok().filter(|&x| x > 0).ok_or_else(bad)?,
            ),
            None => (part, 1),
        };
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let a: i64 = a.trim().parse().ok().filter(|&x| x >= 0).ok_or_else(bad)?;
        let b: i64 = b.trim().parse().ok().filter(|&x| x >= a).ok_or_else(bad)?;
        if b > 100_000 {
            return Err(format!("array spec '{s}': task ids go up to 100000"));
        }
        let n = ((b - a) / step + 1) as usize;
        if ids.len() + n > MAX_ARRAY_TASKS {
            return Err(format!(
                "array spec '{s}' has more than {MAX_ARRAY_TASKS} tasks"
            ));
        }
        ids.extend((a..=b).step_by(step as usize));
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(bad());
    }
    Ok((ids, limit))
}

/// A job as users name it: `J` (a job, or a whole array by its first task's id) or `J_T` (task
/// `T` of array `J`), as `squeue` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRef {
    pub id: i64,
    pub task: Option<i64>,
}

impl std::str::FromStr for JobRef {
    type Err = String;
    fn from_str(s: &str) -> Result<JobRef, String> {
        let bad =
            || format!("invalid job id '{s}' (expected e.g. 4, or 4_2 for task 2 of array 4)");
        let num = |x: &str| x.parse::<i64>().ok().filter(|&n| n >= 0).ok_or_else(bad);
        match s.split_once('_') {
            Some((j, t)) => Ok(JobRef {
                id: num(j)?,
                task: Some(num(t)?),
            }),
            None => Ok(JobRef {
                id: num(s)?,
                task: None,
            }),
        }
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.task {
            Some(t) => write!(f, "{}_{t}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// A time as `sacct --starttime/--endtime` takes it, in UTC, as milliseconds since the epoch:
/// `YYYY-MM-DD[THH:MM[:SS]]`, `now`, `now-N[seconds|minutes|hours|days|weeks]` (default unit
/// seconds; singular and short forms `s m h d w` too), `today` or `midnight` (00:00 today).
pub fn parse_sacct_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let bad = || {
        format!(
            "invalid time '{s}' (expected YYYY-MM-DD[THH:MM[:SS]], now, now-2hours, now-3days or today)"
        )
    };
    let t = s.trim().to_ascii_lowercase();
    let midnight = now_ms - now_ms.rem_euclid(86_400_000);
    match t.as_str() {
        "now" => return Ok(now_ms),
        "today" | "midnight" => return Ok(midnight),
        _ => {}
    }
    if let Some(rest) = t.strip_prefix("now-") {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_ms = match &rest[digits..] {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "w" | "week" | "weeks" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        return n.checked_mul(unit_ms).map(|d| now_ms - d).ok_or_else(bad);
    }
    let (date, time) = t.split_once('t').unwrap_or((&t, ""));
    let num = |x: &str| x.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else {
        return Err(bad());
    };
    let (y, mo, da) = (num(y)?, num(mo)?, num(da)?);
    // A day the month has (2000-02-31 is refused, not read as March 2).
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || !(1..=month_days).contains(&da) || y < 1970 {
        return Err(bad());
    }
    let hms: Vec<i64> = if time.is_empty() {
        Vec::new()
    } else {
        time.split(':').map(num).collect::<Result<_, _>>()?
    };
    let (h, mi, se) = match hms.as_slice() {
        [] => (0, 0, 0),
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad()),
    };
    if h > 23 || mi > 59 || se > 59 || h < 0 || mi < 0 || se < 0 {
        return Err(bad());
    }
    let days = crate::time::days_from_civil(y, mo, da);
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000)
}

/// A job's default name: the basename of its program, the first word of the command that is
/// not a `VAR=value` assignment (`API_KEY=s3cr3t python x.py` is named `python`: names are
/// everyone's to see, values may be secrets); `job` when there is none. A shell command line
/// is split into words as the shell would, quotes and backslashes included, so a quoted value
/// with spaces is skipped whole.
pub fn default_name(command: &[String], shell: bool) -> String {
    let words: Vec<String> = if shell {
        command.first().map(|l| shell_words(l)).unwrap_or_default()
    } else {
        command.to_vec()
    };
    let assignment = |w: &str| {
        w.split_once('=').is_some_and(|(k, _)| {
            k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    match words.iter().find(|w| !assignment(w)) {
        Some(w) => {
            let base = w.rsplit('/').find(|p| !p.is_empty()).unwrap_or(w);
            if base.is_empty() { "job" } else { base }.to_string()
        }
        None => "job".to_string(),
    }
}

/// The words of a shell command line, its quotes removed (no expansion): enough to tell
/// which word is the program.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            '\'' | '"' => {
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
                in_word = true;
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// CPU ids from a list such as `0-3,6`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// A CPU list such as `0-3,6` from sorted CPU ids (an id repeated is listed once).
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && (cpus[i + 1] == cpus[i] + 1 || cpus[i + 1] == cpus[i]) {
            i += 1;
        }
        out.push(if start == cpus[i] {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    out.join(",")
}

/// A signal by name (`USR1`, `SIGUSR1`) or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    use nix::sys::signal::Signal;
    let t = s.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n)
            .map(|sig| sig as i32)
            .map_err(|_| format!("unknown signal number {n}"));
    }
    let name = if t.starts_with("SIG") {
        t
    } else {
        format!("SIG{t}")
    };
    name.parse::<Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| format!("unknown signal '{s}' (expected e.g. USR1, SIGUSR2 or 10)"))
}

/// The resource limits a submission carries to its job, as Slurm's `PropagateResourceLimits`
/// (default `ALL`): `SLURM_RLIMIT_<name>` in the job's environment holds the soft limit.
pub const PROPAGATED_LIMITS: &[(&str, nix::sys::resource::Resource)] = {
    use nix::sys::resource::Resource as R;
    &[
        ("AS", R::RLIMIT_AS),
        ("CORE", R::RLIMIT_CORE),
        ("CPU", R::RLIMIT_CPU),
        ("DATA", R::RLIMIT_DATA),
        ("FSIZE", R::RLIMIT_FSIZE),
        ("MEMLOCK", R::RLIMIT_MEMLOCK),
        ("NOFILE", R::RLIMIT_NOFILE),
        ("NPROC", R::RLIMIT_NPROC),
        ("RSS", R::RLIMIT_RSS),
        ("STACK", R::RLIMIT_STACK),
    ]
};

/// A limit as `SLURM_RLIMIT_<name>` holds it: the number, or `unlimited`.
pub fn rlimit_text(v: nix::sys::resource::rlim_t) -> String {
    if v == nix::sys::resource::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

/// The value of a `SLURM_RLIMIT_<name>` (see [`rlimit_text`]); `None` if it is neither.
pub fn parse_rlimit(text: &str) -> Option<nix::sys::resource::rlim_t> {
    match text {
        "unlimited" => Some(nix::sys::resource::RLIM_INFINITY),
        t => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sacct_times() {
        let now = 951_782_400_000 + 3_723_000; // 2000-02-29T01:02:03
        assert_eq!(parse_sacct_time("2000-02-29T01:02:03", now), Ok(now));
        assert_eq!(parse_sacct_time("2000-02-29T01:02", now), Ok(now - 3_000));
        assert_eq!(parse_sacct_time("2000-02-29", now), Ok(951_782_400_000));
        assert_eq!(parse_sacct_time("today", now), Ok(951_782_400_000));
        assert_eq!(parse_sacct_time("now", now), Ok(now));
        assert_eq!(parse_sacct_time("now-2hours", now), Ok(now - 7_200_000));
        assert_eq!(parse_sacct_time("now-3d", now), Ok(now - 3 * 86_400_000));
        assert_eq!(parse_sacct_time("now-90", now), Ok(now - 90_000));
        assert_eq!(parse_sacct_time("1970-01-01", now), Ok(0));
        for bad in [
            "yesterday",
            "2000-13-01",
            "2000-02-29T25:00",
            "now-2fortnights",
            "12:00",
        ] {
            assert!(parse_sacct_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn dependencies() {
        assert_eq!(
            parse_dependency("afterok:12:13,afterany:7").unwrap(),
            [
                (DepKind::AfterOk, 12),
                (DepKind::AfterOk, 13),
                (DepKind::AfterAny, 7)
            ]
        );
        assert!(parse_dependency("afterwards:1").is_err());
        assert!(parse_dependency("afterok").is_err());
        assert!(parse_dependency("afterok:x").is_err());
    }

    #[test]
    fn arrays() {
        assert_eq!(
            parse_array("1-10%2").unwrap(),
            ((1..=10).collect(), Some(2))
        );
        assert_eq!(parse_array("1,3,5-7").unwrap(), (vec![1, 3, 5, 6, 7], None));
        assert_eq!(parse_array("0-10:5").unwrap(), (vec![0, 5, 10], None));
        for bad in ["", "a-b", "5-1", "1-3%0", "1-3%x", "1:0"] {
            assert!(parse_array(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_lists_and_signals() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(cpu_list(&[0, 0, 1, 1, 3, 3]), "0-1,3");
        assert_eq!(parse_cpu_list("0-3,6"), [0, 1, 2, 3, 6]);
        assert_eq!(parse_signal("usr1"), parse_signal("SIGUSR1"));
        assert!(parse_signal("NOPE").is_err());
    }
}
