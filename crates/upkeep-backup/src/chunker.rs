//! Content-defined chunking on row boundaries.
//!
//! Whether a chunk ends after a row depends only on that row: its hash, read as a number, is
//! compared with a threshold proportional to the row's size, so on average a chunk ends every
//! `target` bytes whatever the row size, and the same rows cut the same way in every run.
//! Inserting or changing rows moves only the cuts near them: unchanged data lands in chunks
//! the repository already has.

pub(crate) struct RowChunker {
    min: usize,
    target: usize,
    max: usize,
    buf: Vec<u8>,
    rows: u64,
}

/// A finished chunk: back-to-back row encodings.
pub(crate) struct RawChunk {
    pub content: Vec<u8>,
    pub rows: u64,
}

impl RowChunker {
    pub(crate) fn new(min: usize, target: usize, max: usize) -> Self {
        Self {
            min,
            target: target.max(1),
            max: max.max(min),
            buf: Vec::new(),
            rows: 0,
        }
    }

    /// Adds a row; returns the chunk it completes, if any.
    pub(crate) fn push(&mut self, row: &[u8], hash: &[u8; 32]) -> Option<RawChunk> {
        self.buf.extend_from_slice(row);
        self.rows += 1;
        let len = self.buf.len();
        let cut = len >= self.max
            || (len >= self.min && {
                let h = u64::from_be_bytes(hash[24..32].try_into().expect("8 bytes"));
                let threshold = (u128::from(u64::MAX) * row.len() as u128 / self.target as u128)
                    .min(u128::from(u64::MAX));
                u128::from(h) < threshold
            });
        cut.then(|| self.take())
    }

    /// The last, partial chunk.
    pub(crate) fn finish(&mut self) -> Option<RawChunk> {
        (self.rows > 0).then(|| self.take())
    }

    fn take(&mut self) -> RawChunk {
        let rows = std::mem::take(&mut self.rows);
        RawChunk {
            content: std::mem::take(&mut self.buf),
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::row_hash;

    fn cut(rows: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut c = RowChunker::new(1000, 4000, 16000);
        let mut out = Vec::new();
        for r in rows {
            if let Some(chunk) = c.push(r, &row_hash(r)) {
                out.push(chunk.content);
            }
        }
        out.extend(c.finish().map(|c| c.content));
        out
    }

    #[test]
    fn an_insert_changes_only_the_chunks_around_it() {
        let rows: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("row {i} {}", i * 7).into_bytes())
            .collect();
        let before = cut(&rows);
        assert!(before.len() > 30, "{} chunks", before.len());
        let mut changed = rows.clone();
        changed.insert(10_000, b"a new row".to_vec());
        let after = cut(&changed);
        let new = after.iter().filter(|c| !before.contains(c)).count();
        assert!(new <= 2, "{new} of {} chunks are new", after.len());
        let total: usize = before.iter().map(Vec::len).sum();
        assert_eq!(total, rows.iter().map(Vec::len).sum::<usize>());
        assert!(before.iter().all(|c| c.len() <= 16000 + 20));
    }
}
