"""boto3's ec2 client against a running eic server (EIC_ENDPOINT):
DescribeInstances by id, with filters, paginated, DryRun, across accounts,
its errors, IAM, the audit log, and Instance Connect pushes in the same run.
"""
import datetime
import http.client
import json
import os
import subprocess
import unittest
import urllib.parse
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["EIC_ENDPOINT"]
DATA_DIR = os.environ["EIC_DATA_DIR"]
REGION = "us-west-2"
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ALICE = ("AKIDALICEEXAMPLE", "aliceSecretKey/EXAMPLE0000000000000000000")
BOB = ("AKIDBOBEXAMPLE", "bobSecretKey/EXAMPLE00000000000000000000000")
INACTIVE = ("AKIDINACTIVEEXAMPLE", "inactiveSecret/EXAMPLE000000000000000")
PUSHER = ("AKIDPUSHEREXAMPLE", "pusherSecret/EXAMPLE00000000000000000")
SEED_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t"
ADMIN_INSTANCES = [
    "i-0123456789abcdef0",
    "i-0aaaaaaaaaaaaaaa1",
    "i-0bbbbbbbbbbbbbbb2",
    "i-0ccccccccccccccc3",
    "i-0ddddddddddddddd4",
    "i-abcd1234",
]


def client(service="ec2", creds=ADMIN, token=None):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def instances(response):
    return [i for r in response["Reservations"] for i in r["Instances"]]


def error_code(call):
    with unittest.TestCase().assertRaises(ClientError) as raised:
        call()
    return raised.exception.response["Error"]["Code"], raised.exception


class DescribeInstances(unittest.TestCase):
    def test_by_id(self):
        response = client().describe_instances(InstanceIds=["i-abcd1234", "i-0123456789abcdef0"])
        found = {i["InstanceId"]: i for i in instances(response)}
        self.assertEqual(set(found), {"i-abcd1234", "i-0123456789abcdef0"})
        dev = found["i-abcd1234"]
        self.assertEqual(dev["PrivateIpAddress"], "127.0.0.1")
        self.assertEqual(dev["PrivateDnsName"], "ip-127-0-0-1.us-west-2.compute.internal")
        self.assertEqual(dev["VpcId"], "vpc-0de00000000000001")
        self.assertEqual(dev["SubnetId"], "subnet-0de00000000000001")
        self.assertEqual(dev["Placement"]["AvailabilityZone"], "us-west-2a")
        self.assertEqual(dev["State"], {"Code": 16, "Name": "running"})
        self.assertEqual(dev["InstanceType"], "t3.micro")
        self.assertIn({"Key": "Team", "Value": "dev"}, dev["Tags"])
        self.assertNotIn("PublicIpAddress", dev)
        self.assertIn("LaunchTime", dev)
        self.assertEqual(found["i-0123456789abcdef0"]["Placement"]["AvailabilityZone"], "us-west-2b")
        for r in response["Reservations"]:
            self.assertEqual(r["OwnerId"], "111122223333")

    def test_filters(self):
        dev = client().describe_instances(Filters=[{"Name": "tag:Team", "Values": ["dev"]}])
        self.assertEqual([i["InstanceId"] for i in instances(dev)], ["i-abcd1234"])
        stopped = client().describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])
        found = instances(stopped)
        self.assertEqual([i["InstanceId"] for i in found], ["i-0aaaaaaaaaaaaaaa1"])
        self.assertEqual(found[0]["State"]["Name"], "stopped")
        self.assertTrue(found[0]["PrivateIpAddress"].startswith("127.0.10."))

    def test_paginator(self):
        pages = list(client().get_paginator("describe_instances").paginate(
            PaginationConfig={"PageSize": 5}))
        self.assertEqual(len(pages), 2)
        self.assertEqual(len(instances(pages[0])), 5)
        self.assertIn("NextToken", pages[0])
        ids = [i["InstanceId"] for p in pages for i in instances(p)]
        self.assertEqual(sorted(ids), sorted(ADMIN_INSTANCES))
        # MaxResults as a parameter directly, too.
        first = client().describe_instances(MaxResults=5)
        self.assertEqual(len(instances(first)), 5)
        rest = client().describe_instances(MaxResults=5, NextToken=first["NextToken"])
        self.assertEqual(len(instances(rest)), 1)
        self.assertNotIn("NextToken", rest)

    def test_dry_run(self):
        code, _ = error_code(lambda: client().describe_instances(DryRun=True))
        self.assertEqual(code, "DryRunOperation")
        code, _ = error_code(lambda: client(creds=PUSHER).describe_instances(DryRun=True))
        self.assertEqual(code, "UnauthorizedOperation")

    def test_another_accounts_instance_is_not_found(self):
        code, e = error_code(lambda: client(creds=BOB).describe_instances(InstanceIds=["i-abcd1234"]))
        self.assertEqual(code, "InvalidInstanceID.NotFound")
        unknown_code, unknown = error_code(
            lambda: client(creds=BOB).describe_instances(InstanceIds=["i-0fffffffffffffff9"]))
        self.assertEqual(unknown_code, "InvalidInstanceID.NotFound")
        self.assertEqual(e.response["Error"]["Message"].replace("i-abcd1234", "X"),
                         unknown.response["Error"]["Message"].replace("i-0fffffffffffffff9", "X"))
        mine = instances(client(creds=BOB).describe_instances())
        self.assertEqual([i["InstanceId"] for i in mine], ["i-0eeeeeeeeeeeeeee5"])

    def test_large_bodies(self):
        ids = ["i-%017x" % (0xf00000000000000 + n) for n in range(1000)]
        code, e = error_code(lambda: client().describe_instances(InstanceIds=ids))
        self.assertEqual(code, "InvalidInstanceID.NotFound")
        url = urllib.parse.urlparse(ENDPOINT)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("POST", "/", body="Action=DescribeInstances&x=" + "a" * 300_000, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        reply = conn.getresponse()
        body = reply.read().decode()
        conn.close()
        self.assertEqual(reply.status, 400, body)
        self.assertIn("<Code>InvalidParameterValue</Code>", body)
        self.assertTrue(reply.getheader("Content-Type").startswith("text/xml"))

    def test_malformed_id(self):
        code, _ = error_code(lambda: client().describe_instances(InstanceIds=["not-an-id"]))
        self.assertEqual(code, "InvalidInstanceID.Malformed")

    def test_alice_may_describe(self):
        found = instances(client(creds=ALICE).describe_instances(InstanceIds=["i-abcd1234"]))
        self.assertEqual(found[0]["InstanceId"], "i-abcd1234")

    def test_without_the_permission(self):
        code, e = error_code(lambda: client(creds=PUSHER).describe_instances())
        self.assertEqual(code, "UnauthorizedOperation")
        self.assertIn("arn:aws:iam::111122223333:user/pusher", e.response["Error"]["Message"])
        self.assertIn("ec2:DescribeInstances", e.response["Error"]["Message"])

    def test_bad_credentials(self):
        code, _ = error_code(lambda: client(creds=("AKIDEXAMPLE", "wrong")).describe_instances())
        self.assertEqual(code, "AuthFailure")
        code, _ = error_code(lambda: client(creds=("AKIDNOSUCHKEY", "x")).describe_instances())
        self.assertEqual(code, "AuthFailure")
        code, _ = error_code(lambda: client(creds=INACTIVE).describe_instances())
        self.assertEqual(code, "AuthFailure")

    def test_temporary_credentials(self):
        out = subprocess.run([os.environ["EIC_BIN"], "credentials", "issue", "--config", os.environ["EIC_CONFIG"],
                              "--data-dir", DATA_DIR, "--principal", "arn:aws:iam::111122223333:user/alice",
                              "--ttl", "1h"], check=True, capture_output=True, text=True).stdout
        creds = json.loads(out)
        c = client(creds=(creds["AccessKeyId"], creds["SecretAccessKey"]), token=creds["SessionToken"])
        found = instances(c.describe_instances(InstanceIds=["i-abcd1234"]))
        self.assertEqual(found[0]["InstanceId"], "i-abcd1234")
        code, _ = error_code(lambda: client(creds=(creds["AccessKeyId"], creds["SecretAccessKey"]),
                                            token="FwoGZXIvYXdzEXAMPLETOKEN").describe_instances())
        self.assertEqual(code, "AuthFailure")

    def test_unsigned_and_expired(self):
        url = urllib.parse.urlparse(ENDPOINT)
        form = "Action=DescribeInstances&Version=2016-11-15"
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("POST", "/", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        reply = conn.getresponse()
        body = reply.read().decode()
        conn.close()
        self.assertEqual(reply.status, 401, body)
        self.assertTrue(reply.getheader("Content-Type").startswith("text/xml"))
        self.assertIsNotNone(reply.getheader("x-amzn-RequestId"))
        self.assertIn("<Code>MissingAuthenticationToken</Code>", body)
        for minutes in (-20, 20):
            skewed = (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                      + datetime.timedelta(minutes=minutes))
            # botocore's own signer reads the patched clock; with awscrt
            # installed it would sign with awscrt's, which does not.
            with mock.patch("botocore.auth.get_current_datetime", return_value=skewed), \
                    mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, {"v4": botocore.auth.SigV4Auth}):
                code, _ = error_code(lambda: client().describe_instances())
            self.assertEqual(code, "RequestExpired")

    def test_aws_cli(self):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ADMIN[0], AWS_SECRET_ACCESS_KEY=ADMIN[1],
                   AWS_DEFAULT_REGION=REGION)
        out = subprocess.run(["aws", "ec2", "describe-instances", "--endpoint-url", ENDPOINT,
                              "--filters", "Name=availability-zone,Values=us-west-2b",
                              "--query", "Reservations[].Instances[].InstanceId", "--output", "json"],
                             env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), ["i-0123456789abcdef0"])

    def test_instance_connect_in_the_same_run(self):
        response = client("ec2-instance-connect").send_ssh_public_key(
            InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=SEED_KEY,
            AvailabilityZone="us-west-2a")
        self.assertTrue(response["Success"])
        # A signed POST / without X-Amz-Target and with a JSON body is
        # still the Instance Connect API's UnknownOperationException.
        raw = botocore.awsrequest.AWSRequest(
            method="POST", url=ENDPOINT + "/", data=b"{}",
            headers={"Content-Type": "application/x-amz-json-1.1"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*ADMIN),
                                "ec2-instance-connect", REGION).add_auth(raw)
        url = urllib.parse.urlparse(ENDPOINT)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("POST", "/", body=raw.body, headers=dict(raw.headers.items()))
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        self.assertEqual(reply.status, 400)
        self.assertEqual(json.loads(body)["__type"], "UnknownOperationException")

    def test_audited(self):
        response = client().describe_instances(InstanceIds=["i-abcd1234"])
        request_id = response["ResponseMetadata"]["RequestId"]
        error_code(lambda: client(creds=PUSHER).describe_instances())
        with open(os.path.join(DATA_DIR, "audit.log")) as f:
            events = [json.loads(line) for line in f]
        ec2 = [e for e in events if e.get("eventSource") == "ec2.amazonaws.com"]
        allowed = [e for e in ec2 if e.get("requestID") == request_id]
        self.assertEqual(len(allowed), 1, ec2)
        self.assertEqual(allowed[0]["eventName"], "DescribeInstances")
        self.assertNotIn("errorCode", allowed[0])
        self.assertTrue(allowed[0]["readOnly"])
        self.assertEqual(allowed[0]["requestParameters"]["instancesSet"]["items"],
                         [{"instanceId": "i-abcd1234"}])
        self.assertEqual(allowed[0]["userIdentity"]["arn"], "arn:aws:iam::111122223333:user/admin")
        refused = [e for e in ec2 if e.get("errorCode") == "UnauthorizedOperation"]
        self.assertTrue(refused)
        self.assertEqual(refused[-1]["userIdentity"]["arn"], "arn:aws:iam::111122223333:user/pusher")


if __name__ == "__main__":
    unittest.main(verbosity=2)
