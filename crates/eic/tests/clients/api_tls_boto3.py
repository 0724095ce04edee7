"""The API over HTTPS with real clients: boto3 trusting the test's CA, boto3
with the system trust store (must refuse the server), plain HTTP against
the TLS port (must fail without harming the server), an aws:SecureTransport
policy, and the AWS CLI with --ca-bundle.

env: EIC_ENDPOINT (https://...), EIC_CA (PEM), EIC_KEY_FILE (public key)"""
import json
import os
import subprocess
import sys

import boto3
import botocore.exceptions
from botocore.config import Config

endpoint = os.environ["EIC_ENDPOINT"]
ca = os.environ["EIC_CA"]
key = open(os.environ["EIC_KEY_FILE"]).read()
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SECURE_ONLY = ("AKIDSECUREONLYEXAMPLE", "secureOnlySecret/EXAMPLE000000000000000000")


def client(creds, url=endpoint, verify=ca):
    return boto3.client("ec2-instance-connect", region_name="us-west-2", endpoint_url=url,
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1], verify=verify,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5))


r = client(ADMIN).send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=key)
assert r["Success"] is True, r
print("boto3 over https with the CA: ok", r["RequestId"])

# The system trust store does not hold the test CA: the client must refuse.
try:
    client(ADMIN, verify=True).send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=key)
    raise AssertionError("an untrusted certificate was accepted")
except botocore.exceptions.SSLError:
    print("untrusted certificate refused by the client: ok")

# Plain HTTP to the TLS port: no answer a client could mistake for success.
plain = endpoint.replace("https://", "http://")
try:
    client(ADMIN, url=plain).send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=key)
    raise AssertionError("plain HTTP was answered on the TLS port")
except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as e:
    print("plain HTTP on the TLS port fails:", type(e).__name__)

# aws:SecureTransport is true over TLS, so the secure-only principal may push.
r = client(SECURE_ONLY).send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=key)
assert r["Success"] is True, r
print("aws:SecureTransport true over https: ok")

# The AWS CLI, trusting the CA with --ca-bundle.
env = dict(os.environ, AWS_ACCESS_KEY_ID=ADMIN[0], AWS_SECRET_ACCESS_KEY=ADMIN[1], AWS_DEFAULT_REGION="us-west-2",
           AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
out = subprocess.run(["aws", "ec2-instance-connect", "send-ssh-public-key", "--endpoint-url", endpoint,
                      "--ca-bundle", ca, "--instance-id", "i-abcd1234", "--instance-os-user", "ec2-user",
                      "--ssh-public-key", key, "--output", "json"], env=env, capture_output=True, text=True)
assert out.returncode == 0, out.stderr
assert json.loads(out.stdout)["Success"] is True
print("aws cli over https with --ca-bundle: ok")
sys.exit(0)
