//! Selecting and paging: ids, filters, NextToken round trips.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use eic_ec2::{
    describe, describe_map, parse_query, DescribeInstancesRequest, ErrorCode, InstanceState,
    InstanceView, QueryRequest,
};

fn fleet() -> BTreeMap<String, InstanceView> {
    let mut m = BTreeMap::new();
    for n in 0u8..12 {
        let id = format!("i-{:017x}", 0xa0 + u64::from(n));
        let state = if n % 3 == 0 {
            InstanceState::Stopped
        } else {
            InstanceState::Running
        };
        let mut v = InstanceView::new(
            &id,
            "111122223333",
            state,
            if n < 6 { "t3.micro" } else { "m5.large" },
            if n % 2 == 0 {
                "us-west-2a"
            } else {
                "us-west-2b"
            },
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + u64::from(n)),
        );
        v.private_ip = Some(std::net::Ipv4Addr::new(127, 0, 0, 1 + n));
        if n % 4 == 0 {
            v.public_ip = Some(std::net::Ipv4Addr::new(127, 0, 10, 1 + n));
        }
        v.tags.insert("Name".into(), format!("web{n}"));
        if n < 4 {
            v.tags.insert("env".into(), "prod".into());
        }
        m.insert(id, v);
    }
    m
}

fn request(tail: &str) -> DescribeInstancesRequest {
    let body = format!("Action=DescribeInstances&Version=2016-11-15{tail}");
    let QueryRequest::DescribeInstances(r) = parse_query(body.as_bytes()).unwrap() else {
        panic!("not a DescribeInstances request");
    };
    r
}

fn ids(page: &eic_ec2::Page<'_>) -> Vec<String> {
    page.instances
        .iter()
        .map(|v| v.instance_id.clone())
        .collect()
}

fn id(n: u8) -> String {
    format!("i-{:017x}", 0xa0 + u64::from(n))
}

#[test]
fn everything_in_id_order() {
    let f = fleet();
    let page = describe_map(&request(""), &f).unwrap();
    assert_eq!(ids(&page), (0..12).map(id).collect::<Vec<_>>());
    assert_eq!(page.next_token, None);
}

#[test]
fn scan_order_does_not_matter() {
    let f = fleet();
    let mut shuffled: Vec<&InstanceView> = f.values().collect();
    shuffled.reverse();
    shuffled.swap(2, 7);
    let r = request("&MaxResults=5");
    let a = describe_map(&r, &f).unwrap();
    let b = describe(&r, |i| f.get(i), shuffled.iter().copied()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn by_id_looks_up_only_those_ids() {
    let f = fleet();
    let lookups = Cell::new(0);
    let r = request(&format!("&InstanceId.1={}&InstanceId.2={}", id(5), id(1)));
    let page = describe(
        &r,
        |i| {
            lookups.set(lookups.get() + 1);
            f.get(i)
        },
        std::iter::from_fn(|| -> Option<&InstanceView> { panic!("scanned") }),
    )
    .unwrap();
    assert_eq!(
        ids(&page),
        [id(1), id(5)],
        "sorted by id, not request order"
    );
    assert_eq!(lookups.get(), 2);
    assert_eq!(page.next_token, None);
}

#[test]
fn unknown_ids_are_not_found() {
    let f = fleet();
    let missing = "i-0fffffffffffffff0";
    let e = describe_map(&request(&format!("&InstanceId.1={missing}")), &f).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInstanceIdNotFound);
    assert_eq!(
        e.message,
        format!("The instance ID '{missing}' does not exist")
    );
    assert_eq!(e.status(), 400);

    let e = describe_map(
        &request(&format!(
            "&InstanceId.1=i-0ffffffffffffffff&InstanceId.2={}&InstanceId.3=i-0eeeeeeeeeeeeeeee",
            id(0)
        )),
        &f,
    )
    .unwrap_err();
    assert_eq!(
        e.message, "The instance IDs 'i-0ffffffffffffffff, i-0eeeeeeeeeeeeeeee' do not exist",
        "missing ones only, in request order"
    );
}

#[test]
fn filters_narrow_ids_without_error() {
    let f = fleet();
    let r = request(&format!(
        "&InstanceId.1={}&InstanceId.2={}&Filter.1.Name=instance-state-name&Filter.1.Value.1=running",
        id(0),
        id(1)
    ));
    assert_eq!(ids(&describe_map(&r, &f).unwrap()), [id(1)]);
}

#[test]
fn filters_over_the_fleet() {
    let f = fleet();
    let sel = |tail: &str| ids(&describe_map(&request(tail), &f).unwrap());
    let running: Vec<_> = (0..12).filter(|n| n % 3 != 0).map(id).collect();
    assert_eq!(
        sel("&Filter.1.Name=instance-state-name&Filter.1.Value.1=running"),
        running
    );
    assert_eq!(
        sel("&Filter.1.Name=instance-state-code&Filter.1.Value.1=80"),
        [id(0), id(3), id(6), id(9)]
    );
    assert_eq!(
        sel("&Filter.1.Name=tag%3Aenv&Filter.1.Value.1=prod&Filter.2.Name=instance-state-name&Filter.2.Value.1=running"),
        [id(1), id(2)]
    );
    assert_eq!(
        sel("&Filter.1.Name=tag%3AName&Filter.1.Value.1=web1%3F"),
        [id(10), id(11)]
    );
    assert_eq!(
        sel("&Filter.1.Name=tag%3AName&Filter.1.Value.1=web1&Filter.1.Value.2=web7"),
        [id(1), id(7)]
    );
    assert_eq!(sel("&Filter.1.Name=tag-key&Filter.1.Value.1=env").len(), 4);
    assert_eq!(sel("&Filter.1.Name=tag%3Aenv").len(), 4);
    assert_eq!(sel("&Filter.1.Name=ip-address").len(), 3);
    assert_eq!(
        sel("&Filter.1.Name=ip-address&Filter.1.Value.1=127.0.10.5"),
        [id(4)]
    );
    assert_eq!(
        sel("&Filter.1.Name=private-ip-address&Filter.1.Value.1=127.0.0.1%2A"),
        [id(0), id(9), id(10), id(11)]
    );
    assert_eq!(
        sel("&Filter.1.Name=availability-zone&Filter.1.Value.1=us-west-2b&Filter.2.Name=instance-type&Filter.2.Value.1=m5.*"),
        [id(7), id(9), id(11)]
    );
    assert_eq!(
        sel(&format!(
            "&Filter.1.Name=instance-id&Filter.1.Value.1={}",
            id(3)
        )),
        [id(3)]
    );
    assert!(sel("&Filter.1.Name=vpc-id&Filter.1.Value.1=*").is_empty());
}

/// Pages through `tail` with MaxResults=`k`, re-sending each NextToken as a
/// client would, and returns the pages' ids.
fn pages(f: &BTreeMap<String, InstanceView>, tail: &str, k: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut t = format!("{tail}&MaxResults={k}");
        if let Some(tok) = &token {
            t.push_str(&format!("&NextToken={tok}"));
        }
        let page = describe_map(&request(&t), f).unwrap();
        out.push(ids(&page));
        match page.next_token {
            Some(next) => token = Some(next),
            None => return out,
        }
        assert!(out.len() < 100, "paging does not end");
    }
}

#[test]
fn paging_round_trips() {
    let f = fleet();
    let all: Vec<String> = (0..12).map(id).collect();
    let p = pages(&f, "", 5);
    assert_eq!(
        p,
        [all[..5].to_vec(), all[5..10].to_vec(), all[10..].to_vec()]
    );
    // An exact fit issues no trailing empty page.
    let p = pages(&f, "", 6);
    assert_eq!(p, [all[..6].to_vec(), all[6..].to_vec()]);
    let p = pages(&f, "", 1000);
    assert_eq!(p, [all]);
    // With filters, the token carries on under the same filters.
    let running: Vec<_> = (0..12).filter(|n| n % 3 != 0).map(id).collect();
    let p = pages(
        &f,
        "&Filter.1.Name=instance-state-name&Filter.1.Value.1=running",
        5,
    );
    assert_eq!(p, [running[..5].to_vec(), running[5..].to_vec()]);
}

#[test]
fn page_size_may_change_between_pages() {
    let f = fleet();
    let first = describe_map(&request("&MaxResults=5"), &f).unwrap();
    let tok = first.next_token.unwrap();
    let second = describe_map(&request(&format!("&MaxResults=6&NextToken={tok}")), &f).unwrap();
    assert_eq!(ids(&second), (5..11).map(id).collect::<Vec<_>>());
    // Without MaxResults the rest comes at once.
    let rest = describe_map(&request(&format!("&NextToken={tok}")), &f).unwrap();
    assert_eq!(ids(&rest), (5..12).map(id).collect::<Vec<_>>());
    assert_eq!(rest.next_token, None);
}

#[test]
fn tokens_survive_fleet_changes() {
    let mut f = fleet();
    let first = describe_map(&request("&MaxResults=5"), &f).unwrap();
    let tok = first.next_token.clone().unwrap();
    // The last instance shown goes away, another before it appears.
    f.remove(&id(4));
    let mut early = f[&id(0)].clone();
    early.instance_id = "i-00000000000000001".into();
    f.insert(early.instance_id.clone(), early);
    let next = describe_map(&request(&format!("&MaxResults=5&NextToken={tok}")), &f).unwrap();
    assert_eq!(ids(&next), (5..10).map(id).collect::<Vec<_>>());
}

#[test]
fn a_token_of_another_query_is_refused() {
    let f = fleet();
    let tok = describe_map(&request("&MaxResults=5"), &f)
        .unwrap()
        .next_token
        .unwrap();
    let body = format!(
        "Action=DescribeInstances&Version=2016-11-15&MaxResults=5&NextToken={tok}\
         &Filter.1.Name=instance-state-name&Filter.1.Value.1=running"
    );
    let e = parse_query(body.as_bytes()).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    assert_eq!(
        e.message,
        format!("Value ( {tok} ) for parameter NextToken is invalid. The token is invalid.")
    );
}

#[test]
fn empty_results_are_an_empty_page() {
    let f = fleet();
    let page = describe_map(&request("&Filter.1.Name=tag%3Anope&Filter.1.Value.1=x"), &f).unwrap();
    assert!(page.instances.is_empty());
    assert_eq!(page.next_token, None);
    let empty = BTreeMap::new();
    let page = describe_map(&request("&MaxResults=5"), &empty).unwrap();
    assert!(page.instances.is_empty());
    assert_eq!(page.next_token, None);
}
