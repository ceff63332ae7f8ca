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
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    trailer_seen: bool,
    fields: Vec<Option<(usize, usize)>>,
}

impl CopyParser {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Calls `on_tuple` for each complete tuple buffered so far.
    pub(crate) fn parse<E: From<CopyFormatError>>(
        &mut self,
        expected_fields: usize,
        mut on_tuple: impl FnMut(&[Option<&[u8]>]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.header_done {
            let avail = &self.buf[self.pos..];
            if avail.len() < 19 {
                return Ok(());
            }
            if &avail[..11] != SIGNATURE {
                return Err(CopyFormatError::Signature.into());
            }
            let ext = u32::from_be_bytes(avail[15..19].try_into().expect("4 bytes"));
            let ext = usize::try_from(ext).unwrap_or(usize::MAX);
            if avail.len() < 19 + ext {
                return Ok(());
            }
            self.pos += 19 + ext;
            self.header_done = true;
        }
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(expected_fields);
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() < 2 || self.trailer_seen {
                return Ok(());
            }
            let count = i16::from_be_bytes([avail[0], avail[1]]);
            if count == -1 {
                self.trailer_seen = true;
                self.pos += 2;
                return Ok(());
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
            self.fields.clear();
            let mut complete = true;
            for _ in 0..expected_fields {
                let Some(len_bytes) = avail.get(at..at + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes(len_bytes.try_into().expect("4 bytes"));
                at += 4;
                if len == -1 {
                    self.fields.push(None);
                    continue;
                }
                let len = usize::try_from(len).map_err(|_| CopyFormatError::FieldLength(len))?;
                if avail.len() < at + len {
                    complete = false;
                    break;
                }
                self.fields.push(Some((at, len)));
                at += len;
            }
            if !complete {
                return Ok(());
            }
            values.clear();
            values.extend(self.fields.iter().map(|f| f.map(|(s, l)| &avail[s..s + l])));
            on_tuple(&values)?;
            self.pos += at;
        }
    }

    /// Checks that the stream ended cleanly, with its trailer and no partial tuple.
    pub(crate) fn finish(&self) -> Result<(), CopyFormatError> {
        if self.trailer_seen && self.pos == self.buf.len() {
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
                p.feed(piece);
                p.parse::<CopyFormatError>(2, |t| {
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
        p.feed(&data[..data.len() - 5]);
        p.parse::<CopyFormatError>(2, |_| Ok(())).unwrap();
        assert!(p.finish().is_err());
        let mut p = CopyParser::default();
        p.feed(b"NOTCOPY.............");
        assert!(p.parse::<CopyFormatError>(2, |_| Ok(())).is_err());
    }
}
