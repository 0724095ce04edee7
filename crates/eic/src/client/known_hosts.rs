//! known_hosts lines from the host keys an instance registered. Pure.
//!
//! The keys come from the server, which had them from the instance; a line
//! break or an option inside one would let whoever controls that text add
//! trust for another host, so every key is checked to be exactly `TYPE
//! BASE64` before it is written.

use std::net::IpAddr;

/// The name a host is looked up by: a bare name, or `[name]:port` when the
/// port is not 22 (OpenSSH's own convention).
pub fn host_pattern(name: &str, port: u16) -> String {
    let bare = match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => ip.to_string(),
        _ => name.to_owned(),
    };
    if port == 22 {
        bare
    } else {
        format!("[{bare}]:{port}")
    }
}

/// One line per key, each naming all of `names`. Keys that are not `TYPE
/// BASE64` are left out (see the module's note).
pub fn lines(names: &[String], host_keys: &[String]) -> String {
    if names.is_empty() || names.iter().any(|n| !is_safe_name(n)) {
        return String::new();
    }
    let names = names.join(",");
    let mut out = String::new();
    for key in host_keys.iter().filter(|k| is_plain_key(k)) {
        out.push_str(&names);
        out.push(' ');
        out.push_str(key);
        out.push('\n');
    }
    out
}

/// The instance id ssh's KnownHostsCommand `%H` names: `i-…`, or
/// `[i-…]:port`.
pub fn instance_of_known_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
        .map_or(host, |(name, _port)| name)
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

fn is_plain_key(key: &str) -> bool {
    let mut fields = key.split(' ');
    let (Some(kind), Some(data), None) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    let kind_ok = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b));
    let data_ok = !data.is_empty()
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    kind_ok && data_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc0R9bPT6r4ZK1xxO6Rw8rQmL5EwMv5d9uYu0D8mD4n";

    #[test]
    fn patterns_follow_openssh() {
        assert_eq!(host_pattern("i-0abc", 22), "i-0abc");
        assert_eq!(host_pattern("127.0.0.1", 2200), "[127.0.0.1]:2200");
        assert_eq!(host_pattern("::1", 2200), "[::1]:2200");
        assert_eq!(host_pattern("::1", 22), "::1");
    }

    #[test]
    fn one_line_per_key_for_every_name() {
        let names = ["i-0abc".to_owned(), "[127.0.0.1]:2200".to_owned()];
        assert_eq!(
            lines(&names, &[ED.to_owned()]),
            format!("i-0abc,[127.0.0.1]:2200 {ED}\n")
        );
    }

    #[test]
    fn nothing_that_could_add_trust_elsewhere_is_written() {
        let names = ["i-0abc".to_owned()];
        for bad in [
            format!("{ED}\n* {ED}"),
            format!("{ED} comment"),
            format!("@cert-authority * {ED}"),
            "ssh-ed25519".to_owned(),
            String::new(),
        ] {
            assert_eq!(lines(&names, std::slice::from_ref(&bad)), "", "{bad:?}");
        }
        assert_eq!(lines(&["*".to_owned()], &[ED.to_owned()]), "");
        assert_eq!(lines(&["a b".to_owned()], &[ED.to_owned()]), "");
        assert_eq!(lines(&[], &[ED.to_owned()]), "");
    }

    #[test]
    fn known_host_names_give_the_instance() {
        assert_eq!(instance_of_known_host("i-0abc"), "i-0abc");
        assert_eq!(instance_of_known_host("[i-0abc]:2200"), "i-0abc");
    }
}
