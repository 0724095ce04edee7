"""usage: cli_v2_ssh.py --instance-id ID [--os-user USER] [--ssh-port PORT]
       [--connection-type direct] [--endpoint-url URL] [--region REGION]
       [--known-hosts FILE]

What the AWS CLI v2's `aws ec2-instance-connect ssh --connection-type direct`
sends and runs, for testing eic without the CLI v2 (which is not on PyPI).
It mirrors aws/aws-cli tag 2.36.7 (commit
73fb33bb171ace3e9eaa03308f76e5de50c21393),
awscli/customizations/ec2instanceconnect/ssh.py (SshCommand._run_main,
_generate_and_upload_ssh_key, _ssh, KeyManager), written from reading it:

- an `ec2` client with the global --endpoint-url and --region →
  DescribeInstances(InstanceIds=[id]), Reservations[0].Instances[0];
- direct: PublicIpAddress, else Ipv6Address, else PrivateIpAddress;
- a fresh ed25519 key (the CLI uses awscrt; `cryptography` gives the same
  key types), its public half as "ssh-ed25519 <base64>" without a comment;
- an `ec2-instance-connect` client with --region but WITHOUT the endpoint
  URL (the CLI does not pass it on), so only AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT
  or AWS_ENDPOINT_URL reach eic → SendSSHPublicKey(InstanceId,
  InstanceOSUser, SSHPublicKey), no AvailabilityZone;
- the private key written 0400 in a temporary directory, then
  `ssh -o ServerAliveInterval=5 -p PORT -i KEY USER@IP`, no remote command
  (the CLI takes none: the session's commands come on stdin); exits with
  ssh's status.

The one addition is --known-hosts: the CLI pins no host key, so a user
relies on ~/.ssh/known_hosts; this test cannot use root's, so it inserts
`-o UserKnownHostsFile=FILE -o StrictHostKeyChecking=yes -o BatchMode=yes`
before the destination, where the CLI itself inserts -L and ProxyCommand.
Errors from AWS print as the CLI prints them and exit 254, as the CLI v2
does for a service error.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import botocore.session
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--instance-id", required=True)
    p.add_argument("--os-user", default="ec2-user")
    p.add_argument("--ssh-port", type=int, default=22)
    p.add_argument("--connection-type", choices=["direct"], default="direct")
    p.add_argument("--endpoint-url")
    p.add_argument("--region")
    p.add_argument("--known-hosts")
    args = p.parse_args()
    if not re.search("^i-[0-9a-zA-Z]+$", args.instance_id):
        sys.exit("The specified instance ID is invalid.")

    session = botocore.session.get_session()
    ec2 = session.create_client("ec2", region_name=args.region, endpoint_url=args.endpoint_url)
    try:
        instance = ec2.describe_instances(InstanceIds=[args.instance_id])["Reservations"][0]["Instances"][0]
    except ClientError as e:
        print(f"\nAn error occurred ({e.response['Error']['Code']}) when calling the DescribeInstances "
              f"operation: {e.response['Error']['Message']}", file=sys.stderr)
        return 254
    ip = instance.get("PublicIpAddress") or instance.get("Ipv6Address") or instance.get("PrivateIpAddress")
    if ip is None:
        print("Unable to find any IP address on the instance to connect to.", file=sys.stderr)
        return 252

    with tempfile.TemporaryDirectory() as tmp:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        eic = session.create_client("ec2-instance-connect", region_name=args.region)
        try:
            eic.send_ssh_public_key(InstanceId=args.instance_id, InstanceOSUser=args.os_user, SSHPublicKey=public)
        except ClientError as e:
            print(f"\nAn error occurred ({e.response['Error']['Code']}) when calling the SendSSHPublicKey "
                  f"operation: {e.response['Error']['Message']}", file=sys.stderr)
            return 254
        key_file = os.path.join(tmp, "private-key")
        with open(key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                      serialization.NoEncryption()))
        os.chmod(key_file, 0o400)

        command = [shutil.which("ssh"), "-o", "ServerAliveInterval=5", "-p", str(args.ssh_port),
                   "-i", key_file, f"{args.os_user}@{ip}"]
        if args.known_hosts:
            for option in (f"UserKnownHostsFile={args.known_hosts}", "StrictHostKeyChecking=yes", "BatchMode=yes"):
                command[-1:-1] = ["-o", option]
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
