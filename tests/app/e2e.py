#!/usr/bin/env python3
"""End-to-end test of the desktop app in its real window, through WebDriver.

tauri-driver (crates.io) fronts WebKitWebDriver (Debian webkit2gtk-driver); this script speaks
the W3C WebDriver protocol to it over HTTP with the standard library only. It runs as a fresh
user: an empty data folder with the development model linked, the fixture project added, and a
recorded edit proposal made by the CLI. Screenshots of each view go to tests/app/screenshots/.

Usage: tests/app/e2e.py APP_BINARY CLI_BINARY  (needs DISPLAY, e.g. under xvfb-run)
"""

import base64
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOTS = os.path.join(ROOT, "tests", "app", "screenshots")
MODEL = os.path.join(ROOT, "models", "local", "SmolLM2-135M-Instruct.Q4_1.gguf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        url = self.base + (f"/session/{self.session}" if self.session else "") + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=180) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode()[:500]}") from None

    def start(self, app):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "wry", "tauri:options": {"application": app}}}}
        self.session = None
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def find(self, css, timeout=30):
        deadline = time.time() + timeout
        while True:
            found = self.call("POST", "/elements", {"using": "css selector", "value": css})
            if found:
                return list(found[0].values())[0]
            if time.time() > deadline:
                raise AssertionError(f"no element {css!r} after {timeout} s")
            time.sleep(0.25)

    def text(self, css, timeout=30):
        return self.call("GET", f"/element/{self.find(css, timeout)}/text")

    def click(self, css, timeout=30):
        # A DOM click: WebKitWebDriver's native click drops the connection on elements it
        # has to scroll to.
        self.find(css, timeout)
        self.script("document.querySelector(arguments[0]).click()", css)

    def type(self, css, keys):
        self.call("POST", f"/element/{self.find(css)}/value", {"text": keys})

    def script(self, js, *args):
        return self.call("POST", "/execute/sync", {"script": js, "args": list(args)})

    def wait_text(self, css, needle, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                t = self.text(css, timeout=1)
                if needle in t:
                    return t
            except (AssertionError, RuntimeError):
                t = None
            if time.time() > deadline:
                raise AssertionError(f"{css!r} never showed {needle!r} (last: {t!r})")
            time.sleep(0.3)

    def screenshot(self, name):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        with open(os.path.join(SHOTS, name + ".png"), "wb") as f:
            f.write(png)


def cli(binary, env, *args):
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    if out.returncode not in (0,):
        raise RuntimeError(f"perimeter {' '.join(args)}: {out.stderr}")
    return out.stdout


def main(app, perimeter):
    os.makedirs(SHOTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="perimeter-e2e-")
    env = dict(os.environ, PERIMETER_DATA_DIR=os.path.join(tmp, "data"), HOME=os.path.join(tmp, "home"))
    os.makedirs(env["HOME"])
    shop = os.path.join(tmp, "shop")
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "projects", "shop"), shop)
    cli(perimeter, env, "models", "import", "--link", MODEL)
    cli(perimeter, env, "projects", "add", shop)
    cli(perimeter, env, "edit", "--project", shop, "--answer-file",
        os.path.join(ROOT, "tests", "fixtures", "edits", "whole-file-well-formed.txt"), "Raise the tax rate to 9%")
    pricing = os.path.join(shop, "shop", "pricing.py")
    original = open(pricing).read()

    # A loopback server the page must not be able to reach (CSP connect-src).
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    port = free_port()
    driver_bin = shutil.which("tauri-driver") or os.path.expanduser("~/.cache/tauri-driver/bin/tauri-driver")
    td = subprocess.Popen([driver_bin, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = Driver(port)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        d.start(app)

        # Projects: the fixture project is re-indexed and watched.
        d.wait_text("[data-testid=project-status]", "watching", timeout=60)
        # Chat: a question with the dev model streams an answer with its context.
        d.type("textarea[aria-label=Question]", "What is the sales tax rate?\ue007")
        d.find("[data-testid=streaming]", timeout=30)
        d.find("[data-testid=answer]", timeout=240)
        context = d.text("[data-testid=context]")
        assert "shop/pricing.py" in context, context
        d.screenshot("chat")

        # Changes: open the recorded proposal, keep hunk 1 only, apply, see the file, undo.
        d.click("nav[aria-label=Views] button:nth-child(2)")
        d.click("[data-testid=proposal]")
        d.find("[data-testid=hunk-1]")
        d.click("[data-testid=hunk-2]")
        d.click("[data-testid=hunk-3]")
        d.screenshot("changes")
        d.click("[data-testid=apply]")
        d.wait_text("[data-testid=apply-message]", "Applied shop/pricing.py")
        changed = open(pricing).read()
        assert "SALES_TAX_RATE = 0.09" in changed and "round(subtotal * (100 - percent) / 100, 2)" not in changed, changed
        d.click(".review-head .actions button:nth-child(2)")
        d.wait_text("[data-testid=apply-message]", "Undid")
        assert open(pricing).read() == original

        # Models: the hardware and the pick.
        d.click("nav[aria-label=Views] button:nth-child(3)")
        d.wait_text("[data-testid=hardware]", "CPU")
        d.text("[data-testid=pick]")
        d.screenshot("models")

        # CSP: a fetch from the page to a loopback server is blocked and never arrives.
        result = d.script(
            "return fetch(arguments[0]).then(() => 'reached', e => 'blocked: ' + e.message)",
            f"http://127.0.0.1:{server.server_port}/leak",
        )
        time.sleep(1)
        assert str(result).startswith("blocked"), result
        assert hits == [], hits
        print("app e2e: ok (screenshots in tests/app/screenshots/)")
    except Exception:
        try:
            d.screenshot("failure")
        except Exception:
            pass
        raise
    finally:
        try:
            d.call("DELETE", "")
        except Exception:
            pass
        td.send_signal(signal.SIGTERM)
        td.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
