//! Property tests: the form parser never panics and stays within its
//! bounds (for every action), parsed requests round-trip, wildcards agree
//! with a reference matcher, and paging yields every match exactly once
//! (instances and endpoints).
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::time::SystemTime;

use eic_ec2::{
    describe_endpoints, describe_map, parse_query, requested_action,
    DescribeInstanceConnectEndpointsRequest, DescribeInstanceHostKeysRequest,
    DescribeInstancesRequest, EndpointState, EndpointView, Filter, FilterName, InstanceState,
    InstanceView, Pattern, QueryRequest, MAX_ENDPOINT_IDS, MAX_ENDPOINT_MAX_RESULTS,
    MAX_FILTER_VALUES, MAX_INSTANCE_IDS, MAX_MAX_RESULTS, MIN_ENDPOINT_MAX_RESULTS,
    MIN_MAX_RESULTS,
};
use proptest::prelude::*;

fn check_bounds(r: &DescribeInstancesRequest) {
    assert!(r.instance_ids.len() <= MAX_INSTANCE_IDS);
    assert!(r.filters.iter().map(|f| f.values.len()).sum::<usize>() <= MAX_FILTER_VALUES);
    if let Some(k) = r.max_results {
        assert!((MIN_MAX_RESULTS..=MAX_MAX_RESULTS).contains(&k));
        assert!(r.instance_ids.is_empty());
    }
    for id in &r.instance_ids {
        assert!(eic_ec2::is_well_formed_instance_id(id));
    }
}

fn check_host_keys_bounds(r: &DescribeInstanceHostKeysRequest) {
    assert!((1..=MAX_INSTANCE_IDS).contains(&r.instance_ids.len()));
    for (n, id) in r.instance_ids.iter().enumerate() {
        assert!(eic_ec2::is_well_formed_instance_id(id));
        assert!(!r.instance_ids[..n].contains(id), "{id} twice");
    }
}

fn check_endpoint_bounds(r: &DescribeInstanceConnectEndpointsRequest) {
    assert!(r.endpoint_ids.len() <= MAX_ENDPOINT_IDS);
    assert!(r.filters.iter().map(|f| f.values.len()).sum::<usize>() <= MAX_FILTER_VALUES);
    if let Some(k) = r.max_results {
        assert!((MIN_ENDPOINT_MAX_RESULTS..=MAX_ENDPOINT_MAX_RESULTS).contains(&k));
    }
    for (n, id) in r.endpoint_ids.iter().enumerate() {
        assert!(eic_ec2::is_well_formed_endpoint_id(id));
        assert!(!r.endpoint_ids[..n].contains(id), "{id} twice");
    }
}

fn check_parsed(q: &QueryRequest) {
    match q {
        QueryRequest::DescribeInstances(r) => check_bounds(r),
        QueryRequest::DescribeInstanceConnectEndpoints(r) => check_endpoint_bounds(r),
        QueryRequest::DescribeInstanceHostKeys(r) => check_host_keys_bounds(r),
    }
}

/// Keys a fuzzer is likely to need many tries to find.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Action".to_owned()),
        Just("Version".to_owned()),
        Just("DryRun".to_owned()),
        Just("MaxResults".to_owned()),
        Just("NextToken".to_owned()),
        (0u32..1200).prop_map(|n| format!("InstanceId.{n}")),
        (0u32..1200).prop_map(|n| format!("InstanceConnectEndpointId.{n}")),
        (0u32..210).prop_map(|n| format!("Filter.{n}.Name")),
        (0u32..210, 0u32..210).prop_map(|(n, m)| format!("Filter.{n}.Value.{m}")),
        "[A-Za-z.0-9%+=&]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("DescribeInstances".to_owned()),
        Just("DescribeInstanceHostKeys".to_owned()),
        Just("DescribeInstanceConnectEndpoints".to_owned()),
        Just("2016-11-15".to_owned()),
        Just("true".to_owned()),
        "i-[0-9a-f]{8,17}",
        "eice-[0-9a-f]{8,17}",
        "[0-9]{1,5}",
        Just("tag:Name".to_owned()),
        Just("instance-state-name".to_owned()),
        Just("state".to_owned()),
        "[ -~é✓]{0,20}",
        "%[0-9A-Fa-f]{2}",
    ]
}

fn state() -> impl Strategy<Value = InstanceState> {
    prop::sample::select(InstanceState::ALL.to_vec())
}

fn fleet() -> impl Strategy<Value = BTreeMap<String, InstanceView>> {
    prop::collection::btree_map(
        "i-[0-9a-f]{17}",
        (state(), prop::sample::select(vec!["a", "b", "c"])),
        0..40,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (state, zone))| {
                let mut v = InstanceView::new(
                    &id,
                    "111122223333",
                    state,
                    "t3.micro",
                    format!("us-west-2{zone}"),
                    SystemTime::UNIX_EPOCH,
                );
                v.tags.insert("zone".into(), zone.into());
                (id, v)
            })
            .collect()
    })
}

fn endpoint_state() -> impl Strategy<Value = EndpointState> {
    prop::sample::select(EndpointState::ALL.to_vec())
}

fn endpoints() -> impl Strategy<Value = Vec<EndpointView>> {
    prop::collection::btree_map(
        "eice-[0-9a-f]{17}",
        (endpoint_state(), prop::sample::select(vec!["a", "b"])),
        0..30,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (state, vpc))| {
                EndpointView::new(
                    &id,
                    "111122223333",
                    format!("arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/{id}"),
                    state,
                    "eic.example",
                    format!("vpc-{vpc}"),
                    "subnet-0a",
                    "us-west-2a",
                    SystemTime::UNIX_EPOCH,
                )
            })
            .collect()
    })
}

/// A reference matcher: straightforward recursion over a pattern in which
/// `\` escapes the next character. Exponential in the worst case, so only
/// for the small inputs below.
fn reference(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
        Some(('\\', rest)) => {
            let (c, rest) = match rest.split_first() {
                Some((c, rest)) => (*c, rest),
                None => ('\\', rest),
            };
            t.first() == Some(&c) && reference(rest, &t[1..])
        }
        Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
    }
}

fn escape(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(q) = parse_query(&body) {
            check_parsed(&q);
            prop_assert_eq!(requested_action(&body), Some(q.action()));
        }
    }

    #[test]
    fn plausible_bodies_never_panic(
        pairs in prop::collection::vec((key(), value()), 0..40),
        head in prop::option::of(prop::sample::select(eic_ec2::ACTIONS.to_vec())),
    ) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(action) = head {
            s.append_pair("Action", action);
            s.append_pair("Version", "2016-11-15");
        }
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        let body = s.finish();
        match parse_query(body.as_bytes()) {
            Ok(q) => {
                check_parsed(&q);
                prop_assert_eq!(requested_action(body.as_bytes()), Some(q.action()));
            }
            Err(e) => {
                prop_assert!((400..=503).contains(&e.status()));
                prop_assert!(e.message.len() <= 2048, "{}", e.message);
                // Every error renders to XML botocore can read.
                let xml = e.render("r");
                prop_assert!(xml.starts_with("<?xml"));
            }
        }
    }

    #[test]
    fn valid_requests_round_trip(
        ids in prop::collection::vec("i-[0-9a-f]{8,17}", 0..20),
        filters in prop::collection::vec(
            (
                prop::sample::select(FilterName::FIXED.to_vec()),
                prop::collection::vec("[a-z0-9*?\\\\ .:-]{0,12}", 0..4),
            ),
            0..6,
        ),
        max in prop::option::of(MIN_MAX_RESULTS..=MAX_MAX_RESULTS),
        dry in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut pairs = vec![
            ("Action".to_owned(), "DescribeInstances".to_owned()),
            ("Version".to_owned(), "2016-11-15".to_owned()),
            ("DryRun".to_owned(), dry.to_string()),
        ];
        for (n, id) in ids.iter().enumerate() {
            pairs.push((format!("InstanceId.{}", n + 1), id.clone()));
        }
        for (n, ((name, _), values)) in filters.iter().enumerate() {
            pairs.push((format!("Filter.{}.Name", n + 1), (*name).to_owned()));
            for (m, v) in values.iter().enumerate() {
                pairs.push((format!("Filter.{}.Value.{}", n + 1, m + 1), v.clone()));
            }
        }
        let with_max = max.filter(|_| ids.is_empty());
        if let Some(k) = with_max {
            pairs.push(("MaxResults".to_owned(), k.to_string()));
        }
        // Any order of parameters means the same request.
        let mut x = seed;
        for i in (1..pairs.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            pairs.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        let QueryRequest::DescribeInstances(r) = parse_query(s.finish().as_bytes()).unwrap() else {
        panic!("not a DescribeInstances request");
    };

        let mut want_ids: Vec<String> = Vec::new();
        for id in ids {
            if !want_ids.contains(&id) {
                want_ids.push(id);
            }
        }
        prop_assert_eq!(&r.instance_ids, &want_ids);
        let want_filters: Vec<Filter> = filters
            .iter()
            .map(|((_, name), values)| Filter {
                name: name.clone(),
                values: values.iter().map(|v| Pattern::new(v)).collect(),
            })
            .collect();
        prop_assert_eq!(&r.filters, &want_filters);
        prop_assert_eq!(r.max_results, with_max);
        prop_assert_eq!(r.dry_run, dry);
        prop_assert_eq!(r.after, None);
    }

    #[test]
    fn host_key_requests_round_trip(
        ids in prop::collection::vec("i-[0-9a-f]{8,17}", 1..40),
        dry in prop::option::of(any::<bool>()),
        seed in any::<u64>(),
    ) {
        let mut pairs = vec![
            ("Action".to_owned(), "DescribeInstanceHostKeys".to_owned()),
            ("Version".to_owned(), "2016-11-15".to_owned()),
        ];
        if let Some(dry) = dry {
            pairs.push(("DryRun".to_owned(), dry.to_string()));
        }
        for (n, id) in ids.iter().enumerate() {
            pairs.push((format!("InstanceId.{}", n + 1), id.clone()));
        }
        let mut x = seed;
        for i in (1..pairs.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            pairs.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        let q = parse_query(s.finish().as_bytes()).unwrap();
        prop_assert_eq!(q.iam_action(), "ec2:DescribeInstances");
        let QueryRequest::DescribeInstanceHostKeys(r) = q else {
            panic!("not a DescribeInstanceHostKeys request: {q:?}");
        };
        let mut want_ids: Vec<String> = Vec::new();
        for id in ids {
            if !want_ids.contains(&id) {
                want_ids.push(id);
            }
        }
        prop_assert_eq!(r.instance_ids, want_ids);
        prop_assert_eq!(r.dry_run, dry.unwrap_or(false));
    }

    #[test]
    fn wildcards_agree_with_the_reference(
        pattern in "[ab*?\\\\]{0,8}",
        text in "[ab*?\\\\]{0,10}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(Pattern::new(&pattern).matches(&text), reference(&p, &t));
    }

    #[test]
    fn escaped_text_matches_only_itself(text in "[ -~é]{0,16}", other in "[ -~é]{0,16}") {
        let p = Pattern::new(&escape(&text));
        prop_assert!(p.matches(&text));
        prop_assert_eq!(p.matches(&other), other == text);
        prop_assert_eq!(Pattern::literal(&text), p);
        prop_assert!(Pattern::new("*").matches(&other));
        let qs: String = "?".repeat(other.chars().count());
        prop_assert!(Pattern::new(&qs).matches(&other));
    }

    #[test]
    fn long_wildcard_patterns_stay_fast(n in 1usize..120) {
        // The shape that is exponential for naive backtracking.
        let pattern = "*a".repeat(n) + "b";
        let text = "a".repeat(255);
        prop_assert!(!Pattern::new(&pattern).matches(&text));
    }

    #[test]
    fn paging_yields_every_match_once(
        f in fleet(),
        k in MIN_MAX_RESULTS..=12,
        states in prop::collection::vec(state(), 0..3),
        zone in prop::option::of(prop::sample::select(vec!["a", "b", "c", "?"])),
    ) {
        let mut tail = String::new();
        let mut n = 0;
        if !states.is_empty() {
            n += 1;
            tail.push_str(&format!("&Filter.{n}.Name=instance-state-name"));
            for (m, s) in states.iter().enumerate() {
                tail.push_str(&format!("&Filter.{n}.Value.{}={}", m + 1, s.name()));
            }
        }
        if let Some(z) = zone {
            n += 1;
            tail.push_str(&format!("&Filter.{n}.Name=tag%3Azone&Filter.{n}.Value.1={z}"));
        }
        let want: Vec<String> = f
            .values()
            .filter(|v| states.is_empty() || states.contains(&v.state))
            .filter(|v| zone.is_none_or(|z| z == "?" || v.tags["zone"] == z))
            .map(|v| v.instance_id.clone())
            .collect();

        let mut got = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..=f.len() / k + 1 {
            let mut body = format!("Action=DescribeInstances&Version=2016-11-15&MaxResults={k}{tail}");
            if let Some(t) = &token {
                body.push_str(&format!("&NextToken={t}"));
            }
            let QueryRequest::DescribeInstances(r) = parse_query(body.as_bytes()).unwrap() else {
        panic!("not a DescribeInstances request");
    };
            let page = describe_map(&r, &f).unwrap();
            prop_assert!(page.instances.len() <= k);
            got.extend(page.instances.iter().map(|v| v.instance_id.clone()));
            token = page.next_token;
            if token.is_none() {
                break;
            }
            prop_assert_eq!(page.instances.len(), k, "only the last page is short");
        }
        prop_assert!(token.is_none(), "paging ended");
        prop_assert_eq!(got, want);
    }

    #[test]
    fn instance_id_filter_is_set_intersection(
        f in fleet(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        strangers in prop::collection::vec("i-[0-9a-f]{17}", 0..3),
    ) {
        let all: Vec<&String> = f.keys().collect();
        let mut values: Vec<String> = if all.is_empty() {
            Vec::new()
        } else {
            picks.iter().map(|i| all[i.index(all.len())].clone()).collect()
        };
        values.extend(strangers.iter().cloned());
        let mut tail = String::from("&Filter.1.Name=instance-id");
        for (m, v) in values.iter().enumerate() {
            tail.push_str(&format!("&Filter.1.Value.{}={v}", m + 1));
        }
        let body = format!("Action=DescribeInstances&Version=2016-11-15{tail}");
        let QueryRequest::DescribeInstances(r) = parse_query(body.as_bytes()).unwrap() else {
        panic!("not a DescribeInstances request");
    };
        let page = describe_map(&r, &f).unwrap();
        let got: Vec<&str> = page.instances.iter().map(|v| v.instance_id.as_str()).collect();
        let want: Vec<&str> = f
            .keys()
            .filter(|id| values.is_empty() || values.contains(id))
            .map(String::as_str)
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn endpoint_paging_yields_every_match_once(
        mut all in endpoints(),
        k in MIN_ENDPOINT_MAX_RESULTS..=8,
        states in prop::collection::vec(endpoint_state(), 0..3),
        vpc in prop::option::of(prop::sample::select(vec!["a", "b", "*"])),
        seed in any::<u64>(),
    ) {
        let mut tail = String::new();
        let mut n = 0;
        if !states.is_empty() {
            n += 1;
            tail.push_str(&format!("&Filter.{n}.Name=state"));
            for (m, s) in states.iter().enumerate() {
                tail.push_str(&format!("&Filter.{n}.Value.{}={}", m + 1, s.as_str()));
            }
        }
        if let Some(v) = vpc {
            n += 1;
            tail.push_str(&format!("&Filter.{n}.Name=vpc-id&Filter.{n}.Value.1=vpc-{v}"));
        }
        // `all` is in id order; the wanted ids are computed before it is
        // shuffled, which must not matter.
        let want: Vec<String> = all
            .iter()
            .filter(|e| states.is_empty() || states.contains(&e.state))
            .filter(|e| vpc.is_none_or(|v| v == "*" || e.vpc_id == format!("vpc-{v}")))
            .map(|e| e.endpoint_id.clone())
            .collect();
        let mut x = seed;
        for i in (1..all.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            all.swap(i, (x >> 33) as usize % (i + 1));
        }

        let mut got = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..=all.len() / k + 1 {
            let mut body = format!(
                "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15&MaxResults={k}{tail}"
            );
            if let Some(t) = &token {
                body.push_str(&format!("&NextToken={t}"));
            }
            let QueryRequest::DescribeInstanceConnectEndpoints(r) =
                parse_query(body.as_bytes()).unwrap()
            else {
                panic!("not a DescribeInstanceConnectEndpoints request");
            };
            let page = describe_endpoints(&r, &all).unwrap();
            prop_assert!(page.endpoints.len() <= k);
            got.extend(page.endpoints.iter().map(|e| e.endpoint_id.clone()));
            token = page.next_token;
            if token.is_none() {
                break;
            }
            prop_assert_eq!(page.endpoints.len(), k, "only the last page is short");
        }
        prop_assert!(token.is_none(), "paging ended");
        prop_assert_eq!(got, want);
    }
}
