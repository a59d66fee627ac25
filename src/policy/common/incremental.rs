//! Queue orders kept across passes instead of sorted again every pass, for the strict policies
//! (`multifactor`, `priority`), which look only at the head of the order: a pass costs what it
//! starts, not the queue's length.
//!
//! **Staying in step with the queue.** A policy sees the queue afresh in every pass. Jobs join
//! it with queue sequence numbers larger than any before (arrivals and requeued jobs alike), and
//! leave it when started (or cancelled); the queue is sorted by sequence number. So the index
//! adds the jobs past the largest number it has seen, drops the jobs it handed out in earlier
//! passes that are no longer in the queue (a binary search each), and checks its count against
//! the queue's: anything else (a cancellation) and it is rebuilt from the queue.
//!
//! **Multifactor without sorting** ([`MultifactorQueue`]). A job's priority is
//! `w_age·age + w_fs·F(user) + w_size·size + w_partition + w_qos·qos − nice` ([`PassFactors`]),
//! and only the age differs between jobs of the same *class* — same user, nice and (when their
//! weights are not zero) size and QOS. Every floating-point operation is monotonic, so within a
//! class a job that has waited longer has a priority at least as high, and on a tie the order's
//! own tie-break (submit time, then job id, then queue position) also puts it first: a class
//! in (submit, id, position) order *is* in priority order, bit for bit. The pass's order is
//! then the merge of the classes by (priority, submit, id, position), a strict total order, which
//! is exactly the order a full sort gives. Only the heads of the classes and the jobs the pass
//! actually looks at get a priority, computed by the same function as the full sort's; when
//! one class holds every waiting job, its order is the pass's and nothing gets a priority (nor
//! are the fair-share factors computed). The fair-share factors need the known users in order
//! of first appearance (running jobs, then the queue); each user's smallest queue position is
//! kept for that. The largest class head is found by a scan (a pass looks at one or two jobs
//! on average: cheaper than building a heap each pass).

use super::order::{Multifactor, PassFactors};
use crate::ids::{FastMap, JobId, Sym};
use crate::model::JobSpec;
use crate::sched::{PendingJob, View};
use crate::time::Time;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Position of the job with sequence number `seq` in the queue, if it is there.
fn position(pending: &[PendingJob], seq: u64) -> Option<usize> {
    let i = pending.partition_point(|p| p.seq < seq);
    (pending.get(i).map(|p| p.seq) == Some(seq)).then_some(i)
}

/// Keeps an index in step with the queue (see the module header).
#[derive(Debug, Default)]
struct Tracker {
    /// Jobs in the index.
    len: usize,
    /// The largest sequence number seen.
    max_seq: Option<u64>,
    /// Sequence numbers handed out by earlier passes (they may have started).
    handed: Vec<u64>,
}

impl Tracker {
    /// Brings the count in step with `pending`: puts into `left` every handed-out job that
    /// left, and returns where the new jobs start in `pending` (they follow every job seen so
    /// far). `None` when the index must be rebuilt (jobs left by other ways): the caller clears
    /// it, adds every job and calls [`Tracker::rebuild`].
    fn sync(&mut self, pending: &[PendingJob], left: &mut Vec<u64>) -> Option<usize> {
        for seq in self.handed.drain(..) {
            if position(pending, seq).is_none() {
                left.push(seq);
                self.len -= 1;
            }
        }
        let from = self
            .max_seq
            .map_or(0, |m| pending.partition_point(|p| p.seq <= m));
        self.len += pending.len() - from;
        if let Some(last) = pending.last() {
            self.max_seq = Some(self.max_seq.map_or(last.seq, |m| m.max(last.seq)));
        }
        (self.len == pending.len()).then_some(from)
    }

    /// Starts the index again from `pending` (the caller has cleared it and adds every job).
    fn rebuild(&mut self, pending: &[PendingJob]) {
        self.len = pending.len();
        self.handed.clear();
        self.max_seq = pending.last().map(|p| p.seq);
    }
}

/// What makes a job's multifactor priority differ from another's besides its age: (user,
/// CPUs when `jobsize` weighs, QOS when `qos` weighs, nice).
type ClassKey = (Sym, u32, Sym, i32);

/// A job's place in its class: (submit, id, queue sequence number), the order of the class.
type Place = (Time, JobId, u64);

/// A job in its class, ordered by its place; with its spec, which does not change while it
/// waits (a requeued job comes back with a new sequence number), for its priority.
#[derive(Clone, Debug)]
struct Member {
    place: Place,
    spec: Arc<JobSpec>,
}

impl PartialEq for Member {
    fn eq(&self, o: &Member) -> bool {
        self.place == o.place
    }
}
impl Eq for Member {}
impl Ord for Member {
    fn cmp(&self, o: &Member) -> Ordering {
        self.place.cmp(&o.place)
    }
}
impl PartialOrd for Member {
    fn partial_cmp(&self, o: &Member) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Borrow<Place> for Member {
    fn borrow(&self) -> &Place {
        &self.place
    }
}

/// A class's next job in the merge.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Head {
    prio: f64,
    place: Place,
    class: usize,
}

impl Eq for Head {}

impl Ord for Head {
    /// The larger first in the merge: higher priority, then earlier (submit, id, position).
    fn cmp(&self, o: &Head) -> Ordering {
        self.prio
            .total_cmp(&o.prio)
            .then_with(|| o.place.cmp(&self.place))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Head) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The `multifactor` order of the pending jobs, kept across passes (see the module header).
#[derive(Debug, Default)]
pub struct MultifactorQueue {
    tracker: Tracker,
    classes: Vec<BTreeSet<Member>>,
    /// Each class's first member (`None` when empty), so that a pass's merge starts without a
    /// walk down every class's tree.
    firsts_of: Vec<Option<Member>>,
    class_ids: FastMap<ClassKey, usize>,
    /// The classes with pending jobs (in no particular order: the merge does not depend on
    /// it), and each class's place in this list (`usize::MAX` when empty).
    nonempty: Vec<usize>,
    nonempty_at: Vec<usize>,
    /// Each job's class, place in it and user, by sequence number (lookups only).
    jobs: FastMap<u64, (usize, Place, Sym)>,
    /// Per user symbol: its pending jobs' sequence numbers and accounts (for the order of
    /// users).
    user_seqs: Vec<BTreeMap<u64, Sym>>,
    /// Users with pending jobs.
    active: Vec<Sym>,
    /// The merge: each class's next job. A pass looks at one or two jobs on average, so the
    /// largest is found by a scan, cheaper than building a heap of every class's head.
    heads: Vec<Head>,
    /// Buffers: jobs found gone in a pass; the pass's known users, their slots by symbol (all
    /// `u32::MAX` between passes) and their first queue positions.
    left: Vec<u64>,
    users: Vec<(Sym, Sym)>,
    slot: Vec<u32>,
    firsts: Vec<(u64, Sym, Sym)>,
    /// The pass's fair-share factors, lent to its [`PassFactors`].
    fs: Vec<f64>,
}

impl MultifactorQueue {
    fn key(m: &Multifactor, p: &PendingJob) -> ClassKey {
        let s = &p.spec;
        let cpus = if m.w_jobsize != 0.0 { s.cpus } else { 0 };
        let qos = if m.w_qos != 0.0 {
            s.qos
        } else {
            Sym::default()
        };
        (s.user, cpus, qos, s.nice)
    }

    fn add(&mut self, m: &Multifactor, p: &PendingJob) {
        let key = Self::key(m, p);
        let next = self.classes.len();
        let class = *self.class_ids.entry(key).or_insert(next);
        if class == next {
            self.classes.push(BTreeSet::new());
            self.firsts_of.push(None);
            self.nonempty_at.push(usize::MAX);
        }
        if self.classes[class].is_empty() {
            self.nonempty_at[class] = self.nonempty.len();
            self.nonempty.push(class);
        }
        let place = (p.spec.submit, p.spec.id, p.seq);
        let member = Member {
            place,
            spec: Arc::clone(&p.spec),
        };
        if self.firsts_of[class]
            .as_ref()
            .is_none_or(|f| place < f.place)
        {
            self.firsts_of[class] = Some(member.clone());
        }
        self.classes[class].insert(member);
        self.jobs.insert(p.seq, (class, place, p.spec.user));
        let u = p.spec.user.0 as usize;
        if self.user_seqs.len() <= u {
            self.user_seqs.resize_with(u + 1, BTreeMap::new);
        }
        if self.user_seqs[u].is_empty() {
            self.active.push(p.spec.user);
        }
        self.user_seqs[u].insert(p.seq, p.spec.account);
    }

    fn remove(&mut self, seq: u64) {
        let Some((class, place, user)) = self.jobs.remove(&seq) else {
            return;
        };
        self.classes[class].remove(&place);
        if self.firsts_of[class]
            .as_ref()
            .is_some_and(|f| f.place == place)
        {
            self.firsts_of[class] = self.classes[class].first().cloned();
        }
        if self.classes[class].is_empty() {
            let at = self.nonempty_at[class];
            self.nonempty.swap_remove(at);
            if let Some(&moved) = self.nonempty.get(at) {
                self.nonempty_at[moved] = at;
            }
            self.nonempty_at[class] = usize::MAX;
        }
        let set = &mut self.user_seqs[user.0 as usize];
        set.remove(&seq);
        if set.is_empty() {
            self.active.retain(|&a| a != user);
        }
    }

    /// Forgets everything: the next pass indexes the queue afresh (after a pass this index did
    /// not follow).
    pub fn invalidate(&mut self) {
        self.clear();
        self.tracker = Tracker::default();
    }

    fn clear(&mut self) {
        self.classes.iter_mut().for_each(BTreeSet::clear);
        self.firsts_of.iter_mut().for_each(|f| *f = None);
        self.nonempty.clear();
        self.nonempty_at.iter_mut().for_each(|a| *a = usize::MAX);
        self.jobs.clear();
        self.user_seqs.iter_mut().for_each(BTreeMap::clear);
        self.active.clear();
    }

    /// Brings the index in step with the view and prepares the pass's merge. Call before
    /// [`MultifactorQueue::next`].
    /// The pass's factors: `None` when at most one class has jobs, whose order is then the
    /// class's own and needs no priority.
    pub fn start<'v>(&mut self, m: &Multifactor, view: &View<'v>) -> Option<PassFactors<'v>> {
        self.sync(m, view);
        self.merge(m, view)
    }

    /// Brings the index in step with the view (the first half of [`MultifactorQueue::start`]).
    fn sync(&mut self, m: &Multifactor, view: &View<'_>) {
        let pending = view.pending;
        let mut left = std::mem::take(&mut self.left);
        left.clear();
        match self.tracker.sync(pending, &mut left) {
            Some(from) => {
                for &seq in &left {
                    self.remove(seq);
                }
                for p in &pending[from..] {
                    self.add(m, p);
                }
            }
            None => {
                self.clear();
                for p in pending {
                    self.add(m, p);
                }
                self.tracker.rebuild(pending);
            }
        }
        self.left = left;
    }

    /// Prepares the pass's merge, the index in step with the view (the second half of
    /// [`MultifactorQueue::start`]).
    fn merge<'v>(&mut self, m: &Multifactor, view: &View<'v>) -> Option<PassFactors<'v>> {
        self.heads.clear();
        if self.nonempty.len() < 2 {
            // No two heads to compare: no priorities, nor the fair-share factors behind them.
            let first = self.nonempty.first();
            if let Some(head) = first.and_then(|&c| self.head_after(m, view, None, c, None)) {
                self.heads.push(head);
            }
            return None;
        }
        // The known users in order of first appearance: running jobs, then the queue.
        let mut users = std::mem::take(&mut self.users);
        let mut slot = std::mem::take(&mut self.slot);
        users.clear();
        let syms = view
            .running
            .iter()
            .map(|r| r.spec.user.0 as usize + 1)
            .chain(self.active.iter().map(|u| u.0 as usize + 1))
            .max()
            .unwrap_or(0);
        if slot.len() < syms {
            slot.resize(syms, u32::MAX);
        }
        let mut know = |user: Sym, account: Sym| {
            let u = &mut slot[user.0 as usize];
            if *u == u32::MAX {
                *u = users.len() as u32;
                users.push((user, account));
            }
        };
        for r in view.running {
            know(r.spec.user, r.spec.account);
        }
        // Flat fair-share (every known user one equal share) reads neither the users' order
        // nor a waiting user's account: the set of users is enough.
        let flat = !m.accounts && !m.fair_tree && view.assoc.is_none_or(|c| !c.has_tree());
        if flat {
            for &user in &self.active {
                know(user, Sym::default());
            }
        } else {
            self.firsts.clear();
            self.firsts.extend(self.active.iter().filter_map(|&u| {
                let (&seq, &account) = self.user_seqs[u.0 as usize].first_key_value()?;
                Some((seq, u, account))
            }));
            self.firsts.sort_unstable();
            for &(_, user, account) in &self.firsts {
                know(user, account);
            }
        }
        // The same users as the queue-wide scan finds (checked in debug builds: the tests); in
        // order but for a flat tree.
        #[cfg(debug_assertions)]
        {
            let mut want = super::order::known_users(view).0;
            if flat {
                let mut got: Vec<Sym> = users.iter().map(|u| u.0).collect();
                got.sort_unstable();
                want.sort_unstable();
                debug_assert_eq!(got, want.iter().map(|u| u.0).collect::<Vec<_>>());
            } else {
                debug_assert_eq!(users, want);
            }
        }
        let factors = PassFactors::with_buffer(m, view, &users, slot, std::mem::take(&mut self.fs));
        self.users = users;
        // Every class's first job.
        for k in 0..self.nonempty.len() {
            let class = self.nonempty[k];
            if let Some(head) = self.head_after(m, view, Some(&factors), class, None) {
                self.heads.push(head);
            }
        }
        Some(factors)
    }

    /// Ends a pass: takes back the buffers lent to `factors`.
    pub fn finish(&mut self, factors: Option<PassFactors<'_>>) {
        let Some(factors) = factors else {
            return;
        };
        self.fs = factors.fs;
        let mut slot = factors.slot;
        for &(u, _) in &self.users {
            slot[u.0 as usize] = u32::MAX;
        }
        self.slot = slot;
    }

    /// Class `class`'s first job after `after` (from its start with `None`), with its priority
    /// (0 without `factors`: a lone class's, never compared).
    fn head_after(
        &self,
        m: &Multifactor,
        view: &View<'_>,
        factors: Option<&PassFactors<'_>>,
        class: usize,
        after: Option<Place>,
    ) -> Option<Head> {
        use std::ops::Bound::{Excluded, Unbounded};
        debug_assert_eq!(
            self.firsts_of[class].as_ref().map(|f| f.place),
            self.classes[class].first().map(|f| f.place)
        );
        let next = match after {
            None => self.firsts_of[class].as_ref(),
            Some(a) => self.classes[class]
                .range::<Place, _>((Excluded(a), Unbounded))
                .next(),
        };
        next.map(|member| Head {
            prio: factors.map_or(0.0, |f| f.priority(m, view.now, &member.spec)),
            place: member.place,
            class,
        })
    }

    /// The next job of the pass's order (its queue position), after [`MultifactorQueue::start`].
    pub fn next(
        &mut self,
        m: &Multifactor,
        view: &View<'_>,
        factors: Option<&PassFactors<'_>>,
    ) -> Option<u32> {
        // The largest head (`Head`'s order is total: places differ).
        let k = (0..self.heads.len()).reduce(
            |a, b| {
                if self.heads[b] > self.heads[a] { b } else { a }
            },
        )?;
        let head = self.heads[k];
        self.tracker.handed.push(head.place.2);
        match self.head_after(m, view, factors, head.class, Some(head.place)) {
            Some(next) => self.heads[k] = next,
            None => {
                self.heads.swap_remove(k);
            }
        }
        // Every indexed job is in the queue (the index is in step with it).
        let pos = position(view.pending, head.place.2)?;
        Some(pos as u32)
    }
}
