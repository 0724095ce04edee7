//! `Secret<T>`: a value that must not reach a log. Its `Debug` prints a
//! placeholder, so a secret inside a derived `Debug` (a config, a registry
//! entry) stays out of logs; it has no `Display` at all, so `format!("{}")`
//! or a `%` tracing field with a secret does not compile (a redacting
//! `Display` would instead turn `format!("Bearer {}", credential)` silently
//! into a wrong header). The value is reached only through
//! [`Secret::expose`], which greps well.
//!
//! Hand-written rather than `secrecy`: the values here must also be
//! serialized (an agent config carries its instance's credential), which
//! `secrecy` allows only for types that opt in with a trait we cannot
//! implement for `String`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// In constant time, so comparing a secret leaks nothing of it through
/// timing.
impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG".to_owned());
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        struct Holder {
            secret: Secret<String>,
        }
        let printed = format!(
            "{:?} {secret:?}",
            Holder {
                secret: secret.clone()
            }
        );
        assert!(!printed.contains("wJalr"), "{printed}");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG");
    }

    #[test]
    fn serialized_as_the_value() {
        let secret: Secret<String> = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"abc\"");
        assert_eq!(secret, Secret::new("abc".to_owned()));
        assert_ne!(secret, Secret::new("abd".to_owned()));
    }
}
