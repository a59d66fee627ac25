//! Identifier newtypes.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A fast, deterministic hasher for lookups by id or name (FxHash's rotate-multiply). Maps
/// built with it are only ever used for lookups, never iterated to make a decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxBuild;

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map for lookups, with the deterministic [`FxBuild`] hasher.
pub type FastMap<K, V> = HashMap<K, V, FxBuild>;

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
    index: FastMap<String, u32>,
}

impl Default for Names {
    fn default() -> Self {
        let mut n = Names {
            names: Vec::new(),
            index: FastMap::default(),
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

    /// The names from symbol `from` on, in symbol order.
    pub fn since(&self, from: usize) -> &[String] {
        self.names.get(from..).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() <= 1
    }
}
