//! Batches of rows in canonical encoding.
//!
//! A row travels through upkeep as the byte string the content digest hashes: each value a
//! `0x00` (NULL) or `0x01`, a 4-byte little-endian length and the canonical text. One
//! representation serves every stage: the digest hashes a row's bytes as they are, backups
//! store them, and writers turn each value's canonical text into the target engine's input.
//! (Backups store server JSON as printed and hash it through [`canonicalize_json`].)

/// Default upper bounds of a batch. A single value larger than the byte bound still makes a
/// batch of one row: memory is bounded by the largest row, not by the table.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;

/// Rows in canonical encoding.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("rows", &self.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Encoded size of all rows.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// The encoding of row `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    pub fn rows(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// All rows' bytes, back to back (the form a backup stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Rebuilds a batch from back-to-back row encodings with `columns` values each.
    pub fn from_encoded(data: Vec<u8>, columns: usize) -> Result<Self, MalformedRow> {
        let mut ends = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            for _ in 0..columns {
                let (_, next) = read_value(&data, pos)?;
                pos = next;
            }
            ends.push(pos);
        }
        Ok(Self { data, ends })
    }
}

/// Bytes that are not a sequence of encoded values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed row encoding at byte {offset}")]
pub struct MalformedRow {
    pub offset: usize,
}

/// One encoded value: `None` for NULL, else its canonical bytes.
pub type ValueRef<'a> = Option<&'a [u8]>;

fn read_value(data: &[u8], pos: usize) -> Result<(ValueRef<'_>, usize), MalformedRow> {
    let bad = MalformedRow { offset: pos };
    match data.get(pos) {
        Some(0) => Ok((None, pos + 1)),
        Some(1) => {
            let len_bytes: [u8; 4] = data
                .get(pos + 1..pos + 5)
                .and_then(|b| b.try_into().ok())
                .ok_or(bad.clone())?;
            let len = usize::try_from(u32::from_le_bytes(len_bytes)).map_err(|_| bad.clone())?;
            let start = pos + 5;
            let value = data.get(start..start + len).ok_or(bad)?;
            Ok((Some(value), start + len))
        }
        _ => Err(bad),
    }
}

/// Iterates over the values of one row encoding.
pub fn values(row: &[u8]) -> impl Iterator<Item = Result<ValueRef<'_>, MalformedRow>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= row.len() {
            return None;
        }
        Some(read_value(row, pos).map(|(v, next)| {
            pos = next;
            v
        }))
    })
}

/// The digest form of a row whose values at the `json` positions are JSON texts as the server
/// printed them (as backups store them, so that a restore writes them back unchanged): those
/// values in canonical JSON, or by the spec's `other` rule the text itself where it does not
/// parse, and every other value as it is. `out` is cleared first.
pub fn canonicalize_json(
    row: &[u8],
    json: &[usize],
    out: &mut Vec<u8>,
) -> Result<(), MalformedRow> {
    out.clear();
    for (i, value) in values(row).enumerate() {
        let Some(bytes) = value? else {
            out.push(0);
            continue;
        };
        out.push(1);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        if !json.contains(&i) || crate::canonical::write_json_text(bytes, out).is_err() {
            out.truncate(start);
            out.extend_from_slice(bytes);
        }
        let len = u32::try_from(out.len() - start).map_err(|_| MalformedRow { offset: 0 })?;
        out[len_at..start].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// The digest's row hash of a row as backups store it: [`crate::row_hash`] of its
/// [`canonicalize_json`] form (`scratch` holds it), or of the row itself when it has no
/// `json` positions.
pub fn stored_row_hash(
    row: &[u8],
    json: &[usize],
    scratch: &mut Vec<u8>,
) -> Result<[u8; 32], MalformedRow> {
    if json.is_empty() {
        return Ok(crate::row_hash(row));
    }
    canonicalize_json(row, json, scratch)?;
    Ok(crate::row_hash(scratch))
}

/// Builds batches value by value, writing canonical text straight into the batch buffer.
#[derive(Debug)]
pub struct BatchBuilder {
    batch: Batch,
    row_start: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new(DEFAULT_BATCH_ROWS, DEFAULT_BATCH_BYTES)
    }
}

impl BatchBuilder {
    pub fn new(max_rows: usize, max_bytes: usize) -> Self {
        Self {
            batch: Batch {
                data: Vec::with_capacity(max_bytes.min(DEFAULT_BATCH_BYTES).saturating_add(4096)),
                ends: Vec::with_capacity(max_rows.min(DEFAULT_BATCH_ROWS)),
            },
            row_start: 0,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    pub fn push_null(&mut self) {
        self.batch.data.push(0);
    }

    /// Appends a non-NULL value whose canonical bytes are already at hand.
    pub fn push_value(&mut self, canonical: &[u8]) {
        self.batch.data.push(1);
        let len = u32::try_from(canonical.len()).expect("a value is smaller than 4 GiB");
        self.batch.data.extend_from_slice(&len.to_le_bytes());
        self.batch.data.extend_from_slice(canonical);
    }

    /// Starts a non-NULL value: write its canonical bytes into the returned buffer, then call
    /// [`finish_value`](Self::finish_value) with the returned mark (or
    /// [`abandon_value`](Self::abandon_value) to take it back).
    pub fn begin_value(&mut self) -> (ValueMark, &mut Vec<u8>) {
        let mark = ValueMark(self.batch.data.len());
        self.batch.data.extend_from_slice(&[1, 0, 0, 0, 0]);
        (mark, &mut self.batch.data)
    }

    pub fn finish_value(&mut self, mark: ValueMark) {
        let len = self.batch.data.len() - mark.0 - 5;
        let len = u32::try_from(len).expect("a value is smaller than 4 GiB");
        self.batch.data[mark.0 + 1..mark.0 + 5].copy_from_slice(&len.to_le_bytes());
    }

    pub fn abandon_value(&mut self, mark: ValueMark) {
        self.batch.data.truncate(mark.0);
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.batch.ends.push(self.batch.data.len());
        self.row_start = self.batch.data.len();
    }

    pub fn is_full(&self) -> bool {
        self.batch.ends.len() >= self.max_rows || self.batch.data.len() >= self.max_bytes
    }

    pub fn rows(&self) -> usize {
        self.batch.len()
    }

    /// Takes the finished rows, leaving the builder empty (a partly written row stays).
    pub fn take(&mut self) -> Batch {
        let tail = self.batch.data.split_off(self.row_start);
        let mut next = Batch {
            data: Vec::with_capacity(
                self.batch
                    .data
                    .capacity()
                    .min(self.max_bytes.saturating_add(4096)),
            ),
            ends: Vec::with_capacity(self.batch.ends.capacity()),
        };
        next.data.extend_from_slice(&tail);
        self.row_start = 0;
        std::mem::replace(&mut self.batch, next)
    }
}

/// Position of a value started with [`BatchBuilder::begin_value`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct ValueMark(usize);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = BatchBuilder::default();
        for v in values {
            match v {
                Some(v) => b.push_value(v.as_bytes()),
                None => b.push_null(),
            }
        }
        b.end_row();
        b.take().row(0).to_vec()
    }

    #[test]
    fn stored_json_is_canonical_in_digest_form() {
        let stored = row(&[
            None,
            Some(r#"{"b": 1}"#),
            Some(r#"{"b": 1, "a": [1.0, 2e0], "b": 3}"#),
            Some("not json"),
            None,
        ]);
        let mut out = Vec::new();
        canonicalize_json(&stored, &[2, 3, 4], &mut out).unwrap();
        let expected = row(&[
            None,
            Some(r#"{"b": 1}"#),
            Some(r#"{"a":[1,2],"b":3}"#),
            Some("not json"),
            None,
        ]);
        assert_eq!(out, expected);
        // Canonical JSON is its own digest form.
        let mut again = Vec::new();
        canonicalize_json(&out, &[2, 3, 4], &mut again).unwrap();
        assert_eq!(again, expected);
        assert!(canonicalize_json(&stored[..stored.len() - 3], &[2], &mut out).is_err());
        let mut scratch = Vec::new();
        assert_eq!(
            stored_row_hash(&stored, &[2, 3, 4], &mut scratch),
            Ok(crate::row_hash(&expected))
        );
        assert_eq!(
            stored_row_hash(&stored, &[], &mut scratch),
            Ok(crate::row_hash(&stored))
        );
    }

    #[test]
    fn builder_round_trips_through_from_encoded() {
        let mut b = BatchBuilder::new(2, 1 << 20);
        b.push_value(b"1");
        b.push_null();
        b.end_row();
        let (mark, buf) = b.begin_value();
        buf.extend_from_slice("张三".as_bytes());
        b.finish_value(mark);
        b.push_value(b"");
        b.end_row();
        assert!(b.is_full());
        let batch = b.take();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.row(0), &[1, 1, 0, 0, 0, b'1', 0]);
        let again = Batch::from_encoded(batch.as_bytes().to_vec(), 2).unwrap();
        assert_eq!(again, batch);
        let vals: Vec<_> = values(batch.row(1)).collect::<Result<_, _>>().unwrap();
        assert_eq!(vals, vec![Some("张三".as_bytes()), Some(&b""[..])]);
        assert!(Batch::from_encoded(vec![1, 9, 0, 0, 0, b'x'], 1).is_err());
        assert!(b.take().is_empty());
    }
}
