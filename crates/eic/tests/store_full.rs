//! A store that cannot write answers ServiceException and stores nothing;
//! when space returns, so does service. Every push answered 200 is kept.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use common::{fill, live_keys, sdk_client, Server, TinyFs, ADMIN, ED25519_KEY, NO_THROTTLING};

#[tokio::test]
async fn full_disk_refuses_pushes_then_recovers() {
    let fs = TinyFs::mount(256 * 1024);
    let data = fs.0.path().join("data");
    let server = Server::start_in(&data, NO_THROTTLING);
    let client = sdk_client(&server, ADMIN);
    let push = |user: String| {
        client
            .send_ssh_public_key()
            .instance_id("i-abcd1234")
            .instance_os_user(user)
            .ssh_public_key(ED25519_KEY)
            .send()
    };

    let mut acknowledged = vec![push("before".into()).await.unwrap().request_id.unwrap()];
    let filler = fs.0.path().join("filler");
    fill(&filler);
    let mut refused = 0;
    for n in 0..40 {
        match push(format!("full{n}")).await {
            Ok(out) => acknowledged.push(out.request_id.unwrap()),
            Err(e) => {
                let e = e.into_service_error();
                assert!(e.is_service_exception(), "{e:?}");
                refused += 1;
            }
        }
    }
    // A partly used page may take a few records; after that, every push fails.
    assert!(
        refused >= 30,
        "only {refused} of 40 pushes were refused on a full disk"
    );

    std::fs::remove_file(&filler).unwrap();
    acknowledged.push(push("after".into()).await.unwrap().request_id.unwrap());

    let stored = live_keys(&data, None);
    for id in &acknowledged {
        assert!(
            stored.iter().any(|k| k["request_id"] == id.as_str()),
            "acknowledged {id} is missing"
        );
    }
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "a refused push was stored"
    );
    // An audit line cut short by the full disk must not swallow the next
    // one: every acknowledged push has its own readable success event.
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    for id in &acknowledged {
        assert!(
            events
                .iter()
                .any(|e| e["requestID"] == id.as_str() && e["responseElements"]["success"] == true),
            "no readable audit event for acknowledged {id}"
        );
    }
    // A success event for a push that was then refused always has its
    // outcome line beside it, even on the full disk (the pair holds).
    for success in events
        .iter()
        .filter(|e| e["responseElements"]["success"] == true)
    {
        let id = success["requestID"].as_str().unwrap();
        if !acknowledged.iter().any(|a| a == id) {
            assert!(
                events
                    .iter()
                    .any(|e| e["requestID"] == id && e["errorCode"] == "ServiceException"),
                "refused push {id} has a success event without its outcome"
            );
        }
    }
    drop(server);
}
