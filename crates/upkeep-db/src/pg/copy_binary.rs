//! A streaming parser of PostgreSQL's binary COPY format.
//!
//! The server sends the header, then one tuple per CopyData message (a field count, then each
//! field's length and bytes, -1 for NULL), then a trailer of -1. Messages may split or join
//! tuples, so the parser keeps whatever is incomplete for the next call.

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyFormatError {
    #[error("the COPY stream does not start with the binary signature")]
    Signature,
    #[error("the COPY stream has a tuple of {got} fields where {expected} were expected")]
    FieldCount { got: i16, expected: usize },
    #[error("the COPY stream has a negative field length {0}")]
    FieldLength(i32),
    #[error("the COPY stream ended in the middle of a tuple")]
    Truncated,
}

#[derive(Debug, Default)]
pub(crate) struct CopyParser {
    /// An incomplete tail of the stream, waiting for its next bytes.
    buf: Vec<u8>,
    header_done: bool,
    trailer_seen: bool,
}

impl CopyParser {
    /// Parses `data` (the next bytes of the stream) and calls `on_tuple` for each complete
    /// tuple. Usually a message holds whole tuples and is parsed in place; only an incomplete
    /// tail is kept for the next call.
    pub(crate) fn parse<E: From<CopyFormatError>>(
        &mut self,
        data: &[u8],
        expected_fields: usize,
        mut on_tuple: impl FnMut(&[Option<&[u8]>]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.buf.is_empty() {
            let used = self.parse_slice(data, expected_fields, &mut on_tuple)?;
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.parse_slice(&buf, expected_fields, &mut on_tuple);
            self.buf = buf;
            let used = used?;
            self.buf.drain(..used);
        }
        Ok(())
    }

    /// Parses what `avail` holds; returns how many bytes were consumed.
    fn parse_slice<E: From<CopyFormatError>>(
        &mut self,
        avail: &[u8],
        expected_fields: usize,
        on_tuple: &mut impl FnMut(&[Option<&[u8]>]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut pos = 0usize;
        if !self.header_done {
            if avail.len() < 19 {
                return Ok(0);
            }
            if &avail[..11] != SIGNATURE {
                return Err(CopyFormatError::Signature.into());
            }
            let ext = u32::from_be_bytes(avail[15..19].try_into().expect("4 bytes"));
            let ext = usize::try_from(ext).unwrap_or(usize::MAX);
            if avail.len() < 19usize.saturating_add(ext) {
                return Ok(0);
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(expected_fields);
        loop {
            let rest = &avail[pos..];
            if rest.len() < 2 || self.trailer_seen {
                return Ok(pos);
            }
            let count = i16::from_be_bytes([rest[0], rest[1]]);
            if count == -1 {
                self.trailer_seen = true;
                return Ok(pos + 2);
            }
            if usize::try_from(count).ok() != Some(expected_fields) {
                return Err(CopyFormatError::FieldCount {
                    got: count,
                    expected: expected_fields,
                }
                .into());
            }
            // Find the tuple's extent first, so an incomplete tuple is left untouched.
            let mut at = 2usize;
            values.clear();
            for _ in 0..expected_fields {
                let Some(len_bytes) = rest.get(at..at + 4) else {
                    return Ok(pos);
                };
                let len = i32::from_be_bytes(len_bytes.try_into().expect("4 bytes"));
                at += 4;
                if len == -1 {
                    values.push(None);
                    continue;
                }
                let len = usize::try_from(len).map_err(|_| CopyFormatError::FieldLength(len))?;
                let Some(field) = rest.get(at..at + len) else {
                    return Ok(pos);
                };
                values.push(Some(field));
                at += len;
            }
            on_tuple(&values)?;
            pos += at;
        }
    }

    /// Checks that the stream ended cleanly, with its trailer and no partial tuple.
    pub(crate) fn finish(&self) -> Result<(), CopyFormatError> {
        if self.trailer_seen && self.buf.is_empty() {
            Ok(())
        } else {
            Err(CopyFormatError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        for i in 0..3i32 {
            s.extend_from_slice(&2i16.to_be_bytes());
            s.extend_from_slice(&4i32.to_be_bytes());
            s.extend_from_slice(&i.to_be_bytes());
            s.extend_from_slice(&(-1i32).to_be_bytes());
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    #[test]
    fn tuples_split_across_messages_at_every_byte() {
        let data = stream();
        for split in 1..data.len() {
            let mut p = CopyParser::default();
            let mut seen = Vec::new();
            for piece in [&data[..split], &data[split..]] {
                p.parse::<CopyFormatError>(piece, 2, |t| {
                    seen.push((t[0].map(<[u8]>::to_vec), t[1].is_none()));
                    Ok(())
                })
                .unwrap();
            }
            p.finish().unwrap();
            assert_eq!(seen.len(), 3, "split at {split}");
            assert_eq!(seen[2].0.as_deref(), Some(&2i32.to_be_bytes()[..]));
        }
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let data = stream();
        let mut p = CopyParser::default();
        p.parse::<CopyFormatError>(&data[..data.len() - 5], 2, |_| Ok(()))
            .unwrap();
        assert!(p.finish().is_err());
        let mut p = CopyParser::default();
        assert!(p
            .parse::<CopyFormatError>(b"NOTCOPY.............", 2, |_| Ok(()))
            .is_err());
    }
}
