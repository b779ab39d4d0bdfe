"""Opens a page in headless Chromium, clicks the element with id `unsubscribe` through the
DevTools protocol (a real mouse press and release at its centre, as a person's tap), waits
for the page the form's POST loads, and prints JSON: the text before and after, and the
screenshots taken of both. Uses only the standard library and python3-websocket (Debian).

Usage: cdp_click.py URL OUT_DIR PROFILE_DIR
"""
import base64
import json
import re
import subprocess
import sys
import urllib.request

import websocket

url, out_dir, profile = sys.argv[1:4]
chrome = subprocess.Popen(
    [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0",
        "--user-data-dir=" + profile, "about:blank",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
)
try:
    port = None
    for line in chrome.stderr:
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = m.group(1)
            break
    if port is None:
        sys.exit("chromium did not start its DevTools endpoint")
    targets = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % port))
    page = next(t for t in targets if t["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
    ids = iter(range(1, 1 << 30))

    def call(method, **params):
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    sys.exit("%s: %s" % (method, msg["error"]))
                return msg["result"]

    def wait_for(event):
        while True:
            msg = json.loads(ws.recv())
            if msg.get("method") == event:
                return msg

    def text():
        return call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)["result"]["value"]

    def shot(name):
        path = "%s/%s" % (out_dir, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(call("Page.captureScreenshot", format="png")["data"]))
        return path

    call("Page.enable")
    # A phone's viewport: the page must be readable there.
    call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
    call("Page.navigate", url=url)
    wait_for("Page.loadEventFired")
    before = text()
    before_png = shot("unsubscribe-question.png")
    box = call(
        "Runtime.evaluate",
        expression="JSON.stringify(document.getElementById('unsubscribe').getBoundingClientRect())",
        returnByValue=True,
    )["result"]["value"]
    r = json.loads(box)
    x, y = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
    for kind in ("mousePressed", "mouseReleased"):
        call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    wait_for("Page.loadEventFired")
    after = text()
    after_png = shot("unsubscribe-done.png")
    print(json.dumps({"before": before, "after": after, "screenshots": [before_png, after_png]}))
finally:
    chrome.kill()
    chrome.wait()
