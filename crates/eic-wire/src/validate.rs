//! The model's constraints on identifiers, checked by hand.
//!
//! `InstanceOSUser`'s pattern uses a lookahead, which the `regex` crate cannot
//! express; rather than pull in a backtracking engine for three patterns, each
//! is matched by a small linear scan. The tests check every matcher against
//! the model's exact regular expression run by `fancy-regex`.

/// `InstanceId`: length 10..=32, `^i-[a-f0-9]+$`.
pub fn is_valid_instance_id(value: &str) -> bool {
    (10..=32).contains(&value.len())
        && value
            .strip_prefix("i-")
            .is_some_and(|hex| hex.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')))
}

/// `InstanceOSUser`: length 1..=32 and
/// `(^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$)`.
pub fn is_valid_os_user(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty() || b.len() > 32 || !value.is_ascii() {
        return false;
    }
    let middle = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'@' | b'.' | b'_' | b'-');
    let last = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'$' | b'_' | b'-');
    // Both alternatives end in `middle{0,max} last?`: the final byte may be
    // `$` only as that optional last character, so strip it once and check
    // the rest; when the middle run would exceed its bound, the final byte
    // must be the optional one.
    let body_ok = |rest: &[u8], max_middle: usize| match rest.split_last() {
        None => true,
        Some((&end, init)) => {
            init.iter().all(|&c| middle(c))
                && (last(end) || (middle(end) && rest.len() <= max_middle))
        }
    };
    // Alternative A: a letter or `_`, then at most 30 middle and one last.
    if (b[0].is_ascii_alphabetic() || b[0] == b'_') && body_ok(&b[1..], 30) {
        return true;
    }
    // Alternative B: digits, one non-digit from `[A-Za-z@._-]`, then the tail;
    // the lookahead bounds the whole name to 2..=32 (checked above for 32).
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits == b.len() {
        return false;
    }
    let pivot = b[digits];
    (pivot.is_ascii_alphabetic() || matches!(pivot, b'@' | b'.' | b'_' | b'-'))
        && body_ok(&b[digits + 1..], usize::MAX)
}

/// `AvailabilityZone`: length 6..=32, `^(\w+-){2,3}\d+\w+$`.
///
/// `\w` cannot contain `-`, so the name splits on `-` into three or four
/// non-empty word runs, the last of which is `\d+\w+`: a digit first and at
/// least two characters.
pub fn is_valid_availability_zone(value: &str) -> bool {
    if !(6..=32).contains(&value.len()) {
        return false;
    }
    let word = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    let parts: Vec<&str> = value.split('-').collect();
    let Some(last) = parts.last() else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && parts.iter().all(|p| word(p))
        && last.len() >= 2
        && last.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OS_USER_PATTERN: &str = r"(^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$)";
    const AZ_PATTERN: &str = r"^(\w+-){2,3}\d+\w+$";
    const INSTANCE_PATTERN: &str = r"^i-[a-f0-9]+$";

    fn model_match(pattern: &str, min: usize, max: usize, value: &str) -> bool {
        let re = fancy_regex::Regex::new(pattern).unwrap();
        let len = value.chars().count();
        (min..=max).contains(&len) && re.is_match(value).unwrap()
    }

    #[test]
    fn os_user_examples_from_the_reference() {
        for ok in [
            "ec2-user",
            "root",
            "_",
            "user$",
            "first.last@corp",
            "1a",
            "ubuntu",
        ] {
            assert!(is_valid_os_user(ok), "{ok}");
        }
        for bad in ["1", "12", "123", "-user", "user name", "", "a$b", "$", "é"] {
            assert!(!is_valid_os_user(bad), "{bad}");
        }
        assert!(is_valid_os_user(&"a".repeat(32)));
        assert!(!is_valid_os_user(&"a".repeat(33)));
    }

    #[test]
    fn zone_examples_from_the_reference() {
        for ok in ["us-east-1a", "us-gov-west-1a", "cn-north-1a", "us-west-2a"] {
            assert!(is_valid_availability_zone(ok), "{ok}");
        }
        for bad in [
            "us-east-1",
            "use1-az1",
            "us-west-2-lax-1a",
            "us-east-a1",
            "",
        ] {
            assert!(!is_valid_availability_zone(bad), "{bad}");
        }
    }

    #[test]
    fn instance_id_examples() {
        assert!(is_valid_instance_id("i-abcd1234"));
        assert!(is_valid_instance_id("i-0123456789abcdef0"));
        assert!(!is_valid_instance_id("i-abcdefg12345"));
        assert!(!is_valid_instance_id("i-ABCD1234"));
        assert!(!is_valid_instance_id("i-abc123"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn os_user_agrees_with_the_model_regex(value in r"[0-9a-zA-Z@._$\- ]{0,34}") {
            prop_assert_eq!(is_valid_os_user(&value), model_match(OS_USER_PATTERN, 1, 32, &value));
        }

        #[test]
        fn os_user_agrees_on_digit_led_names(value in r"[0-9]{1,33}[a-z@._$\-]{0,3}[0-9$]{0,2}") {
            prop_assert_eq!(is_valid_os_user(&value), model_match(OS_USER_PATTERN, 1, 32, &value));
        }

        #[test]
        fn os_user_agrees_near_the_length_bound(value in r"[a-z_][a-z.@]{28,32}[.$a\-]?") {
            prop_assert_eq!(is_valid_os_user(&value), model_match(OS_USER_PATTERN, 1, 32, &value));
        }

        #[test]
        fn zone_agrees_with_the_model_regex(value in r"[a-z0-9_\-]{0,34}") {
            prop_assert_eq!(is_valid_availability_zone(&value), model_match(AZ_PATTERN, 6, 32, &value));
        }

        #[test]
        fn zone_agrees_on_zone_shaped_names(value in r"([a-z]{1,5}-){1,4}[0-9]{0,2}[a-z]{0,2}") {
            prop_assert_eq!(is_valid_availability_zone(&value), model_match(AZ_PATTERN, 6, 32, &value));
        }

        #[test]
        fn instance_id_agrees_with_the_model_regex(value in r"(i-)?[a-hA-F0-9]{0,34}") {
            prop_assert_eq!(is_valid_instance_id(&value), model_match(INSTANCE_PATTERN, 10, 32, &value));
        }
    }
}
