"""An enrolled instance as AWS's clients see it: boto3's ec2 client finds it
by id and by its tags, and its tags feed IAM conditions exactly as a
configured instance's do (alice may push only to instances tagged Team=dev).

env: EIC_ENDPOINT, EIC_INSTANCE (the enrolled id), EIC_EXPECT_ALICE
(denied | allowed)."""
import datetime
import os

import boto3
from botocore.config import Config

endpoint = os.environ["EIC_ENDPOINT"]
instance = os.environ["EIC_INSTANCE"]
conf = Config(retries={"max_attempts": 1})


def client(service, key, secret):
    return boto3.client(service, region_name="us-west-2", endpoint_url=endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=conf)


ec2 = client("ec2", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
found = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
assert len(found) == 1 and len(found[0]["Instances"]) == 1, found
i = found[0]["Instances"][0]
assert i["InstanceId"] == instance, i
assert i["State"] == {"Code": 16, "Name": "running"}, i["State"]
assert i["PrivateIpAddress"] == "127.0.0.1", i
assert i["InstanceType"] == "m5.large", i
assert found[0]["OwnerId"] == "111122223333", found[0]
assert datetime.datetime.now(datetime.timezone.utc) - i["LaunchTime"] < datetime.timedelta(minutes=10), i
tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
assert tags.get("env") == "test", tags

by_tag = ec2.describe_instances(Filters=[{"Name": "tag:env", "Values": ["test"]}])["Reservations"]
ids = {x["InstanceId"] for r in by_tag for x in r["Instances"]}
assert instance in ids and "i-abcd1234" not in ids, ids

# Another account's principal does not see it, by id or otherwise.
bob = client("ec2", "AKIDBOBEXAMPLE", "bobSecretKey/EXAMPLE00000000000000000000000")
try:
    bob.describe_instances(InstanceIds=[instance])
    raise AssertionError("bob sees another account's enrolled instance")
except bob.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidInstanceID.NotFound", e.response

alice = client("ec2-instance-connect", "AKIDALICEEXAMPLE", "aliceSecretKey/EXAMPLE0000000000000000000")
key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 alice"
expect = os.environ["EIC_EXPECT_ALICE"]
try:
    alice.send_ssh_public_key(InstanceId=instance, InstanceOSUser="ec2-user", SSHPublicKey=key)
    outcome = "allowed"
except alice.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
    outcome = "denied"
assert outcome == expect, (outcome, expect)
print("fleet boto3 ok:", instance, expect)
