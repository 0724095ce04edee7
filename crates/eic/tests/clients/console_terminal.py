"""The console's terminal WebSocket as a browser speaks it, over HTTPS with
eic's own CA (tests/console.rs runs it): the handshake's refusals, a
server-side pause that stops the instance's output until resume, and the
idle timeout's visible reason.

Environment: EIC_SIGNIN_URL (an https link), EIC_CA (pki/tls-ca.pem),
EIC_INSTANCE, EIC_OS_USER, EIC_IDLE_SECS.
"""

import json
import os
import re
import socket
import ssl
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import websocket  # websocket-client, installed with selenium

SIGNIN = os.environ["EIC_SIGNIN_URL"]
CA = os.environ["EIC_CA"]
INSTANCE = os.environ["EIC_INSTANCE"]
OS_USER = os.environ["EIC_OS_USER"]
IDLE_SECS = int(os.environ["EIC_IDLE_SECS"])
parts = urllib.parse.urlsplit(SIGNIN)
BASE = "%s://%s" % (parts.scheme, parts.netloc)
TLS = ssl.create_default_context(cafile=CA)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def sign_in():
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=TLS))
    request = urllib.request.Request(BASE + "/signin", data=urllib.parse.urlencode({"token": token}).encode(),
                                     headers={"Origin": BASE})
    try:
        opener.open(request)
        raise AssertionError("sign-in did not redirect")
    except urllib.error.HTTPError as e:
        assert e.code == 303, e.code
        set_cookie = e.headers["Set-Cookie"]
    cookie = set_cookie.split(";")[0]
    page = urllib.request.urlopen(urllib.request.Request(BASE + "/", headers={"Cookie": cookie}),
                                  context=TLS).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return set_cookie, cookie, csrf


class ConsoleTerminal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.set_cookie, cls.cookie, cls.csrf = sign_in()

    def ws_url(self, csrf=None):
        return "wss://%s/ws/ssh/%s?user=%s&csrf=%s" % (parts.netloc, INSTANCE, OS_USER,
                                                      csrf if csrf is not None else self.csrf)

    def connect(self, **kw):
        args = dict(cookie=self.cookie, origin=BASE, sslopt={"context": TLS}, timeout=30)
        args.update(kw)
        return websocket.create_connection(self.ws_url(args.pop("csrf", None)), **args)

    def test_the_cookie_is_secure_over_tls(self):
        attributes = [a.strip().lower() for a in self.set_cookie.split(";")[1:]]
        for wanted in ("secure", "httponly", "samesite=strict"):
            self.assertIn(wanted, attributes)

    def test_a_handshake_without_its_csrf_token_origin_or_upgrade_is_refused(self):
        for kw, status in [(dict(csrf="wrong"), 403), (dict(origin="https://evil.example"), 403)]:
            with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
                self.connect(**kw)
            self.assertEqual(refused.exception.status_code, status, kw)
        # Not a WebSocket at all: a plain GET of the same URL.
        request = urllib.request.Request(self.ws_url().replace("wss://", "https://"),
                                         headers={"Cookie": self.cookie, "Origin": BASE})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, context=TLS)
        self.assertEqual(refused.exception.code, 400)
        self.assertIn(b"WebSocket", refused.exception.read())

    def control(self, ws):
        """The next text frame, skipping output."""
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                return json.loads(data)

    def output_until(self, ws, marker):
        seen = b""
        while marker not in seen:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                seen += data
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                self.fail("ended before %r: %s" % (marker, data))
        return seen

    def test_pause_holds_the_instances_output_until_resume(self):
        ws = self.connect()
        self.assertEqual(self.control(ws)["type"], "ready")
        ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        # The shell then prints nothing until it has read a line.
        ws.send_binary(b"stty -echo; PS1=''; echo ready-$((6*7)); read line; echo held-$line\r")
        self.output_until(ws, b"ready-42")
        ws.send(json.dumps({"type": "pause"}))
        ws.send_binary(b"56\r")
        # While paused nothing of the instance's reaches the page: what the
        # shell printed waits in the SSH channel.
        ws.settimeout(1.5)
        with self.assertRaises((socket.timeout, websocket.WebSocketTimeoutException)):
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    self.fail("output while paused: %r" % data)
        ws.settimeout(30)
        ws.send(json.dumps({"type": "resume"}))
        self.output_until(ws, b"held-56")
        ws.close()

    def test_an_idle_terminal_closes_and_says_why(self):
        ws = self.connect()
        self.assertEqual(self.control(ws)["type"], "ready")
        ws.send_binary(b"stty -echo; PS1=''; echo quiet-$((2*3))\r")
        self.output_until(ws, b"quiet-6")
        quiet_since = time.monotonic()
        ws.settimeout(IDLE_SECS + 30)
        ended = self.control(ws)
        waited = time.monotonic() - quiet_since
        self.assertEqual(ended["type"], "exit", ended)
        self.assertIn("without input or output", ended["reason"])
        self.assertIn("%d second" % IDLE_SECS, ended["reason"])
        self.assertGreaterEqual(waited, IDLE_SECS - 0.5)
        # Then the server closes the WebSocket.
        opcode, _ = ws.recv_data(control_frame=True)
        self.assertEqual(opcode, websocket.ABNF.OPCODE_CLOSE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
