//! The engine's invariants, checked after every step in tests (HyperQueue's sanity check):
//! per node, free + held resources add up to the node's; GPU index masks are disjoint and
//! match their counts; every running job holds exactly its CPUs (its request, or within its
//! elastic range); the queue is in queue order; no job is held twice.

use super::{Engine, EngineError};
use crate::ids::JobId;
use crate::model::Avail;

impl Engine {
    pub fn check_invariants(&self) -> Result<(), EngineError> {
        let bad = |s: String| Err(EngineError::Invariant(s));
        let mut used = vec![Avail::default(); self.cluster.nodes.len()];
        let mut gpus = vec![0u64; self.cluster.nodes.len()];
        let mut used_total = 0u64;
        for r in &self.running {
            used_total += u64::from(r.cpus);
            let cpus: u64 = r.alloc.iter().map(|s| u64::from(s.cpus)).sum();
            let in_range = match r.spec.elastic {
                Some(e) => e.contains(r.cpus),
                None => r.cpus == r.spec.cpus,
            };
            if cpus != u64::from(r.cpus) || !in_range {
                return bad(format!(
                    "job {} holds {cpus} CPUs (counted {}), asked {} (range {:?})",
                    r.spec.id, r.cpus, r.spec.cpus, r.spec.elastic
                ));
            }
            for s in r.alloc.iter() {
                let m = s.gpu_mask;
                let u = &mut used[s.node as usize];
                u.cpus += s.cpus;
                u.mem_mb += r.spec.mem_mb.unwrap_or(0);
                u.gpus += s.gpus;
                if m.count_ones() != s.gpus || gpus[s.node as usize] & m != 0 {
                    return bad(format!(
                        "GPU indices of job {} clash or miscount",
                        r.spec.id
                    ));
                }
                gpus[s.node as usize] |= m;
            }
        }
        for (i, n) in self.cluster.nodes.iter().enumerate() {
            let (a, u) = (&self.ledger.avail()[i], &used[i]);
            if a.cpus + u.cpus != n.cpus
                || a.mem_mb + u.mem_mb != n.mem_mb
                || a.gpus + u.gpus != n.gpus
            {
                return bad(format!("node {} accounts do not add up", n.name));
            }
            if gpus[i] & self.ledger.gpu_free(i) != 0
                || (gpus[i] | self.ledger.gpu_free(i)).count_ones() != n.gpus
            {
                return bad(format!("node {} GPU masks inconsistent", n.name));
            }
        }
        if used_total + self.ledger.free() != self.ledger.total() {
            return bad(format!(
                "free {} + used {used_total} != total {}",
                self.ledger.free(),
                self.ledger.total()
            ));
        }
        if self.pending.windows(2).any(|w| w[0].seq >= w[1].seq) {
            return bad("pending queue out of queue order".into());
        }
        let mut ids: Vec<JobId> = self
            .pending
            .iter()
            .map(|p| p.spec.id)
            .chain(self.running.iter().map(|r| r.spec.id))
            .collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("job {} held twice", w[0]));
        }
        Ok(())
    }
}
