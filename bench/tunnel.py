"""Benchmark driver for the Instance Connect Endpoint tunnel (bench/tunnel.sh
runs it; see BENCHMARKS.md). Loopback only.

  tunnel.py rtt    DNS ECHO_PORT SERVER_PID N     round trips, direct vs tunnel
  tunnel.py idle   DNS HOLD_PORT SERVER_PID N     memory per idle tunnel

Tunnels are opened the way the CLI v2 opens them (a URL presigned by
botocore's SigV4QueryAuth for `ec2-instance-connect`, the empty payload's
hash, TLS to port 443 of the DNS name), by a minimal WebSocket client written
here on the ssl module, so no client process sits between the measurement
and the server: what is measured is eic's relay.
"""
import os
import resource
import socket
import ssl
import statistics
import struct
import sys
import threading
import time
import urllib.parse

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = "eice-0de00000000000001"
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def presigned_path(dns, port):
    query = urllib.parse.urlencode(
        {"instanceConnectEndpointId": ENDPOINT, "remotePort": port, "privateIpAddress": "127.0.0.1"}
    )
    request = AWSRequest(method="GET", url=f"wss://{dns}/openTunnel?{query}", headers={"host": dns})
    SigV4QueryAuth(CREDS, "ec2-instance-connect", "us-west-2", expires=60).add_auth(request)
    parsed = urllib.parse.urlsplit(request.url)
    return f"{parsed.path}?{parsed.query}"


def open_tunnel(context, dns, port):
    raw = socket.create_connection((dns, 443))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = context.wrap_socket(raw, server_hostname=dns)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    tls.sendall(
        (
            f"GET {presigned_path(dns, port)} HTTP/1.1\r\nHost: {dns}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(4096)
        if not chunk:
            raise SystemExit(f"handshake cut short: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"tunnel refused: {head!r}")
    return tls


MASK = b"\x01\x02\x03\x04"


def send_binary(tls, payload):
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    tls.sendall(bytes([0x82, 0x80 | len(payload)]) + MASK + masked)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
    return data


def recv_frame(tls):
    first, second = recv_exact(tls, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack(">H", recv_exact(tls, 2))
    elif length == 127:
        (length,) = struct.unpack(">Q", recv_exact(tls, 8))
    return first & 0x0F, recv_exact(tls, length)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "mean": statistics.fmean(samples)}


def fmt(stats):
    return " ".join(f"{k} {v * 1e6:.0f} µs" for k, v in stats.items())


def rtt(dns, echo_port, server_pid, n):
    context = ssl.create_default_context(cafile=os.environ["EIC_CA"])
    direct = socket.create_connection(("127.0.0.1", echo_port))
    direct.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tunnel = open_tunnel(context, dns, echo_port)
    results = {"direct": [], "tunnel": []}
    cpu_before = cpu_seconds(server_pid)
    # Interleaved, so both see the same machine.
    for _ in range(n):
        start = time.perf_counter()
        direct.sendall(b"x")
        recv_exact(direct, 1)
        results["direct"].append(time.perf_counter() - start)
        start = time.perf_counter()
        send_binary(tunnel, b"x")
        opcode, payload = recv_frame(tunnel)
        assert opcode == 2 and payload == b"x", (opcode, payload)
        results["tunnel"].append(time.perf_counter() - start)
    cpu = cpu_seconds(server_pid) - cpu_before
    d, t = percentiles(results["direct"]), percentiles(results["tunnel"])
    print(f"round trips: {n}, 1 byte each, interleaved")
    print(f"  direct TCP        {fmt(d)}")
    print(f"  through tunnel    {fmt(t)}")
    print(f"  added by tunnel   p50 {(t['p50'] - d['p50']) * 1e6:.0f} µs, p99 {(t['p99'] - d['p99']) * 1e6:.0f} µs")
    print(f"  server CPU        {cpu / n * 1e6:.1f} µs per round trip")


def idle(dns, hold_port, server_pid, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * n + 256)), hard))
    held = []
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", hold_port))
    holder.listen(4096)

    def accept():
        while True:
            conn, _ = holder.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    context = ssl.create_default_context(cafile=os.environ["EIC_CA"])
    # One tunnel first, so what the first one allocates once (TLS session
    # cache, the relay's code paths) is not counted per tunnel.
    tunnels = [open_tunnel(context, dns, hold_port)]
    time.sleep(1)
    before = rss_kib(server_pid)
    start = time.perf_counter()
    for _ in range(n):
        tunnels.append(open_tunnel(context, dns, hold_port))
    opened = time.perf_counter() - start
    deadline = time.monotonic() + 60
    while len(held) < n + 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(held)} of {n + 1} tunnels reached the instance side")
        time.sleep(0.05)
    time.sleep(1)
    after = rss_kib(server_pid)
    print(f"idle tunnels: {n} opened in {opened:.1f} s ({opened / n * 1e3:.2f} ms each, sequential)")
    print(f"  server RSS        {before} KiB before, {after} KiB with {n} more open")
    print(f"  per idle tunnel   {(after - before) / n:.1f} KiB")
    for t in tunnels:
        t.close()


if __name__ == "__main__":
    mode, dns, port, pid, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    {"rtt": rtt, "idle": idle}[mode](dns, port, pid, n)
