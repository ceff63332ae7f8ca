//! How rows are stored in a chunk: the canonical encoding with each value's 5-byte header
//! (`0x00`, or `0x01` and a 4-byte length) replaced by one varint (0 for NULL, length + 1
//! otherwise). It is a lossless rewrite of the bytes the digest hashes, about a third smaller for
//! narrow rows, so zstd has less to do and the repository less to hold.

use crate::BackupError;

/// Canonical row bytes → stored form.
pub(crate) fn compact(canonical: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(canonical.len());
    let mut pos = 0;
    while pos < canonical.len() {
        match canonical[pos] {
            0 => {
                out.push(0);
                pos += 1;
            }
            1 => {
                let len_bytes: [u8; 4] = canonical
                    .get(pos + 1..pos + 5)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("a truncated value header"))?;
                let len = u32::from_le_bytes(len_bytes);
                let start = pos + 5;
                let end = start + usize::try_from(len).map_err(|_| bad("a value too large"))?;
                let value = canonical
                    .get(start..end)
                    .ok_or_else(|| bad("a truncated value"))?;
                write_varint(u64::from(len) + 1, &mut out);
                out.extend_from_slice(value);
                pos = end;
            }
            t => return Err(bad(&format!("a value tag {t}"))),
        }
    }
    Ok(out)
}

/// Stored form → canonical row bytes.
pub(crate) fn expand(stored: &[u8]) -> Result<Vec<u8>, BackupError> {
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
}
