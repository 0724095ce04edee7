"""Keystroke-to-echo latency and bulk output through the browser console's
terminal WebSocket, beside plain ssh to the same sshd in the same run
(bench/console.sh sets both up).

latency     ROUNDTRIPS one-byte keystrokes, each timed from the write to
            the arrival of its echo; the console (a WebSocket client on a
            raw socket, as a browser's) and ssh -tt in a pty interleaved
            in blocks of 100, so a drift of the machine falls on both
throughput  `head -c SIZE /dev/zero | base64` on the instance, read to
            its end marker, through each path

usage: console_latency.py CONSOLE_URL SIGNIN_URL INSTANCE SSH_PORT SSH_KEY KNOWN_HOSTS ROUNDTRIPS SIZE
"""

import os
import pty
import re
import select
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import websocket  # websocket-client, installed with selenium

base, signin, instance, ssh_port, ssh_key, known_hosts, roundtrips, size = sys.argv[1:9]
roundtrips, size = int(roundtrips), int(size)
host = urllib.parse.urlsplit(base).netloc


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def sign_in():
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(signin).query)["token"][0]
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(base + "/signin", data=urllib.parse.urlencode({"token": token}).encode(),
                                     headers={"Origin": base})
    try:
        opener.open(request)
    except urllib.error.HTTPError as e:  # the 303 to /
        cookie = e.headers["Set-Cookie"].split(";")[0]
    page = urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Cookie": cookie})).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return cookie, csrf


class Console:
    def __init__(self, cookie, csrf):
        url = "ws://%s/ws/ssh/%s?user=root&csrf=%s" % (host, instance, csrf)
        self.ws = websocket.create_connection(url, cookie=cookie, origin=base)
        self.ws.send('{"type":"resize","cols":200,"rows":50}')

    def write(self, data):
        self.ws.send_binary(data)

    def read(self):
        while True:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                return data


class Ssh:
    def __init__(self):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp("ssh", ["ssh", "-tt", "-p", ssh_port, "-i", ssh_key, "-o", "IdentitiesOnly=yes",
                              "-o", "UserKnownHostsFile=" + known_hosts, "-o", "StrictHostKeyChecking=yes",
                              "-o", "BatchMode=yes", "root@127.0.0.1"])

    def write(self, data):
        os.write(self.fd, data)

    def read(self):
        select.select([self.fd], [], [])
        return os.read(self.fd, 65536)


def until(session, marker):
    seen = b""
    while marker not in seen:
        seen = (seen + session.read())[-len(marker) - 65536:]


def settle(session):
    """Waits for the shell's prompt after a command that prints a marker."""
    session.write(b"stty -echoctl; echo READY$((40+2))\n")
    until(session, b"READY42")


def keystrokes(session, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        session.write(b"x")
        until(session, b"x")
        times.append(time.perf_counter_ns() - t0)
    session.write(b"\x15")  # ^U: the line is cleared for the next block
    return times


def bulk(session):
    session.write(("head -c %d /dev/zero | base64 -w 0; echo; echo EN''D\n" % size).encode())
    t0 = time.perf_counter()
    until(session, b"END")
    return time.perf_counter() - t0


def pick(times, q):
    times = sorted(times)
    return times[min(len(times) - 1, int(q * len(times)))] / 1000


cookie, csrf = sign_in()
console, ssh = Console(cookie, csrf), Ssh()
for s in (console, ssh):
    settle(s)
lat = {"console": [], "ssh": []}
for _ in range(max(1, roundtrips // 100)):
    lat["console"] += keystrokes(console, 100)
    lat["ssh"] += keystrokes(ssh, 100)
for name, times in lat.items():
    print("latency %-8s n=%d p50=%.0f us p99=%.0f us mean=%.0f us" % (
        name, len(times), pick(times, 0.5), pick(times, 0.99), statistics.mean(times) / 1000))
encoded = (size + 2) // 3 * 4
for name, s in (("console", console), ("ssh", ssh)):
    settle(s)
    seconds = bulk(s)
    print("throughput %-8s %d bytes of output in %.2f s: %.1f MB/s" % (name, encoded, seconds, encoded / seconds / 1e6))
