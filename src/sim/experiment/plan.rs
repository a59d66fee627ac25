//! The grid of an experiment's runs, in a fixed order, each named by its inputs; which of them
//! to run (a run's `run.txt` stamp says what it was made from); running them in parallel.

use super::Experiment;
use crate::model::EstimateMode;
use crate::sim::SimError;
use crate::sim::compare::unique_slugs;
use crate::sim::output::{write_file, write_run};
use crate::sim::parallel::parallel;
use crate::time::Dur;
use std::path::PathBuf;

/// One run of the grid: a trace, a policy, a value of each parameter given, a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The run's name, and its directory under `runs/`: its trace, policy, parameters and
    /// seed (`lublin_256_swf_gz__easy__load0p9__shake60__seed2`).
    pub id: String,
    pub trace: PathBuf,
    pub policy: String,
    pub load: Option<f64>,
    pub shake: Option<f64>,
    pub elastic_fraction: Option<f64>,
    pub estimate: Option<EstimateMode>,
    pub seed: u64,
}

/// An experiment's runs and where their results go.
pub struct Plan<'e> {
    pub experiment: &'e Experiment,
    /// The output directory.
    pub out: PathBuf,
    /// Every run of the grid, in the product's order (traces, policies, load, shake, elastic
    /// fraction, estimate, seeds).
    pub runs: Vec<Point>,
    /// The runs to run now.
    pub todo: Vec<Point>,
}

/// `0.5` as `0p5`, for names.
fn fmt_num(v: f64) -> String {
    let s = format!("{v}");
    s.replace('.', "p")
}

/// The values of a parameter, or one "not given".
fn values<T: Clone>(v: &Option<Vec<T>>) -> Vec<Option<T>> {
    v.as_ref()
        .map_or(vec![None], |v| v.iter().cloned().map(Some).collect())
}

/// The product, in a fixed order.
fn grid(e: &Experiment) -> Vec<Point> {
    let pr = &e.parameters;
    let stems: Vec<String> = e
        .traces
        .iter()
        .map(|t| {
            t.file_name()
                .map_or("trace".into(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let mut runs = Vec::new();
    for (trace, stem_slug) in e.traces.iter().zip(unique_slugs(&stems)) {
        for (policy, policy_slug) in e.policies.iter().zip(unique_slugs(&e.policies)) {
            for load in values(&pr.load) {
                for shake in values(&pr.shake) {
                    for ef in values(&pr.elastic_fraction) {
                        for est in values(&pr.estimate) {
                            for &seed in &e.seeds {
                                let mut id = format!("{stem_slug}__{policy_slug}");
                                if let Some(l) = load {
                                    id.push_str(&format!("__load{}", fmt_num(l)));
                                }
                                if let Some(s) = shake {
                                    id.push_str(&format!("__shake{}", fmt_num(s)));
                                }
                                if let Some(f) = ef {
                                    id.push_str(&format!("__elastic{}", fmt_num(f)));
                                }
                                if let Some(e) = est {
                                    id.push_str(&format!("__est-{}", e.name()));
                                }
                                id.push_str(&format!("__seed{seed}"));
                                runs.push(Point {
                                    id,
                                    trace: trace.clone(),
                                    policy: policy.clone(),
                                    load,
                                    shake,
                                    elastic_fraction: ef,
                                    estimate: est,
                                    seed,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    runs
}

impl<'e> Plan<'e> {
    pub(super) fn new(experiment: &'e Experiment, out: PathBuf, force: bool) -> Plan<'e> {
        let runs = grid(experiment);
        let mut plan = Plan {
            experiment,
            out,
            runs,
            todo: Vec::new(),
        };
        plan.todo = plan
            .runs
            .iter()
            .filter(|r| {
                let dir = plan.dir(r);
                force
                    || !dir.join("summary.json").exists()
                    || std::fs::read_to_string(dir.join("run.txt")).ok() != Some(plan.stamp(r))
            })
            .cloned()
            .collect();
        plan
    }

    /// Where a run's outputs go: `out/runs/<id>`.
    pub fn dir(&self, r: &Point) -> PathBuf {
        self.out.join("runs").join(&r.id)
    }

    /// What a run is, in full (`run.txt`): a run's outputs are reused only when this matches.
    pub fn stamp(&self, r: &Point) -> String {
        let trace = std::fs::canonicalize(&r.trace).unwrap_or_else(|_| r.trace.clone());
        format!(
            "mini-slurm {}\ntrace {}\npolicy {}\nload {:?}\nshake {:?}\nelastic_fraction {:?}\nestimate {:?}\nseed {}\noptions {}\n",
            env!("CARGO_PKG_VERSION"),
            trace.display(),
            r.policy,
            r.load,
            r.shake,
            r.elastic_fraction,
            r.estimate.map(EstimateMode::name),
            r.seed,
            self.experiment
                .options
                .as_deref()
                .unwrap_or_default()
                .join(" ")
        )
    }

    /// Runs the runs to run (`todo`) on up to `threads` threads, each writing its `jobs.csv`,
    /// `summary.json` and `run.txt`; `done` hears of each run finished. The first failed run's
    /// error, in the grid's order.
    pub fn execute(&self, threads: usize, done: &(dyn Fn(&Point) + Sync)) -> Result<(), SimError> {
        let one = |r: &Point| -> Result<(), SimError> {
            self.run_one(r)?;
            done(r);
            Ok(())
        };
        parallel(&self.todo, threads, &one).into_iter().collect()
    }

    /// One run: its setup (the fixed options with the run's trace, seed and parameters),
    /// simulated and written.
    fn run_one(&self, r: &Point) -> Result<(), SimError> {
        let mut w = self.experiment.base.clone();
        w.trace = r.trace.clone();
        w.seed = r.seed;
        if let Some(f) = r.elastic_fraction {
            w.elastic_fraction = Some(f);
        }
        if let Some(e) = r.estimate {
            w.estimate = e;
        }
        // The load is measured on the cluster the run uses.
        w.load = r.load;
        w.shake = r
            .shake
            .filter(|s| *s > 0.0)
            .map(|s| Dur((s * 1000.0) as i64));
        let p = w.prepare(&mut |_| {})?;
        let run = p.run(&r.policy)?;
        let dir = self.dir(r);
        write_run(&dir, &p, &run)?;
        write_file(&dir.join("run.txt"), &self.stamp(r))
    }
}
