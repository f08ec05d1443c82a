#!/usr/bin/env python3
"""simic-report in a browser: a real trainer run (an LR spike, then NaN
gradients until the monitor stops it, and one anomaly line whose detail tries
to break out of the data block), rendered by headless Chromium. The expected
marker count comes from this script's own reading of the JSONL.

Usage: report_browser_test.py --report BIN --trainer BIN --chromium BIN
Meson declares this test only where the trainer is built, so a missing
trainer is a failure, not a skip.
"""
import argparse
import html.parser
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

HOSTILE = "</script><img src=x onerror=alert(1)>\u2028<!--"


class Dom(html.parser.HTMLParser):
    """Counts the dumped DOM's anomaly markers, <img> elements and the body's attributes."""

    def __init__(self):
        super().__init__()
        self.body = {}
        self.markers = 0
        self.imgs = 0
        self.stop_marks = 0
        self.skip_marks = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        if tag == "img":
            self.imgs += 1
        self.markers += "anomaly-marker" in classes
        self.stop_marks += "stop-mark" in classes
        self.skip_marks += "skip-mark" in classes

    handle_startendtag = handle_starttag


def chromium(binary, home, args, timeout=120):
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--user-data-dir=" + os.path.join(home, "profile"), *args]
    env = dict(os.environ, HOME=home)
    for attempt in (1, 2):  # a cold start of Chromium on a loaded machine can stall once
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=True).stdout
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise


def png_pixels_vary(path):
    """True when the PNG's decoded scanlines hold more than a handful of byte values."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            size = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    return size, len(set(zlib.decompress(idat))) > 16


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--report", required=True)
    p.add_argument("--trainer", required=True)
    p.add_argument("--chromium", required=True)
    o = p.parse_args()
    if not os.path.exists(o.trainer):
        print("FAIL: no trainer at " + o.trainer)
        return 1

    with tempfile.TemporaryDirectory(prefix="simic_report_browser_") as tmp:
        events = os.path.join(tmp, "events.jsonl")
        run = subprocess.run([o.trainer, "--updates", "30", "--inject", "lr-spike@10", "--inject", "nan-grad@24-",
                              "--max-skips", "4", "--events", events, "--quiet"],
                             capture_output=True, text=True, timeout=240)
        assert run.returncode in (0, 3), "trainer exit %d: %s" % (run.returncode, run.stderr[-2000:])

        # One more anomaly, with a hostile detail, before the hub_stats line.
        with open(events) as f:
            lines = f.readlines()
        hostile = {"event": "anomaly", "time": 0.0, "update": 12, "epoch": 12, "anomaly": "loss_spike",
                   "severity": "warning", "value": 1.0, "detail": HOSTILE}
        lines.insert(len(lines) - 1, json.dumps(hostile) + "\n")
        with open(events, "w") as f:
            f.writelines(lines)
        parsed = [json.loads(l) for l in lines]
        anomalies = sum(1 for e in parsed if e["event"] == "anomaly")
        skips = sum(1 for e in parsed if e["event"] == "response" and e.get("action") == "skip_step")
        stopped = any(e["event"] == "response" and e.get("action") == "stop" for e in parsed)
        assert anomalies >= 2, "the run should have anomalies; got %d" % anomalies

        page = os.path.join(tmp, "report.html")
        r = subprocess.run([o.report, events, "-o", page], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        size = os.path.getsize(page)
        assert size < 2 * 1024 * 1024, "page is %d bytes" % size
        with open(page, encoding="utf-8") as f:
            text = f.read()
        remote = re.findall(r"""(?:\b(?:src|href)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:https?:)?//""", text, re.I)
        assert not remote, "remote references: %r" % remote

        home = os.path.join(tmp, "home")
        os.makedirs(home)
        dom_text = chromium(o.chromium, home, ["--virtual-time-budget=10000", "--dump-dom", "file://" + page])
        dom = Dom()
        dom.feed(dom_text)
        assert dom.body.get("data-rendered") == "1", "not rendered: body %r" % dom.body
        assert dom.body.get("data-anomaly-markers") == str(anomalies), \
            "page says %s markers, the JSONL has %d anomalies" % (dom.body.get("data-anomaly-markers"), anomalies)
        assert dom.markers == anomalies, "%d anomaly-marker elements, %d anomalies" % (dom.markers, anomalies)
        assert dom.imgs == 0, "the hostile detail made an <img>"
        assert "<img" not in dom_text, "the hostile detail reached the markup"
        # It is drawn as text: the marker's tooltip, escaped by the serializer.
        assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom_text, "the hostile detail is not shown"
        if stopped:
            assert dom.stop_marks > 0, "the run stopped, no stop mark drawn"
        if skips > 1:
            assert dom.skip_marks > 0, "%d skip responses, no skip mark drawn" % skips
        render_ms = float(dom.body.get("data-render-ms", "nan"))

        shot = os.path.join(tmp, "report.png")
        chromium(o.chromium, home, ["--window-size=1280,2400", "--virtual-time-budget=10000",
                                    "--screenshot=" + shot, "file://" + page])
        assert os.path.exists(shot), "no screenshot"
        dims, varied = png_pixels_vary(shot)
        assert dims == (1280, 2400), "screenshot is %r" % (dims,)
        assert varied and os.path.getsize(shot) > 20000, "screenshot looks blank (%d bytes)" % os.path.getsize(shot)
        print("ok: %d anomalies = %d markers; %d skip responses, stopped %s; page %d bytes; render %.1f ms; png %d bytes"
              % (anomalies, dom.markers, skips, stopped, size, render_ms, os.path.getsize(shot)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
