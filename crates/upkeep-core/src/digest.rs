//! The content digest, version 1 (`content-digest.md`): a row count and the sum of the rows'
//! SHA-256 hashes modulo 2^256, so any split into chunks adds up to the same table digest.

use sha2::{Digest as _, Sha256};

/// Version tag written in front of every digest.
pub const DIGEST_VERSION: u32 = 1;

/// The digest of a set of rows (a chunk or a table).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digest {
    rows: u64,
    /// The 256-bit sum as four 64-bit limbs, least significant first.
    sum: [u64; 4],
}

/// SHA-256 of one row's encoding.
pub fn row_hash(encoded_row: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded_row).into()
}

impl Digest {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds one row given by its encoding.
    pub fn add_row(&mut self, encoded_row: &[u8]) {
        self.add_hash(&row_hash(encoded_row));
    }

    /// Adds one row given by its hash, read as a big-endian 256-bit integer.
    pub fn add_hash(&mut self, hash: &[u8; 32]) {
        let mut limbs = [0u64; 4];
        for (limb, word) in limbs.iter_mut().zip(hash.rchunks_exact(8)) {
            *limb = u64::from_be_bytes(word.try_into().expect("8 bytes"));
        }
        self.add_limbs(&limbs);
        self.rows += 1;
    }

    /// Adds every row of another digest (chunk digests add up to the table's).
    pub fn merge(&mut self, other: &Digest) {
        self.add_limbs(&other.sum);
        self.rows += other.rows;
    }

    /// Adds a 256-bit number given by its 64-bit limbs, least significant first, mod 2^256.
    fn add_limbs(&mut self, limbs: &[u64; 4]) {
        let mut carry = 0u64;
        for (sum, &word) in self.sum.iter_mut().zip(limbs) {
            let (s1, c1) = sum.overflowing_add(word);
            let (s2, c2) = s1.overflowing_add(carry);
            *sum = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{DIGEST_VERSION}:{}:", self.rows)?;
        self.sum
            .iter()
            .rev()
            .try_for_each(|limb| write!(f, "{limb:016x}"))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Text that is not a `v1:<rows>:<64 hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a content digest (expected v1:<rows>:<64 hex digits>)")]
pub struct ParseDigestError(String);

impl std::str::FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDigestError(s.chars().take(80).collect());
        let mut parts = s.split(':');
        let (Some("v1"), Some(rows), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let rows = rows.parse().map_err(|_| bad())?;
        let mut sum = [0u64; 4];
        for (limb, slot) in sum.iter_mut().enumerate() {
            let start = (3 - limb) * 16;
            *slot = u64::from_str_radix(&hex[start..start + 16], 16).map_err(|_| bad())?;
        }
        Ok(Self { rows, sum })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_prints_as_the_spec_says() {
        assert_eq!(
            Digest::default().to_string(),
            format!("v1:0:{}", "0".repeat(64))
        );
    }

    #[test]
    fn sum_wraps_modulo_two_to_the_256() {
        let mut d = Digest::default();
        d.add_hash(&[0xff; 32]);
        d.add_hash(&{
            let mut one = [0u8; 32];
            one[31] = 1;
            one
        });
        assert_eq!(d.to_string(), format!("v1:2:{}", "0".repeat(64)));
    }

    #[test]
    fn merge_equals_adding_rows_in_any_order() {
        let rows: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().repeat(9)).collect();
        let mut whole = Digest::default();
        rows.iter().for_each(|r| whole.add_row(r));
        let (mut a, mut b) = (Digest::default(), Digest::default());
        rows.iter().rev().enumerate().for_each(|(i, r)| {
            if i % 3 == 0 {
                a.add_row(r)
            } else {
                b.add_row(r)
            }
        });
        a.merge(&b);
        assert_eq!(a, whole);
        assert_eq!(whole.to_string().parse::<Digest>().unwrap(), whole);
        assert!("v1:1:zz".parse::<Digest>().is_err());
        assert!(
            "v2:0:0000000000000000000000000000000000000000000000000000000000000000"
                .parse::<Digest>()
                .is_err()
        );
    }
}
