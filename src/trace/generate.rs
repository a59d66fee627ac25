//! The synthetic workload generator (`trace gen`). The model is documented in
//! `docs/workloads.md`; in short:
//!
//! - **Randomness**: one ChaCha8 stream seeded with `--seed` (the same numbers on every machine);
//!   distributions from `rand_distr`. All job attributes are drawn first, in job order, then
//!   the arrivals. The same seed and parameters give the same bytes.
//! - **Users**: `users` users with Zipf(1) activity (user k submits ∝ 1/k), each with its own
//!   mix: a shift of its jobs' log2 size (−1, 0 or +1), a shift of their mean log run time
//!   (normal, σ 0.7) and, in the ml model, its own weights of job kinds. Users are grouped
//!   into accounts of four (`a1`, `a2`, ...).
//! - **Arrivals**: a Poisson process whose rate λ makes the offered load
//!   Σ(run × CPUs) / (P × span) equal `--load`: λ = load × P / mean(run × CPUs) over the
//!   generated jobs. A daily cycle multiplies the rate by `1 + A·cos(2π(h − 14)/24)` (h = hour
//!   of day, peak at 14:00; drawn by thinning), which keeps the mean rate λ. The burst model
//!   alternates ON periods (mean 1 h) and OFF periods (mean 5 h) with rates in ratio 20:1.
//! - **hpc** (after Lublin & Feitelson 2003): 24 % serial jobs; parallel sizes 2^u with u from a
//!   two-stage uniform (75 % in [0.8, m], 25 % in [m, log2 P], m = log2 P − 2.5), 75 % of them
//!   rounded to a power of two; run time log-normal with ln(run) ~ N(ln 900 + 0.3·log2 size +
//!   user shift, 1.6) clamped to [1 s, 36 h], or (`--runtime hypergamma`) Lublin's
//!   hyper-gamma of ln(run): Gamma(4.2, 0.94) with probability p = 0.78 − 0.0054 × size, else
//!   Gamma(312, 0.03). Estimates: run × f, f = 1 for 10 % of jobs, else uniform in [1, 5],
//!   rounded up to the next of the limits users choose (5, 10, 15, 20, 30, 45 min, 1, 1.5, 2,
//!   3, 4, 6, 8, 12, 18, 24, 36, 48 h).
//! - **ml**: nodes of `cpus_per_node` CPUs and `gpus_per_node` GPUs; three kinds of
//!   submission: hyper-parameter sweeps (arrays of 4–32 one-GPU tasks submitted together, run
//!   times ln ~ N(ln 2 h, 0.8) with ±20 % per task), single-node jobs (1, 2, 4 or 8 GPUs,
//!   ln run ~ N(ln 4 h, 1.2)) and multi-node training (2, 4 or 8 whole nodes, ln run ~
//!   N(ln 12 h, 1.0)); CPUs in proportion to GPUs; memory per node `mem_per_gpu` × GPUs on the
//!   node. Estimates: run × U(1.2, 3) rounded up as above (up to 7 days).
//! - **burst**: the hpc model with shorter jobs (ln 300 instead of ln 900) and bursty arrivals.
//! - Optional: memory per CPU (hpc, burst), elastic ranges for a fraction of CPU-only jobs.

use super::{TraceJob, Workload};
use crate::ids::{JobId, Names, Sym};
use crate::model::ElasticRange;
use crate::time::{Dur, Time};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, Gamma, Normal};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Hpc,
    Ml,
    Burst,
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Model, String> {
        match s {
            "hpc" => Ok(Model::Hpc),
            "ml" => Ok(Model::Ml),
            "burst" => Ok(Model::Burst),
            _ => Err(format!("unknown model '{s}' (expected hpc, ml or burst)")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeModel {
    LogNormal,
    HyperGamma,
}

impl std::str::FromStr for RuntimeModel {
    type Err = String;
    fn from_str(s: &str) -> Result<RuntimeModel, String> {
        match s {
            "lognormal" => Ok(RuntimeModel::LogNormal),
            "hypergamma" => Ok(RuntimeModel::HyperGamma),
            _ => Err(format!(
                "unknown run-time model '{s}' (expected lognormal or hypergamma)"
            )),
        }
    }
}

/// The generator's parameters.
#[derive(Clone, Debug)]
pub struct GenParams {
    pub model: Model,
    pub jobs: usize,
    pub procs: u32,
    /// Target offered load.
    pub load: f64,
    pub seed: u64,
    pub users: u32,
    pub runtime: RuntimeModel,
    /// Amplitude of the daily cycle (0: none).
    pub daily_cycle: f64,
    /// Memory per CPU, MB (hpc, burst).
    pub mem_per_cpu_mb: Option<u64>,
    pub cpus_per_node: u32,
    pub gpus_per_node: u32,
    pub mem_per_gpu_mb: u64,
    pub elastic_fraction: f64,
    pub elastic_range: (f64, f64),
}

impl GenParams {
    /// The defaults of a model.
    pub fn new(model: Model, jobs: usize, procs: u32, load: f64, seed: u64) -> GenParams {
        GenParams {
            model,
            jobs,
            procs,
            load,
            seed,
            users: if model == Model::Ml { 8 } else { 16 },
            runtime: RuntimeModel::LogNormal,
            daily_cycle: match model {
                Model::Hpc => 0.5,
                Model::Ml => 0.3,
                Model::Burst => 0.0,
            },
            mem_per_cpu_mb: None,
            cpus_per_node: 64,
            gpus_per_node: 8,
            mem_per_gpu_mb: 64 * 1024,
            elastic_fraction: 0.0,
            elastic_range: (0.5, 2.0),
        }
    }

    /// Checks the parameters; the flag and what was expected if not.
    pub fn check(&self) -> Result<(), String> {
        if self.jobs == 0 {
            return Err("--jobs: expected at least 1".into());
        }
        if self.procs == 0 {
            return Err("--procs: expected at least 1".into());
        }
        if !(self.load >= 0.001 && self.load <= 100.0) {
            return Err(format!(
                "--load: expected a load between 0.001 and 100 (e.g. 0.8), found {}",
                self.load
            ));
        }
        if self.users == 0 || self.users > 10_000 {
            return Err(format!(
                "--users: expected 1 to 10000, found {}",
                self.users
            ));
        }
        if self.jobs > 100_000_000 {
            return Err(format!(
                "--jobs: expected at most 100000000, found {}",
                self.jobs
            ));
        }
        if self.procs > 100_000_000 {
            return Err(format!(
                "--procs: expected at most 100000000, found {}",
                self.procs
            ));
        }
        if self.cpus_per_node == 0 {
            return Err("--cpus-per-node: expected at least 1".into());
        }
        if !(0.0..1.0).contains(&self.daily_cycle) {
            return Err(format!(
                "--daily-cycle: expected an amplitude in [0, 1), found {}",
                self.daily_cycle
            ));
        }
        if self.model == Model::Ml {
            if self.gpus_per_node == 0 || self.cpus_per_node < self.gpus_per_node {
                return Err("--gpus-per-node: expected 1 ≤ GPUs ≤ --cpus-per-node".into());
            }
            if self.procs < self.cpus_per_node || !self.procs.is_multiple_of(self.cpus_per_node) {
                return Err(format!(
                    "--procs {}: the ml model needs whole nodes of --cpus-per-node {}",
                    self.procs, self.cpus_per_node
                ));
            }
        }
        Ok(())
    }
}

/// What the generator aimed at, for checking the realized workload against it.
#[derive(Clone, Debug, PartialEq)]
pub struct GenTargets {
    /// Mean submission rate, per second (submissions: an ml sweep is one).
    pub rate_per_s: f64,
    /// Mean of run time × CPUs per job, CPU-seconds.
    pub mean_work: f64,
    /// Each user's shift of the mean log run time (user k at index k − 1).
    pub user_run_shift: Vec<f64>,
}

/// The limits users pick, in minutes.
const LIMITS_MIN: [i64; 21] = [
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1080, 1440, 2160, 2880, 4320,
    7200, 10080,
];

/// `run` rounded up to the next user limit, at most `cap` minutes.
fn round_up_limit(run_s: f64, cap_min: i64) -> i64 {
    let m = (run_s / 60.0).ceil() as i64;
    LIMITS_MIN
        .iter()
        .copied()
        .find(|&l| l >= m && l <= cap_min)
        .unwrap_or(cap_min)
        * 60
}

/// The one random stream every draw comes from.
type Rng = rand::rngs::ChaCha8Rng;

struct User {
    weight: f64,
    size_shift: f64,
    run_shift: f64,
    /// ml: weights of sweep, single-node, multi-node.
    kinds: [f64; 3],
}

/// One job of a submission: (run s, CPUs, GPUs per node, nodes, memory per node MB,
/// requested s).
type DraftJob = (i64, i64, u32, Option<u32>, Option<u64>, i64);

/// One submission: the jobs it holds (an ml sweep holds several), before arrival times.
struct Draft {
    user: u32,
    jobs: Vec<DraftJob>,
}

fn pick(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// The normal distribution with mean 0 and standard deviation `s` (> 0).
fn normal(s: f64) -> Normal<f64> {
    Normal::new(0.0, s).expect("σ > 0")
}

/// Generates a workload. Panics only on parameters `check` refuses.
///
/// The order of the draws is part of the output (the shipped synthetic traces are regenerated
/// byte for byte): the users, then each submission's attributes in submission order, then the
/// arrival times, then (with an elastic fraction) one draw per job for its elastic range.
pub fn generate(p: &GenParams) -> (Workload, GenTargets) {
    let mut rng = Rng::seed_from_u64(p.seed);
    let users = draw_users(&mut rng, p);
    let drafts = draw_drafts(&mut rng, p, &users);
    // Arrivals: rate from the target load.
    let work: f64 = drafts
        .iter()
        .flat_map(|d| d.jobs.iter())
        .map(|j| j.0 as f64 * j.1 as f64)
        .sum();
    let mean_work = work / p.jobs as f64;
    let per_submission = work / drafts.len() as f64;
    let rate = p.load * f64::from(p.procs) / per_submission;
    let times = match p.model {
        Model::Burst => burst_arrivals(&mut rng, rate, drafts.len()),
        _ => cyclic_arrivals(&mut rng, rate, p.daily_cycle, drafts.len()),
    };
    let (mut jobs, names) = assemble(p, &drafts, &times);
    if p.elastic_fraction > 0.0 {
        draw_elastic(&mut rng, p, &mut jobs);
    }
    (
        Workload {
            source: PathBuf::from(format!("generated:{:?}:seed{}", p.model, p.seed)),
            jobs,
            declared_procs: Some(p.procs),
            names,
            ..Workload::default()
        },
        GenTargets {
            rate_per_s: rate,
            mean_work,
            user_run_shift: users.iter().map(|u| u.run_shift).collect(),
        },
    )
}

/// The users and their mixes: Zipf(1) activity, a size shift, a run-time shift and (used by
/// the ml model only, drawn for every model) weights of the three kinds of submission.
fn draw_users(rng: &mut Rng, p: &GenParams) -> Vec<User> {
    let user_run = normal(0.7);
    (1..=p.users)
        .map(|k| User {
            weight: 1.0 / f64::from(k),
            size_shift: f64::from(rng.random_range(0..3u32)) - 1.0,
            run_shift: user_run.sample(rng),
            kinds: [
                rng.random_range(0.2..1.0),
                rng.random_range(0.2..1.0),
                rng.random_range(0.05..0.4),
            ],
        })
        .collect()
}

/// The submissions, each drawn whole (its user, then its jobs' attributes), until there are
/// `jobs` jobs; the last ml sweep is cut short to make exactly `jobs`.
fn draw_drafts(rng: &mut Rng, p: &GenParams, users: &[User]) -> Vec<Draft> {
    let weights: Vec<f64> = users.iter().map(|u| u.weight).collect();
    let hpc = HpcShape::new(p);
    let mut drafts: Vec<Draft> = Vec::new();
    let mut n = 0usize;
    while n < p.jobs {
        let ui = pick(rng, &weights);
        let u = &users[ui];
        let jobs = match p.model {
            Model::Hpc | Model::Burst => vec![hpc.draw_job(rng, p, u)],
            Model::Ml => draw_ml_submission(rng, p, u),
        };
        n += jobs.len();
        drafts.push(Draft {
            user: ui as u32,
            jobs,
        });
    }
    // Exactly `jobs` jobs: the last sweep may be cut short.
    let over = n - p.jobs;
    if over > 0
        && let Some(last) = drafts.last_mut()
    {
        let keep = last.jobs.len() - over;
        last.jobs.truncate(keep);
    }
    drafts
}

/// The fixed quantities of the hpc and burst models (after Lublin & Feitelson).
struct HpcShape {
    /// log2 of the machine size.
    log2p: f64,
    /// Where the two stages of the size's uniform meet.
    mid: f64,
    /// Median run time of a serial job before the user shift, seconds.
    base_run: f64,
    /// The two gammas of the hyper-gamma run-time model.
    g1: Gamma<f64>,
    g2: Gamma<f64>,
}

impl HpcShape {
    fn new(p: &GenParams) -> HpcShape {
        let log2p = f64::from(p.procs).log2();
        HpcShape {
            log2p,
            mid: (log2p - 2.5).max(1.0),
            base_run: if p.model == Model::Burst {
                300f64
            } else {
                900f64
            },
            g1: Gamma::new(4.2, 0.94).expect("shape"),
            g2: Gamma::new(312.0, 0.03).expect("shape"),
        }
    }

    /// One hpc (or burst) job: size, run time, estimate, then memory.
    fn draw_job(&self, rng: &mut Rng, p: &GenParams, u: &User) -> DraftJob {
        let size = self.draw_size(rng, p, u);
        let ln_run = self.draw_ln_run(rng, p, u, size);
        let run = ln_run.exp().clamp(1.0, 36.0 * 3600.0).round();
        let f = if rng.random::<f64>() < 0.1 {
            1.0
        } else {
            rng.random_range(1.0..5.0)
        };
        let req = round_up_limit(run * f, 2880).max(run as i64);
        // Memory per node: the job's CPUs on one node (at most --cpus-per-node).
        let mem = p.mem_per_cpu_mb.map(|m| {
            let x: f64 = rng.random_range(0.5..2.0);
            let on_node = size.min(i64::from(p.cpus_per_node)) as f64;
            ((m as f64 * x * on_node / 256.0).ceil() as u64)
                .saturating_mul(256)
                .max(256)
        });
        (run as i64, size, 0, None, mem, req)
    }

    /// The size in CPUs: serial, or 2^u from the two-stage uniform shifted by the user's
    /// size shift, mostly rounded to a power of two.
    fn draw_size(&self, rng: &mut Rng, p: &GenParams, u: &User) -> i64 {
        let (log2p, mid) = (self.log2p, self.mid);
        if rng.random::<f64>() < 0.24 {
            return 1;
        }
        let x: f64 = if rng.random::<f64>() < 0.75 {
            rng.random_range(0.8..=mid)
        } else {
            rng.random_range(mid..=log2p.max(mid))
        };
        let x = (x + u.size_shift).clamp(1.0, log2p.max(1.0));
        let s = if rng.random::<f64>() < 0.75 {
            2f64.powi(x.round() as i32)
        } else {
            2f64.powf(x).round()
        };
        (s as i64).clamp(1, i64::from(p.procs))
    }

    /// ln(run time in seconds) by the chosen run-time model, before clamping.
    fn draw_ln_run(&self, rng: &mut Rng, p: &GenParams, u: &User, size: i64) -> f64 {
        match p.runtime {
            RuntimeModel::LogNormal => {
                let mu = self.base_run.ln() + 0.3 * (size as f64).log2() + u.run_shift;
                mu + normal(1.6).sample(rng)
            }
            RuntimeModel::HyperGamma => {
                let pr = (0.78 - 0.0054 * size as f64).clamp(0.0, 1.0);
                let x = if rng.random::<f64>() < pr {
                    self.g1.sample(rng)
                } else {
                    self.g2.sample(rng)
                };
                x + u.run_shift + (self.base_run / 900.0).ln()
            }
        }
    }
}

/// One ml submission: a hyper-parameter sweep (several one-GPU tasks), a single-node job or
/// a multi-node training job, picked by the user's weights of the three kinds.
fn draw_ml_submission(rng: &mut Rng, p: &GenParams, u: &User) -> Vec<DraftJob> {
    let (c, g) = (i64::from(p.cpus_per_node), p.gpus_per_node);
    let per_gpu = c / i64::from(g);
    let nodes_total = p.procs / p.cpus_per_node;
    match pick(rng, &u.kinds) {
        0 => {
            let k = rng.random_range(4..=32usize);
            let base = ml_run(rng, u, 2.0, 0.8);
            let mut jobs = Vec::with_capacity(k);
            for _ in 0..k {
                let run = (base * rng.random_range(0.8..1.2)).round().max(60.0);
                let req = ml_estimate(rng, run);
                jobs.push((run as i64, per_gpu, 1, Some(1), Some(p.mem_per_gpu_mb), req));
            }
            jobs
        }
        1 => {
            let gpus = [1u32, 2, 4, 8][pick(rng, &[0.4, 0.25, 0.2, 0.15])].min(g);
            let run = ml_run(rng, u, 4.0, 1.2);
            let req = ml_estimate(rng, run);
            vec![(
                run as i64,
                per_gpu * i64::from(gpus),
                gpus,
                Some(1),
                Some(p.mem_per_gpu_mb * u64::from(gpus)),
                req,
            )]
        }
        _ => {
            let nodes = [2u32, 4, 8][pick(rng, &[0.5, 0.35, 0.15])]
                .min(nodes_total)
                .max(1);
            let run = ml_run(rng, u, 12.0, 1.0);
            let req = ml_estimate(rng, run);
            vec![(
                run as i64,
                c * i64::from(nodes),
                g,
                Some(nodes),
                Some(p.mem_per_gpu_mb * u64::from(g)),
                req,
            )]
        }
    }
}

/// An ml run time, seconds: log-normal around `hours` with σ `s`, half the user's shift,
/// clamped to [1 min, 7 days].
fn ml_run(rng: &mut Rng, u: &User, hours: f64, s: f64) -> f64 {
    ((hours * 3600.0).ln() + u.run_shift * 0.5 + normal(s).sample(rng))
        .exp()
        .clamp(60.0, 7.0 * 86400.0)
        .round()
}

/// An ml estimate, seconds: run × U(1.2, 3) rounded up to a user limit (at most 7 days).
fn ml_estimate(rng: &mut Rng, run: f64) -> i64 {
    let f: f64 = rng.random_range(1.2..3.0);
    round_up_limit(run * f, 10080).max(run as i64)
}

/// Burst arrivals (seconds from 0): ON periods (mean 1 h) at rate r_on and OFF periods
/// (mean 5 h) at r_on / 20, so that the mean rate r_on (1 + 5/20) / 6 is `rate`.
fn burst_arrivals(rng: &mut Rng, rate: f64, count: usize) -> Vec<f64> {
    let r_on = rate * 6.0 / 1.25;
    let on_len = Exp::new(1.0 / 3600.0).expect("rate");
    let off_len = Exp::new(1.0 / 18000.0).expect("rate");
    let mut t = 0.0f64;
    let mut times = Vec::with_capacity(count);
    let mut on = true;
    let mut phase_end = on_len.sample(rng);
    while times.len() < count {
        let r = if on { r_on } else { r_on / 20.0 };
        let gap = Exp::new(r).expect("rate").sample(rng);
        if t + gap < phase_end {
            t += gap;
            times.push(t);
        } else {
            // Memoryless: restart the draw at the phase change.
            t = phase_end;
            on = !on;
            phase_end = t + if on {
                on_len.sample(rng)
            } else {
                off_len.sample(rng)
            };
        }
    }
    times
}

/// Poisson arrivals (seconds from 0) at mean rate `rate`, modulated by the daily cycle of
/// amplitude `a` (peak at 14:00) by thinning a process of rate `rate × (1 + a)`.
fn cyclic_arrivals(rng: &mut Rng, rate: f64, a: f64, count: usize) -> Vec<f64> {
    let max_rate = rate * (1.0 + a);
    let gap = Exp::new(max_rate).expect("rate");
    let mut t = 0.0f64;
    let mut times = Vec::with_capacity(count);
    while times.len() < count {
        t += gap.sample(rng);
        let hour = (t / 3600.0) % 24.0;
        let c = 1.0 + a * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos();
        if a == 0.0 || rng.random::<f64>() * (1.0 + a) < c {
            times.push(t);
        }
    }
    times
}

/// The trace jobs in submit order, ids from 1, with the names of users (`u1`, ...) and
/// accounts (`a1`, ... four users each).
fn assemble(p: &GenParams, drafts: &[Draft], times: &[f64]) -> (Vec<TraceJob>, Names) {
    let mut names = Names::default();
    let user_syms: Vec<Sym> = (1..=p.users)
        .map(|k| names.intern(&format!("u{k}")))
        .collect();
    let account_syms: Vec<Sym> = (1..=p.users.div_ceil(4))
        .map(|k| names.intern(&format!("a{k}")))
        .collect();
    let empty = names.intern("");
    let mut jobs = Vec::with_capacity(p.jobs);
    for (d, &at) in drafts.iter().zip(times) {
        for &(run, cpus, gpus, nodes, mem, req) in &d.jobs {
            let id = jobs.len() as u64 + 1;
            jobs.push(TraceJob {
                id: JobId(id),
                submit: Time::from_secs(at.floor() as i64),
                runtime: Dur::from_secs(run),
                procs: cpus,
                requested: Some(Dur::from_secs(req)),
                priority: 0,
                user: user_syms[d.user as usize],
                group: account_syms[d.user as usize / 4],
                queue: empty,
                partition: empty,
                nodes,
                mem_mb: mem,
                gpus,
                qos: empty,
                nice: 0,
                elastic: None,
                speedup: None,
                line: id,
            });
        }
    }
    (jobs, names)
}

/// Makes about `elastic_fraction` of the CPU-only, node-free jobs elastic over
/// `elastic_range` × their size (one draw per job, every job, in id order).
fn draw_elastic(rng: &mut Rng, p: &GenParams, jobs: &mut [TraceJob]) {
    let (lo, hi) = p.elastic_range;
    for j in jobs {
        let u: f64 = rng.random();
        if u >= p.elastic_fraction || j.gpus > 0 || j.nodes.is_some() {
            continue;
        }
        let c = j.procs as f64;
        let min = ((c * lo).floor() as u32).max(1);
        let max = ((c * hi).ceil() as u32).min(p.procs).max(j.procs as u32);
        if min < max {
            j.elastic = Some(ElasticRange { min, max });
        }
    }
}
