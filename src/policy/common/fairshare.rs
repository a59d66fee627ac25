//! Slurm's classic fair-share factor (`PriorityFlags=NO_FAIR_TREE`).
//!
//! An association tree: accounts under the root, users under accounts, each with raw shares.
//! A node's normalized share is its shares over its siblings' times its parent's normalized
//! share. Effective usage: for the root's children it is their actual (normalized, decayed)
//! usage; below, `UE = U_child + (UE_parent − U_child) × S_child / S_all_siblings` (raw
//! shares). The factor is `F = 2^(−UE/S)`: 0.5 for a user who used exactly their share, more
//! for less. SchedMD's worked example is reproduced in the tests below.

use crate::model::AssocTree;

impl AssocTree {
    fn siblings_shares(&self, i: usize) -> f64 {
        let p = self.nodes[i].parent;
        self.nodes
            .iter()
            .filter(|n| n.parent == p)
            .map(|n| n.shares)
            .sum()
    }

    /// Normalized shares of every node (the root's is 1).
    pub fn normalized_shares(&self) -> Vec<f64> {
        let mut s = vec![1.0; self.nodes.len()];
        // Parents always precede their children (add() appends).
        for i in 1..self.nodes.len() {
            let p = self.nodes[i].parent.unwrap_or(0);
            let sib = self.siblings_shares(i);
            s[i] = if sib > 0.0 {
                s[p] * self.nodes[i].shares / sib
            } else {
                0.0
            };
        }
        s
    }

    /// Actual usage of every node from its own usage plus its descendants'.
    pub fn rolled_up(&self, own: &[f64]) -> Vec<f64> {
        let mut u = own.to_vec();
        u.resize(self.nodes.len(), 0.0);
        for i in (1..self.nodes.len()).rev() {
            let p = self.nodes[i].parent.unwrap_or(0);
            u[p] += u[i];
        }
        u
    }

    /// Fair Tree (Slurm's default since 19.05): at every level the siblings are ordered by
    /// level fair-share `LF = S / U` — their shares and their usage, each as a fraction of the
    /// siblings' (no usage: first) — and the tree is walked depth first in that order; users
    /// are ranked as they are met (siblings with equal LF share a rank), and a user's factor is
    /// `rank / number of users`, so the first scores 1. Returns factors for every node (users'
    /// are meaningful).
    pub fn fair_tree(&self, usage: &[f64]) -> Vec<f64> {
        let n = self.nodes.len();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in 1..n {
            children[self.nodes[i].parent.unwrap_or(0)].push(i);
        }
        let is_user = |i: usize| i != 0 && children[i].is_empty();
        let users = (1..n).filter(|&i| is_user(i)).count().max(1);
        let level_fs = |i: usize, sib: &[usize]| {
            let s_sum: f64 = sib.iter().map(|&j| self.nodes[j].shares).sum();
            let u_sum: f64 = sib
                .iter()
                .map(|&j| usage.get(j).copied().unwrap_or(0.0))
                .sum();
            let s = if s_sum > 0.0 {
                self.nodes[i].shares / s_sum
            } else {
                0.0
            };
            let u = if u_sum > 0.0 {
                usage.get(i).copied().unwrap_or(0.0) / u_sum
            } else {
                0.0
            };
            if u > 0.0 { s / u } else { f64::INFINITY }
        };
        let mut factor = vec![0.0; n];
        let mut rank = users;
        // Depth-first, siblings by LF descending (ties in index order, sharing a user rank).
        fn walk(
            i: usize,
            children: &[Vec<usize>],
            lf: &dyn Fn(usize, &[usize]) -> f64,
            is_user: &dyn Fn(usize) -> bool,
            rank: &mut usize,
            users: usize,
            factor: &mut [f64],
        ) {
            let sib = &children[i];
            let mut order: Vec<(f64, usize)> = sib.iter().map(|&c| (lf(c, sib), c)).collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut k = 0;
            while k < order.len() {
                let mut end = k + 1;
                while end < order.len() && order[end].0 == order[k].0 {
                    end += 1;
                }
                let tied_users: Vec<usize> = order[k..end]
                    .iter()
                    .map(|x| x.1)
                    .filter(|&c| is_user(c))
                    .collect();
                for &c in &tied_users {
                    factor[c] = *rank as f64 / users as f64;
                }
                *rank = rank.saturating_sub(tied_users.len());
                for &(_, c) in &order[k..end] {
                    if !is_user(c) {
                        walk(c, children, lf, is_user, rank, users, factor);
                    }
                }
                k = end;
            }
        }
        walk(
            0,
            &children,
            &level_fs,
            &is_user,
            &mut rank,
            users,
            &mut factor,
        );
        factor[0] = 1.0;
        factor
    }

    /// Classic fair-share factors of every node, from each node's *actual normalized* usage
    /// (already rolled up: an account's usage includes its users').
    pub fn factors(&self, usage: &[f64]) -> Vec<f64> {
        let s = self.normalized_shares();
        let mut ue = vec![0.0; self.nodes.len()];
        for i in 1..self.nodes.len() {
            let p = self.nodes[i].parent.unwrap_or(0);
            let ua = usage.get(i).copied().unwrap_or(0.0);
            ue[i] = if p == 0 {
                ua
            } else {
                let sib = self.siblings_shares(i);
                let frac = if sib > 0.0 {
                    self.nodes[i].shares / sib
                } else {
                    0.0
                };
                ua + (ue[p] - ua) * frac
            };
        }
        (0..self.nodes.len())
            .map(|i| {
                if i == 0 {
                    1.0
                } else if s[i] > 0.0 {
                    (2f64).powf(-ue[i] / s[i])
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_tree_ranks_by_level_fairshare() {
        // root → A, B (equal shares); A → u1 (used 0.5), u2 (unused); B → u3 (used 0.1).
        let mut t = AssocTree::default();
        let a = t.add("A", 0, 1.0);
        let b = t.add("B", 0, 1.0);
        let u1 = t.add("u1", a, 1.0);
        let u2 = t.add("u2", a, 1.0);
        let u3 = t.add("u3", b, 1.0);
        let mut own = vec![0.0; t.nodes.len()];
        own[u1] = 0.5;
        own[u3] = 0.1;
        let f = t.fair_tree(&t.rolled_up(&own));
        // B (LF 0.5/0.17 = 3) before A (0.5/0.83 = 0.6); in A, u2 (no usage) before u1.
        assert_eq!((f[u3], f[u2], f[u1]), (1.0, 2.0 / 3.0, 1.0 / 3.0));
        // Two unused users tie and share the top rank.
        let mut t = AssocTree::default();
        let x = t.add("x", 0, 1.0);
        let y = t.add("y", 0, 1.0);
        let z = t.add("z", 0, 1.0);
        let mut own = vec![0.0; 4];
        own[z] = 1.0;
        let f = t.fair_tree(&t.rolled_up(&own));
        assert_eq!((f[x], f[y], f[z]), (1.0, 1.0, 1.0 / 3.0));
    }

    /// SchedMD's worked example (classic_fair_share.html): accounts A (40) and D (60); B (30)
    /// and C (10) under A; E (25) and F (35) under D; user 1 in B, users 2 and 3 (1 share
    /// each) in C, user 4 in E, user 5 in F. Usage: user 1 0.2, user 2 0.25, user 4 0.25.
    #[test]
    fn schedmd_classic_example() {
        let mut t = AssocTree::default();
        let a = t.add("A", 0, 40.0);
        let d = t.add("D", 0, 60.0);
        let b = t.add("B", a, 30.0);
        let c = t.add("C", a, 10.0);
        let e = t.add("E", d, 25.0);
        let f = t.add("F", d, 35.0);
        let u1 = t.add("user1", b, 1.0);
        let u2 = t.add("user2", c, 1.0);
        let u3 = t.add("user3", c, 1.0);
        let u4 = t.add("user4", e, 1.0);
        let u5 = t.add("user5", f, 1.0);
        let mut own = vec![0.0; t.nodes.len()];
        own[u1] = 0.2;
        own[u2] = 0.25;
        own[u4] = 0.25;
        let usage = t.rolled_up(&own);
        assert!((usage[a] - 0.45).abs() < 1e-12);
        let s = t.normalized_shares();
        for (u, want) in [(u1, 0.3), (u2, 0.05), (u3, 0.05), (u4, 0.25), (u5, 0.35)] {
            assert!((s[u] - want).abs() < 1e-12, "share of {}", t.nodes[u].name);
        }
        let fs = t.factors(&usage);
        // The page rounds F's effective usage 0.145833… to .1458 in its last line; with
        // exact arithmetic user 5's factor is 0.749154 all the same to six decimals.
        for (u, want) in [
            (u1, 0.408479),
            (u2, 0.022097),
            (u3, 0.125000),
            (u4, 0.500000),
            (u5, 0.749154),
        ] {
            assert_eq!(
                format!("{:.6}", fs[u]),
                format!("{want:.6}"),
                "{}",
                t.nodes[u].name
            );
        }
    }
}
