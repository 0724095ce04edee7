//! Selecting and paging instances for DescribeInstances.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use crate::error::Ec2Error;
use crate::filter::matches_all;
use crate::instance::InstanceView;
use crate::query::{DescribeInstancesRequest, DESCRIBE_INSTANCES};
use crate::token;

/// One page of the answer, in instance id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a> {
    pub instances: Vec<&'a InstanceView>,
    /// Present when more instances match after this page.
    pub next_token: Option<String>,
}

/// Answers `request` over the caller's instances.
///
/// `lookup` finds one instance by id and `all` yields every instance; both
/// must see only what the caller may see (its account's instances), since an
/// instance of another account must be indistinguishable from one that does
/// not exist. Instance ids in `all` are unique; its order does not matter.
///
/// - With instance ids, only `lookup` is called, once per id: every id must
///   be found (else `InvalidInstanceID.NotFound` naming the missing ones, in
///   request order), then the filters select among them. There is no paging
///   (EC2 refuses `MaxResults` with ids).
/// - Without, `all` is scanned once and the filters applied; with
///   `MaxResults` = k only the k + 1 smallest matching ids after the token's
///   position are kept (O(n log k)), and a `NextToken` is issued when a
///   (k + 1)-th exists.
pub fn describe<'a, L, I>(
    request: &DescribeInstancesRequest,
    mut lookup: L,
    all: I,
) -> Result<Page<'a>, Ec2Error>
where
    L: FnMut(&str) -> Option<&'a InstanceView>,
    I: IntoIterator<Item = &'a InstanceView>,
{
    let after = request.after.as_deref();
    let selected = |v: &InstanceView| {
        after.is_none_or(|a| v.instance_id.as_str() > a) && matches_all(&request.filters, v)
    };

    if !request.instance_ids.is_empty() {
        let mut found = Vec::with_capacity(request.instance_ids.len());
        let mut missing = Vec::new();
        for id in &request.instance_ids {
            match lookup(id) {
                Some(v) => found.push(v),
                None => missing.push(id.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(Ec2Error::instance_not_found(&missing));
        }
        found.retain(|v| selected(v));
        sort_by_id(&mut found);
        return Ok(Page {
            instances: found,
            next_token: None,
        });
    }

    let Some(limit) = request.max_results else {
        let mut instances: Vec<&InstanceView> = all.into_iter().filter(|v| selected(v)).collect();
        sort_by_id(&mut instances);
        return Ok(Page {
            instances,
            next_token: None,
        });
    };

    // A max-heap of the `limit + 1` smallest ids seen: the extra one says
    // whether another page follows.
    let keep = limit.saturating_add(1);
    let mut heap: BinaryHeap<ById<'a>> = BinaryHeap::with_capacity(keep.min(4096));
    for v in all {
        if !selected(v) {
            continue;
        }
        if heap.len() < keep {
            heap.push(ById(v));
        } else if heap
            .peek()
            .is_some_and(|top| v.instance_id < top.0.instance_id)
        {
            heap.pop();
            heap.push(ById(v));
        }
    }
    let mut instances: Vec<&InstanceView> =
        heap.into_sorted_vec().into_iter().map(|b| b.0).collect();
    instances.dedup_by(|a, b| a.instance_id == b.instance_id);
    let next_token = if instances.len() > limit {
        instances.truncate(limit);
        instances.last().map(|last| {
            token::encode(
                &token::query_digest(DESCRIBE_INSTANCES, &request.instance_ids, &request.filters),
                &last.instance_id,
            )
        })
    } else {
        None
    };
    Ok(Page {
        instances,
        next_token,
    })
}

/// [`describe`] over a map from instance id to view (the caller's
/// instances only).
pub fn describe_map<'a>(
    request: &DescribeInstancesRequest,
    instances: &'a BTreeMap<String, InstanceView>,
) -> Result<Page<'a>, Ec2Error> {
    describe(request, |id| instances.get(id), instances.values())
}

fn sort_by_id(v: &mut Vec<&InstanceView>) {
    v.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    v.dedup_by(|a, b| a.instance_id == b.instance_id);
}

struct ById<'a>(&'a InstanceView);

impl PartialEq for ById<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.instance_id == other.0.instance_id
    }
}

impl Eq for ById<'_> {}

impl PartialOrd for ById<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ById<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.instance_id.cmp(&other.0.instance_id)
    }
}
