"""DescribeInstanceHostKeys, eic's extension to EC2's Query API, against a
running server (EIC_ENDPOINT): each request is signed by botocore's own
SigV4 (botocore.auth.SigV4Auth over a botocore.awsrequest.AWSRequest, service
`ec2`), as `eic ssh` signs it, sent with urllib, and its XML read with
ElementTree.

The test that starts the server (tests/api_describe_instances.rs) passes
what it configured and enrolled:
  EIC_STATIC_KEYS    JSON list: i-abcd1234's host keys as served (port 2200)
  EIC_ENROLLED       an enrolled instance's id, EIC_ENROLLED_PORT its sshPort,
                     EIC_ENROLLED_KEYS (JSON list) the keys it reported
  EIC_SERIAL_PORT    the serial console gateway's port, and
  EIC_SERIAL_FINGERPRINT what `eic serial-host-key` printed
"""
import base64
import hashlib
import json
import os
import unittest
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials

ENDPOINT = os.environ["EIC_ENDPOINT"]
DATA_DIR = os.environ["EIC_DATA_DIR"]
REGION = "us-west-2"
NS = {"ec2": "http://ec2.amazonaws.com/doc/2016-11-15/"}
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
BOB = ("AKIDBOBEXAMPLE", "bobSecretKey/EXAMPLE00000000000000000000000")
PUSHER = ("AKIDPUSHEREXAMPLE", "pusherSecret/EXAMPLE00000000000000000")
STATIC = "i-abcd1234"
NO_KEYS = "i-0123456789abcdef0"
TERMINATED = "i-0bbbbbbbbbbbbbbb2"
BOBS = "i-0eeeeeeeeeeeeeee5"
UNKNOWN = "i-0fffffffffffffff9"
STATIC_KEYS = json.loads(os.environ["EIC_STATIC_KEYS"])
ENROLLED = os.environ["EIC_ENROLLED"]
ENROLLED_PORT = int(os.environ["EIC_ENROLLED_PORT"])
ENROLLED_KEYS = json.loads(os.environ["EIC_ENROLLED_KEYS"])
SERIAL_PORT = int(os.environ["EIC_SERIAL_PORT"])
SERIAL_FINGERPRINT = os.environ["EIC_SERIAL_FINGERPRINT"]


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.root = ET.fromstring(body)

    def error(self):
        """(Code, Message) of an EC2 error body."""
        self.root_is("Response")
        return (self.root.findtext("Errors/Error/Code"), self.root.findtext("Errors/Error/Message"))

    def root_is(self, tag):
        assert self.root.tag == tag, (self.root.tag, self.body)

    def instances(self):
        """[(instanceId, sshPort, [host keys])], asserting hostKeySet is present."""
        self.root_is("{%s}DescribeInstanceHostKeysResponse" % NS["ec2"])
        found = []
        for item in self.root.findall("ec2:instanceSet/ec2:item", NS):
            key_set = item.find("ec2:hostKeySet", NS)
            assert key_set is not None, self.body
            found.append((item.findtext("ec2:instanceId", namespaces=NS),
                          int(item.findtext("ec2:sshPort", namespaces=NS)),
                          [k.text for k in key_set.findall("ec2:item", NS)]))
        return found


def call(params, creds=ADMIN, signed=True):
    """POSTs DescribeInstanceHostKeys with `params` (a list of pairs)."""
    form = [("Action", "DescribeInstanceHostKeys"), ("Version", "2016-11-15")] + params
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=ENDPOINT + "/", data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    if signed:
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*creds), "ec2", REGION).add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=prepared.body,
                                  headers=dict(prepared.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=10) as reply:
            return Reply(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def ids(*instance_ids):
    return [("InstanceId.%d" % (n + 1), i) for n, i in enumerate(instance_ids)]


def fingerprint(line):
    """`ssh-keygen -l`'s SHA256 fingerprint of a `type base64` line."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class DescribeInstanceHostKeys(unittest.TestCase):
    def test_static_enrolled_and_keyless_in_request_order(self):
        reply = call(ids(ENROLLED, STATIC, ENROLLED, NO_KEYS))
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(reply.headers["content-type"], "text/xml;charset=UTF-8")
        self.assertEqual(reply.root.findtext("ec2:requestId", namespaces=NS),
                         reply.headers["x-amzn-requestid"])
        self.assertEqual(reply.instances(), [
            (ENROLLED, ENROLLED_PORT, ENROLLED_KEYS),
            (STATIC, 2200, STATIC_KEYS),
            (NO_KEYS, 22, []),
        ])
        # Each key is `TYPE BASE64`, its comment dropped.
        for key in STATIC_KEYS + ENROLLED_KEYS:
            self.assertEqual(len(key.split(" ")), 2, key)
        # An instance without keys has an empty element, not none.
        self.assertIn(b"<sshPort>22</sshPort><hostKeySet/>", reply.body)

    def test_a_terminated_instance_is_found_without_keys(self):
        reply = call(ids(TERMINATED))
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(reply.instances(), [(TERMINATED, 2022, [])])

    def test_the_serial_console_gateway(self):
        serial = call(ids(STATIC)).root.find("ec2:serialConsole", NS)
        self.assertIsNotNone(serial)
        self.assertEqual(int(serial.findtext("ec2:port", namespaces=NS)), SERIAL_PORT)
        keys = [k.text for k in serial.findall("ec2:hostKeySet/ec2:item", NS)]
        self.assertEqual(len(keys), 1, keys)
        self.assertTrue(keys[0].startswith("ssh-ed25519 "), keys)
        self.assertEqual(len(keys[0].split(" ")), 2, keys)
        self.assertEqual(fingerprint(keys[0]), SERIAL_FINGERPRINT)

    def test_unknown_and_another_accounts_ids_are_not_found(self):
        other = call(ids(BOBS))
        unknown = call(ids(UNKNOWN))
        for reply in (other, unknown):
            self.assertEqual(reply.status, 400, reply.body)
            self.assertEqual(reply.error()[0], "InvalidInstanceID.NotFound")
        self.assertEqual(other.error()[1], "The instance ID '%s' does not exist" % BOBS)
        self.assertEqual(other.error()[1].replace(BOBS, "X"), unknown.error()[1].replace(UNKNOWN, "X"))
        several = call(ids(UNKNOWN, STATIC, BOBS))
        self.assertEqual(several.error(), ("InvalidInstanceID.NotFound",
                                           "The instance IDs '%s, %s' do not exist" % (UNKNOWN, BOBS)))
        # Bob sees his own, and not the admin's.
        self.assertEqual(call(ids(BOBS), creds=BOB).instances(), [(BOBS, 22, [])])
        self.assertEqual(call(ids(STATIC), creds=BOB).error()[0], "InvalidInstanceID.NotFound")

    def test_malformed_missing_and_unknown_parameters(self):
        reply = call(ids("not-an-id"))
        self.assertEqual((reply.status, reply.error()),
                         (400, ("InvalidInstanceID.Malformed", 'Invalid id: "not-an-id"')))
        for params in ([], [("DryRun", "true")]):
            reply = call(params)
            self.assertEqual((reply.status, reply.error()),
                             (400, ("MissingParameter", "The request must contain the parameter InstanceId")))
        reply = call(ids(STATIC) + [("MaxResults", "5")])
        self.assertEqual(reply.error(), ("UnknownParameter", "The parameter MaxResults is not recognized"))
        reply = call(ids(STATIC) + [("InstanceId.1001", STATIC)])
        self.assertEqual(reply.error()[0], "InvalidParameterValue")

    def test_authorization_and_dry_run(self):
        reply = call(ids(STATIC), creds=PUSHER)
        self.assertEqual(reply.status, 403, reply.body)
        code, message = reply.error()
        self.assertEqual(code, "UnauthorizedOperation")
        self.assertIn("arn:aws:iam::111122223333:user/pusher", message)
        self.assertIn("ec2:DescribeInstances", message)
        reply = call(ids(STATIC) + [("DryRun", "true")])
        self.assertEqual((reply.status, reply.error()[0]), (412, "DryRunOperation"))
        reply = call(ids(STATIC) + [("DryRun", "true")], creds=PUSHER)
        self.assertEqual((reply.status, reply.error()[0]), (403, "UnauthorizedOperation"))
        reply = call(ids(STATIC), creds=("AKIDEXAMPLE", "wrong"))
        self.assertEqual((reply.status, reply.error()[0]), (401, "AuthFailure"))
        reply = call(ids(STATIC), signed=False)
        self.assertEqual((reply.status, reply.error()[0]), (401, "MissingAuthenticationToken"))

    def test_audited(self):
        allowed = call(ids(STATIC))
        refused = call(ids(STATIC), creds=PUSHER)
        unsigned = call(ids(STATIC), signed=False)
        with open(os.path.join(DATA_DIR, "audit.log")) as f:
            events = {e.get("requestID"): e for e in map(json.loads, f)}
        event = events[allowed.headers["x-amzn-requestid"]]
        self.assertEqual(event["eventName"], "DescribeInstanceHostKeys")
        self.assertEqual(event["eventSource"], "ec2.amazonaws.com")
        self.assertTrue(event["readOnly"])
        self.assertNotIn("errorCode", event)
        self.assertEqual(event["requestParameters"]["instancesSet"]["items"], [{"instanceId": STATIC}])
        self.assertEqual(event["userIdentity"]["arn"], "arn:aws:iam::111122223333:user/admin")
        event = events[refused.headers["x-amzn-requestid"]]
        self.assertEqual((event["eventName"], event["errorCode"]),
                         ("DescribeInstanceHostKeys", "UnauthorizedOperation"))
        event = events[unsigned.headers["x-amzn-requestid"]]
        self.assertEqual((event["eventName"], event["errorCode"]),
                         ("DescribeInstanceHostKeys", "MissingAuthenticationToken"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
