//! Identifier newtypes.

use std::collections::HashMap;
use std::fmt;

/// A job's identifier as the user knows it (SWF job number, CSV `id`, live submission id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An interned name (user, group, queue, partition). Symbols are numbered in order of first
/// appearance, so they are deterministic for a given input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sym(pub u32);

/// The table behind [`Sym`]. Symbol 0 is always the empty name ("unknown").
#[derive(Clone, Debug)]
pub struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Names {
    fn default() -> Self {
        let mut n = Names {
            names: Vec::new(),
            index: HashMap::new(),
        };
        n.intern("");
        n
    }
}

impl Names {
    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(&i) = self.index.get(name) {
            return Sym(i);
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        Sym(i)
    }

    pub fn get(&self, s: Sym) -> &str {
        self.names.get(s.0 as usize).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() <= 1
    }
}
