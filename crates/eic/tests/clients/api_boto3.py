"""boto3 and botocore against a running eic server (EIC_ENDPOINT).

Every modeled error and every authentication error is reached through a
real AWS client; raw requests are signed with botocore's own SigV4 signer.
"""
import datetime
import http.client
import json
import os
import subprocess
import tempfile
import unittest
import urllib.parse
import uuid
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore import UNSIGNED
from botocore.config import Config

ENDPOINT = os.environ["EIC_ENDPOINT"]
REGION = "us-west-2"
ADMIN = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ALICE = ("AKIDALICEEXAMPLE", "aliceSecretKey/EXAMPLE0000000000000000000")
BOB = ("AKIDBOBEXAMPLE", "bobSecretKey/EXAMPLE00000000000000000000000")
INACTIVE = ("AKIDINACTIVEEXAMPLE", "inactiveSecret/EXAMPLE000000000000000")
SEED_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7xNF7StwhrDtiV7IdT5fDqbRyGw/szPj3xGkNTVoElCZ2dDFb2qYZ1WLIpZwj/UhO9l2mgfjR56UojjQut5Jvn2KZ1OcyrNO0J83kCaJCV7JoVbXY79FBMUccYNY45zmv9+1FMCfY6i2jdIhwR6+yLk8oubL8lIPyq7X+6b9S0yKCkB7Peml1DvghlybpAIUrC9vofHt6XP4V1i0bImw1IlljQS+DUmULRFSccATDscCX9ajnj7Crhm0HAZC0tBPXpFdHkPwL3yzYo546SCS9LKEwz62ymxxbL9k7h09t"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 test@eic"
RSA_1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC43OO8nEsDLG3+vP6qfmsw3ivPfEsyunsHlIxc5IqYxyo6y89L+1pnLx5/kYnIigJ62CZTqsWMjMpEnPqTIV5NbRG8ZxHENHWrJgPx5CH9hdiQCfj5HjcF+/jRoPtBkF809e6g6ZSQn1SQM9dKu0uh9oWpYMplT1BsZSjmfnWEYw=="
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBF9Ut6z9yOCWBbzHsEMN9c5Cq20EaPr/OFHhpOAgLPhfEf0SEtF8jx9+ekPii9K0EHIqZwvGGOzOgqGMo2H+2/c="


def client(creds=ADMIN, region=REGION, **config):
    return boto3.client(
        "ec2-instance-connect",
        region_name=region,
        endpoint_url=ENDPOINT,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def raw(body, target="AWSEC2InstanceConnectService.SendSSHPublicKey", creds=ADMIN,
        service="ec2-instance-connect", region=REGION, headers=None, sign=True, tamper=None):
    """A request signed by botocore's SigV4 signer, sent as given; `tamper`
    changes the list of (name, value) headers after signing."""
    data = body if isinstance(body, bytes) else body.encode()
    hdrs = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        hdrs["X-Amz-Target"] = target
    hdrs.update(headers or {})
    req = botocore.awsrequest.AWSRequest(method="POST", url=ENDPOINT + "/", data=data, headers=hdrs)
    if sign:
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*creds), service, region).add_auth(req)
    prepared = req.prepare()
    sent = list(prepared.headers.items())
    if tamper:
        sent = tamper(sent)
    url = urllib.parse.urlparse(ENDPOINT)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
    if not any(name.lower() == "host" for name, _ in sent):
        conn.putheader("Host", url.netloc)
    for name, value in sent:
        conn.putheader(name, value)
    conn.endheaders(data)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(payload)


class Success(unittest.TestCase):
    def test_seed_example_verbatim(self):
        response = client().send_ssh_public_key(
            # The zone where the instance was launched
            AvailabilityZone="us-west-2a",
            # The instance ID to publish the key to.
            InstanceId="i-abcd1234",
            # This should be the user you wish to be when ssh-ing to the instance (eg, ec2-user@[instance IP])
            InstanceOSUser="ec2-user",
            # This should be in standard OpenSSH format (ssh-rsa [key body])
            SSHPublicKey=SEED_KEY,
        )
        self.assertIs(response["Success"], True)
        uuid.UUID(response["RequestId"])
        self.assertEqual(response["RequestId"], response["ResponseMetadata"]["RequestId"])
        self.assertEqual(response["ResponseMetadata"]["HTTPHeaders"]["content-type"], "application/x-amz-json-1.1")

    def test_key_is_stored_for_sixty_seconds_under_instance_and_user(self):
        response = client().send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ssm-user", SSHPublicKey=ED25519 + "\n")
        out = subprocess.run([os.environ["EIC_BIN"], "keys", "list", "--data-dir", os.environ["EIC_DATA_DIR"], "--instance-id", "i-abcd1234"],
                             check=True, capture_output=True, text=True).stdout
        keys = [json.loads(l) for l in out.splitlines()]
        mine = [k for k in keys if k["request_id"] == response["RequestId"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["target"], {"OsUser": "ssm-user"})
        self.assertEqual(mine[0]["caller"], "arn:aws:iam::111122223333:user/admin")
        self.assertEqual(mine[0]["expires_at_ms"] - mine[0]["pushed_at_ms"], 60_000)
        self.assertNotIn("AAAAC3NzaC1lZDI1NTE5", out, "key material is never listed")

    def test_serial_console_push_defaults_to_port_0(self):
        c = client()
        self.assertTrue(c.send_serial_console_ssh_public_key(InstanceId="i-0123456789abcdef0", SSHPublicKey=ED25519)["Success"])
        self.assertTrue(c.send_serial_console_ssh_public_key(InstanceId="i-0123456789abcdef0", SerialPort=0, SSHPublicKey=SEED_KEY)["Success"])

    def test_rsa_4096_and_unknown_members(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "4096", "-N", "", "-f", f"{d}/k"], check=True)
            key = open(f"{d}/k.pub").read()
        self.assertTrue(client().send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=key)["Success"])
        status, _, body = raw(json.dumps({"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": ED25519, "NewMember": [1]}))
        self.assertEqual((status, body["Success"]), (200, True))


class ModeledErrors(unittest.TestCase):
    def assertError(self, call, code, status, message_part=None):
        with self.assertRaises(Exception) as ctx:
            call()
        err = ctx.exception
        self.assertEqual(err.response["Error"]["Code"], code, err.response)
        self.assertEqual(err.response["ResponseMetadata"]["HTTPStatusCode"], status)
        self.assertEqual(err.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"], code)
        uuid.UUID(err.response["ResponseMetadata"]["RequestId"])
        if message_part:
            self.assertIn(message_part, err.response["Error"]["Message"])
        return err

    def ssh(self, c=None, **kw):
        args = {"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": ED25519}
        args.update(kw)
        return lambda: (c or client()).send_ssh_public_key(**args)

    def serial(self, c=None, **kw):
        args = {"InstanceId": "i-0123456789abcdef0", "SSHPublicKey": ED25519}
        args.update(kw)
        return lambda: (c or client()).send_serial_console_ssh_public_key(**args)

    def test_not_found(self):
        c = client()
        err = self.assertError(self.ssh(InstanceId="i-0fffffffffffffff9"), "EC2InstanceNotFoundException", 404)
        self.assertIsInstance(err, c.exceptions.EC2InstanceNotFoundException)
        # Another account's instance looks exactly like a missing one.
        self.assertError(self.ssh(InstanceId="i-0eeeeeeeeeeeeeee5"), "EC2InstanceNotFoundException", 404)
        self.assertError(self.ssh(AvailabilityZone="us-west-2b"), "EC2InstanceNotFoundException", 404, "us-west-2b")
        self.assertError(self.serial(InstanceId="i-0fffffffffffffff9"), "EC2InstanceNotFoundException", 404)

    def test_state_invalid(self):
        for instance, state in [("i-0aaaaaaaaaaaaaaa1", "stopped"), ("i-0bbbbbbbbbbbbbbb2", "terminated"), ("i-0ddddddddddddddd4", "pending")]:
            self.assertError(self.ssh(InstanceId=instance), "EC2InstanceStateInvalidException", 400, state)

    def test_unavailable(self):
        self.assertError(self.ssh(InstanceId="i-0fffffffffffffff6"), "EC2InstanceUnavailableException", 503)

    def test_serial_type_invalid(self):
        self.assertError(self.serial(InstanceId="i-0ccccccccccccccc3"), "EC2InstanceTypeInvalidException", 400, "t2.micro")

    def test_serial_access_disabled(self):
        self.assertError(self.serial(c=client(BOB), InstanceId="i-0eeeeeeeeeeeeeee5"), "SerialConsoleAccessDisabledException", 403)
        # bob's account may still use SendSSHPublicKey.
        self.assertTrue(self.ssh(c=client(BOB), InstanceId="i-0eeeeeeeeeeeeeee5")()["Success"])

    def test_auth_exception_for_inactive_key(self):
        self.assertError(self.ssh(c=client(INACTIVE)), "AuthException", 403)

    def test_invalid_args(self):
        self.assertError(self.serial(SerialPort=1), "InvalidArgsException", 400, "SerialPort")
        self.assertError(self.ssh(InstanceOSUser="123"), "InvalidArgsException", 400, "InstanceOSUser")
        self.assertError(self.ssh(InstanceOSUser="a" * 33), "InvalidArgsException", 400, "InstanceOSUser")
        self.assertError(self.ssh(InstanceId="i-ABCD1234"), "InvalidArgsException", 400, "InstanceId")
        self.assertError(self.ssh(AvailabilityZone="use1-az1"), "InvalidArgsException", 400, "AvailabilityZone")
        self.assertError(self.ssh(SSHPublicKey="x" * 4097), "InvalidArgsException", 400, "SSHPublicKey")
        self.assertError(self.ssh(SSHPublicKey=RSA_1024), "InvalidArgsException", 400, "1024")
        self.assertError(self.ssh(SSHPublicKey=ECDSA), "InvalidArgsException", 400, "ecdsa")
        self.assertError(self.ssh(SSHPublicKey="ssh-rsa " + "A" * 100), "InvalidArgsException", 400, "SSHPublicKey")
        # Missing members, which botocore would refuse locally, sent raw.
        status, headers, body = raw(json.dumps({"InstanceId": "i-abcd1234"}))
        self.assertEqual((status, body["__type"]), (400, "InvalidArgsException"))
        self.assertIn("InstanceOSUser", body["Message"])


class ProtocolErrors(unittest.TestCase):
    def test_unknown_or_missing_target(self):
        for target in ["AWSEC2InstanceConnectService.DescribeInstances", None]:
            status, headers, body = raw("{}", target=target)
            self.assertEqual((status, body["__type"], headers["x-amzn-errortype"]), (400, "UnknownOperationException", "UnknownOperationException"))

    def test_malformed_json_and_wrong_types(self):
        for payload in ["{", "[1]", '{"InstanceId": 5, "InstanceOSUser": "ec2-user"}']:
            status, _, body = raw(payload)
            self.assertEqual((status, body["__type"]), (400, "SerializationException"), payload)

    def test_oversized_body(self):
        status, _, body = raw(json.dumps({"InstanceId": "i-abcd1234", "Padding": "x" * 40000}))
        self.assertEqual((status, body["__type"]), (413, "SerializationException"))


class AuthenticationErrors(unittest.TestCase):
    def assertCode(self, call, code):
        with self.assertRaises(Exception) as ctx:
            call()
        self.assertEqual(ctx.exception.response["Error"]["Code"], code)
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        return ctx.exception.response["Error"]["Message"]

    def push(self, c):
        return lambda: c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)

    def test_unknown_access_key(self):
        msg = self.assertCode(self.push(client(("AKIDUNKNOWNEXAMPLE", ADMIN[1]))), "UnrecognizedClientException")
        self.assertEqual(msg, "The security token included in the request is invalid.")

    def test_wrong_secret(self):
        msg = self.assertCode(self.push(client((ADMIN[0], "wrongSecret/EXAMPLE000000000000000000000"))), "InvalidSignatureException")
        self.assertTrue(msg.startswith("The request signature we calculated does not match"), msg)

    def test_clock_outside_window(self):
        for minutes, prefix in [(-20, "Signature expired"), (20, "Signature not yet current")]:
            skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes=minutes)
            # botocore's own signer reads the patched clock; with awscrt
            # installed it would sign with awscrt's, which does not.
            with mock.patch("botocore.auth.get_current_datetime", return_value=skewed), \
                    mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, {"v4": botocore.auth.SigV4Auth}):
                msg = self.assertCode(self.push(client()), "InvalidSignatureException")
            self.assertTrue(msg.startswith(prefix), msg)

    def test_session_token_unknown(self):
        c = boto3.client("ec2-instance-connect", region_name=REGION, endpoint_url=ENDPOINT, aws_access_key_id=ADMIN[0],
                         aws_secret_access_key=ADMIN[1], aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN",
                         config=Config(retries={"max_attempts": 1}))
        self.assertCode(self.push(c), "UnrecognizedClientException")

    def test_missing_authentication(self):
        msg = self.assertCode(self.push(client(signature_version=UNSIGNED)), "MissingAuthenticationTokenException")
        self.assertEqual(msg, "Missing Authentication Token")

    def test_incomplete_signature(self):
        for header in ["AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-west-2/ec2-instance-connect/aws4_request",
                       "AWS4-HMAC-SHA256 Credential", "Bearer abc"]:
            status, _, body = raw("{}", sign=False, headers={"Authorization": header, "X-Amz-Date": "20260101T000000Z"})
            self.assertEqual((status, body["__type"]), (400, "IncompleteSignatureException"), header)

    def test_every_x_amz_header_is_signed(self):
        body = json.dumps({"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY})
        status, _, _ = raw(body)
        self.assertEqual(status, 200)
        status, _, reply = raw(body, tamper=lambda h: h + [("X-Amz-Foo", "added after signing")])
        self.assertEqual((status, reply["__type"]), (400, "InvalidSignatureException"))
        self.assertIn("'x-amz-foo' must be a 'SignedHeader'", reply["Message"])
        # A session token slipped in beside a long-term key's signature.
        status, _, reply = raw(body, tamper=lambda h: h + [("X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLE")])
        self.assertEqual((status, reply["__type"]), (400, "InvalidSignatureException"))

    def test_second_authorization_header_is_refused(self):
        body = json.dumps({"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY})

        def twice(headers):
            auth = [v for k, v in headers if k.lower() == "authorization"][0]
            return headers + [("Authorization", auth)]
        status, _, reply = raw(body, tamper=twice)
        self.assertEqual((status, reply["__type"]), (400, "IncompleteSignatureException"))

    def test_uppercase_signature_is_refused(self):
        body = json.dumps({"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": SEED_KEY})

        def upper(headers):
            def shout(v):
                head, sig = v.split("Signature=")
                return head + "Signature=" + sig.upper()
            return [(k, shout(v) if k.lower() == "authorization" else v) for k, v in headers]
        status, _, reply = raw(body, tamper=upper)
        self.assertEqual((status, reply["__type"]), (400, "IncompleteSignatureException"))

    def test_scope_for_another_service_or_region(self):
        status, _, body = raw("{}", service="dynamodb")
        self.assertEqual((status, body["__type"]), (400, "InvalidSignatureException"))
        self.assertIn("correct service: 'ec2-instance-connect'", body["Message"])
        msg = self.assertCode(self.push(client(region="eu-west-1")), "InvalidSignatureException")
        self.assertIn("valid region, not 'eu-west-1'", msg)


class Authorization(unittest.TestCase):
    """alice may push only as ec2-user, only to instances tagged Team=dev."""

    def denied(self, call, resource, action="SendSSHPublicKey"):
        with self.assertRaises(Exception) as ctx:
            call()
        err = ctx.exception.response
        self.assertEqual(err["Error"]["Code"], "AccessDeniedException")
        self.assertEqual(
            err["Error"]["Message"],
            f"User: arn:aws:iam::111122223333:user/alice is not authorized to perform: ec2-instance-connect:{action} "
            f"on resource: arn:aws:ec2:us-west-2:111122223333:instance/{resource} "
            f"because no identity-based policy allows the ec2-instance-connect:{action} action")

    def test_alice_as_ec2_user_on_a_dev_instance(self):
        c = client(ALICE)
        self.assertTrue(c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="ec2-user", SSHPublicKey=ED25519)["Success"])

    def test_alice_denied_elsewhere(self):
        c = client(ALICE)
        self.denied(lambda: c.send_ssh_public_key(InstanceId="i-abcd1234", InstanceOSUser="root", SSHPublicKey=ED25519), "i-abcd1234")
        self.denied(lambda: c.send_ssh_public_key(InstanceId="i-0123456789abcdef0", InstanceOSUser="ec2-user", SSHPublicKey=ED25519), "i-0123456789abcdef0")
        self.denied(lambda: c.send_serial_console_ssh_public_key(InstanceId="i-abcd1234", SSHPublicKey=ED25519), "i-abcd1234",
                    action="SendSerialConsoleSSHPublicKey")

    def test_nothing_learnt_about_instances_alice_may_not_touch(self):
        c = client(ALICE)
        # Unknown, another account's, and stopped: all the same denial, no
        # EC2InstanceNotFound or state error that would reveal anything.
        for instance in ["i-0fffffffffffffff9", "i-0eeeeeeeeeeeeeee5", "i-0aaaaaaaaaaaaaaa1"]:
            self.denied(lambda: c.send_ssh_public_key(InstanceId=instance, InstanceOSUser="ec2-user", SSHPublicKey=ED25519), instance)


class AwsCli(unittest.TestCase):
    def test_cli_send_ssh_public_key_from_file(self):
        with tempfile.TemporaryDirectory() as d:
            with open(f"{d}/key.pub", "w") as f:
                f.write(ED25519 + "\n")
            env = dict(os.environ, AWS_ACCESS_KEY_ID=ADMIN[0], AWS_SECRET_ACCESS_KEY=ADMIN[1], AWS_DEFAULT_REGION=REGION)
            out = subprocess.run(["aws", "ec2-instance-connect", "send-ssh-public-key", "--endpoint-url", ENDPOINT,
                                  "--instance-id", "i-abcd1234", "--instance-os-user", "ec2-user",
                                  "--ssh-public-key", f"file://{d}/key.pub", "--output", "json"],
                                 env=env, capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIs(json.loads(out.stdout)["Success"], True)
            out = subprocess.run(["aws", "ec2-instance-connect", "send-serial-console-ssh-public-key", "--endpoint-url", ENDPOINT,
                                  "--instance-id", "i-0ccccccccccccccc3", "--ssh-public-key", f"file://{d}/key.pub"],
                                 env=env, capture_output=True, text=True)
            self.assertEqual(out.returncode, 254 if "aws-cli/2" in subprocess.run(["aws", "--version"], capture_output=True, text=True).stdout else 255, out.stderr)
            self.assertIn("EC2InstanceTypeInvalidException", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
