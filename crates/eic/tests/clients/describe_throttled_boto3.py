"""DescribeInstances and DescribeInstanceHostKeys draw on the principal's
bucket, shared with pushes, against a server whose bucket holds 3 tokens
(tests/api_describe_instances.rs)."""
import os
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["EIC_ENDPOINT"]
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SEED_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t"


def client(service):
    return boto3.client(service, region_name="us-west-2", endpoint_url=ENDPOINT,
                        aws_access_key_id=ADMIN[0], aws_secret_access_key=ADMIN[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def describe_host_keys():
    """DescribeInstanceHostKeys signed by botocore's SigV4: (status, body)."""
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=ENDPOINT + "/",
        data=b"Action=DescribeInstanceHostKeys&Version=2016-11-15&InstanceId.1=i-abcd1234",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*ADMIN), "ec2", "us-west-2").add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=prepared.body,
                                  headers=dict(prepared.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Throttled(unittest.TestCase):
    def test_request_limit_exceeded(self):
        ec2 = client("ec2")
        ec2.describe_instances(InstanceIds=["i-abcd1234"])
        client("ec2-instance-connect").send_ssh_public_key(
            InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=SEED_KEY)
        status, body = describe_host_keys()
        self.assertEqual(status, 200, body)
        with self.assertRaises(ClientError) as raised:
            ec2.describe_instances(InstanceIds=["i-abcd1234"])
        self.assertEqual(raised.exception.response["Error"]["Code"], "RequestLimitExceeded")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)
        status, body = describe_host_keys()
        self.assertEqual(status, 503, body)
        self.assertIn("<Code>RequestLimitExceeded</Code>", body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
