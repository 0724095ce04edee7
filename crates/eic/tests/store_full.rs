//! A store that cannot write answers ServiceException and stores nothing;
//! when space returns, so does service. Every push answered 200 is kept.

mod common;

use std::io::Write;
use std::process::Command;

use aws_sdk_ec2instanceconnect as eic;
use common::{live_keys, Server, ADMIN, ED25519_KEY, NO_THROTTLING, REGION};

/// A tmpfs of a few pages, mounted for this test and unmounted after.
struct TinyFs(tempfile::TempDir);

impl TinyFs {
    fn mount(bytes: usize) -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "this test mounts a tmpfs and needs root");
        TinyFs(dir)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = [0u8; 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
async fn full_disk_refuses_pushes_then_recovers() {
    let fs = TinyFs::mount(256 * 1024);
    let data = fs.0.path().join("data");
    let server = Server::start_in(&data, NO_THROTTLING);
    let conf = eic::Config::builder()
        .behavior_version(eic::config::BehaviorVersion::latest())
        .region(eic::config::Region::new(REGION))
        .credentials_provider(eic::config::Credentials::new(
            ADMIN.0, ADMIN.1, None, None, "test",
        ))
        .endpoint_url(server.endpoint())
        .retry_config(eic::config::retry::RetryConfig::disabled())
        .build();
    let client = eic::Client::from_conf(conf);
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
    drop(server);
}
