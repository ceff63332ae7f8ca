//! How rows are stored in a chunk. Both layouts are lossless rewrites of the canonical encoding
//! (the bytes the digest hashes), with each value's 5-byte header (`0x00`, or `0x01` and a
//! 4-byte length) replaced by one varint (0 for NULL, length + 1 otherwise):
//!
//! - [`Encoding::Rows`] (`canonical-varint`, repositories made before 0.1's columnar chunks):
//!   the values in row order.
//! - [`Encoding::Columns`] (`columns-varint`): the row and column counts, then every column's
//!   value lengths, then every column's value bytes. Values of one column sit together, so
//!   zstd finds their repeats: the benchmark's 6.4 M shop rows take 171 MB at level 1 where
//!   rows took 198 MB at level 3, and the backup's own CPU time drops by a third.

use crate::BackupError;

/// A chunk's stored layout (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Rows,
    Columns,
}

impl Encoding {
    pub(crate) const ROWS: &'static str = "canonical-varint";
    pub(crate) const COLUMNS: &'static str = "columns-varint";

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            Self::ROWS => Some(Self::Rows),
            Self::COLUMNS => Some(Self::Columns),
            _ => None,
        }
    }

    /// Canonical bytes of `rows` rows → stored form, whole.
    #[cfg(test)]
    pub(crate) fn compact(self, canonical: &[u8], rows: u64) -> Result<Vec<u8>, BackupError> {
        Ok(self.pieces(canonical, rows)?.concat())
    }

    /// The stored form of `rows` rows as pieces, without copying the values: hashed and
    /// compressed piece by piece.
    pub(crate) fn pieces(self, canonical: &[u8], rows: u64) -> Result<Pieces<'_>, BackupError> {
        match self {
            Self::Rows => Ok(Pieces {
                head: compact(canonical)?,
                values: Vec::new(),
            }),
            Self::Columns => pieces_columns(canonical, rows),
        }
    }

    /// Stored form → canonical bytes.
    pub(crate) fn expand(self, stored: &[u8]) -> Result<Vec<u8>, BackupError> {
        match self {
            Self::Rows => expand(stored),
            Self::Columns => expand_columns(stored),
        }
    }
}

/// The values of canonical bytes, in order: `None` for NULL, else the value's bytes.
fn canonical_values(canonical: &[u8]) -> Result<Vec<Option<&[u8]>>, BackupError> {
    upkeep_core::values(canonical)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e.to_string()))
}

/// A stored form in pieces: a header the layout writes, then borrowed value bytes.
pub(crate) struct Pieces<'a> {
    head: Vec<u8>,
    values: Vec<&'a [u8]>,
}

/// Pieces smaller than this are gathered into runs of [`RUN_BYTES`] before they are handed
/// on: a chunk of short values has millions of them, and a hash or compressor call each
/// made a backup a fifth slower.
const SMALL_PIECE: usize = 64 << 10;
const RUN_BYTES: usize = 1 << 20;

impl Pieces<'_> {
    /// Calls `f` with the stored form in order, in runs of gathered small pieces and large
    /// pieces as they are (never a copy of a large value).
    pub(crate) fn each(&self, mut f: impl FnMut(&[u8])) {
        let mut run: Vec<u8> = Vec::with_capacity(RUN_BYTES.min(self.len()));
        let flush = |run: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])| {
            if !run.is_empty() {
                f(run);
                run.clear();
            }
        };
        for piece in std::iter::once(self.head.as_slice()).chain(self.values.iter().copied()) {
            if piece.len() >= SMALL_PIECE {
                flush(&mut run, &mut f);
                f(piece);
                continue;
            }
            if run.len() + piece.len() > RUN_BYTES {
                flush(&mut run, &mut f);
            }
            run.extend_from_slice(piece);
        }
        flush(&mut run, &mut f);
    }

    /// The stored form, whole.
    pub(crate) fn concat(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.head);
        for v in &self.values {
            out.extend_from_slice(v);
        }
        out
    }

    /// The stored form's length.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.values.iter().map(|v| v.len()).sum::<usize>()
    }
}

/// The columnar stored form as pieces: counts and lengths, then each column's values.
fn pieces_columns(canonical: &[u8], rows: u64) -> Result<Pieces<'_>, BackupError> {
    let values = canonical_values(canonical)?;
    let rows = usize::try_from(rows).map_err(|_| bad("too many rows"))?;
    if rows == 0 || values.len() % rows != 0 {
        return Err(bad("values that do not make whole rows"));
    }
    let columns = values.len() / rows;
    let mut head = Vec::with_capacity(2 * values.len() + 16);
    write_varint(rows as u64, &mut head);
    write_varint(columns as u64, &mut head);
    for c in 0..columns {
        for v in values.iter().skip(c).step_by(columns) {
            write_varint(v.map_or(0, |v| v.len() as u64 + 1), &mut head);
        }
    }
    let mut ordered = Vec::with_capacity(values.len());
    for c in 0..columns {
        ordered.extend(values.iter().skip(c).step_by(columns).flatten());
    }
    Ok(Pieces {
        head,
        values: ordered,
    })
}

/// The columnar stored form → canonical bytes.
fn expand_columns(stored: &[u8]) -> Result<Vec<u8>, BackupError> {
    let truncated = || bad("a truncated header");
    let (rows, pos) = read_varint(stored, 0).ok_or_else(truncated)?;
    let (columns, mut pos) = read_varint(stored, pos).ok_or_else(truncated)?;
    let rows = usize::try_from(rows).map_err(|_| bad("too many rows"))?;
    let columns = usize::try_from(columns).map_err(|_| bad("too many columns"))?;
    let count = rows
        .checked_mul(columns)
        .filter(|&n| n <= stored.len())
        .ok_or_else(|| bad("more values than bytes"))?;
    // Each value's length + 1 (0 for NULL), column by column.
    let mut lengths = Vec::with_capacity(count);
    for _ in 0..count {
        let (v, next) = read_varint(stored, pos).ok_or_else(|| bad("a truncated length"))?;
        lengths.push(usize::try_from(v).map_err(|_| bad("a value too large"))?);
        pos = next;
    }
    // Where each column's bytes start.
    let mut cursors = Vec::with_capacity(columns);
    for c in 0..columns {
        cursors.push(pos);
        for &l in &lengths[c * rows..(c + 1) * rows] {
            pos = pos
                .checked_add(l.saturating_sub(1))
                .ok_or_else(|| bad("a value too large"))?;
        }
    }
    if pos != stored.len() {
        return Err(bad("value bytes that do not add up"));
    }
    let mut out = Vec::with_capacity(stored.len() + 5 * count);
    for r in 0..rows {
        for (c, cursor) in cursors.iter_mut().enumerate() {
            match lengths[c * rows + r] {
                0 => out.push(0),
                l => {
                    let len = l - 1;
                    out.push(1);
                    out.extend_from_slice(
                        &u32::try_from(len)
                            .map_err(|_| bad("a value too large"))?
                            .to_le_bytes(),
                    );
                    out.extend_from_slice(&stored[*cursor..*cursor + len]);
                    *cursor += len;
                }
            }
        }
    }
    Ok(out)
}

/// Canonical row bytes → the row-ordered stored form.
fn compact(canonical: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(canonical.len());
    for value in upkeep_core::values(canonical) {
        match value.map_err(|e| bad(&e.to_string()))? {
            None => out.push(0),
            Some(v) => {
                write_varint(v.len() as u64 + 1, &mut out);
                out.extend_from_slice(v);
            }
        }
    }
    Ok(out)
}

/// The row-ordered stored form → canonical row bytes.
fn expand(stored: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(stored.len() + stored.len() / 2);
    let mut pos = 0;
    while pos < stored.len() {
        let (v, next) = read_varint(stored, pos).ok_or_else(|| bad("a truncated length"))?;
        pos = next;
        if v == 0 {
            out.push(0);
            continue;
        }
        let len = usize::try_from(v - 1).map_err(|_| bad("a value too large"))?;
        let value = stored
            .get(pos..pos + len)
            .ok_or_else(|| bad("a truncated value"))?;
        out.push(1);
        out.extend_from_slice(
            &u32::try_from(len)
                .map_err(|_| bad("a value too large"))?
                .to_le_bytes(),
        );
        out.extend_from_slice(value);
        pos += len;
    }
    Ok(out)
}

fn bad(what: &str) -> BackupError {
    BackupError::Corrupt {
        what: format!("chunk content has {what}"),
    }
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).expect("seven bits fit a byte") | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).expect("the last group is below 0x80"));
}

fn read_varint(data: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(pos)?;
        pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((v, pos));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::BatchBuilder;

    #[test]
    fn compact_round_trips_and_is_smaller() {
        let mut b = BatchBuilder::default();
        for i in 0..1000u32 {
            b.push_value(i.to_string().as_bytes());
            b.push_null();
            b.push_value(&vec![b'x'; (i as usize) % 300]);
            b.push_value(b"");
            b.end_row();
        }
        let batch = b.take();
        let stored = compact(batch.as_bytes()).unwrap();
        assert!(stored.len() < batch.as_bytes().len());
        assert_eq!(expand(&stored).unwrap(), batch.as_bytes());
        assert!(compact(&[1, 9, 0, 0, 0, b'x']).is_err());
        assert!(compact(&[7]).is_err());
        assert!(expand(&[0x85]).is_err());
    }

    #[test]
    fn columns_round_trip_and_refuse_damage() {
        let mut b = BatchBuilder::default();
        for i in 0..500u32 {
            b.push_value(i.to_string().as_bytes());
            if i % 3 == 0 {
                b.push_null();
            } else {
                b.push_value(&vec![b'x'; (i as usize) % 70]);
            }
            b.push_value(b"");
            b.end_row();
        }
        let batch = b.take();
        let enc = Encoding::Columns;
        let stored = enc.compact(batch.as_bytes(), 500).unwrap();
        assert!(stored.len() < batch.as_bytes().len());
        assert_eq!(enc.expand(&stored).unwrap(), batch.as_bytes());
        // 1500 values are not whole rows of 7.
        assert!(enc.compact(batch.as_bytes(), 7).is_err());
        for cut in [1, 3, stored.len() / 2, stored.len() - 1] {
            assert!(enc.expand(&stored[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = stored.clone();
        longer.push(b'x');
        assert!(enc.expand(&longer).is_err());
        // A row count that claims more values than there are bytes.
        assert!(enc.expand(&[0xff, 0xff, 0xff, 0x7f, 0x7f]).is_err());
    }
}
