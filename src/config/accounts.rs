//! An accounts file: the fair-share association tree, as `sacctmgr` would set it up.
//!
//! ```text
//! # comments
//! qos high priority=100
//! qos normal priority=10
//! account physics shares=40
//! account theory parent=physics shares=10
//! user alice account=theory shares=1
//! ```
//!
//! `qos NAME priority=N` defines a quality of service (Slurm's `sacctmgr add qos`); jobs name
//! theirs in the trace's `qos` column and the multifactor QOS factor is their QOS's priority
//! over the largest one defined.
//!
//! `qos=a,b` on a `user` or `account` line grants those QOS levels (Slurm's association QOS):
//! a user's own list, else its account's, else the nearest ancestor account's. A shared live
//! scheduler (`scheduler --multi-user --accounts FILE`) lets a user other than root submit
//! with `--qos` only a QOS granted to them; the simulator does not read grants.
//!
//! Accounts hang under the root unless they name a `parent` defined above them; `shares`
//! defaults to 1. Users belong to one account. Users the file does not list are placed under an
//! account named like their group if there is one, else under an account `(unlisted)` with one
//! share.

use super::{ConfigError, logical_lines, pairs};
use crate::ids::Names;
pub use crate::model::AssocConfig;
use std::path::Path;

pub fn parse(text: &str, path: &Path, names: &mut Names) -> Result<AssocConfig, ConfigError> {
    let mut cfg = AssocConfig::default();
    let mut accounts: Vec<(String, usize)> = Vec::new();
    // Granted QOS names, checked against the `qos` lines once the whole file is read.
    let mut granted: Vec<(u64, String)> = Vec::new();
    for (line, l) in logical_lines(text) {
        let err = |m: String| ConfigError::at(path, line, m);
        let (kind, rest) = l
            .split_once(char::is_whitespace)
            .unwrap_or((l.as_str(), ""));
        let rest = rest.trim();
        let (name, kv) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(err(format!("'{kind}' needs a name")));
        }
        let kv = pairs(kv).map_err(err)?;
        let mut shares = 1.0;
        let mut parent = None;
        let mut account = None;
        let mut priority = None;
        let mut grant = None;
        for (k, v) in kv {
            match k.as_str() {
                "shares" if kind != "qos" => {
                    shares = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| err(format!("shares: expected a number ≥ 0, found '{v}'")))?
                }
                "parent" if kind == "account" => parent = Some(v),
                "account" if kind == "user" => account = Some(v),
                "qos" if kind != "qos" => {
                    let list: Vec<String> = v.split(',').map(|q| q.trim().to_string()).collect();
                    if list.iter().any(String::is_empty) {
                        return Err(err(format!("qos: expected NAME[,NAME...], found '{v}'")));
                    }
                    granted.extend(list.iter().map(|q| (line, q.clone())));
                    grant = Some(list);
                }
                "priority" if kind == "qos" => {
                    priority = Some(v.parse::<u32>().map_err(|_| {
                        err(format!("priority: expected an integer ≥ 0, found '{v}'"))
                    })?)
                }
                _ => return Err(err(format!("unknown key '{k}' for {kind}"))),
            }
        }
        let find = |a: &str| accounts.iter().find(|x| x.0 == a).map(|x| x.1);
        match kind {
            "account" => {
                if find(name).is_some() {
                    return Err(err(format!("account {name} is defined twice")));
                }
                let p = match parent {
                    None => 0,
                    Some(p) => find(&p)
                        .ok_or_else(|| err(format!("parent account {p} is not defined above")))?,
                };
                let node = cfg.tree.add(name, p, shares);
                if let Some(g) = grant {
                    cfg.qos_grants.insert(node, g);
                }
                accounts.push((name.to_string(), node));
                cfg.account_node.insert(names.intern(name), node);
            }
            "user" => {
                let a = account.ok_or_else(|| err(format!("user {name} needs account=NAME")))?;
                let p = find(&a).ok_or_else(|| err(format!("account {a} is not defined above")))?;
                let sym = names.intern(name);
                if cfg.user_node.contains_key(&sym) {
                    return Err(err(format!("user {name} is listed twice")));
                }
                let node = cfg.tree.add(name, p, shares);
                if let Some(g) = grant {
                    cfg.qos_grants.insert(node, g);
                }
                cfg.user_node.insert(sym, node);
            }
            "qos" => {
                let sym = names.intern(name);
                if cfg.qos_priority.contains_key(&sym) {
                    return Err(err(format!("qos {name} is defined twice")));
                }
                cfg.qos_priority.insert(sym, priority.unwrap_or(0));
            }
            other => {
                return Err(err(format!(
                    "expected 'account', 'user' or 'qos', found '{other}'"
                )));
            }
        }
    }
    for (line, q) in granted {
        if !cfg.qos_priority.contains_key(&names.intern(&q)) {
            return Err(ConfigError::at(
                path,
                line,
                format!("qos: '{q}' is not defined by a 'qos' line"),
            ));
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tree() {
        let mut names = Names::default();
        let cfg = parse(
            "account A shares=40\naccount B parent=A shares=30\nuser u1 account=B\n",
            Path::new("acct"),
            &mut names,
        )
        .unwrap();
        assert_eq!(cfg.tree.nodes.len(), 4);
        let u1 = names.intern("u1");
        assert_eq!(cfg.user_node[&u1], 3);
        let e = parse("user u account=X\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "acct:1: account X is not defined above");
        let e = parse("account A shares=-1\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("acct:1: shares"), "{e}");
        let e = parse("group g\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("expected 'account', 'user' or 'qos'"),
            "{e}"
        );
        let cfg = parse(
            "qos high priority=100\nqos normal priority=25\nqos scavenger\n",
            Path::new("acct"),
            &mut names,
        )
        .unwrap();
        assert_eq!(cfg.qos_factor(names.intern("high"), cfg.qos_max()), 1.0);
        assert_eq!(cfg.qos_factor(names.intern("normal"), cfg.qos_max()), 0.25);
        assert_eq!(
            cfg.qos_factor(names.intern("scavenger"), cfg.qos_max()),
            0.0
        );
        assert_eq!(
            cfg.qos_factor(names.intern("undefined"), cfg.qos_max()),
            0.0
        );
        let e = parse("qos q priority=-3\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "acct:1: priority: expected an integer ≥ 0, found '-3'"
        );
        let cfg = parse(
            "qos high priority=9\nqos low\naccount A qos=low\naccount B parent=A\n\
             user u account=B\nuser v account=B qos=high,low\n",
            Path::new("acct"),
            &mut names,
        )
        .unwrap();
        let mut node = |u: &str| cfg.user_node[&names.intern(u)];
        assert_eq!(cfg.qos_granted(node("u")), ["low"]);
        assert_eq!(cfg.qos_granted(node("v")), ["high", "low"]);
        assert!(cfg.qos_granted(0).is_empty());
        let e = parse("account A qos=gold\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "acct:1: qos: 'gold' is not defined by a 'qos' line"
        );
        let e = parse("qos q shares=3\n", Path::new("acct"), &mut names)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("unknown key 'shares' for qos"),
            "{e}"
        );
    }
}
