"""Throttling, the audit log and temporary credentials, through boto3 against
a server whose buckets are small (see tests/authz_audit.rs)."""
import json
import os
import subprocess
import time
import unittest

import boto3
from botocore.config import Config

ENDPOINT = os.environ["EIC_ENDPOINT"]
DATA_DIR = os.environ["EIC_DATA_DIR"]
EIC = os.environ["EIC_BIN"]
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ALICE = ("AKIDALICEEXAMPLE", "aliceSecretKey/EXAMPLE0000000000000000000")
BOB = ("AKIDBOBEXAMPLE", "bobSecretKey/EXAMPLE00000000000000000000000")
CAROL = ("AKIDCAROLEXAMPLE", "carolSecretKey/EXAMPLE000000000000000000")
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 audit@eic"
FINGERPRINT = "SHA256:wG1KS6m8Vj32lw/yU1Vj3JfVddVAP84oImuc0o85Yf4"


def client(creds, token=None):
    return boto3.client("ec2-instance-connect", region_name="us-west-2", endpoint_url=ENDPOINT,
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1], aws_session_token=token,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}, user_agent_extra="eic-audit-test"))


def code(call):
    try:
        call()
        return "OK"
    except Exception as e:  # botocore ClientError
        return e.response["Error"]["Code"]


def audit_events():
    with open(os.path.join(DATA_DIR, "audit.log")) as f:
        return [json.loads(line) for line in f]


def until(predicate, seconds=10):
    """Polls a condition that time makes true (a refilling bucket, an expiring token)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class Throttling(unittest.TestCase):
    def test_a_flood_is_throttled_and_recovers_without_starving_others(self):
        bob = client(BOB)
        push = lambda: bob.send_ssh_public_key(InstanceId="i-0eeeeeeeeeeeeeee5", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        results = [code(push) for _ in range(12)]
        self.assertEqual(results[:5], ["OK"] * 5, results)  # the burst
        self.assertIn("ThrottlingException", results)
        # Another principal is served while bob's bucket is empty.
        admin = client(ADMIN)
        self.assertEqual(code(lambda: admin.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)), "OK")
        # The bucket refills at 2 per second.
        self.assertTrue(until(lambda: code(push) == "OK"))

    def test_an_instance_bucket_is_shared_by_its_callers(self):
        admin, carol = client(ADMIN), client(CAROL)
        target = dict(InstanceId="i-0123456789abcdef0", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        first = [code(lambda: admin.send_ssh_public_key(**target)) for _ in range(4)]
        self.assertEqual(first, ["OK"] * 4)
        # carol's own bucket is full, but the instance has 8 tokens in all.
        second = [code(lambda: carol.send_ssh_public_key(**target)) for _ in range(5)]
        self.assertEqual(second[:4], ["OK"] * 4, second)
        self.assertEqual(second[4], "ThrottlingException")


class Audit(unittest.TestCase):
    def test_allowed_and_denied_calls_are_audited_field_by_field(self):
        alice = client(ALICE)
        ok = alice.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        with self.assertRaises(Exception) as ctx:
            alice.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="root", SSHPublicKey=ED25519)
        denied_id = ctx.exception.response["ResponseMetadata"]["RequestId"]
        events = {e["requestID"]: e for e in audit_events()}

        allowed = events[ok["RequestId"]]
        self.assertEqual(allowed["eventSource"], "ec2instanceconnect.amazonaws.com")
        self.assertEqual(allowed["eventName"], "SendSSHPublicKey")
        self.assertEqual(allowed["awsRegion"], "us-west-2")
        self.assertEqual(allowed["sourceIPAddress"], "127.0.0.1")
        self.assertIn("eic-audit-test", allowed["userAgent"])
        self.assertEqual(allowed["userIdentity"], {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                                                   "accountId": "111122223333", "userName": "alice",
                                                   "accessKeyId": "AKIDALICEEXAMPLE"})
        self.assertEqual(allowed["requestParameters"], {"instanceId": "i-abcd1234", "osUser": "ec2-user",
                                                        "sshPublicKeyFingerprint": FINGERPRINT})
        self.assertEqual(allowed["responseElements"], {"requestId": ok["RequestId"], "success": True})
        self.assertNotIn("errorCode", allowed)
        self.assertRegex(allowed["eventTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(allowed["eventID"], r"^[0-9a-f-]{36}$")
        self.assertNotIn("AAAAC3NzaC1lZDI1NTE5", json.dumps(allowed), "the key itself is never audited")

        denied = events[denied_id]
        self.assertEqual(denied["errorCode"], "AccessDeniedException")
        self.assertIn("is not authorized to perform: ec2-instance-connect:SendSSHPublicKey", denied["errorMessage"])
        self.assertEqual(denied["requestParameters"]["osUser"], "root")
        self.assertIsNone(denied["responseElements"])

    def test_an_unauthenticated_call_is_audited_too(self):
        bad = client(("AKIDNOSUCHKEYEXAMPLE", ADMIN[1]))
        with self.assertRaises(Exception) as ctx:
            bad.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        event = {e["requestID"]: e for e in audit_events()}[ctx.exception.response["ResponseMetadata"]["RequestId"]]
        self.assertEqual(event["errorCode"], "UnrecognizedClientException")
        self.assertEqual(event["userIdentity"], {"type": "Unknown", "accessKeyId": "AKIDNOSUCHKEYEXAMPLE"})

    def test_eic_audit_filters(self):
        alice = client(ALICE)
        alice.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        code(lambda: alice.send_ssh_public_key(InstanceId="i-0123456789abcdef0", InstanceOSUser="ec2-user", SSHPublicKey=ED25519))
        run = lambda *a: [json.loads(l) for l in subprocess.run([EIC, "audit", "--config", os.environ["EIC_CONFIG"], "--data-dir", DATA_DIR, *a],
                                                                check=True, capture_output=True, text=True).stdout.splitlines()]
        refused = run("--principal", "arn:aws:iam::111122223333:user/alice", "--instance", "i-0123456789abcdef0", "--outcome", "refused")
        self.assertTrue(refused)
        self.assertTrue(all(e["errorCode"] == "AccessDeniedException" for e in refused))
        allowed = run("--principal", "arn:aws:iam::111122223333:user/alice", "--outcome", "allowed", "--since", "2020-01-01T00:00:00Z")
        self.assertTrue(allowed and all("errorCode" not in e for e in allowed))
        self.assertEqual(run("--until", "2020-01-01T00:00:00Z"), [])


class TemporaryCredentials(unittest.TestCase):
    def issue(self, ttl):
        out = subprocess.run([EIC, "credentials", "issue", "--config", os.environ["EIC_CONFIG"], "--data-dir", DATA_DIR,
                              "--principal", "arn:aws:iam::111122223333:user/dave", "--ttl", ttl],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def test_session_credentials_work_until_they_expire(self):
        creds = self.issue("2s")
        self.assertTrue(creds["AccessKeyId"].startswith("ASIA"))
        c = client((creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"])
        push = lambda: c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)
        self.assertEqual(code(push), "OK")
        # dave's policy (alice's, as its own principal so that its bucket is
        # not shared with the other tests) still applies to temporary credentials.
        self.assertEqual(code(lambda: c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="root", SSHPublicKey=ED25519)),
                         "AccessDeniedException")
        self.assertTrue(until(lambda: code(push) == "ExpiredTokenException"))

    def test_a_forged_token_is_refused(self):
        creds = self.issue("1h")
        forged = client((creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"][:-4] + "AAAA")
        self.assertEqual(code(lambda: forged.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)),
                         "UnrecognizedClientException")


if __name__ == "__main__":
    unittest.main(verbosity=2)
