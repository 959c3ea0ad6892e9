//! Sharding: which targets this instance probes when several split one configuration.
//!
//! Every instance reads the same file and keeps the targets whose name hashes to its
//! shard. The assignment is rendezvous (highest random weight) hashing over the target
//! name: each shard scores every name and the highest score wins. Adding a target moves no
//! other target; growing from `n` to `n + 1` shards moves only the targets the new shard
//! wins (about `1/(n + 1)` of them), and no target moves between two old shards. The hash
//! is fixed here (FNV-1a, then a SplitMix64 finish), not the standard library's, so every
//! build and every platform agrees on the assignment.
//!
//! A shard is written `INDEX/TOTAL` with a zero-based `INDEX`, as StatefulSet ordinals
//! are; `INDEX` may also be a name ending in `-N` (a StatefulSet pod name such as
//! `wsprobe-2`), whose `N` is taken.

use std::fmt;
use std::str::FromStr;

/// The most shards a configuration may be split into.
pub const MAX_TOTAL: u32 = 1024;

/// One shard out of a total: this instance probes the targets that hash to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    total: u32,
}

/// A shard specification that could not be used; the text completes "`--shard`: ...".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` {why} (expected INDEX/TOTAL, e.g. `0/3` or `wsprobe-0/3`, with 0 <= INDEX < TOTAL <= {MAX_TOTAL})")]
pub struct ShardError {
    given: String,
    why: &'static str,
}

impl Shard {
    /// Every target on one instance: what runs without `--shard`.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    pub fn new(index: u32, total: u32) -> Option<Self> {
        ((1..=MAX_TOTAL).contains(&total) && index < total).then_some(Self { index, total })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn total(self) -> u32 {
        self.total
    }

    /// Whether the target named `name` belongs to this shard.
    pub fn owns(self, name: &str) -> bool {
        shard_of(name, self.total) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |why| ShardError { given: crate::util::text::shown(s), why };
        let (index, total) = s.rsplit_once('/').ok_or_else(|| fail("has no `/`"))?;
        let total: u32 = total.parse().map_err(|_| fail("has a TOTAL that is not a whole number"))?;
        // A pod name (`wsprobe-2`) gives its ordinal; a bare number is the index itself.
        let ordinal = match index.rsplit_once('-') {
            Some(("", _)) => "",
            Some((_, n)) => n,
            None => index,
        };
        if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("has an INDEX that is neither a number nor a name ending in `-N`"));
        }
        let index: u32 = ordinal.parse().map_err(|_| fail("has an INDEX that is too large"))?;
        if total == 0 || total > MAX_TOTAL {
            return Err(fail("has a TOTAL out of range"));
        }
        Shard::new(index, total).ok_or_else(|| fail("has an INDEX not below TOTAL"))
    }
}

/// The shard, out of `total`, that the target named `name` belongs to.
pub fn shard_of(name: &str, total: u32) -> u32 {
    let key = fnv1a(name.as_bytes());
    // Ties cannot be broken by iteration order alone on another build, so the lower index
    // wins them explicitly.
    (0..total.max(1)).max_by_key(|&i| (score(key, i), std::cmp::Reverse(i))).unwrap_or(0)
}

fn score(key: u64, shard: u32) -> u64 {
    mix(key ^ mix(u64::from(shard).wrapping_add(1)))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64's finalizer: FNV alone leaves similar names with similar high bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
