//! The small syntaxes of live mode, after Slurm: dependencies (`afterok:12:13,afterany:7`),
//! job arrays (`0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`), CPU lists (`0-3,6`) and signals
//! (`USR1`, `SIGUSR2`, `10`).

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

/// Parses Slurm's `--array`: `0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`. Returns the task ids and
/// the limit of simultaneously running tasks.
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
        if b - a > 100_000 {
            return Err(format!("array spec '{s}' has more than 100000 tasks"));
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

#[cfg(test)]
mod tests {
    use super::*;

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
