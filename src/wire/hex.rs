//! Hex in either case, with errors that say where the input went wrong.

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    #[error("invalid hex digit {0:?} at position {1}")]
    BadDigit(char, usize),
}

#[inline]
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (upper or lower case) into `out`, which must be exactly half as long.
pub fn decode_into(s: &str, out: &mut [u8]) -> Result<(), HexError> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(HexError::OddLength(b.len()));
    }
    debug_assert_eq!(out.len() * 2, b.len());
    for (i, o) in out.iter_mut().enumerate() {
        let hi = nibble(b[2 * i]);
        let lo = nibble(b[2 * i + 1]);
        match (hi, lo) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            (None, _) => return Err(bad_digit(s, 2 * i)),
            (_, None) => return Err(bad_digit(s, 2 * i + 1)),
        }
    }
    Ok(())
}

fn bad_digit(s: &str, pos: usize) -> HexError {
    let c = s[pos..].chars().next().unwrap_or('?');
    HexError::BadDigit(c, pos)
}

/// Decodes hex of any even length.
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    if !s.len().is_multiple_of(2) {
        return Err(HexError::OddLength(s.len()));
    }
    let mut v = vec![0u8; s.len() / 2];
    decode_into(s, &mut v)?;
    Ok(v)
}

/// Lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_case() {
        assert_eq!(decode("00fFaB").unwrap(), vec![0, 255, 0xab]);
        assert_eq!(encode(&[0, 255, 0xab]), "00ffab");
        assert_eq!(decode("abc"), Err(HexError::OddLength(3)));
        assert_eq!(decode("0g"), Err(HexError::BadDigit('g', 1)));
        assert_eq!(decode("zz"), Err(HexError::BadDigit('z', 0)));
        // multi-byte characters never panic
        assert!(decode("é0").is_err());
        assert!(decode("0é").is_err());
    }
}
