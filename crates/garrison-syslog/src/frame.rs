//! Splitting a syslog byte stream into messages (RFC 6587): octet counting (`LEN SP MSG`, what
//! RFC 5425 TLS senders and `logger --octet-count` use) or newline-terminated (what most TCP
//! senders do), chosen per message by its first byte, as rsyslog does.

/// A message the framer had to give up on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message longer than the limit; it is skipped and the stream carries on.
    #[error("a syslog message of {0} bytes exceeds the limit of {1}")]
    TooLong(usize, usize),
    /// An octet count that is not a number (the stream is out of step and is closed).
    #[error("bad octet count {0:?}")]
    BadCount(String),
}

/// Incremental framer over a byte stream.
#[derive(Debug)]
pub struct Framer {
    buffer: Vec<u8>,
    max: usize,
    /// Bytes of an oversized message still to skip (octet counting).
    skip: usize,
    /// Skipping an oversized message up to the next newline.
    skip_line: bool,
}

impl Framer {
    /// A framer refusing messages over `max` bytes.
    pub fn new(max: usize) -> Framer {
        Framer {
            buffer: Vec::new(),
            max,
            skip: 0,
            skip_line: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, an error for one given up, or `None` until more bytes come.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if self.skip > 0 {
            let n = self.skip.min(self.buffer.len());
            self.buffer.drain(..n);
            self.skip -= n;
            if self.skip > 0 {
                return None;
            }
        }
        if self.skip_line {
            match self.buffer.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.buffer.drain(..=i);
                    self.skip_line = false;
                }
                None => {
                    self.buffer.clear();
                    return None;
                }
            }
        }
        // Separators between messages (some senders add a newline after counted frames).
        let start = self
            .buffer
            .iter()
            .position(|b| !matches!(b, b'\n' | b'\r' | b'\0'));
        match start {
            Some(0) => {}
            Some(n) => {
                self.buffer.drain(..n);
            }
            None => {
                self.buffer.clear();
                return None;
            }
        }
        let first = *self.buffer.first()?;
        if first.is_ascii_digit() {
            let Some(space) = self.buffer.iter().take(11).position(|b| *b == b' ') else {
                if self.buffer.len() > 10 {
                    let text = String::from_utf8_lossy(&self.buffer[..10]).into_owned();
                    self.buffer.clear();
                    return Some(Err(FrameError::BadCount(text)));
                }
                return None;
            };
            let count = std::str::from_utf8(&self.buffer[..space])
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            let Some(count) = count else {
                let text = String::from_utf8_lossy(&self.buffer[..space]).into_owned();
                self.buffer.clear();
                return Some(Err(FrameError::BadCount(text)));
            };
            if count > self.max {
                self.buffer.drain(..=space);
                self.skip = count;
                return Some(Err(FrameError::TooLong(count, self.max)));
            }
            if self.buffer.len() < space + 1 + count {
                return None;
            }
            let frame = self.buffer[space + 1..space + 1 + count].to_vec();
            self.buffer.drain(..space + 1 + count);
            return Some(Ok(frame));
        }
        match self.buffer.iter().position(|b| *b == b'\n') {
            Some(i) if i <= self.max => {
                let frame = self.buffer[..i].to_vec();
                self.buffer.drain(..=i);
                Some(Ok(frame))
            }
            Some(i) => {
                self.buffer.drain(..=i);
                Some(Err(FrameError::TooLong(i, self.max)))
            }
            None if self.buffer.len() > self.max => {
                let len = self.buffer.len();
                self.buffer.clear();
                self.skip_line = true;
                Some(Err(FrameError::TooLong(len, self.max)))
            }
            None => None,
        }
    }

    /// What is left when the stream ends: a last message without its newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buffer);
        (!self.skip_line && self.skip == 0 && rest.iter().any(|b| !b.is_ascii_whitespace()))
            .then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn all(f: &mut Framer) -> Vec<Result<String, FrameError>> {
        std::iter::from_fn(|| f.next_frame())
            .map(|r| r.map(|b| String::from_utf8(b).unwrap()))
            .collect()
    }

    #[test]
    fn both_framings_byte_by_byte() {
        let stream = b"<13>one\n9 <13>two\nx\n<13>three\r\n5 <13>4";
        let mut f = Framer::new(100);
        let mut got = Vec::new();
        for b in stream {
            f.push(&[*b]);
            got.extend(all(&mut f));
        }
        assert_eq!(
            got,
            [
                Ok("<13>one".to_owned()),
                Ok("<13>two\nx".to_owned()),
                Ok("<13>three\r".to_owned()),
                Ok("<13>4".to_owned())
            ]
        );
        assert_eq!(f.finish(), None);
        f.push(b"<13>tail");
        assert!(all(&mut f).is_empty());
        assert_eq!(f.finish().unwrap(), b"<13>tail");
    }

    #[test]
    fn oversized_messages_are_skipped_and_the_stream_goes_on() {
        let mut f = Framer::new(8);
        f.push(b"<13>this is too long\n<13>ok\n20 <13>counted too long<13>x\n");
        assert_eq!(
            all(&mut f),
            [
                Err(FrameError::TooLong(20, 8)),
                Ok("<13>ok".to_owned()),
                Err(FrameError::TooLong(20, 8)),
                Ok("<13>x".to_owned()),
            ]
        );
        let mut f = Framer::new(8);
        f.push(b"<13>no newline yet and long");
        assert_eq!(all(&mut f), [Err(FrameError::TooLong(27, 8))]);
        f.push(b" still\n<13>y\n");
        assert_eq!(all(&mut f), [Ok("<13>y".to_owned())]);
    }

    #[test]
    fn a_broken_count_is_an_error() {
        let mut f = Framer::new(100);
        f.push(b"12345678901234 x");
        assert!(matches!(f.next_frame(), Some(Err(FrameError::BadCount(_)))));
    }
}
