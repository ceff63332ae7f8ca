//! A cursor over ASCII text for the hand-written parsers of dates, times and numbers (the
//! canonical forms here, PostgreSQL's binary COPY encoder in the engine adapters).

/// A position in a byte string, moved forward by what is parsed. Parsers return `None` on the
/// first byte that does not fit, leaving the cursor where it stopped.
#[derive(Clone, Debug)]
pub struct ByteCursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> ByteCursor<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Self { s, i: 0 }
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// The next byte, consumed.
    pub fn next_byte(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        &self.s[self.i..]
    }

    pub fn done(&self) -> bool {
        self.i == self.s.len()
    }

    /// Skips `n` bytes (at most what is left).
    pub fn skip(&mut self, n: usize) {
        self.i = (self.i + n).min(self.s.len());
    }

    /// Consumes `c`, or fails.
    pub fn expect(&mut self, c: u8) -> Option<()> {
        (self.next_byte()? == c).then_some(())
    }

    /// Exactly `n` digits.
    pub fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.next_byte().filter(u8::is_ascii_digit)?;
            v = v.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
        }
        Some(v)
    }

    /// The run of digits here (possibly empty), consumed.
    pub fn digit_run(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// At least `min` digits, as many as there are, as a number.
    pub fn number(&mut self, min: usize) -> Option<i64> {
        let run = self.digit_run();
        if run.len() < min {
            return None;
        }
        run.iter().try_fold(0i64, |v, &c| {
            v.checked_mul(10)?.checked_add(i64::from(c - b'0'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_fits_and_stops_at_what_does_not() {
        let mut c = ByteCursor::new(b"2024-05x123456789012345678901");
        assert_eq!(c.digits(4), Some(2024));
        assert_eq!(c.expect(b'-'), Some(()));
        assert_eq!(c.number(1), Some(5));
        assert_eq!(c.peek(), Some(b'x'));
        assert_eq!(c.expect(b'y'), None);
        // 21 digits overflow an i64.
        assert_eq!(c.number(1), None);
        assert!(c.done());
        let mut c = ByteCursor::new(b"12a");
        assert_eq!(c.digits(3), None);
        let mut c = ByteCursor::new(b"7 BC");
        assert_eq!(c.number(2), None);
        assert_eq!(c.rest(), b" BC");
        c.skip(9);
        assert!(c.done());
    }
}
