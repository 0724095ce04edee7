"""The browser console in headless Chromium (Debian's, through its
chromedriver and Selenium): a one-time link signs in and a second use is
refused; the instance list; an SSH terminal that runs a command, follows the
window's size (stty size) and is recorded; sign-out, after which pages and
the terminal's WebSocket are refused; the recording played back in the page.

Screenshots of each page go to EIC_SHOTS.
"""

import json
import os
import sys
import unittest
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SIGNIN = os.environ["EIC_SIGNIN_URL"]
SIGNIN_AGAIN = os.environ["EIC_SIGNIN_URL_2"]
INSTANCE = os.environ["EIC_INSTANCE"]
SERIAL_INSTANCE = os.environ["EIC_SERIAL_INSTANCE"]
OS_USER = os.environ.get("EIC_OS_USER", "root")
SHOTS = os.environ["EIC_SHOTS"]
BASE = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(SIGNIN))


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,800",
    ]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def screen_text(driver):
    """What the terminal shows, a line per row (xterm.js's DOM renderer)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.xterm-rows > div')).map(r => r.textContent).join('\\n')")


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(SHOTS, exist_ok=True)
        cls.driver = browser()
        cls.wait = WebDriverWait(cls.driver, 30)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def until(self, predicate, what):
        try:
            return self.wait.until(predicate)
        except Exception:
            self.shot("failed-" + what.replace(" ", "-"))
            raise AssertionError("%s; the page at %s is:\n%s" % (
                what, self.driver.current_url, self.driver.find_element(By.TAG_NAME, "body").text))

    def until_screen(self, predicate, what):
        try:
            return self.wait.until(lambda d: predicate(screen_text(d)))
        except Exception:
            self.shot("failed-" + what.replace(" ", "-"))
            raise AssertionError("%s; the screen shows:\n%s" % (what, screen_text(self.driver)))

    def type(self, text):
        area = self.driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
        area.send_keys(text)

    def test_the_whole_console(self):
        d = self.driver
        # The link shows a button; a previewer fetching it spends nothing.
        d.get(SIGNIN)
        self.shot("01-signin")
        d.find_element(By.CSS_SELECTOR, "form button.primary").click()
        self.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.instances"), "the instance list")
        cookie = d.get_cookie("eic_console")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.shot("02-instances")
        row = d.find_element(By.CSS_SELECTOR, 'tr[data-instance="%s"]' % INSTANCE)
        self.assertIn("running", row.text)
        # A stopped instance offers no SSH button, and says why.
        stopped = d.find_element(By.CSS_SELECTOR, 'tr[data-instance="i-0aaaaaaaaaaaaaaa1"]')
        self.assertFalse(stopped.find_elements(By.CSS_SELECTOR, "form.connect"))
        self.assertIn("stopped", stopped.find_element(By.CSS_SELECTOR, ".denied").get_attribute("title"))

        # The filters are DescribeInstances' tag and state filters.
        d.get(BASE + "/?tag=Name%3Dconsole-web&state=running")
        ids = [r.get_attribute("data-instance") for r in d.find_elements(By.CSS_SELECTOR, "tr[data-instance]")]
        self.assertEqual(ids, [INSTANCE])

        # The same link again is refused: each works once.
        d.get(SIGNIN)
        d.find_element(By.CSS_SELECTOR, "form button.primary").click()
        self.until(lambda d: "used already" in d.page_source, "the second use refused")
        self.shot("03-link-used")

        # A terminal: a command's answer comes back to the page.
        d.get(BASE + "/")
        row = d.find_element(By.CSS_SELECTOR, 'tr[data-instance="%s"]' % INSTANCE)
        user = row.find_element(By.CSS_SELECTOR, "form.connect input[name=user]")
        user.clear()
        user.send_keys(OS_USER)
        row.find_element(By.CSS_SELECTOR, "form.connect button").click()
        self.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".xterm-helper-textarea"), "a terminal")
        self.until(lambda d: "connected" == d.find_element(By.ID, "status").text.strip(), "connected")
        self.type("echo $((6*7))\n")
        self.until_screen(lambda s: any(line.strip() == "42" for line in s.splitlines()), "42 on the screen")
        # UTF-8 both ways, pasted (chromedriver types only what a keyboard
        # has): the paste goes through xterm's onData like any input.
        d.execute_script("window.eicConsole.terminal.paste(arguments[0])", "echo 'héllo €'")
        self.type("\n")
        self.until_screen(lambda s: any(line.strip() == "héllo €" for line in s.splitlines()), "UTF-8 echoed")
        self.shot("04-terminal")

        # The terminal follows the window: stty size on the instance agrees
        # with the page's rows and columns, before and after a resize.
        sizes = []
        asked = 0
        size_js = "const t = window.eicConsole.terminal; return [t.cols, t.rows]"
        for width, height in [(1280, 800), (900, 560)]:
            before = d.execute_script(size_js)
            d.set_window_size(width, height)
            if sizes:
                # The page refits the terminal to the smaller window.
                self.until(lambda d: d.execute_script(size_js) != before, "the terminal refitted")
            matched = None
            # The page fits the terminal after a debounce: ask until the
            # instance's answer agrees with the page (or the wait ends).
            for _ in range(5):
                cols, rows = d.execute_script(size_js)
                asked += 1
                marker = "size-%d" % asked
                self.type("echo %s $(stty size)\n" % marker)
                line = self.until_screen(
                    lambda s: next((l.strip() for l in s.splitlines() if l.strip().startswith(marker + " ")), None),
                    "an answer to stty size")
                if line == "%s %d %d" % (marker, rows, cols):
                    matched = (rows, cols)
                    break
            self.assertIsNotNone(matched, "stty size never matched the page's %dx%d" % (cols, rows))
            sizes.append(matched)
        self.assertNotEqual(sizes[0], sizes[1], "the resize changed the terminal size")
        self.shot("05-terminal-resized")

        # The shell's exit ends the session, and the page says why.
        self.type("exit\n")
        self.until(lambda d: not d.find_element(By.ID, "banner").get_attribute("hidden"), "the end shown")
        self.assertIn("exited", d.find_element(By.ID, "banner").text)
        self.shot("06-terminal-ended")

        # The serial console, through the gateway and its rules.
        d.get(BASE + "/")
        row = d.find_element(By.CSS_SELECTOR, 'tr[data-instance="%s"]' % SERIAL_INSTANCE)
        row.find_element(By.LINK_TEXT, "Serial console").click()
        self.until(lambda d: "connected" == d.find_element(By.ID, "status").text.strip(), "serial connected")
        self.type("echo serial-$((6*7))\n")
        self.until_screen(lambda s: any(l.strip() == "serial-42" for l in s.splitlines()), "serial-42")
        self.shot("07-serial")
        d.find_element(By.ID, "disconnect").click()
        self.until(lambda d: not d.find_element(By.ID, "banner").get_attribute("hidden"), "serial ended")

        # Sign out: pages and terminals are refused from then on.
        d.get(BASE + "/")
        csrf = d.find_element(By.CSS_SELECTOR, "form.signout input[name=csrf]").get_attribute("value")
        d.find_element(By.CSS_SELECTOR, "form.signout button").click()
        self.until(lambda d: "signed out" in d.page_source.lower(), "signed out")
        self.shot("08-signed-out")
        d.get(BASE + "/")
        self.assertIn("needs a console session", d.page_source)
        opened = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const url = new URL(arguments[0], location.href);
            url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
            const ws = new WebSocket(url);
            ws.onopen = () => done('opened');
            ws.onclose = (e) => done('closed ' + e.code);
        """, "/ws/ssh/%s?user=%s&csrf=%s" % (INSTANCE, OS_USER, csrf))
        self.assertTrue(opened.startswith("closed"), opened)

        # Signed in again, the recording plays back the same output.
        d.get(SIGNIN_AGAIN)
        d.find_element(By.CSS_SELECTOR, "form button.primary").click()
        self.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.instances"), "the instance list")
        d.get(BASE + "/recordings")
        self.shot("09-recordings")
        rows = d.find_elements(By.CSS_SELECTOR, "table.recordings tbody tr")
        self.assertTrue(any(SERIAL_INSTANCE in r.text for r in rows), "the serial session is listed")
        ssh = [r for r in rows if INSTANCE in r.text]
        self.assertTrue(ssh, "the SSH session is listed")
        ssh[0].find_element(By.CSS_SELECTOR, "a.button").click()
        self.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#player[data-state]"), "the player")
        d.find_element(By.ID, "skip").click()
        self.until(lambda d: d.find_element(By.ID, "player").get_attribute("data-state") == "ended", "the playback ended")
        self.until_screen(lambda s: any(line.strip() == "42" for line in s.splitlines()), "42 in the playback")
        self.shot("10-playback")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
