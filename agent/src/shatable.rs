//! A compact table keyed by SHA-256 digest: rows sorted by key, and a
//! small map of recent changes beside them.
//!
//! An origin's catalog (content → pack) and entry counts, and a mirror's
//! map of held contents, have one row per content: a million at Debian
//! scale. A hash map keeps at most 7/8 of its buckets full and doubles
//! when it grows, so it has between 1.14 and 2.3 buckets per row: a
//! million 40-byte rows took 86 MB (2^21 buckets). This table spends the
//! rows' own size, plus the recent changes until they are merged in (at
//! most an eighth of the rows, or [`MERGE_MIN`]). A lookup is a probe of
//! the recent map, then a binary search of the rows.

use crate::shamap::ShaMap;

/// A SHA-256 digest, the key.
pub type Sha = [u8; 32];

/// Recent changes are merged into the sorted rows once there are more
/// than this many, or more than an eighth of the rows.
pub const MERGE_MIN: usize = 4096;

/// A map from SHA-256 digests to small `Copy` values.
#[derive(Debug, Clone)]
pub struct ShaTable<V> {
    /// Sorted by key; each key once.
    rows: Vec<(Sha, V)>,
    /// Changes not merged into `rows` yet: `None` removes a row.
    recent: ShaMap<Option<V>>,
    len: usize,
}

impl<V: Copy> Default for ShaTable<V> {
    fn default() -> Self {
        ShaTable {
            rows: Vec::new(),
            recent: crate::shamap::new(),
            len: 0,
        }
    }
}

impl<V: Copy> ShaTable<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &Sha) -> Option<V> {
        match self.recent.get(key) {
            Some(v) => *v,
            None => self.find(key).map(|i| self.rows[i].1),
        }
    }

    pub fn contains_key(&self, key: &Sha) -> bool {
        self.get(key).is_some()
    }

    fn find(&self, key: &Sha) -> Option<usize> {
        self.rows.binary_search_by(|r| r.0.cmp(key)).ok()
    }

    /// Sets `key` to `value`; returns the value it had. A key above every
    /// row, with no recent change waiting, is appended to the rows: a
    /// table filled in key order (an origin's first publish fills its
    /// entry counts so) never builds a map of recent changes nor merges.
    pub fn insert(&mut self, key: Sha, value: V) -> Option<V> {
        if self.recent.is_empty() && self.rows.last().is_none_or(|r| r.0 < key) {
            if self.rows.len() == self.rows.capacity() {
                // Grown by an eighth, not doubled: the slack stays as small
                // as after a merge.
                self.rows.reserve_exact(MERGE_MIN.max(self.rows.len() / 8));
            }
            self.rows.push((key, value));
            self.len += 1;
            return None;
        }
        let old = self.get(&key);
        if old.is_none() {
            self.len += 1;
        }
        if !self.recent.contains_key(&key) {
            if let Some(i) = self.find(&key) {
                self.rows[i].1 = value;
                return old;
            }
        }
        self.recent.insert(key, Some(value));
        self.merge_when_due();
        old
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&mut self, key: &Sha) -> Option<V> {
        let old = self.get(key);
        if old.is_some() {
            self.len -= 1;
            if self.find(key).is_some() {
                self.recent.insert(*key, None);
                self.merge_when_due();
            } else {
                self.recent.remove(key);
            }
        }
        old
    }

    /// Keeps the rows for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&Sha, &mut V) -> bool) {
        self.merge();
        self.rows.retain_mut(|(k, v)| keep(k, v));
        self.len = self.rows.len();
    }

    /// Removes every row and gives the memory back.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Room for `additional` more rows without growing.
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve_exact(additional);
    }

    /// Every row, sorted by key.
    pub fn rows(&mut self) -> &[(Sha, V)] {
        self.merge();
        &self.rows
    }

    fn merge_when_due(&mut self) {
        if self.recent.len() > MERGE_MIN.max(self.rows.len() / 8) {
            self.merge();
        }
    }

    /// Folds the recent changes into the sorted rows, in place: removals
    /// first, then the new rows, merged from the back.
    pub fn merge(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let recent = std::mem::take(&mut self.recent);
        let mut gone: Vec<usize> = Vec::new();
        let mut add: Vec<(Sha, V)> = Vec::new();
        for (k, v) in recent {
            match (self.find(&k), v) {
                (Some(i), Some(v)) => self.rows[i].1 = v,
                (Some(i), None) => gone.push(i),
                (None, Some(v)) => add.push((k, v)),
                (None, None) => {}
            }
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            let mut next = gone.into_iter().peekable();
            let mut i = 0;
            self.rows.retain(|_| {
                let drop = next.peek() == Some(&i);
                if drop {
                    next.next();
                }
                i += 1;
                !drop
            });
        }
        if add.is_empty() {
            debug_assert_eq!(self.rows.len(), self.len);
            return;
        }
        add.sort_unstable_by_key(|a| a.0);
        let old = self.rows.len();
        self.rows.reserve_exact(add.len());
        self.rows.extend_from_slice(&add);
        let (mut i, mut j, mut w) = (old, add.len(), old + add.len());
        while j > 0 {
            w -= 1;
            if i > 0 && self.rows[i - 1].0 > add[j - 1].0 {
                self.rows[w] = self.rows[i - 1];
                i -= 1;
            } else {
                self.rows[w] = add[j - 1];
                j -= 1;
            }
        }
        debug_assert_eq!(self.rows.len(), self.len);
    }
}

impl<V: Copy> FromIterator<(Sha, V)> for ShaTable<V> {
    /// A key given twice keeps its last value.
    fn from_iter<I: IntoIterator<Item = (Sha, V)>>(iter: I) -> Self {
        let mut rows: Vec<(Sha, V)> = iter.into_iter().collect();
        // Stable, so equal keys stay in the order given.
        rows.sort_by_key(|a| a.0);
        rows.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        rows.shrink_to_fit();
        ShaTable {
            len: rows.len(),
            rows,
            recent: crate::shamap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(i: u64) -> Sha {
        shoal_manifest::Sha256Hash::of(&i.to_le_bytes()).0
    }

    #[test]
    fn behaves_as_a_map_through_merges() {
        let mut t: ShaTable<u32> = ShaTable::new();
        let mut m: BTreeMap<Sha, u32> = BTreeMap::new();
        // A simple generator: inserts, overwrites and removals of keys
        // from a pool larger than MERGE_MIN, so merges happen mid-run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % 20_000);
            if x.is_multiple_of(5) {
                assert_eq!(t.remove(&k), m.remove(&k), "step {step}");
            } else {
                assert_eq!(t.insert(k, step), m.insert(k, step), "step {step}");
            }
            assert_eq!(t.len(), m.len(), "step {step}");
            if step.is_multiple_of(997) {
                for probe in 0..50 {
                    let k = key(probe);
                    assert_eq!(t.get(&k), m.get(&k).copied());
                }
            }
        }
        let rows: Vec<(Sha, u32)> = t.rows().to_vec();
        let want: Vec<(Sha, u32)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(rows, want, "merged rows are the map, sorted");
        t.retain(|_, v| *v % 2 == 0);
        m.retain(|_, v| *v % 2 == 0);
        assert_eq!(t.len(), m.len());
        assert_eq!(t.rows().len(), m.len());
        for (k, v) in &m {
            assert_eq!(t.get(k), Some(*v));
        }
        t.clear();
        assert!(t.is_empty() && t.get(&key(1)).is_none());
    }

    /// Keys inserted in order are appended to the rows: no map of recent
    /// changes, no merge, and room for at most an eighth more.
    #[test]
    fn keys_in_order_are_appended() {
        let mut keys: Vec<Sha> = (0..50_000).map(key).collect();
        keys.sort();
        let mut t: ShaTable<u32> = ShaTable::new();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(*k, i as u32), None);
            assert!(t.recent.is_empty());
        }
        assert_eq!(t.len(), keys.len());
        assert!(t.rows.capacity() <= keys.len() + keys.len() / 8);
        // Out of order, or a key seen before, takes the usual way.
        assert_eq!(t.insert(keys[10], 7), Some(10));
        assert_eq!(t.insert(key(50_001), 8), None);
        assert_eq!(t.get(&keys[10]), Some(7));
        assert_eq!(t.get(&keys[49_999]), Some(49_999));
        assert_eq!(t.len(), keys.len() + 1);
    }

    #[test]
    fn collects_sorted_with_the_last_value_of_a_repeated_key() {
        let t: ShaTable<u32> = [(key(1), 1), (key(2), 2), (key(1), 3)]
            .into_iter()
            .collect();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&key(1)), Some(3));
        assert_eq!(t.get(&key(2)), Some(2));
        assert_eq!(t.get(&key(3)), None);
    }

    #[test]
    fn rows_take_their_own_size_not_a_hash_maps_slack() {
        let mut t: ShaTable<u64> = (0..100_000).map(|i| (key(i), i)).collect();
        for i in 100_000..120_000 {
            t.insert(key(i), i);
        }
        t.merge();
        // Rows are 40 bytes; room for at most an eighth more is fine.
        assert!(
            t.rows.capacity() <= 120_000 + 120_000 / 8,
            "{}",
            t.rows.capacity()
        );
        assert!(t.recent.is_empty());
        assert_eq!(t.len(), 120_000);
    }
}
