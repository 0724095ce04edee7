//! Recording ids: the only part of a recording's file names that comes from
//! outside, so they are restricted to 32 lowercase hex characters.

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A recording's id: 128 random bits, shown as 32 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordingId([u8; 16]);

/// A string that is not a recording id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a recording id is 32 lowercase hexadecimal characters")]
pub struct InvalidRecordingId;

impl RecordingId {
    /// A new id from the operating system's random source.
    pub fn random() -> io::Result<Self> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| io::Error::other(format!("random recording id: {e}")))?;
        Ok(Self(bytes))
    }

    /// Parses user input: exactly 32 characters of `0-9a-f`. Anything else
    /// (upper case, a path, an extension) is refused rather than normalised,
    /// so an accepted id always names a file directly inside the directory.
    pub fn parse(s: &str) -> Result<Self, InvalidRecordingId> {
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(InvalidRecordingId);
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self(bytes))
    }
}

fn nibble(digit: u8) -> Result<u8, InvalidRecordingId> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(InvalidRecordingId),
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for RecordingId {
    type Err = InvalidRecordingId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for RecordingId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordingId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_32_hex_and_distinct() {
        let a = RecordingId::random().unwrap();
        let b = RecordingId::random().unwrap();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 32);
        assert!(s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(RecordingId::parse(&s).unwrap(), a);
    }

    #[test]
    fn parse_round_trips() {
        let s = "0123456789abcdef0011223344556677";
        let id: RecordingId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<RecordingId>(&format!("\"{s}\"")).unwrap(),
            id
        );
    }

    #[test]
    fn parse_refuses_everything_else() {
        for bad in [
            "",
            "0123456789abcdef001122334455667",   // 31
            "0123456789abcdef00112233445566778", // 33
            "0123456789ABCDEF0011223344556677",  // upper case
            "0123456789abcdef001122334455667g",
            "../../../../../../../etc/passwd..",
            "..%2f..%2f..%2fetc%2fpasswd000000",
            "0123456789abcdef0011223344556677.json",
            "/123456789abcdef0011223344556677",
            "0123456789abcdef001122334455667/",
            " 123456789abcdef0011223344556677",
            "0123456789abcdef00112233445566\u{e9}", // 32 bytes, not ASCII
            "0123456789abcdef00112233445566\0\0",
        ] {
            assert_eq!(RecordingId::parse(bad), Err(InvalidRecordingId), "{bad:?}");
        }
        assert!(serde_json::from_str::<RecordingId>("\"../x\"").is_err());
    }
}
