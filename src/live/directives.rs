//! `#SBATCH` directives: a batch script's options, as `sbatch script.sh` reads them, and the
//! sbatch resource options `submit` shares with them.
//!
//! sbatch reads the lines that begin with `#SBATCH` from the top of the script until the first
//! line that is neither blank nor a comment; each holds options in sbatch's syntax
//! (`--mem=8G`, `--time 1:00:00`, `-c 4`, `-c4`, `-J name`; `#` starts a comment; quotes group
//! words). [`parse`] turns them into `mini-slurm submit`'s own flags, which the command line
//! then overrides, as sbatch's command line overrides the script.
//!
//! What one machine and one task per job make of sbatch's resource options ([`resources`],
//! for the script's and the command line's alike): the CPUs are `--ntasks` × `--cpus-per-task`;
//! `--mem-per-cpu` is multiplied by them; `--nodes` must be 1; `--gres=gpu:[TYPE:]N` gives
//! GPUs. Options that change nothing on a personal scheduler (`--account`, mail,
//! `--export=ALL`, ...) are passed over with a note; anything else is an error naming the line.

use crate::model::job::parse_mem_mb;

/// What a script's directives ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `mini-slurm submit` flags, e.g. `["--cpus", "4", "--mem", "8192"]`.
    pub args: Vec<String>,
    /// The options passed over, each with its line: `job.sh:3: --account=x is ignored ...`.
    pub notes: Vec<String>,
}

/// sbatch options that take a value, by long name, with their short letter, and the flag of
/// `mini-slurm submit` they become (`None`: handled apart, or passed over).
const WITH_VALUE: &[(&str, Option<char>, Option<&str>)] = &[
    ("time", Some('t'), Some("--time")),
    ("job-name", Some('J'), Some("--name")),
    ("output", Some('o'), Some("--output")),
    ("error", Some('e'), Some("--error")),
    ("array", Some('a'), Some("--array")),
    ("dependency", Some('d'), Some("--dependency")),
    ("partition", Some('p'), Some("--partition")),
    ("qos", Some('q'), Some("--qos")),
    ("priority", None, Some("--priority")),
    ("nice", None, Some("--nice")),
    ("mem", None, Some("--mem")),
    ("mem-per-cpu", None, Some("--mem-per-cpu")),
    ("cpus-per-task", Some('c'), Some("--cpus")),
    ("ntasks", Some('n'), Some("--ntasks")),
    ("ntasks-per-node", None, Some("--ntasks")),
    ("nodes", Some('N'), Some("--nodes")),
    ("gpus", Some('G'), Some("--gpus")),
    ("gpus-per-node", None, Some("--gpus")),
    ("gres", None, Some("--gres")),
    ("account", Some('A'), Some("--account")),
    ("mail-type", None, Some("--mail-type")),
    ("mail-user", None, Some("--mail-user")),
    ("export", None, None),
    ("comment", None, None),
    ("open-mode", None, None),
    ("constraint", Some('C'), None),
    ("hint", None, None),
    ("distribution", Some('m'), None),
    ("chdir", Some('D'), None),
];

/// sbatch options without a value that change nothing here.
const PASSED_OVER_FLAGS: &[&str] = &["requeue", "no-requeue", "exclusive", "oversubscribe"];

/// The directives of `text`, the script named `file` (in messages).
pub fn parse(text: &str, file: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    for (n, line) in text.lines().enumerate().skip(1) {
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        if !t.starts_with('#') {
            break;
        }
        let Some(rest) = t.strip_prefix("#SBATCH") else {
            continue;
        };
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let at = format!("{file}:{}", n + 1);
        let words = split_words(rest).map_err(|e| format!("{at}: {e}"))?;
        let mut it = words.into_iter();
        while let Some(w) = it.next() {
            let (name, value) = option(&w, &mut it).map_err(|e| format!("{at}: {e}"))?;
            apply(&name, value, &at, &mut d)?;
        }
    }
    Ok(d)
}

/// What sbatch's resource options come to on one machine, one task per job: `(CPUs, memory
/// in MB if any, GPUs)` from `--cpus-per-task` (`cpus`), `--ntasks`, `--mem` or
/// `--mem-per-cpu`, `--nodes` (must be 1), `--gpus` and `--gres`.
pub struct Requested<'a> {
    pub cpus: u32,
    pub ntasks: Option<u32>,
    pub mem: Option<&'a str>,
    pub mem_per_cpu: Option<&'a str>,
    pub nodes: Option<&'a str>,
    pub gpus: u32,
    pub gres: Option<&'a str>,
}

/// The CPUs, memory (as `--mem` takes it) and GPUs a [`Requested`] comes to; the error names
/// the flag.
pub fn resources(r: &Requested) -> Result<(u32, Option<String>, u32), String> {
    if let Some(n) = r.nodes
        && !matches!(n, "1" | "1-1")
    {
        return Err(format!(
            "--nodes {n}: this scheduler runs a job on one machine (--nodes 1)"
        ));
    }
    let tasks = r.ntasks.unwrap_or(1);
    if tasks == 0 {
        return Err("--ntasks 0: expected a positive number".into());
    }
    let cpus = r
        .cpus
        .checked_mul(tasks)
        .ok_or_else(|| format!("--ntasks {tasks} × --cpus {}: too large", r.cpus))?;
    let mem = match (r.mem, r.mem_per_cpu) {
        (Some(_), Some(_)) => return Err("--mem and --mem-per-cpu exclude each other".into()),
        (Some(m), None) => Some(m.to_string()),
        (None, Some(per)) => {
            let mb = parse_mem_mb(per).map_err(|e| format!("--mem-per-cpu {per}: {e}"))?;
            let total = mb
                .checked_mul(u64::from(cpus))
                .ok_or_else(|| format!("--mem-per-cpu {per} × {cpus} CPUs: too large"))?;
            Some(total.to_string())
        }
        (None, None) => None,
    };
    let gpus = match r.gres {
        None => r.gpus,
        Some(g) => {
            let mut n = 0;
            for one in g.split(',') {
                let parts: Vec<&str> = one.split(':').collect();
                let count = parts.last().and_then(|c| c.parse::<u32>().ok());
                n += match (parts.as_slice(), count) {
                    (["gpu"], _) | (["gpu", _], None) => 1,
                    (["gpu", _], Some(c)) | (["gpu", _, _], Some(c)) => c,
                    _ => return Err(format!("--gres {one}: expected gpu[:TYPE][:N]")),
                };
            }
            n
        }
    };
    Ok((cpus, mem, gpus))
}

/// One option and its value, from `--name=value`, `--name value`, `-Xvalue` or `-X value`.
fn option(
    w: &str,
    rest: &mut impl Iterator<Item = String>,
) -> Result<(String, Option<String>), String> {
    let (name, attached) = if let Some(long) = w.strip_prefix("--") {
        match long.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (long.to_string(), None),
        }
    } else if let Some(short) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
        let mut chars = short.chars();
        let letter = chars.next().unwrap_or_default();
        let name = WITH_VALUE
            .iter()
            .find(|o| o.1 == Some(letter))
            .map(|o| o.0.to_string())
            .ok_or_else(|| format!("unknown sbatch option '-{letter}'"))?;
        let tail = chars.as_str().trim_start_matches('=');
        (name, (!tail.is_empty()).then(|| tail.to_string()))
    } else {
        return Err(format!(
            "'{w}' is not an option (expected e.g. --mem=8G or -c 4)"
        ));
    };
    if PASSED_OVER_FLAGS.contains(&name.as_str()) {
        return Ok((name, None));
    }
    if !WITH_VALUE.iter().any(|o| o.0 == name) {
        return Err(format!("unknown sbatch option '--{name}'"));
    }
    match attached {
        Some(v) => Ok((name, Some(v))),
        None => match rest.next() {
            Some(v) => Ok((name, Some(v))),
            None => Err(format!("--{name} needs a value")),
        },
    }
}

/// Records one option.
fn apply(name: &str, value: Option<String>, at: &str, d: &mut Directives) -> Result<(), String> {
    let Some(v) = value else {
        d.notes.push(format!(
            "{at}: --{name} is passed over (nothing to do on this machine)"
        ));
        return Ok(());
    };
    if let Some(flag) = WITH_VALUE.iter().find(|o| o.0 == name).and_then(|o| o.2) {
        d.args.extend([flag.to_string(), v]);
        return Ok(());
    }
    match name {
        "export" if v.eq_ignore_ascii_case("ALL") => {}
        "chdir" | "export" => {
            return Err(format!(
                "{at}: --{name}={v}: not supported (the job runs in the submit directory with \
                 the submitting environment)"
            ));
        }
        _ => d.notes.push(format!(
            "{at}: --{name}={v} is passed over (nothing to do on this machine)"
        )),
    }
    Ok(())
}

/// A directive's words: split at blanks, `'...'` and `"..."` group, `#` outside quotes starts
/// a comment.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '#') => break,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        parse(text, "job.sh").unwrap().args
    }

    #[test]
    fn directives_become_submit_flags_until_the_first_command() {
        let text = "#!/bin/bash\n#SBATCH --job-name=\"my run\" -c4\n\n# a comment\n\
                    #SBATCH --mem=8G --time 1:00:00 # why\n#SBATCH -o out.%j -n 2\n\
                    echo hi\n#SBATCH --mem=1G\n";
        assert_eq!(
            args(text),
            [
                "--name", "my run", "--cpus", "4", "--mem", "8G", "--time", "1:00:00", "--output",
                "out.%j", "--ntasks", "2"
            ]
        );
    }

    #[test]
    fn tasks_times_cpus_memory_per_cpu_and_gpus() {
        let r = |ntasks, mem, per, nodes, gpus, gres| {
            resources(&Requested {
                cpus: 3,
                ntasks,
                mem,
                mem_per_cpu: per,
                nodes,
                gpus,
                gres,
            })
        };
        let g = Some("gpu:a100:2");
        assert_eq!(
            r(Some(2), None, Some("1G"), Some("1"), 0, g),
            Ok((6, Some("6144".into()), 2))
        );
        assert_eq!(
            r(None, Some("4G"), None, None, 1, None),
            Ok((3, Some("4G".into()), 1))
        );
        assert_eq!(
            r(None, None, None, None, 0, Some("gpu,gpu:v100")),
            Ok((3, None, 2))
        );
        for (got, want) in [
            (
                r(None, None, None, Some("2"), 0, None),
                "--nodes 2: this scheduler",
            ),
            (r(Some(0), None, None, None, 0, None), "--ntasks 0"),
            (
                r(None, Some("1G"), Some("1G"), None, 0, None),
                "exclude each other",
            ),
            (
                r(None, None, Some("lots"), None, 0, None),
                "--mem-per-cpu lots",
            ),
            (
                r(None, None, None, None, 0, Some("disk:2")),
                "--gres disk:2",
            ),
            (
                r(None, None, None, None, 0, Some("gpu:a:b:c")),
                "--gres gpu:a:b:c",
            ),
        ] {
            assert!(
                got.as_ref().is_err_and(|e| e.contains(want)),
                "{got:?}: {want}"
            );
        }
    }

    #[test]
    fn harmless_options_are_noted_others_refused_with_their_line() {
        let d = parse(
            "#!/bin/sh\n#SBATCH --account=lab --mail-type=END --requeue\n",
            "j.sh",
        )
        .unwrap();
        // Account and mail go to submit, which notes them as the command line's.
        assert_eq!(d.args, ["--account", "lab", "--mail-type", "END"]);
        assert_eq!(
            d.notes,
            ["j.sh:2: --requeue is passed over (nothing to do on this machine)"]
        );
        for (text, want) in [
            (
                "#!/bin/sh\n#SBATCH --frobnicate=1\n",
                "j.sh:2: unknown sbatch option '--frobnicate'",
            ),
            (
                "#!/bin/sh\n\n#SBATCH -Z\n",
                "j.sh:3: unknown sbatch option '-Z'",
            ),
            (
                "#!/bin/sh\n#SBATCH -c\n",
                "j.sh:2: --cpus-per-task needs a value",
            ),
            (
                "#!/bin/sh\n#SBATCH -J 'open\n",
                "j.sh:2: a quote is not closed",
            ),
            (
                "#!/bin/sh\n#SBATCH --chdir=/x\n",
                "j.sh:2: --chdir=/x: not supported",
            ),
            (
                "#!/bin/sh\n#SBATCH oops\n",
                "j.sh:2: 'oops' is not an option",
            ),
        ] {
            let e = parse(text, "j.sh").unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_script_without_directives_asks_for_nothing() {
        assert_eq!(
            parse("#!/bin/sh\necho hi\n", "j.sh").unwrap(),
            Directives::default()
        );
        // `#SBATCHX` and `# SBATCH` are comments.
        assert!(args("#!/bin/sh\n#SBATCHX -c 2\n# SBATCH -c 2\n").is_empty());
    }
}
