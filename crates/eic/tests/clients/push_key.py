"""usage: push_key.py INSTANCE_ID (OS_USER | --serial) PUBLIC_KEY_FILE

Pushes a key with boto3 as the admin fixture and prints the request id, or
prints the error code and exits 3."""
import os
import sys

import boto3
from botocore.config import Config

instance, target, key_file = sys.argv[1:4]
c = boto3.client("ec2-instance-connect", region_name="us-west-2", endpoint_url=os.environ["EIC_ENDPOINT"],
                 aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                 config=Config(retries={"max_attempts": 1}))
key = open(key_file).read()
try:
    if target == "--serial":
        r = c.send_serial_console_ssh_public_key(InstanceId=instance, SSHPublicKey=key)
    else:
        r = c.send_ssh_public_key(InstanceId=instance, InstanceOSUser=target, SSHPublicKey=key)
except c.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
    sys.exit(3)
assert r["Success"] is True
print(r["RequestId"])
