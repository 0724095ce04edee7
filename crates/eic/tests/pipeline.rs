//! The API pipeline in process: a table of (request, clock, state) →
//! (error code, HTTP status, stored effect), run against [`Api`] on the
//! embedded store in a tempdir with a manual clock, one fresh pipeline per
//! row, configured from examples/dev.toml.
//!
//! Every refusal of the push order has a row, and every pair of neighbouring
//! checks has a row where both apply, expecting the earlier one: the table
//! fails when two checks are swapped. The order (ARCHITECTURE.md): method
//! and path, authentication (signature, then the key's standing), the
//! principal's bucket, operation, validation, authorization, the instance
//! (existence and zone, serial console access, type, state, availability),
//! the serial session (console configured, session locks, console answers),
//! the instance's bucket, the audit event, the store.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic::audit::{format_iso8601, AuditLimits, AuditLog};
use eic::config::Config;
use eic::credentials::TemporaryCredentials;
use eic::data_dir::{DataDir, SettingsFile};
use eic::server::api::{Api, ApiParts, ApiRequest, ApiResponse, SerialState};
use eic::server::reload::{Catalog, LiveCatalog};
use eic::settings::SerialConsoleAccess;
use eic_store::{
    Clock, Durability, EmbeddedStore, KeyTarget, ManualClock, PortState, SessionLease,
    SessionLocks, Store, StoreError,
};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sha2::Sha256;

/// The server's clock in every row: 2026-03-01T12:00:00Z.
const T0: u64 = 1_772_366_400;
const REGION: &str = "us-west-2";
const SERVICE: &str = "ec2-instance-connect";
const TARGET_PREFIX: &str = "AWSEC2InstanceConnectService.";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 test@eic";

const ADMIN: (&str, &str) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
const ALICE: (&str, &str) = (
    "AKIDALICEEXAMPLE",
    "aliceSecretKey/EXAMPLE0000000000000000000",
);
const BOB: (&str, &str) = (
    "AKIDBOBEXAMPLE",
    "bobSecretKey/EXAMPLE00000000000000000000000",
);
/// The admin's second key, inactive (added to the fixtures below).
const INACTIVE: (&str, &str) = (
    "AKIDINACTIVEEXAMPLE",
    "inactiveSecretKey/EXAMPLE000000000000000",
);
const UNKNOWN: (&str, &str) = (
    "AKIDUNKNOWNEXAMPLE",
    "unknownSecretKey/EXAMPLE0000000000000",
);
/// The admin's key id with a wrong secret.
const WRONG_SECRET: (&str, &str) = ("AKIDEXAMPLE", "wrongSecretKey/EXAMPLE00000000000000000");

// dev.toml's instances, and the ones this test adds.
/// Running t3, tagged Team=dev; its console listens (a socket in the tempdir).
const DEV: &str = "i-abcd1234";
/// Running m5, tagged Team=ops; its console is a socket nobody listens on.
const OPS: &str = "i-0123456789abcdef0";
const STOPPED: &str = "i-0aaaaaaaaaaaaaaa1";
const TERMINATED: &str = "i-0bbbbbbbbbbbbbbb2";
/// Running t2: no serial console on Xen.
const T2: &str = "i-0ccccccccccccccc3";
const PENDING: &str = "i-0ddddddddddddddd4";
/// Bob's account (serial console access disabled), running m5.
const BOBS: &str = "i-0eeeeeeeeeeeeeee5";
/// Added: bob's account, running t2.
const BOBS_T2: &str = "i-0fffffffffffffff1";
/// Added: stopped t2.
const STOPPED_T2: &str = "i-0fffffffffffffff2";
/// Added: stopped and unavailable.
const STOPPED_UNAVAILABLE: &str = "i-0fffffffffffffff3";
/// Added: running and unavailable.
const UNAVAILABLE: &str = "i-0fffffffffffffff4";
/// Added: running m5 without a serial console configured.
const NO_CONSOLE: &str = "i-0fffffffffffffff5";
const NOWHERE: &str = "i-0123456789abcdef9";

const FIXTURE_INSTANCES: &str = r#"
[[instances]]
id = "i-0fffffffffffffff1"
account = "444455556666"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t2.micro"

[[instances]]
id = "i-0fffffffffffffff2"
account = "111122223333"
state = "stopped"
availability_zone = "us-west-2a"
instance_type = "t2.micro"

[[instances]]
id = "i-0fffffffffffffff3"
account = "111122223333"
state = "stopped"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
availability = "unavailable"

[[instances]]
id = "i-0fffffffffffffff4"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
availability = "unavailable"

[[instances]]
id = "i-0fffffffffffffff5"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "m5.large"
"#;

// ------------------------------------------------------------- requests

#[derive(Clone)]
struct Req {
    method: &'static str,
    /// The access key and secret it is signed with; `None`: unsigned.
    signer: Option<(&'static str, &'static str)>,
    /// `X-Amz-Target`; `None`: no such header.
    target: Option<String>,
    body: Vec<u8>,
    /// When the client signed, relative to the server's clock (seconds).
    skew: i64,
}

impl Req {
    fn new(signer: (&'static str, &'static str), operation: &str, body: Value) -> Req {
        Req {
            method: "POST",
            signer: Some(signer),
            target: Some(format!("{TARGET_PREFIX}{operation}")),
            body: body.to_string().into_bytes(),
            skew: 0,
        }
    }

    fn target(mut self, target: Option<&str>) -> Req {
        self.target = target.map(str::to_owned);
        self
    }

    fn body(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }

    fn unsigned(mut self) -> Req {
        self.signer = None;
        self
    }

    fn method(mut self, method: &'static str) -> Req {
        self.method = method;
        self
    }

    fn skew(mut self, seconds: i64) -> Req {
        self.skew = seconds;
        self
    }
}

/// SendSSHPublicKey for `user` on `instance`.
fn ssh(signer: (&'static str, &'static str), instance: &str, user: &str) -> Req {
    Req::new(
        signer,
        "SendSSHPublicKey",
        json!({"InstanceId": instance, "InstanceOSUser": user, "SSHPublicKey": KEY}),
    )
}

/// SendSSHPublicKey with an AvailabilityZone.
fn ssh_in(signer: (&'static str, &'static str), instance: &str, zone: &str) -> Req {
    Req::new(
        signer,
        "SendSSHPublicKey",
        json!({"InstanceId": instance, "InstanceOSUser": "ec2-user", "SSHPublicKey": KEY, "AvailabilityZone": zone}),
    )
}

/// SendSerialConsoleSSHPublicKey for port 0 of `instance`.
fn serial(signer: (&'static str, &'static str), instance: &str) -> Req {
    Req::new(
        signer,
        "SendSerialConsoleSSHPublicKey",
        json!({"InstanceId": instance, "SerialPort": 0, "SSHPublicKey": KEY}),
    )
}

/// A body that breaks the model's constraints (InvalidArgsException).
fn invalid(signer: (&'static str, &'static str)) -> Req {
    ssh(signer, "not-an-instance", "ec2-user")
}

/// `YYYYMMDDTHHMMSSZ`.
fn amz_date(at: SystemTime) -> String {
    format_iso8601(at).replace(['-', ':'], "")
}

/// Signs as botocore does: `content-type;host;x-amz-date;x-amz-target`
/// (without the target when the request has none), the body hashed.
fn sign(headers: &mut HeaderMap, req: &Req, (key_id, secret): (&str, &str), at: SystemTime) {
    let date = amz_date(at);
    headers.insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
    let signed: Vec<String> = ["content-type", "host", "x-amz-date", "x-amz-target"]
        .into_iter()
        .filter(|h| headers.contains_key(*h))
        .map(str::to_owned)
        .collect();
    let canonical = eic_sigv4::canonical_request(
        req.method,
        "/",
        "",
        headers,
        &signed,
        &eic_sigv4::hex_sha256(&req.body),
    );
    let scope = format!("{}/{REGION}/{SERVICE}/aws4_request", &date[..8]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        eic_sigv4::hex_sha256(&canonical)
    );
    let key = eic_sigv4::derive_signing_key(secret, &date[..8], REGION, SERVICE);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&authorization).unwrap(),
    );
}

// ---------------------------------------------------------------- state

/// Session locks whose answer each row sets: a port state, or a failure.
struct TestLocks(Mutex<Result<PortState, &'static str>>);

#[async_trait::async_trait]
impl SessionLocks for TestLocks {
    async fn try_acquire(&self, _: &str, _: u8) -> Result<Option<SessionLease>, StoreError> {
        Ok(None)
    }

    async fn port_state(&self, _: &str, _: u8) -> Result<PortState, StoreError> {
        self.0
            .lock()
            .unwrap()
            .map_err(|why| StoreError::Unavailable(why.into()))
    }

    fn teardown(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// What a row's pipeline is built with.
#[derive(Clone, Copy, Default)]
struct Setup {
    /// Each principal's bucket holds one request, refilled in 1000 s.
    principal_burst_1: bool,
    /// Each instance's bucket holds one request, refilled in 1 s.
    instance_burst_1: bool,
    /// No serial console gateway runs (the API has no session locks).
    no_gateway: bool,
}

/// What holds when the row's request arrives (after `before` ran).
#[derive(Clone, Copy)]
struct State {
    /// What the session locks answer.
    locks: Result<PortState, &'static str>,
    /// The audit log's path is reopened onto a device that takes no write.
    audit_unwritable: bool,
}

const NORMAL: State = State {
    locks: Ok(PortState::Free),
    audit_unwritable: false,
};

const fn locks(answer: Result<PortState, &'static str>) -> State {
    State {
        locks: answer,
        audit_unwritable: false,
    }
}

const AUDIT_UNWRITABLE: State = State {
    locks: Ok(PortState::Free),
    audit_unwritable: true,
};

/// One pipeline on its own tempdir, store, audit log and clock.
struct Fixture {
    dir: tempfile::TempDir,
    api: Api,
    store: Arc<EmbeddedStore>,
    audit: Arc<AuditLog>,
    clock: Arc<ManualClock>,
    locks: Arc<TestLocks>,
    _console: std::os::unix::net::UnixListener,
}

fn dev_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dev.toml")
}

/// `text` with `from` replaced, which must be there.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "examples/dev.toml no longer has {from}"
    );
    text.replace(from, to)
}

impl Fixture {
    fn new(setup: Setup) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let console_path = dir.path().join("console.sock");
        let console = std::os::unix::net::UnixListener::bind(&console_path).unwrap();
        let mut text = std::fs::read_to_string(dev_toml()).unwrap();
        text = edit(
            &text,
            r#"access_keys = [{ id = "AKIDEXAMPLE", secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }]"#,
            &format!(
                r#"access_keys = [{{ id = "{}", secret = "{}" }}, {{ id = "{}", secret = "{}", status = "inactive" }}]"#,
                ADMIN.0, ADMIN.1, INACTIVE.0, INACTIVE.1
            ),
        );
        text = edit(
            &text,
            "/tmp/eic-dev-console.sock",
            console_path.to_str().unwrap(),
        );
        text = edit(
            &text,
            r#"{ kind = "tcp", address = "127.0.0.1:7000" }"#,
            &format!(
                r#"{{ kind = "unix", path = "{}" }}"#,
                dir.path().join("nobody-listens.sock").display()
            ),
        );
        text.push_str(FIXTURE_INSTANCES);
        text.push_str("\n[throttling]\n");
        if setup.principal_burst_1 {
            text.push_str("principal = { rate = 0.001, burst = 1.0 }\n");
        }
        if setup.instance_burst_1 {
            text.push_str("instance = { rate = 1.0, burst = 1.0 }\n");
        }
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, text).unwrap();
        let mut config = Config::load(&config_path).unwrap();
        config.data_dir = dir.path().join("data");

        let catalog = LiveCatalog::new(Catalog::from_config(&config).unwrap());
        let data_dir = DataDir::for_server(&config.data_dir).unwrap();
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
        let store = Arc::new(
            EmbeddedStore::open(
                &data_dir.path().join("keys"),
                Durability::ProcessCrash,
                clock.clone(),
            )
            .unwrap(),
        );
        let audit = Arc::new(
            AuditLog::open(
                &dir.path().join("audit.log"),
                REGION,
                AuditLimits {
                    reserve_bytes: 0,
                    ..AuditLimits::default()
                },
            )
            .unwrap(),
        );
        let locks = Arc::new(TestLocks(Mutex::new(Ok(PortState::Free))));
        let fleet = eic_store::EmbeddedFleet::open(data_dir.path()).unwrap();
        let instances = Arc::new(
            eic::instances::Instances::new(
                &catalog.current().registry,
                fleet,
                Duration::from_secs(90),
            )
            .unwrap(),
        );
        let api = Api::new(ApiParts {
            catalog,
            instances,
            temporary: TemporaryCredentials::load(&data_dir).unwrap(),
            store: store.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            serial: SerialState {
                access: SerialConsoleAccess::new(Arc::new(SettingsFile::new(
                    data_dir.path().join("serial-console-access.json"),
                ))),
                locks: (!setup.no_gateway).then(|| locks.clone() as Arc<dyn SessionLocks>),
                host_keys: None,
            },
            metrics: eic::metrics::Metrics::new(&[], None),
        });
        Fixture {
            dir,
            api,
            store,
            audit,
            clock,
            locks,
            _console: console,
        }
    }

    fn set(&self, state: State) {
        *self.locks.0.lock().unwrap() = state.locks;
        if state.audit_unwritable {
            // /dev/full opens, but takes no byte: nothing can be written.
            let path = self.dir.path().join("audit.log");
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink("/dev/full", &path).unwrap();
            self.audit.reopen().unwrap();
        }
    }

    async fn send(&self, req: &Req) -> ApiResponse {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        if let Some(target) = &req.target {
            headers.insert("x-amz-target", HeaderValue::from_str(target).unwrap());
        }
        headers.insert("user-agent", HeaderValue::from_static("pipeline-table/1"));
        let signed_at = if req.skew >= 0 {
            self.clock.now() + Duration::from_secs(req.skew.unsigned_abs())
        } else {
            self.clock.now() - Duration::from_secs(req.skew.unsigned_abs())
        };
        if let Some(signer) = req.signer {
            sign(&mut headers, req, signer, signed_at);
        }
        self.api
            .handle(ApiRequest {
                http: eic_sigv4::RequestParts {
                    method: req.method,
                    path: "/",
                    query: "",
                    headers: &headers,
                    body: &req.body,
                },
                source_ip: IpAddr::from([192, 0, 2, 10]),
                secure_transport: false,
            })
            .await
    }

    /// Every live key, from the log on disk (what a restart would serve).
    fn stored(&self) -> Vec<eic_store::PushedKey> {
        eic_store::read_live_keys(&self.dir.path().join("data/keys"), self.clock.now()).unwrap()
    }

    fn last_audit_event(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    }
}

// ---------------------------------------------------------------- table

enum Expect {
    /// 200, and the key is in the store under the answer's request id.
    Stored(KeyTarget),
    /// This code and status, a message containing the text, nothing stored.
    Refused(&'static str, u16, &'static str),
}

use Expect::{Refused, Stored};

struct Row {
    name: &'static str,
    setup: Setup,
    /// Requests sent first (their answers are not checked), to drain buckets.
    before: Vec<Req>,
    /// How far the server's clock moves after them.
    advance: Duration,
    state: State,
    request: Req,
    expect: Expect,
}

fn row(name: &'static str, request: Req, expect: Expect) -> Row {
    Row {
        name,
        setup: Setup::default(),
        before: Vec::new(),
        advance: Duration::ZERO,
        state: NORMAL,
        request,
        expect,
    }
}

impl Row {
    fn setup(mut self, setup: Setup) -> Row {
        self.setup = setup;
        self
    }

    fn before(mut self, before: Req) -> Row {
        self.before.push(before);
        self
    }

    fn advance(mut self, by: Duration) -> Row {
        self.advance = by;
        self
    }

    fn state(mut self, state: State) -> Row {
        self.state = state;
        self
    }

    /// Every principal's bucket holds one request, and the admin's was
    /// spent by a push before.
    fn principal_drained(self) -> Row {
        self.setup(PRINCIPAL_BURST_1)
            .before(ssh(ADMIN, DEV, "ec2-user"))
    }

    /// Every instance's bucket holds one request, and i-abcd1234's was spent
    /// by a push before.
    fn instance_drained(self) -> Row {
        self.setup(INSTANCE_BURST_1)
            .before(ssh(ADMIN, DEV, "ec2-user"))
    }
}

const PRINCIPAL_BURST_1: Setup = Setup {
    principal_burst_1: true,
    instance_burst_1: false,
    no_gateway: false,
};
const INSTANCE_BURST_1: Setup = Setup {
    principal_burst_1: false,
    instance_burst_1: true,
    no_gateway: false,
};
const NO_GATEWAY: Setup = Setup {
    principal_burst_1: false,
    instance_burst_1: false,
    no_gateway: true,
};

fn table() -> Vec<Row> {
    let os = |user: &str| KeyTarget::OsUser(user.to_owned());
    vec![
        // Accepted pushes.
        row("admin pushes for ec2-user", ssh(ADMIN, DEV, "ec2-user"), Stored(os("ec2-user"))),
        row("alice pushes for ec2-user on a Team=dev instance", ssh(ALICE, DEV, "ec2-user"), Stored(os("ec2-user"))),
        row("admin pushes with the instance's zone", ssh_in(ADMIN, DEV, "us-west-2a"), Stored(os("ec2-user"))),
        row("admin pushes a serial key", serial(ADMIN, DEV), Stored(KeyTarget::SerialPort(0))),
        row("signed 14 minutes early is inside the window", ssh(ADMIN, DEV, "ec2-user").skew(-14 * 60), Stored(os("ec2-user"))),
        row("a drained instance bucket refills with the clock", ssh(ADMIN, DEV, "root"), Stored(os("root")))
            .instance_drained()
            .advance(Duration::from_secs(1)),
        // Method and path, before authentication.
        row("GET / (unsigned)", ssh(ADMIN, DEV, "ec2-user").method("GET").unsigned(), Refused("UnknownOperationException", 400, "POST /")),
        // Authentication.
        row("no Authorization header", ssh(ADMIN, DEV, "ec2-user").unsigned(), Refused("MissingAuthenticationTokenException", 400, "Missing Authentication Token")),
        row("wrong secret", ssh(WRONG_SECRET, DEV, "ec2-user"), Refused("InvalidSignatureException", 400, "does not match")),
        row("unknown access key", ssh(UNKNOWN, DEV, "ec2-user"), Refused("UnrecognizedClientException", 400, "security token")),
        row("inactive access key", ssh(INACTIVE, DEV, "ec2-user"), Refused("AuthException", 403, "credentials")),
        row("signed 16 minutes ago", ssh(ADMIN, DEV, "ec2-user").skew(-16 * 60), Refused("InvalidSignatureException", 400, "Signature expired")),
        row("signed 16 minutes ahead", ssh(ADMIN, DEV, "ec2-user").skew(16 * 60), Refused("InvalidSignatureException", 400, "Signature not yet current")),
        row("order: the window before the key lookup (unknown key, signed 16 minutes ago)", ssh(UNKNOWN, DEV, "ec2-user").skew(-16 * 60), Refused("InvalidSignatureException", 400, "Signature expired")),
        row("order: the signature before the key's standing (inactive key, wrong secret)", ssh((INACTIVE.0, ADMIN.1), DEV, "ec2-user"), Refused("InvalidSignatureException", 400, "does not match")),
        // The principal's bucket.
        row("principal's bucket empty", ssh(ADMIN, DEV, "ec2-user"), Refused("ThrottlingException", 429, "throttled"))
            .principal_drained(),
        row("another principal's bucket is its own", ssh(ALICE, DEV, "ec2-user"), Stored(os("ec2-user")))
            .principal_drained(),
        row("order: authentication before the principal's bucket (wrong secret, bucket empty)", ssh(WRONG_SECRET, DEV, "ec2-user"), Refused("InvalidSignatureException", 400, "does not match"))
            .principal_drained(),
        row("order: the key's standing before the principal's bucket (inactive key, bucket empty)", ssh(INACTIVE, DEV, "ec2-user"), Refused("AuthException", 403, "credentials"))
            .principal_drained(),
        row("order: the principal's bucket before the operation (unknown target, bucket empty)", ssh(ADMIN, DEV, "ec2-user").target(Some("AWSEC2InstanceConnectService.Nope")), Refused("ThrottlingException", 429, "throttled"))
            .setup(PRINCIPAL_BURST_1)
            .before(invalid(ADMIN)),
        row("order: the principal's bucket before validation (invalid body, bucket empty)", invalid(ADMIN), Refused("ThrottlingException", 429, "throttled"))
            .setup(PRINCIPAL_BURST_1)
            .before(invalid(ADMIN)),
        // Operation.
        row("unknown operation", ssh(ADMIN, DEV, "ec2-user").target(Some("AWSEC2InstanceConnectService.SendSSHPrivateKey")), Refused("UnknownOperationException", 400, "Unknown operation")),
        row("no X-Amz-Target", ssh(ADMIN, DEV, "ec2-user").target(None), Refused("UnknownOperationException", 400, "Unknown operation")),
        row("order: the operation before validation (unknown target, invalid body)", invalid(ADMIN).target(Some("AWSEC2InstanceConnectService.Nope")), Refused("UnknownOperationException", 400, "Unknown operation")),
        // Validation.
        row("invalid instance id", invalid(ADMIN), Refused("InvalidArgsException", 400, "InstanceId")),
        row("body is not JSON", ssh(ADMIN, DEV, "ec2-user").body(b"{not json"), Refused("SerializationException", 400, "")),
        row("member of the wrong type", ssh(ADMIN, DEV, "ec2-user").body(br#"{"InstanceId": 7, "InstanceOSUser": "ec2-user", "SSHPublicKey": "x"}"#), Refused("SerializationException", 400, "")),
        row("order: validation before authorization (alice, invalid body)", invalid(ALICE), Refused("InvalidArgsException", 400, "InstanceId")),
        // Authorization.
        row("alice as another OS user", ssh(ALICE, DEV, "root"), Refused("AccessDeniedException", 400, "is not authorized to perform: ec2-instance-connect:SendSSHPublicKey")),
        row("alice on a Team=ops instance", ssh(ALICE, OPS, "ec2-user"), Refused("AccessDeniedException", 400, "not authorized")),
        row("alice's serial push (not allowed)", serial(ALICE, DEV), Refused("AccessDeniedException", 400, "SendSerialConsoleSSHPublicKey")),
        row("order: authorization before the instance (alice as root, stopped instance)", ssh(ALICE, STOPPED, "root"), Refused("AccessDeniedException", 400, "not authorized")),
        row("order: authorization before existence (alice, unknown instance)", ssh(ALICE, NOWHERE, "ec2-user"), Refused("AccessDeniedException", 400, "not authorized")),
        // The instance.
        row("unknown instance", ssh(ADMIN, NOWHERE, "ec2-user"), Refused("EC2InstanceNotFoundException", 404, "not found")),
        row("another account's instance is not found", ssh(ADMIN, BOBS, "ec2-user"), Refused("EC2InstanceNotFoundException", 404, "not found")),
        row("zone mismatch", ssh_in(ADMIN, DEV, "us-west-2b"), Refused("EC2InstanceNotFoundException", 404, "not found in availability zone us-west-2b")),
        row("stopped", ssh(ADMIN, STOPPED, "ec2-user"), Refused("EC2InstanceStateInvalidException", 400, "is stopped")),
        row("terminated", ssh(ADMIN, TERMINATED, "ec2-user"), Refused("EC2InstanceStateInvalidException", 400, "is terminated")),
        row("pending", ssh(ADMIN, PENDING, "ec2-user"), Refused("EC2InstanceStateInvalidException", 400, "is pending")),
        row("unavailable", ssh(ADMIN, UNAVAILABLE, "ec2-user"), Refused("EC2InstanceUnavailableException", 503, "unavailable")),
        row("serial on t2", serial(ADMIN, T2), Refused("EC2InstanceTypeInvalidException", 400, "t2.micro")),
        row("serial console access disabled for the account", serial(BOB, BOBS), Refused("SerialConsoleAccessDisabledException", 403, "")),
        row("order: the zone before the state (stopped, other zone)", ssh_in(ADMIN, STOPPED, "us-west-2b"), Refused("EC2InstanceNotFoundException", 404, "availability zone")),
        row("order: serial access before the type (bob, t2)", serial(BOB, BOBS_T2), Refused("SerialConsoleAccessDisabledException", 403, "")),
        row("order: the type before the state (serial, stopped t2)", serial(ADMIN, STOPPED_T2), Refused("EC2InstanceTypeInvalidException", 400, "t2.micro")),
        row("order: the state before availability (stopped and unavailable)", ssh(ADMIN, STOPPED_UNAVAILABLE, "ec2-user"), Refused("EC2InstanceStateInvalidException", 400, "is stopped")),
        row("order: the instance before the serial session (stopped, no console, port in session)", serial(ADMIN, STOPPED), Refused("EC2InstanceStateInvalidException", 400, "is stopped"))
            .state(locks(Ok(PortState::InSession))),
        // The serial session.
        row("no serial console configured", serial(ADMIN, NO_CONSOLE), Refused("SerialConsoleSessionUnsupportedException", 400, "no serial console configured")),
        row("no serial console gateway runs", serial(ADMIN, DEV), Refused("SerialConsoleSessionUnavailableException", 500, ""))
            .setup(NO_GATEWAY),
        row("session locks unavailable", serial(ADMIN, DEV), Refused("SerialConsoleSessionUnavailableException", 500, ""))
            .state(locks(Err("locks down"))),
        row("console does not answer", serial(ADMIN, OPS), Refused("SerialConsoleSessionUnavailableException", 500, "")),
        row("a session is open", serial(ADMIN, DEV), Refused("SerialConsoleSessionLimitExceededException", 400, "The instance currently has 1 active serial console session. Only 1 session is supported at a time."))
            .state(locks(Ok(PortState::InSession))),
        row("a session ended less than the teardown ago", serial(ADMIN, DEV), Refused("SerialConsoleSessionLimitExceededException", 400, "The instance i-abcd1234 is in its serial console teardown period after a session ended; try again in up to 30 seconds."))
            .state(locks(Ok(PortState::TearingDown))),
        row("an SSH push ignores the serial session", ssh(ADMIN, DEV, "ec2-user"), Stored(os("ec2-user")))
            .state(locks(Ok(PortState::InSession))),
        row("order: a console before the locks (no console, port in session)", serial(ADMIN, NO_CONSOLE), Refused("SerialConsoleSessionUnsupportedException", 400, ""))
            .state(locks(Ok(PortState::InSession))),
        row("order: the locks before the console probe (console down, port in session)", serial(ADMIN, OPS), Refused("SerialConsoleSessionLimitExceededException", 400, "1 active"))
            .state(locks(Ok(PortState::InSession))),
        // The instance's bucket.
        row("instance's bucket empty", ssh(ADMIN, DEV, "root"), Refused("ThrottlingException", 429, "throttled"))
            .instance_drained(),
        row("another instance's bucket is its own", ssh(ADMIN, OPS, "ec2-user"), Stored(os("ec2-user")))
            .instance_drained(),
        row("order: authorization before the instance's bucket (alice as root, bucket empty)", ssh(ALICE, DEV, "root"), Refused("AccessDeniedException", 400, "not authorized"))
            .instance_drained(),
        row("order: the instance before its bucket (other zone, bucket empty)", ssh_in(ADMIN, DEV, "us-west-2b"), Refused("EC2InstanceNotFoundException", 404, "availability zone"))
            .instance_drained(),
        row("order: the serial session before the instance's bucket (port in session, bucket empty)", serial(ADMIN, DEV), Refused("SerialConsoleSessionLimitExceededException", 400, "1 active"))
            .instance_drained()
            .state(locks(Ok(PortState::InSession))),
        // The audit event, before the store.
        row("audit log cannot be written: nothing stored", ssh(ADMIN, DEV, "ec2-user"), Refused("ServiceException", 500, ""))
            .state(AUDIT_UNWRITABLE),
        row("order: the instance's bucket before the audit event (bucket empty, audit unwritable)", ssh(ADMIN, DEV, "root"), Refused("ThrottlingException", 429, "throttled"))
            .instance_drained()
            .state(AUDIT_UNWRITABLE),
    ]
}

/// What went wrong in one row, if anything.
async fn run(row: &Row) -> Result<(), String> {
    let f = Fixture::new(row.setup);
    for before in &row.before {
        f.send(before).await;
    }
    f.set(row.state);
    f.clock.advance(row.advance);
    let stored_before = f.stored();
    let response = f.send(&row.request).await;
    let body: Value = serde_json::from_slice(&response.body)
        .map_err(|e| format!("answer is not JSON ({e}): {:?}", response.body))?;
    let stored_after = f.stored();
    let new: Vec<_> = stored_after
        .iter()
        .filter(|k| !stored_before.contains(k))
        .collect();
    match &row.expect {
        Stored(target) => {
            if response.status != 200 || body["Success"] != true {
                return Err(format!("expected 200, got {} {body}", response.status));
            }
            if body["RequestId"] != response.request_id.as_str() {
                return Err(format!("body's RequestId is not the answer's: {body}"));
            }
            let [key] = new.as_slice() else {
                return Err(format!("expected one new key, got {new:?}"));
            };
            let instance = row.request.body_json()["InstanceId"].clone();
            if key.request_id != response.request_id
                || &key.target != target
                || key.instance_id != instance.as_str().unwrap_or_default()
                || key.expires_at_ms != key.pushed_at_ms + 60_000
            {
                return Err(format!("stored key is not the push: {key:?}"));
            }
            let live = f
                .store
                .live_keys(&key.instance_id, target, f.clock.now())
                .await
                .map_err(|e| e.to_string())?;
            if !live.iter().any(|k| k.request_id == response.request_id) {
                return Err("the stored key is not served".into());
            }
            let event = f.last_audit_event();
            if event["requestID"] != response.request_id.as_str()
                || event.get("errorCode").is_some()
            {
                return Err(format!("last audit event is not the push's: {event}"));
            }
        }
        Refused(code, status, message) => {
            let got = response.error.map(|c| c.as_str()).unwrap_or("none");
            if got != *code || body["__type"] != *code {
                return Err(format!("expected {code}, got {got} ({body})"));
            }
            if response.status != *status {
                return Err(format!("expected status {status}, got {}", response.status));
            }
            let text = body["Message"]
                .as_str()
                .or(body["message"].as_str())
                .unwrap_or_default();
            if !text.contains(message) {
                return Err(format!("message {text:?} does not contain {message:?}"));
            }
            if !new.is_empty() {
                return Err(format!("a refusal stored {new:?}"));
            }
            if !row.state.audit_unwritable {
                let event = f.last_audit_event();
                if event["requestID"] != response.request_id.as_str() || event["errorCode"] != *code
                {
                    return Err(format!("last audit event is not the refusal's: {event}"));
                }
            }
        }
    }
    Ok(())
}

impl Req {
    fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_in_push_order() {
    let rows = table();
    let mut failures = Vec::new();
    for row in &rows {
        if let Err(why) = run(row).await {
            failures.push(format!("{}: {why}", row.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n  {}",
        failures.len(),
        rows.len(),
        failures.join("\n  ")
    );
}
