"""Pushes 50 keys from 10 threads with boto3 and records each acknowledged
request id in $EIC_DATA_DIR/pushed.txt (only after its 200 arrived)."""
import os
import threading

import boto3
from botocore.config import Config

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 durable"
out = open(os.path.join(os.environ["EIC_DATA_DIR"], "pushed.txt"), "w")
lock = threading.Lock()


def worker(n):
    c = boto3.client("ec2-instance-connect", region_name="us-west-2", endpoint_url=os.environ["EIC_ENDPOINT"],
                     aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                     config=Config(retries={"max_attempts": 1}))
    for i in range(5):
        r = c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser=f"user{n}", SSHPublicKey=ED25519)
        assert r["Success"] is True
        with lock:
            out.write(r["RequestId"] + "\n")
            out.flush()


threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.close()
