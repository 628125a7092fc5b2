//! Rank keys: the fractional, lexicographic order keys of tickets within a column.
//!
//! A key is a non-empty string over the 62 digits `0-9A-Za-z` (ASCII order equals digit
//! order) with no trailing `0`, read as a base-62 fraction `0.<key>`. Between any two keys
//! there is always another, so a move writes one row. Keys grow when one gap is split
//! again and again; past [`MAX_RANK_LEN`] the column is rebalanced with [`spread`].

use std::fmt;

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: usize = 62;

/// Keys longer than this trigger a rebalance of their column.
pub const MAX_RANK_LEN: usize = 48;
/// Keys longer than this are refused as input.
pub const MAX_INPUT_RANK_LEN: usize = 255;

/// A validated rank key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank(String);

/// Why a string is not a rank key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankError {
    #[error("rank must not be empty")]
    Empty,
    #[error("rank is longer than {MAX_INPUT_RANK_LEN} characters")]
    TooLong,
    #[error("rank may contain only 0-9, A-Z and a-z")]
    BadDigit,
    #[error("rank must not end with '0'")]
    TrailingZero,
    #[error("lower rank must sort before upper rank")]
    Unordered,
}

fn digit_value(byte: u8) -> Option<usize> {
    match byte {
        b'0'..=b'9' => Some(usize::from(byte - b'0')),
        b'A'..=b'Z' => Some(usize::from(byte - b'A') + 10),
        b'a'..=b'z' => Some(usize::from(byte - b'a') + 36),
        _ => None,
    }
}

impl Rank {
    pub fn parse(s: &str) -> Result<Rank, RankError> {
        if s.is_empty() {
            return Err(RankError::Empty);
        }
        if s.len() > MAX_INPUT_RANK_LEN {
            return Err(RankError::TooLong);
        }
        if s.bytes().any(|b| digit_value(b).is_none()) {
            return Err(RankError::BadDigit);
        }
        if s.ends_with('0') {
            return Err(RankError::TrailingZero);
        }
        Ok(Rank(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The key for the first ticket of an empty column.
    pub fn initial() -> Rank {
        Rank("V".to_owned())
    }

    /// A key strictly between `lower` and `upper`; `None` means the open end of the
    /// column. Fails only when `lower >= upper`.
    pub fn between(lower: Option<&Rank>, upper: Option<&Rank>) -> Result<Rank, RankError> {
        match (lower, upper) {
            (None, None) => Ok(Rank::initial()),
            (Some(a), None) => Ok(after(a.0.as_bytes())),
            (None, Some(b)) => Ok(before(b.0.as_bytes())),
            (Some(a), Some(b)) => {
                if a >= b {
                    return Err(RankError::Unordered);
                }
                Ok(Rank(bytes_to_string(midpoint(
                    a.0.as_bytes(),
                    Some(b.0.as_bytes()),
                ))))
            }
        }
    }
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bytes_to_string(bytes: Vec<u8>) -> String {
    // Every byte comes from DIGITS, so this is ASCII.
    bytes.into_iter().map(char::from).collect()
}

/// A short key greater than `a`: bump the first digit that is not the largest one and
/// drop the rest; if every digit is the largest, extend with a midpoint.
fn after(a: &[u8]) -> Rank {
    match a.iter().position(|&b| b != b'z') {
        Some(i) => {
            let mut key = a[..i].to_vec();
            let next = digit_value(a[i]).map_or(BASE - 1, |v| v + 1);
            key.push(DIGITS[next]);
            Rank(bytes_to_string(key))
        }
        None => Rank(bytes_to_string(midpoint(a, None))),
    }
}

/// A short key less than `b`: lower the first digit above `1` and drop the rest; when
/// there is none, fall back to the midpoint between the column's start and `b`.
fn before(b: &[u8]) -> Rank {
    match b.iter().position(|&d| d > b'1') {
        Some(i) => {
            let mut key = b[..i].to_vec();
            let lower = digit_value(b[i]).map_or(1, |v| v - 1);
            key.push(DIGITS[lower]);
            Rank(bytes_to_string(key))
        }
        None => Rank(bytes_to_string(midpoint(&[], Some(b)))),
    }
}

/// The midpoint of the fractions `0.a` and `0.b` (`b = None` is 1.0), with no trailing
/// zero. Requires `a < b` and neither ending in `0`.
fn midpoint(a: &[u8], b: Option<&[u8]>) -> Vec<u8> {
    let mut prefix = Vec::new();
    let mut a = a;
    let mut b = b;
    loop {
        if let Some(upper) = b {
            // Strip the common prefix, reading a missing digit of `a` as 0.
            let mut n = 0;
            while n < upper.len() && a.get(n).copied().unwrap_or(b'0') == upper[n] {
                n += 1;
            }
            if n > 0 {
                prefix.extend_from_slice(&upper[..n]);
                a = a.get(n..).unwrap_or(&[]);
                b = Some(&upper[n..]);
                continue;
            }
        }
        let digit_a = a.first().and_then(|&d| digit_value(d)).unwrap_or(0);
        let digit_b = b
            .and_then(|u| u.first())
            .and_then(|&d| digit_value(d))
            .unwrap_or(BASE);
        if digit_b - digit_a > 1 {
            prefix.push(DIGITS[(digit_a + digit_b).div_ceil(2)]);
            return prefix;
        }
        match b {
            Some(upper) if upper.len() > 1 => {
                prefix.push(upper[0]);
                return prefix;
            }
            _ => {
                prefix.push(DIGITS[digit_a]);
                a = a.get(1..).unwrap_or(&[]);
                b = None;
            }
        }
    }
}

/// `n` evenly spaced, short keys in increasing order, for rebalancing a column.
pub fn spread(n: usize) -> Vec<Rank> {
    if n == 0 {
        return Vec::new();
    }
    // Enough digits that neighbouring keys are at least 62 apart.
    let mut len = 1u32;
    while (BASE as u128).pow(len) / (n as u128 + 1) < BASE as u128 && len < 20 {
        len += 1;
    }
    let space = (BASE as u128).pow(len);
    (1..=n as u128)
        .map(|i| {
            let mut value = i * space / (n as u128 + 1);
            let mut digits = vec![b'0'; len as usize];
            for slot in digits.iter_mut().rev() {
                *slot = DIGITS[(value % BASE as u128) as usize];
                value /= BASE as u128;
            }
            while digits.last() == Some(&b'0') {
                digits.pop();
            }
            Rank(bytes_to_string(digits))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rank(s: &str) -> Rank {
        Rank::parse(s).unwrap()
    }

    #[test]
    fn parse_rejects_what_is_not_a_key() {
        assert_eq!(Rank::parse(""), Err(RankError::Empty));
        assert_eq!(Rank::parse("a-b"), Err(RankError::BadDigit));
        assert_eq!(Rank::parse("é"), Err(RankError::BadDigit));
        assert_eq!(Rank::parse("a0"), Err(RankError::TrailingZero));
        assert_eq!(Rank::parse(&"a".repeat(256)), Err(RankError::TooLong));
        assert!(Rank::parse("0V").is_ok());
    }

    #[test]
    fn between_handles_the_tight_cases() {
        let cases = [
            ("1", "2"),
            ("a", "a1"),
            ("Vz", "W"),
            ("0001", "0002"),
            ("y", "z"),
            ("zz", "zzV"),
        ];
        for (a, b) in cases {
            let mid = Rank::between(Some(&rank(a)), Some(&rank(b))).unwrap();
            assert!(rank(a) < mid && mid < rank(b), "{a} < {mid} < {b}");
            assert!(!mid.as_str().ends_with('0'));
        }
        assert!(Rank::between(Some(&rank("b")), Some(&rank("a"))).is_err());
        assert!(Rank::between(Some(&rank("a")), Some(&rank("a"))).is_err());
    }

    #[test]
    fn open_ends_produce_keys_outside_the_bound() {
        for s in ["1", "V", "z", "zzz", "01", "0001", "11"] {
            let r = rank(s);
            assert!(Rank::between(Some(&r), None).unwrap() > r, "after {s}");
            assert!(Rank::between(None, Some(&r)).unwrap() < r, "before {s}");
        }
    }

    #[test]
    fn appending_a_thousand_tickets_keeps_keys_short() {
        let mut last = Rank::initial();
        for _ in 0..1000 {
            let next = Rank::between(Some(&last), None).unwrap();
            assert!(next > last);
            last = next;
        }
        assert!(last.as_str().len() <= 40, "{}", last.as_str().len());
    }

    #[test]
    fn spread_is_sorted_distinct_and_short() {
        for n in [1, 2, 61, 62, 1000, 10_000] {
            let keys = spread(n);
            assert_eq!(keys.len(), n);
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "n={n}");
            assert!(keys.iter().all(|k| Rank::parse(k.as_str()).is_ok()));
            assert!(keys.iter().all(|k| k.as_str().len() <= 4), "n={n}");
        }
    }

    fn key_strategy() -> impl Strategy<Value = Rank> {
        "[0-9A-Za-z]{0,12}[1-9A-Za-z]".prop_map(|s| rank(&s))
    }

    proptest! {
        #[test]
        fn between_is_strictly_between(a in key_strategy(), b in key_strategy()) {
            prop_assume!(a != b);
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let mid = Rank::between(Some(&lo), Some(&hi)).unwrap();
            prop_assert!(lo < mid && mid < hi);
            prop_assert!(Rank::parse(mid.as_str()).is_ok());
        }

        #[test]
        fn random_insertions_keep_a_sorted_column(positions in proptest::collection::vec(0usize..1000, 1..300)) {
            let mut column: Vec<Rank> = Vec::new();
            for p in positions {
                let i = p % (column.len() + 1);
                let lower = if i == 0 { None } else { column.get(i - 1) };
                let upper = column.get(i);
                let key = Rank::between(lower, upper).unwrap();
                column.insert(i, key);
            }
            prop_assert!(column.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = Rank::parse(&s);
        }
    }
}
