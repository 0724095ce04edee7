//! `NextToken`: where the next page starts, bound to the query it pages.
//!
//! A token is hex of `1 ‖ query digest (8) ‖ last id shown ‖ check (8)`,
//! where the digest is SHA-256 over the action, the request's ids and its
//! filters in a canonical order, and the check is SHA-256 over everything
//! before it. Pages are ordered by id (instance or endpoint), so "after this
//! id" is a position that stays right when resources come and go between
//! calls. The action in the digest keeps one action's token from paging
//! another's.
//!
//! The token is validated, not secret: a garbled or truncated token, or a
//! token of another query, is refused (`InvalidParameterValue`). Nobody
//! but eic mints valid ones in practice, but a caller who did could gain
//! nothing: the token only moves the starting id, while filters, the
//! caller's account and authorization are applied again on every page. A
//! server key would therefore buy no protection, only key handling.

use sha2::{Digest, Sha256};

use crate::filter::{Filter, FilterNames};

const VERSION: u8 = 1;
const DIGEST_LEN: usize = 8;
const CHECK_LEN: usize = 8;
/// Longest token [`encode`] produces (an instance id is at most 32 bytes,
/// an endpoint id 22).
pub(crate) const MAX_TOKEN_LEN: usize = 2 * (1 + DIGEST_LEN + 32 + CHECK_LEN);

/// The digest of what a query of `action` selects (not how it pages:
/// `MaxResults` may change between pages, as EC2 allows).
pub(crate) fn query_digest<N: FilterNames>(
    action: &str,
    ids: &[String],
    filters: &[Filter<N>],
) -> [u8; DIGEST_LEN] {
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut filters: Vec<(String, Vec<String>)> = filters
        .iter()
        .map(|f| {
            let mut values: Vec<String> = f.values.iter().map(|p| p.canonical()).collect();
            values.sort_unstable();
            values.dedup();
            (f.name.as_string(), values)
        })
        .collect();
    filters.sort_unstable();
    let mut h = Sha256::new();
    // `eic-ec2 DescribeInstances query\0` for DescribeInstances, as before
    // there were other actions, so its tokens stay valid.
    h.update(format!("eic-ec2 {action} query\0").as_bytes());
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&(ids.len() as u64).to_be_bytes());
    for id in ids {
        field(id.as_bytes());
    }
    field(&(filters.len() as u64).to_be_bytes());
    for (name, values) in &filters {
        field(name.as_bytes());
        field(&(values.len() as u64).to_be_bytes());
        for v in values {
            field(v.as_bytes());
        }
    }
    let full = h.finalize();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&full[..DIGEST_LEN]);
    out
}

fn check(payload: &[u8]) -> [u8; CHECK_LEN] {
    let full = Sha256::new()
        .chain_update(b"eic-ec2 NextToken\0")
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&full[..CHECK_LEN]);
    out
}

/// The token for "the page after `last_id`" of the query with `digest`.
pub(crate) fn encode(digest: &[u8; DIGEST_LEN], last_id: &str) -> String {
    let mut bytes = Vec::with_capacity(1 + DIGEST_LEN + last_id.len() + CHECK_LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(last_id.as_bytes());
    let c = check(&bytes);
    bytes.extend_from_slice(&c);
    hex::encode(bytes)
}

/// The last id shown before this token, if the token is one of ours, pages
/// the query with `digest` and holds an id `well_formed` accepts.
pub(crate) fn decode(
    token: &str,
    digest: &[u8; DIGEST_LEN],
    well_formed: fn(&str) -> bool,
) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let bytes = hex::decode(token).ok()?;
    if bytes.len() < 1 + DIGEST_LEN + CHECK_LEN {
        return None;
    }
    let (payload, c) = bytes.split_at(bytes.len() - CHECK_LEN);
    if check(payload) != c || payload[0] != VERSION || payload[1..1 + DIGEST_LEN] != digest[..] {
        return None;
    }
    let id = std::str::from_utf8(&payload[1 + DIGEST_LEN..]).ok()?;
    well_formed(id).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterName;
    use crate::query::{
        is_well_formed_endpoint_id, is_well_formed_instance_id, DESCRIBE_INSTANCES,
        DESCRIBE_INSTANCE_CONNECT_ENDPOINTS,
    };

    fn digest(ids: &[String], filters: &[Filter]) -> [u8; DIGEST_LEN] {
        query_digest(DESCRIBE_INSTANCES, ids, filters)
    }

    fn decode_instance(token: &str, digest: &[u8; DIGEST_LEN]) -> Option<String> {
        decode(token, digest, is_well_formed_instance_id)
    }

    #[test]
    fn round_trip() {
        let d = digest(&[], &[]);
        let t = encode(&d, "i-0123456789abcdef0");
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert_eq!(
            decode_instance(&t, &d).as_deref(),
            Some("i-0123456789abcdef0")
        );
    }

    #[test]
    fn refuses_garbled_and_foreign_tokens() {
        let d = digest(&[], &[]);
        let t = encode(&d, "i-0123456789abcdef0");
        for bad in [
            String::new(),
            "zz".to_owned(),
            t[..t.len() - 2].to_owned(),
            format!("{t}00"),
        ] {
            assert_eq!(decode_instance(&bad, &d), None, "{bad}");
        }
        // Every single-character change is refused.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let b = String::from_utf8(b).unwrap();
            assert_eq!(decode_instance(&b, &d), None, "position {i}");
        }
        let other = digest(
            &[],
            &[Filter::new(FilterName::InstanceStateName, &["running"])],
        );
        assert_eq!(
            decode_instance(&t, &other),
            None,
            "a token of another query"
        );
        // A consistent token around something that is not an instance id.
        assert_eq!(decode_instance(&encode(&d, "x"), &d), None);
    }

    #[test]
    fn digest_ignores_order_and_duplicates() {
        let a = [
            Filter::new(FilterName::InstanceStateName, &["running", "stopped"]),
            Filter::new(FilterName::TagKey, &["env"]),
        ];
        let b = [
            Filter::new(FilterName::TagKey, &["env"]),
            Filter::new(
                FilterName::InstanceStateName,
                &["stopped", "running", "running"],
            ),
        ];
        assert_eq!(digest(&[], &a), digest(&[], &b));
        assert_ne!(digest(&[], &a), digest(&[], &a[..1]));
        let ids = ["i-0a".to_owned(), "i-0b".to_owned()];
        let rev = ["i-0b".to_owned(), "i-0a".to_owned()];
        assert_eq!(digest(&ids, &[]), digest(&rev, &[]));
        assert_ne!(digest(&ids, &[]), digest(&ids[..1], &[]));
        // Escaped and unescaped wildcards select differently.
        assert_ne!(
            digest(&[], &[Filter::new(FilterName::TagKey, &["*"])]),
            digest(&[], &[Filter::new(FilterName::TagKey, &[r"\*"])])
        );
    }

    #[test]
    fn the_action_is_part_of_the_query() {
        let instances = digest(&[], &[]);
        let endpoints = query_digest::<FilterName>(DESCRIBE_INSTANCE_CONNECT_ENDPOINTS, &[], &[]);
        assert_ne!(instances, endpoints);
        let t = encode(&endpoints, "eice-0123456789abcdef0");
        assert_eq!(
            decode(&t, &endpoints, is_well_formed_endpoint_id).as_deref(),
            Some("eice-0123456789abcdef0")
        );
        assert_eq!(decode(&t, &instances, is_well_formed_endpoint_id), None);
        assert_eq!(decode(&t, &endpoints, is_well_formed_instance_id), None);
    }

    #[test]
    fn describe_instances_tokens_are_unchanged() {
        // A token minted before the action joined the digest (a bare
        // DescribeInstances, after i-0123456789abcdef0) is minted again.
        let minted = "01fbcc086ca6fa026c692d303132333435363738396162636465663061c8915527e9e73d";
        assert_eq!(encode(&digest(&[], &[]), "i-0123456789abcdef0"), minted);
    }
}
