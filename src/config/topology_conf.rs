//! Slurm's `topology.conf` for the tree plugin: `SwitchName=NAME Nodes=HOSTLIST` for leaf
//! switches and `SwitchName=NAME Switches=HOSTLIST` for the switches above them. Other keys
//! (`LinkSpeed`, ...) are ignored with a note.

use super::{ConfigError, logical_lines, pairs};
use crate::model::hostlist;
use crate::model::{Node, Switch};
use std::collections::BTreeSet;
use std::path::Path;

pub struct TopologyConf {
    pub switches: Vec<Switch>,
    pub notes: Vec<String>,
}

pub fn parse(text: &str, path: &Path, nodes: &[Node]) -> Result<TopologyConf, ConfigError> {
    let mut switches: Vec<Switch> = Vec::new();
    // (line, child switch names) resolved once every switch is known.
    let mut children: Vec<(u64, Vec<String>)> = Vec::new();
    let mut ignored = BTreeSet::new();
    for (line, l) in logical_lines(text) {
        let err = |m: String| ConfigError::at(path, line, m);
        let kv = pairs(&l).map_err(err)?;
        let Some((first, name)) = kv.first() else {
            continue;
        };
        if !first.eq_ignore_ascii_case("SwitchName") {
            ignored.insert(first.clone());
            continue;
        }
        if switches.iter().any(|s| &s.name == name) {
            return Err(err(format!("switch {name} is defined twice")));
        }
        let mut node_list = None;
        let mut switch_list = None;
        for (k, v) in &kv[1..] {
            match k.to_ascii_lowercase().as_str() {
                "nodes" => node_list = Some(v.clone()),
                "switches" => switch_list = Some(v.clone()),
                _ => {
                    ignored.insert(format!("SwitchName … {k}"));
                }
            }
        }
        let mut sw = Switch {
            name: name.clone(),
            level: 0,
            parent: None,
            children: Vec::new(),
            nodes: Vec::new(),
        };
        match (node_list, switch_list) {
            (Some(_), Some(_)) => {
                return Err(err(format!("switch {name} has both Nodes= and Switches=")));
            }
            (None, None) => {
                return Err(err(format!(
                    "switch {name} has neither Nodes= nor Switches="
                )));
            }
            (Some(list), None) => {
                for n in hostlist::expand(&list).map_err(err)? {
                    let i = nodes
                        .iter()
                        .position(|x| x.name == n)
                        .ok_or_else(|| err(format!("switch {name} names unknown node {n}")))?;
                    sw.nodes.push(i as u32);
                }
                children.push((line, Vec::new()));
            }
            (None, Some(list)) => children.push((line, hostlist::expand(&list).map_err(err)?)),
        }
        switches.push(sw);
    }
    if switches.is_empty() {
        return Err(ConfigError::file(path, "no SwitchName= line"));
    }
    for (s, (line, names)) in children.into_iter().enumerate() {
        for c in names {
            let ci = switches.iter().position(|x| x.name == c).ok_or_else(|| {
                ConfigError::at(
                    path,
                    line,
                    format!("switch {} names unknown switch {c}", switches[s].name),
                )
            })?;
            switches[s].children.push(ci as u32);
        }
    }
    let mut notes = Vec::new();
    if !ignored.is_empty() {
        notes.push(format!(
            "{}: ignored: {}",
            path.display(),
            ignored.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(TopologyConf { switches, notes })
}
