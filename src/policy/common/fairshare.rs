//! Slurm's classic fair-share factor (`PriorityFlags=NO_FAIR_TREE`).
//!
//! An association tree: accounts under the root, users under accounts, each with raw shares.
//! A node's normalized share is its shares over its siblings' times its parent's normalized
//! share. Effective usage: for the root's children it is their actual (normalized, decayed)
//! usage; below, `UE = U_child + (UE_parent − U_child) × S_child / S_all_siblings` (raw
//! shares). The factor is `F = 2^(−UE/S)`: 0.5 for a user who used exactly their share, more
//! for less. SchedMD's worked example is reproduced in the tests below.

use crate::ids::{FastMap, Sym};

/// One association: the root (index 0), an account, or a user.
#[derive(Clone, Debug, PartialEq)]
pub struct Assoc {
    pub name: String,
    pub parent: Option<usize>,
    /// Raw shares among its siblings.
    pub shares: f64,
}

/// The association tree. Index 0 is the root.
#[derive(Clone, Debug, PartialEq)]
pub struct AssocTree {
    pub nodes: Vec<Assoc>,
}

impl Default for AssocTree {
    fn default() -> Self {
        AssocTree {
            nodes: vec![Assoc {
                name: "root".into(),
                parent: None,
                shares: 1.0,
            }],
        }
    }
}

impl AssocTree {
    /// Adds a node under `parent`; returns its index.
    pub fn add(&mut self, name: &str, parent: usize, shares: f64) -> usize {
        self.nodes.push(Assoc {
            name: name.to_string(),
            parent: Some(parent),
            shares,
        });
        self.nodes.len() - 1
    }

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

/// The association tree with users and groups resolved to symbols.
#[derive(Clone, Debug, Default)]
pub struct AssocConfig {
    pub tree: AssocTree,
    /// Tree node of each listed user.
    pub user_node: FastMap<Sym, usize>,
    /// Tree node of each account, by the symbol of its name (for users placed by group).
    pub account_node: FastMap<Sym, usize>,
}

impl AssocConfig {
    /// The tree node a user's usage is charged to, adding unlisted users as the module says.
    pub fn node_of(
        &self,
        tree: &mut AssocTree,
        user: Sym,
        group: Sym,
        unlisted: &mut Option<usize>,
    ) -> usize {
        if let Some(&n) = self.user_node.get(&user) {
            return n;
        }
        let parent = match self.account_node.get(&group) {
            Some(&a) => a,
            None => *unlisted.get_or_insert_with(|| tree.add("(unlisted)", 0, 1.0)),
        };
        tree.add("", parent, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
