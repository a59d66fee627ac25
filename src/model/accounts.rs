//! Accounts data: the fair-share association tree (accounts and users with their shares) and
//! QOS levels, as an accounts file defines them (`config::accounts` reads the file). The
//! fair-share factors computed over this tree live with the policies
//! (`policy::common::fairshare`).

use crate::ids::{FastMap, Sym};
use std::collections::BTreeMap;

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
}

/// The association tree with users and groups resolved to symbols.
#[derive(Clone, Debug, Default)]
pub struct AssocConfig {
    pub tree: AssocTree,
    /// Tree node of each listed user.
    pub user_node: FastMap<Sym, usize>,
    /// Tree node of each account, by the symbol of its name (for users placed by group).
    pub account_node: FastMap<Sym, usize>,
    /// QOS priority by the symbol of the QOS name (the accounts file's `qos` lines).
    pub qos_priority: FastMap<Sym, u32>,
    /// The QOS levels a tree node grants (a `user` or `account` line's `qos=a,b`), by node
    /// index; a node without an entry inherits its parent's (Slurm's association QOS).
    pub qos_grants: BTreeMap<usize, Vec<String>>,
}

impl AssocConfig {
    /// Whether the file defined any account or user (a file may define only QOS levels).
    pub fn has_tree(&self) -> bool {
        !self.user_node.is_empty() || !self.account_node.is_empty()
    }

    /// The QOS levels tree node `node` may use: its own grant, else its nearest ancestor's;
    /// none when no node on the way to the root grants any.
    pub fn qos_granted(&self, node: usize) -> &[String] {
        let mut n = Some(node);
        while let Some(i) = n {
            if let Some(g) = self.qos_grants.get(&i) {
                return g;
            }
            n = self.tree.nodes.get(i).and_then(|a| a.parent);
        }
        &[]
    }

    /// A QOS's priority; 0 for no QOS or one the file does not define.
    pub fn qos_priority_of(&self, qos: Sym) -> u32 {
        self.qos_priority.get(&qos).copied().unwrap_or(0)
    }

    /// The largest QOS priority defined (0 without QOS levels).
    pub fn qos_max(&self) -> u32 {
        self.qos_priority.values().copied().max().unwrap_or(0)
    }

    /// A job's QOS factor in [0, 1]: its QOS's priority over `max` ([`Self::qos_max`], computed
    /// once per pass by callers; Slurm's normalisation); 0 when `max` is 0.
    pub fn qos_factor(&self, qos: Sym, max: u32) -> f64 {
        if max == 0 {
            0.0
        } else {
            f64::from(self.qos_priority_of(qos)) / f64::from(max)
        }
    }
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
