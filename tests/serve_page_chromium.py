#!/usr/bin/env python3
"""Drives moedit serve's page (GET /) in headless Chromium as a user would:
loads it, types a prompt, size, steps and seed, clicks Generate, and waits
for the image in the gallery. Prints one JSON line: the image's PNG as
base64 and the gallery caption; exits 1 with the reason on any failure.
Optionally saves a screenshot of the page with its result.

Chromium is driven through the DevTools protocol over a pipe
(--remote-debugging-pipe: JSON messages ending in NUL, Chromium reading
fd 3 and writing fd 4), so only Python's standard library is needed.

usage: serve_page_chromium.py URL --prompt P --size WxH --steps N --seed S
                              [--key KEY] [--screenshot FILE.png] [--timeout SECONDS]
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    """A headless Chromium and one page of it, spoken to over the pipe."""

    def __init__(self, binary, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire_pipes():  # in the child: its fd 3 reads our commands, fd 4 carries its answers
            # Copies first: either end may sit on fd 3 or 4 already, and dup2
            # onto itself would leave it close-on-exec.
            reads, writes = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        # --no-sandbox: the test may run as root, where Chromium's sandbox refuses to start.
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--user-data-dir=" + profile, "--window-size=1000,760", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer, self.next_id, self.session = b"", 0, None

    def call(self, method, timeout=60, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buffer:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer to {method} in {timeout} s")
                chunk = os.read(self.from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.process.poll()})")
                self.buffer += chunk
            text, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(text)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url):
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")

    def type_into(self, element_id, text):
        """Focuses the field, selects what it holds and types text (key events through the input pipeline)."""
        self.evaluate(f"document.getElementById({json.dumps(element_id)}).focus(),"
                      f"document.getElementById({json.dumps(element_id)}).select()")
        self.call("Input.insertText", text=text)

    def click(self, element_id):
        """A real mouse click at the element's centre."""
        box = self.evaluate(f"(() => {{ const r = document.getElementById({json.dumps(element_id)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it is going anyway
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--steps", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--screenshot")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("no chromium on PATH (tools/setup.sh installs Debian's chromium)")
    profile = tempfile.mkdtemp(prefix="moedit-chromium-")
    browser = Browser(args.chromium, profile)
    try:
        browser.open(args.url + "/")
        browser.wait_for("document.readyState === 'complete' && !!document.getElementById('generate')", 30,
                         "the page to load")
        browser.type_into("prompt", args.prompt)
        browser.type_into("size", args.size)
        browser.type_into("steps", args.steps)
        browser.type_into("seed", args.seed)
        if args.key:
            browser.type_into("key", args.key)
        browser.click("generate")
        found = browser.wait_for(
            "(() => { const img = document.querySelector('#gallery figure img');"
            " if (!img || !img.complete || !img.naturalWidth) return null;"
            " return {src: img.src, width: img.naturalWidth, height: img.naturalHeight,"
            " caption: img.parentElement.querySelector('figcaption').innerText,"
            " status: document.getElementById('status').innerText}; })()",
            args.timeout, "the image in the gallery (status: see the page)")
        if args.screenshot:
            shot = browser.call("Page.captureScreenshot", format="png")["data"]
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot))
        png = found["src"].split("base64,", 1)[1]
        print(json.dumps({"png_base64": png, "width": found["width"], "height": found["height"],
                          "caption": found["caption"], "status": found["status"]}))
    except Exception as e:  # noqa: BLE001 - one line saying why
        status = ""
        try:
            status = browser.evaluate("document.getElementById('status') && document.getElementById('status').innerText")
        except Exception:  # noqa: BLE001
            pass
        sys.exit(f"serve_page_chromium: {e} (page status: {status!r})")
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
