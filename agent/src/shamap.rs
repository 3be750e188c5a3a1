//! Maps keyed by a SHA-256 digest, hashed by the digest's own first eight
//! bytes.
//!
//! An origin's catalog and a publish's pack plan hold one entry per
//! content: a million at Debian scale, rebuilt or probed on every publish.
//! The std map's SipHash of 32 bytes was a visible share of a small
//! update's profile. The keys are already uniformly distributed (they are
//! SHA-256 outputs of the origin's own files, and a mirror only maps what
//! a signed manifest names), so hashing them again buys nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from a SHA-256 digest.
pub type ShaMap<V> = HashMap<[u8; 32], V, BuildHasherDefault<DigestHasher>>;

/// A new, empty [`ShaMap`].
pub fn new<V>() -> ShaMap<V> {
    ShaMap::default()
}

/// Folds in the first eight bytes of each write: a `[u8; 32]` key hashes
/// as its length, then its 32 bytes, so its hash is its first eight
/// bytes mixed with a constant. Any other key type still hashes
/// correctly, if poorly.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn a_digest_hashes_by_its_first_eight_bytes_and_the_map_works() {
        let b = BuildHasherDefault::<DigestHasher>::default();
        let hash = |d: [u8; 32]| b.hash_one(d);
        let (mut x, mut y) = ([7u8; 32], [7u8; 32]);
        y[31] = 0;
        assert_eq!(hash(x), hash(y), "only the first eight bytes count");
        x[0] = 8;
        assert_ne!(hash(x), hash(y));
        let mut m: ShaMap<u64> = new();
        for i in 0..1000u64 {
            let k = shoal_manifest::Sha256Hash::of(&i.to_le_bytes()).0;
            m.insert(k, i);
        }
        for i in 0..1000u64 {
            let k = shoal_manifest::Sha256Hash::of(&i.to_le_bytes()).0;
            assert_eq!(m.get(&k), Some(&i));
        }
        assert_eq!(m.len(), 1000);
    }
}
