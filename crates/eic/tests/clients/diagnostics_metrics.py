"""Drives eic with boto3 and reads the diagnostics listener's /metrics with
Prometheus's own text parser (prometheus_client), checking that the
counters moved as the calls did. EIC_ENDPOINT is the API, EIC_DIAGNOSTICS
the diagnostics listener (host:port)."""
import json
import os
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

ENDPOINT = os.environ["EIC_ENDPOINT"]
DIAGNOSTICS = "http://" + os.environ["EIC_DIAGNOSTICS"]
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ALICE = ("AKIDALICEEXAMPLE", "aliceSecretKey/EXAMPLE0000000000000000000")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 test@eic"


def client(service, secret=ADMIN[1], key_id=ADMIN[0]):
    return boto3.client(service, region_name="us-west-2", endpoint_url=ENDPOINT,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def scrape():
    with urllib.request.urlopen(DIAGNOSTICS + "/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain"), reply.headers["Content-Type"]
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Diagnostics(unittest.TestCase):
    def test_health(self):
        with urllib.request.urlopen(DIAGNOSTICS + "/healthz", timeout=10) as reply:
            self.assertEqual(json.load(reply), {"status": "ok"})
        with urllib.request.urlopen(DIAGNOSTICS + "/readyz", timeout=10) as reply:
            self.assertEqual(json.load(reply), {"status": "ready"})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(DIAGNOSTICS + "/nothing", timeout=10)
        self.assertEqual(refused.exception.code, 404)

    def test_counters_move_with_real_calls(self):
        before = scrape()
        eic = client("ec2-instance-connect")
        for _ in range(3):
            eic.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=KEY)
        with self.assertRaises(eic.exceptions.EC2InstanceNotFoundException):
            eic.send_ssh_public_key(InstanceId="i-0fffffffffffffff0", InstanceOSUser="ec2-user", SSHPublicKey=KEY)
        with self.assertRaises(Exception):
            client("ec2-instance-connect", secret="wrong/EXAMPLE").send_ssh_public_key(
                InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=KEY)
        client("ec2").describe_instances(InstanceIds=["i-abcd1234"])
        alice = client("ec2-instance-connect", key_id=ALICE[0], secret=ALICE[1])
        with self.assertRaises(alice.exceptions.ClientError) as denied:
            alice.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="root", SSHPublicKey=KEY)
        self.assertEqual(denied.exception.response["Error"]["Code"], "AccessDeniedException")
        after = scrape()

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        op = "SendSSHPublicKey"
        self.assertEqual(moved("eic_requests_total", operation=op, code="OK"), 3)
        self.assertEqual(moved("eic_requests_total", operation=op, code="EC2InstanceNotFoundException"), 1)
        self.assertEqual(moved("eic_requests_total", operation="Unknown", code="InvalidSignatureException"), 1)
        self.assertEqual(moved("eic_sigv4_failures_total", reason="InvalidSignature"), 1)
        self.assertEqual(moved("eic_requests_total", operation="DescribeInstances", code="OK"), 1)
        self.assertEqual(moved("eic_requests_total", operation=op, code="AccessDeniedException"), 1)
        self.assertEqual(moved("eic_request_duration_seconds_count", operation=op), 5)
        self.assertGreater(moved("eic_request_duration_seconds_sum", operation=op), 0)
        self.assertEqual(moved("eic_request_duration_seconds_bucket", operation=op, le="+Inf"), 5)
        self.assertEqual(value(after, "eic_tunnels_open"), 0)
        # Four pushes and a DescribeInstances allowed by policy; alice's
        # push as root matches no Allow.
        self.assertEqual(moved("eic_policy_decisions_total", decision="allow"), 5)
        self.assertEqual(moved("eic_policy_decisions_total", decision="implicit_deny"), 1)
        self.assertEqual(moved("eic_policy_decisions_total", decision="explicit_deny"), 0)
        # Three keys stored; every authenticated call took a principal token.
        store = "eic_store_operation_duration_seconds_count"
        self.assertEqual(moved(store, backend="embedded", operation="push"), 3)
        self.assertGreaterEqual(moved(store, backend="embedded", operation="take_token"), 6)
        self.assertEqual(value(after, store, backend="redis", operation="push"), 0)
        self.assertEqual(value(after, "eic_serial_sessions_open"), 0)
        # The three keys pushed above live for 60 s, longer than this test.
        self.assertGreaterEqual(moved("eic_keys_live"), 3)
        self.assertEqual(value(after, "eic_config_last_reload_successful"), 1)
        self.assertTrue(any(name == "eic_build_info" for name, _ in after))
        # No label carries an instance, a principal or a key.
        for _, labels in after:
            for _, label_value in labels:
                self.assertFalse(label_value.startswith(("i-", "arn:", "AKID", "ssh-")), labels)


if __name__ == "__main__":
    unittest.main(verbosity=2)
