//! `easy` — EASY backfilling (Mu'alem & Feitelson), one reservation.
//!
//! 1. As fcfs: start head jobs (in the chosen order) while they fit.
//! 2. If jobs remain, the head H does not fit. Sort the running jobs — including those started
//!    in step 1 — by (expected end, start order). Starting from `free`, add their processors one
//!    job at a time; the first expected end at which the total reaches H's processors is the
//!    shadow time S. `extra` = free + processors of all running jobs whose expected end ≤ S,
//!    minus H's processors.
//! 3. Scan the rest of the queue in order. A job J with J.procs ≤ free starts now if
//!    (a) now + J.estimate ≤ S, or else (b) J.procs ≤ extra, in which case extra −= J.procs.
//!    Each start reduces `free`. S and `extra` are not recomputed during the scan.
//!
//! A running job's expected end is max(start + estimate, now). H is reported as reserved at S.

use super::common::Order;
use super::common::order::ORDER_PARAM;
use super::{Decision, Policy, PolicyError, PolicyInfo, View};
use crate::time::Time;

pub const INFO: PolicyInfo = PolicyInfo {
    name: "easy",
    summary: "EASY backfilling: the queue head gets a reservation at its shadow time; later jobs may start now if they do not delay it.",
    rules: "1. As fcfs: start head jobs (in the chosen order) while they fit.\n\
2. If jobs remain, the head H does not fit. Sort the running jobs (including those started in \
step 1) by (expected end, start order), where expected end = max(start + estimate, now). Starting \
from `free`, add their processors one job at a time; the first expected end at which the total \
reaches H's processors is the *shadow time* S. `extra` = free + processors of all running jobs \
whose expected end ≤ S − H's processors.\n\
3. Scan the rest of the queue in order. A job J with J.procs ≤ free starts now if (a) now + \
J.estimate ≤ S, or else (b) J.procs ≤ extra, in which case extra −= J.procs. Each start reduces \
`free`; S and `extra` are not recomputed during the scan.",
    params: &[ORDER_PARAM],
    build,
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Easy {
        order: Order::from_params(params)?,
        buf: Vec::new(),
        ends: Vec::new(),
    }))
}

/// Start order given to jobs started earlier in the same pass: after every running job.
const IN_PASS: u64 = u64::MAX / 2;

pub struct Easy {
    order: Order,
    buf: Vec<u32>,
    ends: Vec<(Time, u64, u32)>,
}

impl Policy for Easy {
    fn schedule(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.order.arrange(view.pending, &mut self.buf);
        let now = view.now;
        let mut free = view.free;
        let mut k = 0;
        self.ends.clear();
        // Step 1: start head jobs while they fit.
        while let Some(&pos) = self.buf.get(k) {
            let j = &view.pending[pos as usize].spec;
            if j.procs > free {
                break;
            }
            free -= j.procs;
            out.push(Decision::Start { pos, job: j.id });
            // Started in this pass: after every job already running in start order.
            self.ends
                .push((now + j.estimate, IN_PASS + k as u64, j.procs));
            k += 1;
        }
        let Some(&head_pos) = self.buf.get(k) else {
            return;
        };
        let head = &view.pending[head_pos as usize].spec;
        // Step 2: shadow time and extra processors.
        self.ends.extend(
            view.running
                .iter()
                .map(|r| (r.expected_end(now), r.start_seq, r.procs())),
        );
        self.ends.sort_unstable();
        let mut total = free;
        let mut shadow = None;
        for &(end, _, p) in &self.ends {
            total += p;
            if total >= head.procs {
                shadow = Some(end);
                break;
            }
        }
        // The head never needs more than the machine, so the running jobs always release enough.
        let Some(shadow) = shadow else { return };
        let released: u32 = self
            .ends
            .iter()
            .take_while(|e| e.0 <= shadow)
            .map(|e| e.2)
            .sum();
        let mut extra = (free + released) - head.procs;
        out.push(Decision::Reserve {
            pos: head_pos,
            job: head.id,
            at: shadow,
        });
        // Step 3: backfill.
        for &pos in &self.buf[k + 1..] {
            if free == 0 {
                break;
            }
            let j = &view.pending[pos as usize].spec;
            if j.procs > free {
                continue;
            }
            if now + j.estimate <= shadow {
                free -= j.procs;
                out.push(Decision::Start { pos, job: j.id });
            } else if j.procs <= extra {
                extra -= j.procs;
                free -= j.procs;
                out.push(Decision::Start { pos, job: j.id });
            }
        }
    }
}
