"""usage: eice_open_tunnel.py [--region R] [--profile P] [--debug]
       (--instance-id ID | --private-ip-address IP)
       [--instance-connect-endpoint-id EICE] [--instance-connect-endpoint-dns-name DNS]
       [--remote-port N] [--max-tunnel-duration S]
       [--local-port N] [--max-websocket-connections N]
       test-only: [--expires-in S] [--clock-skew S] [--tamper-signature]
                  [--print-url] [--connect-port N]

A TEST PEER, not a product: what the AWS CLI v2's
`aws ec2-instance-connect open-tunnel` does on the wire and on stdio, for
testing eic's EC2 Instance Connect Endpoint server without the CLI v2 (which
is not on PyPI). Written from reading aws/aws-cli tag 2.36.7 (commit
73fb33bb171ace3e9eaa03308f76e5de50c21393; the v2 branch is the same):

  awscli/customizations/ec2instanceconnect/opentunnel.py   (argument checks,
      the ec2 client, instance and endpoint look-up)
  awscli/customizations/ec2instanceconnect/eicefetcher.py  (endpoint look-up)
  awscli/customizations/ec2instanceconnect/eicesigner.py   (the presigned URL)
  awscli/customizations/ec2instanceconnect/websocket.py    (awscrt websocket,
      stdio and --local-port relays, close codes)
  awscli/clidriver.py, errorhandler.py, errorformat.py, logger.py  (how errors
      and log lines reach stderr, exit codes 252/253/255)

That CLI release pins awscrt==0.36.0 (pyproject.toml, CLI 2.36.2 .. 2.36.7);
run this with the same: python3 -m pip install 'awscrt==0.36.0'.

What it does, as the CLI does it:
- credentials and region come from a botocore session (environment,
  profiles, --profile, --region); an `ec2` client is created with the region
  but NOT with --endpoint-url (the CLI does not pass it on: only
  AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL move it), so no region → exit 253;
- without --private-ip-address: DescribeInstances(InstanceIds=[id]) →
  PrivateIpAddress, else Ipv6Address; without the DNS name:
  DescribeInstanceConnectEndpoints (by id, else by the instance's VPC,
  preferring its subnet), DnsName or, with use_fips_endpoint, FipsDnsName;
- the URL `wss://DNS/openTunnel?instanceConnectEndpointId=..&remotePort=..
  &privateIpAddress=..[&maxTunnelDuration=..]` (urlencode, in that order) is
  presigned by botocore's RequestSigner (SigV4QueryAuth) for the service
  model `ec2-instance-connect`, operation openTunnel, expires_in=60, header
  host=DNS. Because the URL is not https, the payload hash is SHA-256 of "".
  The auth parameters follow in the order Algorithm, Credential, Date,
  Expires, SignedHeaders[, Security-Token], Signature (the pure-Python signer
  the CLI's vendored botocore uses; see AUTH_TYPE_MAPS below);
- awscrt websocket.connect to port 443 (hard-coded) at the URL's hostname,
  handshake `GET path?query` with Host = hostname (no port) and the CLI's
  User-Agent; TLS from awscrt's default client context (the OS trust store;
  SSL_CERT_FILE / SSL_CERT_DIR honoured; AWS_CA_BUNDLE ignored), SNI =
  hostname; HTTP_PROXY / HTTPS_PROXY → CONNECT proxy unless the hostname is
  a substring of NO_PROXY;
- stdio relay: whenever stdin is readable, read1(65000) and send it as one
  BINARY frame, waiting for each send to complete. Like the CLI, stdin EOF
  does not end the tunnel: read1 then returns b'' and the CLI keeps sending
  empty BINARY frames until the server closes; a server must tolerate them;
- every incoming BINARY frame payload goes to stdout, flushed; a TEXT frame
  → "Received invalid data from server, closing websocket connection.",
  exit 255; close 1000 (or a close without a code) → exit 0; any other code
  → "aws: [ERROR]: Websocket Closure Reason: <reason>", exit 255;
- handshake refusal: the response body is logged at ERROR
  ("<time> - awscli.customizations.ec2instanceconnect.websocket - ERROR -
  <body>"), then "aws: [ERROR]: AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE: ..."
  and exit 255;
- --local-port: listen on localhost:N, one freshly presigned tunnel per TCP
  connection, at most --max-websocket-connections at once.

Test-only options (the CLI has none of these; each is off by default, and
with all of them off the requests are the CLI's):
  --expires-in S       presign with X-Amz-Expires=S instead of 60
  --clock-skew S       sign as if the clock were S seconds ahead (negative:
                       behind), to produce expired or future-dated URLs
  --tamper-signature   flip the last hex digit of X-Amz-Signature
  --print-url          print the presigned URL on stdout and exit 0
  --connect-port N     dial port N instead of 443 (Host and the signed host
                       stay the bare DNS name, as with the real CLI)
"""
import argparse
import datetime
import logging
import os
import platform
import select
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Queue
from urllib.parse import urlencode, urlparse

import awscrt
import awscrt.io
import botocore.auth
import botocore.session
from awscrt import websocket
from awscrt.http import HttpProxyAuthenticationType, HttpProxyOptions
from awscrt.io import ClientTlsContext, TlsContextOptions
from awscrt.websocket import Opcode
from botocore.exceptions import NoCredentialsError, NoRegionError
from botocore.signers import RequestSigner

CLI_VERSION = "2.36.7"
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
DEBUG_LOG_FORMAT = (
    "%(asctime)s - %(threadName)s - %(name)s - %(levelname)s - %(message)s"
)
# The CLI's logger name, so an ERROR line reads as the CLI's does.
log = logging.getLogger("awscli.customizations.ec2instanceconnect.websocket")

# The CLI's vendored botocore signs v4 and v4-query in pure Python. PyPI
# botocore swaps in awscrt's signer when awscrt is importable (it is: the
# websocket needs it), and that one emits X-Amz-SignedHeaders before
# X-Amz-Expires. Put the pure-Python classes back so the query is the CLI's.
botocore.auth.AUTH_TYPE_MAPS["v4"] = botocore.auth.SigV4Auth
botocore.auth.AUTH_TYPE_MAPS["v4-query"] = botocore.auth.SigV4QueryAuth

MAX_BYTES_PER_FRAME = 65_000
POLL_INTERVAL = 0.05
EICE_STATES = [
    "create-complete",
    "update-in-progress",
    "update-failed",
    "update-complete",
]

# The CLI's exit codes (awscli/constants.py).
PARAM_VALIDATION_ERROR_RC = 252
CONFIGURATION_ERROR_RC = 253
GENERAL_ERROR_RC = 255


class ParamError(Exception):
    """The CLI's ParamValidationError: exit 252."""


class ConfigError(Exception):
    """The CLI's ConfigurationError: exit 253."""


class TunnelError(RuntimeError):
    """The CLI's WebsocketException: exit 255."""


class InputClosed(RuntimeError):
    pass


def write_error(message):
    # awscli/errorformat.py write_error: a blank line, then the message.
    message = (message or "").strip()
    sys.stderr.write("\n")
    sys.stderr.write(f"aws: [ERROR]: {message}" if message else "aws: [ERROR]:")
    sys.stderr.write("\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- arguments


def parse_args(argv):
    p = argparse.ArgumentParser(prog="eice_open_tunnel.py", add_help=True)
    g = p.add_argument_group("AWS CLI global options")
    g.add_argument("--region")
    g.add_argument("--profile")
    g.add_argument("--debug", action="store_true")
    # Accepted and, as by the CLI's open-tunnel, not used for the ec2 client.
    g.add_argument("--endpoint-url")
    c = p.add_argument_group("open-tunnel options (as the CLI)")
    c.add_argument("--instance-id")
    c.add_argument("--instance-connect-endpoint-id")
    c.add_argument("--instance-connect-endpoint-dns-name")
    c.add_argument("--private-ip-address")
    c.add_argument("--remote-port", type=int, default=22)
    c.add_argument("--local-port", type=int)
    c.add_argument("--max-tunnel-duration", type=int)
    c.add_argument("--max-websocket-connections", type=int, default=10)
    t = p.add_argument_group("test-only options (not in the CLI)")
    t.add_argument("--expires-in", type=int, default=60)
    t.add_argument("--clock-skew", type=int, default=0)
    t.add_argument("--tamper-signature", action="store_true")
    t.add_argument("--print-url", action="store_true")
    t.add_argument("--connect-port", type=int, default=443)
    return p.parse_args(argv)


def validate(args):
    # opentunnel.py _validate_parsed_args, same order and messages.
    if not args.instance_id and not args.private_ip_address:
        raise ParamError("Specify an instance id or private ip.")
    if args.instance_connect_endpoint_dns_name and not args.instance_connect_endpoint_id:
        raise ParamError(
            "Specify an instance connect endpoint id when providing a DNS name."
        )
    if args.private_ip_address and not args.instance_connect_endpoint_id:
        raise ParamError(
            "Specify an instance connect endpoint id when providing a private ip."
        )
    if args.max_tunnel_duration is not None and (
        args.max_tunnel_duration < 1 or args.max_tunnel_duration > 3_600
    ):
        raise ParamError(
            "Invalid max connection timeout specified. Value must be greater "
            "than 1 and less than 3600."
        )
    if args.local_port is None and not args.print_url and sys.stdin.isatty():
        raise ParamError(
            "This command does not support interactive mode. You must use this "
            "command as a proxy or in listener mode. "
        )


# ------------------------------------------------------------------ session


def make_session(args):
    session = botocore.session.Session(profile=args.profile)
    if args.region:
        session.set_config_variable("region", args.region)
    return session


def cli_user_agent():
    # The vendored botocore's Session.user_agent() (legacy format, which the
    # websocket handshake sends), with the extras clidriver adds: installer
    # ("source" unless the official bundle), prompt mode, command lineage.
    # (PyPI botocore's user_agent() would add awscrt/<v>; the CLI's does not.)
    ua = (
        f"aws-cli/{CLI_VERSION} Python/{platform.python_version()} "
        f"{platform.system()}/{platform.release()}"
    )
    if os.environ.get("AWS_EXECUTION_ENV") is not None:
        ua += " exec-env/{}".format(os.environ.get("AWS_EXECUTION_ENV"))
    return ua + (
        " md/installer#source md/prompt#off"
        " md/command#ec2-instance-connect.open-tunnel"
    )


def set_logging(debug):
    # clidriver._set_logging / awscli/logger.py set_stream_logger.
    try:
        awscrt.io.init_logging(awscrt.io.LogLevel.NoLogs, "stderr")
    except RuntimeError:
        pass
    names = ["botocore", "awscli"] if debug else ["awscli"]
    for name in names:
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        h = logging.StreamHandler()
        h.setLevel(logging.DEBUG if debug else logging.ERROR)
        h.setFormatter(logging.Formatter(DEBUG_LOG_FORMAT if debug else LOG_FORMAT))
        lg.addHandler(h)
    if debug:
        awscrt.io.set_log_level(awscrt.io.LogLevel.Debug)


def lookup_instance(ec2, instance_id):
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    ip = inst.get("PrivateIpAddress") or inst.get("Ipv6Address")
    if not ip:
        raise ParamError("Unable to find any IP address on the instance to connect to.")
    return inst["VpcId"], inst["SubnetId"], ip


def lookup_endpoint(ec2, vpc_id, subnet_id, eice_id):
    # eicefetcher.py get_available_instance_connect_endpoint.
    state = {"Name": "state", "Values": list(EICE_STATES)}
    if eice_id:
        found = ec2.describe_instance_connect_endpoints(
            Filters=[state], InstanceConnectEndpointIds=[eice_id]
        )["InstanceConnectEndpoints"]
        if found:
            return found[0]
        raise ParamError(
            f"There are no available instance connect endpoints with {eice_id}"
        )
    seen = []
    pages = ec2.get_paginator("describe_instance_connect_endpoints").paginate(
        Filters=[state, {"Name": "vpc-id", "Values": [vpc_id]}]
    )
    for page in pages:
        for eice in page["InstanceConnectEndpoints"]:
            if eice["SubnetId"] == subnet_id:
                return eice
        seen += page["InstanceConnectEndpoints"]
    if seen:
        return seen[0]
    raise ParamError("There are no available instance connect endpoints.")


def endpoint_dns_name(eice, fips):
    if not fips:
        return eice["DnsName"]
    if eice.get("FipsDnsName"):
        return eice["FipsDnsName"]
    raise ConfigError("Unable to find FIPS Endpoint")


# ---------------------------------------------------------------- presigning


class Presigner:
    """eicesigner.py InstanceConnectEndpointRequestSigner, plus test knobs."""

    def __init__(self, session, args, dns_name, eice_id, private_ip):
        model = session.get_service_model("ec2-instance-connect")
        self._signer = RequestSigner(
            model.service_id,
            session.get_config_variable("region"),
            model.signing_name,
            model.signature_version,
            session.get_credentials(),
            session.get_component("event_emitter"),
        )
        self.dns_name = dns_name
        self.eice_id = eice_id
        self.remote_port = args.remote_port
        self.private_ip = private_ip
        self.max_tunnel_duration = args.max_tunnel_duration
        self.expires_in = args.expires_in
        self.clock_skew = args.clock_skew
        self.tamper = args.tamper_signature

    def url(self):
        params = {
            "instanceConnectEndpointId": self.eice_id,
            "remotePort": self.remote_port,
            "privateIpAddress": self.private_ip,
        }
        if self.max_tunnel_duration:
            params["maxTunnelDuration"] = self.max_tunnel_duration
        request_dict = {
            "url": f"wss://{self.dns_name}/openTunnel?{urlencode(params)}",
            "body": {},
            "headers": {"host": self.dns_name},
            "method": "GET",
            "query_string": "",
            "url_path": "/",
            "context": {},
        }
        real_now = botocore.auth.get_current_datetime
        if self.clock_skew:
            skew = datetime.timedelta(seconds=self.clock_skew)
            botocore.auth.get_current_datetime = lambda: real_now() + skew
        try:
            url = self._signer.generate_presigned_url(
                request_dict=request_dict,
                operation_name="openTunnel",
                expires_in=self.expires_in,
            )
        finally:
            botocore.auth.get_current_datetime = real_now
        if self.tamper:
            url = tamper_signature(url)
        return url


def tamper_signature(url):
    key = "X-Amz-Signature="
    at = url.index(key) + len(key)
    end = url.find("&", at)
    end = len(url) if end < 0 else end
    last = url[end - 1]
    flipped = "0" if last != "0" else "1"
    return url[: end - 1] + flipped + url[end:]


# ------------------------------------------------------------------ the relay


class StdioIO:
    def has_data_to_read(self):
        readable, _, _ = select.select([sys.stdin], [], [], POLL_INTERVAL)
        return bool(readable)

    def read(self, amt):
        return sys.stdin.buffer.read1(amt)

    def write(self, data):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    def close(self):
        pass


class SocketIO:
    def __init__(self, conn):
        self.conn = conn

    def has_data_to_read(self):
        return True

    def read(self, amt):
        data = self.conn.recv(amt)
        if not data:
            raise InputClosed()
        return data

    def write(self, data):
        self.conn.sendall(data)

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


class Tunnel:
    """websocket.py Websocket: one websocket and the io it relays."""

    def __init__(self, io, tunnel_id, connect_port):
        self.io = io
        self.tunnel_id = tunnel_id
        self.connect_port = connect_port
        self.exception = None
        self._ws = None
        self._connected = threading.Event()
        self._shutdown = threading.Event()
        self._sent = Queue()
        self._close_payload = bytearray()
        self._tls = ClientTlsContext(TlsContextOptions()).new_connection_options()

    def connect(self, url, user_agent):
        parsed = urlparse(url)
        request = websocket.create_handshake_request(
            host=parsed.hostname, path=parsed.path + "?" + parsed.query
        )
        if user_agent:
            request.headers.set("User-Agent", user_agent)
        proxy = None
        proxy_url = os.environ.get("HTTP_PROXY") or os.environ.get("HTTPS_PROXY")
        if proxy_url and parsed.hostname not in os.environ.get("NO_PROXY", ""):
            pp = urlparse(proxy_url)
            log.debug(f"Using the following proxy: {pp.hostname}")
            proxy = HttpProxyOptions(
                host_name=pp.hostname,
                port=pp.port,
                auth_type=HttpProxyAuthenticationType.Basic,
                auth_username=pp.username or None,
                auth_password=pp.password or None,
            )
        self._tls.set_server_name(parsed.hostname)
        websocket.connect(
            host=parsed.hostname,
            handshake_request=request,
            port=self.connect_port,
            tls_connection_options=self._tls,
            proxy_options=proxy,
            on_connection_setup=self._on_setup,
            on_connection_shutdown=self._on_shutdown,
            on_incoming_frame_payload=self._on_payload,
            on_incoming_frame_complete=self._on_frame_complete,
        )
        self._connected.wait()
        if not self._ws:
            self.close()
            raise self.exception

    def relay(self):
        try:
            self._pump_input()
        finally:
            self.close()
        if self.exception:
            raise self.exception

    def close(self):
        if self._ws:
            self._ws.close()
        self.io.close()
        self._shutdown.set()

    def _pump_input(self):
        data = b""
        while not self._shutdown.is_set():
            if not self.io.has_data_to_read():
                time.sleep(POLL_INTERVAL)
                continue
            try:
                data = self.io.read(MAX_BYTES_PER_FRAME)
            except InputClosed:
                # As in the CLI, the send below still runs, with the previous
                # read's data, on the websocket just closed; it fails with
                # CLOSE_FRAME_SENT and the loop ends.
                log.debug("Input closed. Shutting down websocket.")
                self.close()
            try:
                self._ws.send_frame(
                    opcode=Opcode.BINARY, payload=data, on_complete=self._sent.put
                )
                self._sent.get()
            except RuntimeError as e:
                expected = (
                    "AWS_ERROR_HTTP_WEBSOCKET_CLOSE_FRAME_SENT",
                    "AWS_ERROR_HTTP_CONNECTION_CLOSED",
                )
                if any(code in str(e.args) for code in expected):
                    log.debug(f"Received exception when sending websocket frame: {e.args}")
                    self.close()
                else:
                    raise

    def _on_setup(self, data):
        for name, value in data.handshake_response_headers or []:
            if name.lower() == "x-amzn-requestid":
                log.debug(f"OpenTunnel RequestId: {value}")
                break
        if data.exception:
            if data.handshake_response_status:
                log.debug(f"Status code: {data.handshake_response_status}")
            if data.handshake_response_body:
                log.error(data.handshake_response_body.decode("utf-8"))
            self.exception = data.exception
        self._ws = data.websocket
        self._connected.set()

    def _on_payload(self, data):
        opcode = data.frame.opcode
        if not opcode.is_data_frame():
            if opcode == Opcode.CLOSE and data.data:
                self._close_payload += data.data
            return
        if opcode == Opcode.TEXT:
            self.exception = TunnelError(
                "Received invalid data from server, closing websocket connection."
            )
            self.close()
            return
        self.io.write(data.data)

    def _on_frame_complete(self, data):
        if data.frame.opcode != Opcode.CLOSE or data.exception is not None:
            return
        if self._close_payload:
            code = struct.unpack(">H", bytes(self._close_payload[0:2]))[0]
            if code != 1000:
                log.debug("Shutdown code: %s", str(code))
                reason = bytes(self._close_payload[2:]).decode("utf-8")
                self.exception = TunnelError(f"Websocket Closure Reason: {reason}")
        self.close()

    def _on_shutdown(self, data):
        if data.exception:
            self.exception = data.exception
        self.close()


def run_stdio(presigner, user_agent, connect_port):
    tunnel = Tunnel(StdioIO(), None, connect_port)
    tunnel.connect(presigner.url(), user_agent)
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(tunnel.relay).result()
        finally:
            tunnel.close()


def run_listener(presigner, user_agent, args):
    # websocket.py WebsocketManager._listen_on_port; runs until killed.
    limit = args.max_websocket_connections
    pool = ThreadPoolExecutor(max_workers=limit)
    inflight = []
    next_id = 1
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("localhost", args.local_port))
    srv.listen()
    print(f"Listening for connections on port {args.local_port}.", flush=True)
    try:
        while True:
            readable, _, _ = select.select([srv], [], [], 0.1)
            if not readable:
                continue
            conn, _ = srv.accept()
            inflight = [(f, t) for f, t in inflight if not f.done()]
            if len(inflight) >= limit:
                print(
                    f"Max websocket connections {limit} have been reached, "
                    f"closing incoming connection.",
                    flush=True,
                )
                conn.close()
                continue
            tid = next_id
            next_id += 1
            print(f"[{tid}] Accepted new tcp connection, opening websocket tunnel.", flush=True)
            tunnel = Tunnel(SocketIO(conn), tid, args.connect_port)
            # As in the CLI, a failed connect here ends the listener.
            tunnel.connect(presigner.url(), user_agent)
            future = pool.submit(tunnel.relay)
            future.add_done_callback(_closed_printer(tunnel))
            inflight.append((future, tunnel))
    finally:
        for _, tunnel in inflight:
            tunnel.close()
        srv.close()
        pool.shutdown()


def _closed_printer(tunnel):
    def done(future):
        if future.exception():
            log.error(
                f"[{tunnel.tunnel_id}] Encountered error with websocket: "
                f"{future.exception().args}"
            )
        print(f"[{tunnel.tunnel_id}] Closing tcp connection.", flush=True)

    return done


# ---------------------------------------------------------------------- main


def run(args):
    validate(args)
    session = make_session(args)
    # The CLI creates this client even when it does not call it, so a missing
    # region fails here (NoRegionError → 253). No endpoint_url, like the CLI.
    ec2 = session.create_client("ec2", region_name=args.region)
    vpc_id = subnet_id = None
    private_ip = args.private_ip_address
    if not private_ip:
        vpc_id, subnet_id, private_ip = lookup_instance(ec2, args.instance_id)
    eice_id = args.instance_connect_endpoint_id
    dns_name = args.instance_connect_endpoint_dns_name
    if not dns_name:
        eice = lookup_endpoint(ec2, vpc_id, subnet_id, eice_id)
        eice_id = eice["InstanceConnectEndpointId"]
        dns_name = endpoint_dns_name(eice, session.get_config_variable("use_fips_endpoint"))
    log.debug(f"Using endpoint dns: {dns_name}")
    presigner = Presigner(session, args, dns_name, eice_id, private_ip)
    if args.print_url:
        print(presigner.url(), flush=True)
        return 0
    user_agent = cli_user_agent()
    if args.local_port:
        run_listener(presigner, user_agent, args)
    else:
        run_stdio(presigner, user_agent, args.connect_port)
    return 0


def main(argv):
    args = parse_args(argv)
    set_logging(args.debug)
    try:
        return run(args)
    except ParamError as e:
        write_error(str(e))
        return PARAM_VALIDATION_ERROR_RC
    except ConfigError as e:
        write_error(str(e))
        return CONFIGURATION_ERROR_RC
    except NoRegionError as e:
        write_error(f'{e} You can also configure your region by running "aws configure".')
        return CONFIGURATION_ERROR_RC
    except NoCredentialsError as e:
        write_error(f'{e}. You can configure credentials by running "aws login".')
        return CONFIGURATION_ERROR_RC
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
    except Exception as e:  # GeneralExceptionHandler
        logging.getLogger("awscli.clidriver").debug("Exception caught", exc_info=True)
        write_error(str(e))
        return GENERAL_ERROR_RC


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
