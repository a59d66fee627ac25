//! `#SBATCH` directives: a batch script's options, as `sbatch script.sh` reads them.
//!
//! sbatch reads the lines that begin with `#SBATCH` from the top of the script until the first
//! line that is neither blank nor a comment; each holds options in sbatch's syntax
//! (`--mem=8G`, `--time 1:00:00`, `-c 4`, `-c4`, `-J name`; `#` starts a comment; quotes group
//! words). [`parse`] turns them into `mini-slurm submit`'s own flags, which the command line
//! then overrides, as sbatch's command line overrides the script.
//!
//! What one machine and one task per job make of sbatch's resource options: the CPUs are
//! `--ntasks` (or `--ntasks-per-node`) × `--cpus-per-task`; `--mem-per-cpu` is multiplied by
//! them; `--nodes` must be 1; `--gres=gpu:[TYPE:]N` and `--gpus[-per-node]` give GPUs. Options
//! that change nothing on a personal scheduler (`--account`, mail, `--export=ALL`, ...) are
//! passed over with a note; anything else is an error naming the line.

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
    ("mem", None, None),
    ("mem-per-cpu", None, None),
    ("cpus-per-task", Some('c'), None),
    ("ntasks", Some('n'), None),
    ("ntasks-per-node", None, None),
    ("nodes", Some('N'), None),
    ("gpus", Some('G'), None),
    ("gpus-per-node", None, None),
    ("gres", None, None),
    ("account", Some('A'), None),
    ("mail-type", None, None),
    ("mail-user", None, None),
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
    let mut res = Resources::default();
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
            apply(&name, value, &at, &mut d, &mut res)?;
        }
    }
    res.finish(&mut d)?;
    Ok(d)
}

/// The resource options, combined once every line is read.
#[derive(Default)]
struct Resources {
    cpus_per_task: Option<(u32, String)>,
    ntasks: Option<(u32, String)>,
    mem: Option<String>,
    mem_per_cpu: Option<(u64, String)>,
    gpus: Option<String>,
}

impl Resources {
    fn finish(self, d: &mut Directives) -> Result<(), String> {
        let cpt = self.cpus_per_task.as_ref().map_or(1, |c| c.0);
        let tasks = self.ntasks.as_ref().map_or(1, |t| t.0);
        let cpus = cpt.checked_mul(tasks).ok_or_else(|| {
            let at = self.ntasks.as_ref().map_or("", |t| t.1.as_str());
            format!("{at}: --ntasks × --cpus-per-task is too large")
        })?;
        if self.cpus_per_task.is_some() || self.ntasks.is_some() {
            d.args.extend(["--cpus".into(), cpus.to_string()]);
        }
        match (self.mem, self.mem_per_cpu) {
            (Some(_), Some((_, at))) => {
                return Err(format!("{at}: --mem and --mem-per-cpu exclude each other"));
            }
            (Some(m), None) => d.args.extend(["--mem".into(), m]),
            (None, Some((mb, at))) => {
                let total = mb
                    .checked_mul(u64::from(cpus))
                    .ok_or_else(|| format!("{at}: --mem-per-cpu × CPUs is too large"))?;
                d.args.extend(["--mem".into(), total.to_string()]);
            }
            (None, None) => {}
        }
        if let Some(g) = self.gpus {
            d.args.extend(["--gpus".into(), g]);
        }
        Ok(())
    }
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
fn apply(
    name: &str,
    value: Option<String>,
    at: &str,
    d: &mut Directives,
    res: &mut Resources,
) -> Result<(), String> {
    let Some(v) = value else {
        d.notes.push(format!(
            "{at}: --{name} is passed over (nothing to do on this machine)"
        ));
        return Ok(());
    };
    let count = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{at}: --{name}={v}: expected a positive number"))
    };
    if let Some(flag) = WITH_VALUE.iter().find(|o| o.0 == name).and_then(|o| o.2) {
        d.args.extend([flag.to_string(), v]);
        return Ok(());
    }
    match name {
        "mem" => res.mem = Some(v),
        "mem-per-cpu" => {
            let mb = parse_mem_mb(&v).map_err(|e| format!("{at}: --mem-per-cpu={v}: {e}"))?;
            res.mem_per_cpu = Some((mb, at.to_string()));
        }
        "cpus-per-task" => res.cpus_per_task = Some((count(&v)?, at.to_string())),
        "ntasks" | "ntasks-per-node" => res.ntasks = Some((count(&v)?, at.to_string())),
        "nodes" => {
            if !matches!(v.as_str(), "1" | "1-1") {
                return Err(format!(
                    "{at}: --nodes={v}: this scheduler runs a job on one machine (--nodes=1)"
                ));
            }
        }
        "gpus" | "gpus-per-node" => res.gpus = Some(gpu_count(&v, at, name)?),
        "gres" => {
            for g in v.split(',') {
                if g.starts_with("gpu") {
                    res.gpus = Some(gpu_count(g.trim_start_matches("gpu:"), at, name)?);
                } else {
                    return Err(format!("{at}: --gres={g}: only gpu[:TYPE]:N is known here"));
                }
            }
        }
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

/// The count of `[TYPE:]N` (a bare `gpu` gres is one GPU).
fn gpu_count(v: &str, at: &str, name: &str) -> Result<String, String> {
    let n = v.rsplit(':').next().unwrap_or(v);
    if v == "gpu" || v.is_empty() {
        return Ok("1".into());
    }
    n.parse::<u32>()
        .map(|n| n.to_string())
        .map_err(|_| format!("{at}: --{name}={v}: expected [TYPE:]N GPUs"))
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
                    #SBATCH --mem=8G --time 1:00:00 # why\n#SBATCH -o out.%j\n\
                    echo hi\n#SBATCH --mem=1G\n";
        assert_eq!(
            args(text),
            [
                "--name", "my run", "--time", "1:00:00", "--output", "out.%j", "--cpus", "4",
                "--mem", "8G"
            ]
        );
    }

    #[test]
    fn tasks_times_cpus_memory_per_cpu_and_gpus() {
        let text = "#!/bin/sh\n#SBATCH --ntasks=2 --cpus-per-task=3 --mem-per-cpu=1G\n\
                    #SBATCH --gres=gpu:a100:2 --nodes=1\n";
        assert_eq!(args(text), ["--cpus", "6", "--mem", "6144", "--gpus", "2"]);
    }

    #[test]
    fn harmless_options_are_noted_others_refused_with_their_line() {
        let d = parse(
            "#!/bin/sh\n#SBATCH --account=lab --mail-type=END --requeue\n",
            "j.sh",
        )
        .unwrap();
        assert!(d.args.is_empty());
        assert_eq!(d.notes.len(), 3, "{:?}", d.notes);
        assert!(
            d.notes[0].starts_with("j.sh:2: --account=lab"),
            "{:?}",
            d.notes
        );
        for (text, want) in [
            (
                "#!/bin/sh\n#SBATCH --frobnicate=1\n",
                "j.sh:2: unknown sbatch option '--frobnicate'",
            ),
            (
                "#!/bin/sh\n\n#SBATCH --nodes=2\n",
                "j.sh:3: --nodes=2: this scheduler",
            ),
            (
                "#!/bin/sh\n#SBATCH -c\n",
                "j.sh:2: --cpus-per-task needs a value",
            ),
            (
                "#!/bin/sh\n#SBATCH -c 0\n",
                "j.sh:2: --cpus-per-task=0: expected a positive",
            ),
            (
                "#!/bin/sh\n#SBATCH -J 'open\n",
                "j.sh:2: a quote is not closed",
            ),
            (
                "#!/bin/sh\n#SBATCH --mem=1G --mem-per-cpu=1G\n",
                "exclude each other",
            ),
            (
                "#!/bin/sh\n#SBATCH --chdir=/x\n",
                "j.sh:2: --chdir=/x: not supported",
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
