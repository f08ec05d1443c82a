#!/usr/bin/env python3
"""simic-report's marks in a browser, from hand-written events (no trainer):

- rollbacks: on every chart a mark at the rollback's update and, where the
  line gives restored_update, a band from that update to the rollback's,
  at the x this script computes from the file; the tooltip gives the cause,
  the data window, the LR factor and the attribution;
- anomaly kinds named like Object.prototype's members ("constructor",
  "__proto__", "toString", ...): each marker has its kind's colour (never
  stroke="undefined") and each kind its legend entry;
- a file of many anomalies: the page draws exactly the bound's number of
  markers per kind (200 by default) and says how many lines there were.

Usage: report_marks_browser_test.py --report BIN --chromium BIN
"""
import argparse
import html.parser
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_browser_test import chromium  # noqa: E402  (one Chromium invocation for both tests)
from report_support import finish  # noqa: E402

# The page's geometry (report.hpp's page_js): plot from x = PL to W - PR.
W, PL, PR = 1180, 64, 150
CHARTS = 9
PROTO_KINDS = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""
        self.classes = (self.attrs.get("class") or "").split()

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)

    def title(self):
        return next((c.all_text() for c in self.children if c.tag == "title"), None)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


class Dom(html.parser.HTMLParser):
    """The dumped DOM as a tree."""

    def __init__(self, text):
        super().__init__()
        self.root = self.cur = Node("#root", [], None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data

    def by_class(self, cls):
        return [n for n in self.root.walk() if cls in n.classes]

    def by_id(self, id_):
        return next(n for n in self.root.walk() if n.attrs.get("id") == id_)

    def body(self):
        return next(n for n in self.root.walk() if n.tag == "body").attrs


def event(name, update, **fields):
    return json.dumps(dict({"event": name, "time": float(update), "update": update, "epoch": update}, **fields)) + "\n"


def render(o, home, events_text, tmp, name, *args):
    events = os.path.join(tmp, name + ".jsonl")
    with open(events, "w") as f:
        f.write(events_text)
    page = os.path.join(tmp, name + ".html")
    r = subprocess.run([o.report, events, "-o", page, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "%s: simic-report exit %d: %s" % (name, r.returncode, r.stderr[:500])
    dom_text = chromium(o.chromium, home, ["--virtual-time-budget=10000", "--dump-dom", "file://" + page])
    dom = Dom(dom_text)
    assert dom.body().get("data-rendered") == "1", "%s: not rendered: body %r" % (name, dom.body())
    return dom, os.path.getsize(page)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--report", required=True)
    p.add_argument("--chromium", required=True)
    o = p.parse_args()
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="simic_report_marks_") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(home)

        # 12 updates; rollback 1 at update 8 restored update 5, rollback 2 at
        # update 11 gives no restored_update (a mark, no band).
        text = ""
        for u in range(1, 13):
            text += event("update", u, loss=1.0 / u, approx_kl=0.01 * u, ratio_max=1.1, ratio_min=0.9)
            text += event("epoch_summary", u, performance=float(u))
        rollbacks = [
            event("rollback", 8, reason="loss diverged", cause="divergence", onset_update=7, restored_update=5,
                  window_first=640, window_last=768, lr_factor=0.5, lr_scale=0.5, rollbacks=1,
                  attribution="reproducible", snapshot_file="snap/u5.pt"),
            event("rollback", 11, cause="nonfinite_weights", window_first=900, window_last=1000, lr_factor=0.25,
                  lr_scale=0.125, rollbacks=2, attribution="not replayed"),
        ]
        text += "".join(rollbacks)
        text += event("snapshot", 5, data_position=600, bytes=1000, held=1, held_bytes=1000)
        anomaly_kinds = PROTO_KINDS + ["kl_spike"]
        for i, k in enumerate(anomaly_kinds):
            text += event("anomaly", 2 + i, anomaly=k, severity="critical" if i % 2 else "warning", value=1.0,
                          detail="kind " + k)
        dom, _ = render(o, home, text, tmp, "marks")
        x0, x1 = 0.0, 12.0  # the first update - 1, the last

        def X(x):
            return PL + (x - x0) / (x1 - x0) * (W - PL - PR)

        marks, bands = dom.by_class("rollback-mark"), dom.by_class("rollback-band")
        expect(len(marks) == 2 * CHARTS, "%d rollback marks; want 2 on each of %d charts" % (len(marks), CHARTS))
        expect(len(bands) == CHARTS, "%d rollback bands; want 1 on each of %d charts" % (len(bands), CHARTS))
        for m in marks:
            want = X(8) if "update 8" in (m.title() or "") else X(11)
            expect(abs(float(m.attrs["x1"]) - want) < 0.01 and m.attrs["x1"] == m.attrs["x2"],
                   "rollback mark at x %s, want %.2f" % (m.attrs.get("x1"), want))
        for b in bands:
            expect(abs(float(b.attrs["x"]) - X(5)) < 0.01 and abs(float(b.attrs["width"]) - (X(8) - X(5))) < 0.01,
                   "rollback band x %s width %s; want %.2f and %.2f" % (b.attrs["x"], b.attrs["width"], X(5), X(8) - X(5)))
            t = b.title() or ""
            for part in ("rollback 1 at update 8", "divergence", "restored the snapshot of update 5",
                         "data window [640, 768) skipped", "LR factor 0.5", "attribution: reproducible"):
                expect(part in t, "band tooltip %r lacks %r" % (t, part))
        t2 = next((m.title() for m in marks if "update 11" in (m.title() or "")), "")
        for part in ("nonfinite_weights", "restored snapshot not given", "[900, 1000)", "LR factor 0.25",
                     "attribution: not replayed"):
            expect(part in t2, "second rollback's tooltip %r lacks %r" % (t2, part))
        labels = dom.by_class("rollback-label")
        expect(len(labels) == 2 * CHARTS and all(l.all_text().startswith("rollback (") and
                                                 (l.title() or "").startswith("rollback ") for l in labels),
               "rollback labels: %r" % [(l.all_text(), l.title()) for l in labels[:2]])
        legend = [d.all_text().strip() for d in dom.by_id("legend").children]
        expect(any(s.startswith("rollback") for s in legend), "no rollback entry in the legend %r" % legend)
        expect(dom.body().get("data-rollbacks") == "2", "data-rollbacks %r" % dom.body().get("data-rollbacks"))

        # Kinds named like Object.prototype's members: drawn in their own colour, in the legend.
        markers = dom.by_class("anomaly-marker")
        expect(len(markers) == len(anomaly_kinds), "%d markers for %d anomalies" % (len(markers), len(anomaly_kinds)))
        colours = {}
        for m in markers:
            k, stroke = m.attrs.get("data-kind"), m.attrs.get("stroke")
            expect(stroke and stroke.startswith("#") and len(stroke) == 7, "kind %r drawn with stroke=%r" % (k, stroke))
            colours[k] = stroke
        expect(len(set(colours.values())) == len(anomaly_kinds), "kinds share a colour: %r" % colours)
        for k in anomaly_kinds:
            expect(k in legend, "kind %r has no legend entry (legend %r)" % (k, legend))
        swatches = [n for n in dom.root.walk() if "swatch" in n.classes and n.attrs.get("data-kind") in anomaly_kinds]
        expect(len(swatches) == len(anomaly_kinds) and all(any(c.tag == "svg" for c in s.children) for s in swatches),
               "the kinds table's swatches are not all drawn")
        expect(dom.body().get("data-anomaly-markers") == str(len(anomaly_kinds)),
               "data-anomaly-markers %r" % dom.body().get("data-anomaly-markers"))

        # Many anomalies: 1,500 lines of each of 2 kinds; the default bound, 200 per kind.
        text = "".join(event("update", u, loss=1.0) for u in range(1, 31))
        want = {"kl_spike": 0, "constructor": 0}
        for i in range(3000):
            k = "kl_spike" if i % 2 else "constructor"
            want[k] += 1
            text += event("anomaly", 1 + i // 100, anomaly=k, severity="warning", value=0.3, detail="line %d" % i)
        dom, size = render(o, home, text, tmp, "many")
        body = dom.body()
        expect(body.get("data-anomaly-markers") == "400", "data-anomaly-markers %r; want 2 x 200" % body.get("data-anomaly-markers"))
        expect(body.get("data-anomaly-lines") == "3000", "data-anomaly-lines %r" % body.get("data-anomaly-lines"))
        drawn = {}
        for m in dom.by_class("anomaly-marker"):
            drawn[m.attrs.get("data-kind")] = drawn.get(m.attrs.get("data-kind"), 0) + 1
        expect(drawn == {"kl_spike": 200, "constructor": 200}, "drawn per kind %r" % drawn)
        counts = sorted(n.all_text() for n in dom.by_class("anomaly-count") if n.all_text())
        expect(counts == ["200 of 1500 anomalies drawn", "200 of 1500 anomalies drawn"], "chart counts %r" % counts)
        note = dom.by_id("render-note").all_text()
        expect("400 anomaly markers of 3000 anomaly lines (at most 200 per kind, 4000 in all; 2600 not drawn)" in note,
               "render note %r" % note)
        expect(size < 300 * 1024, "page of %d bytes" % size)

        # Onsets and bands, with at most 3 markers a kind (and 3 skip lines):
        # kl_spike on updates 1 to 10 (cleared at 10), 20, 30, 40 and 50 to
        # 54; skipped steps on updates 5 to 9 and 15. Onsets (1 and 20) are
        # drawn; a run of two or more lines is a band in the lane, and so is
        # a lone line whose marker was not drawn; the same for skipped steps,
        # on every chart.
        text = ""
        kl = list(range(1, 11)) + [20, 30, 40] + list(range(50, 55))
        skipped = [5, 6, 7, 8, 9, 15]
        for u in range(1, 61):
            text += event("update", u, loss=1.0, approx_kl=0.01, **({"extra": {"skipped_step": 1}} if u in skipped else {}))
            if u in kl:
                text += event("anomaly", u, anomaly="kl_spike", severity="warning", value=0.3, threshold=0.2)
            if u == 10:
                text += event("anomaly_clear", u, anomaly="kl_spike", duration=10, value=0.1)
        dom, size = render(o, home, text, tmp, "bands", "--max-anomalies", "3")
        x0, x1 = 0.0, 60.0

        def X(x):
            return PL + (x - x0) / (x1 - x0) * (W - PL - PR)

        markers = dom.by_class("anomaly-marker")
        at = sorted(int(re.search(r" at update (\d+)", m.title()).group(1)) for m in markers)
        onsets = sorted(int(re.search(r" at update (\d+)", m.title()).group(1)) for m in markers
                        if m.attrs.get("data-onset") == "1")
        expect(len(markers) == 3 and onsets == [1, 20], "markers at %r, onsets drawn %r; want 3, onsets [1, 20]" % (at, onsets))
        runs = [(1, 10), (20, 20), (30, 30), (40, 40), (50, 54)]
        want = [(f, l) for f, l in runs if l > f or f not in at]
        got = sorted((round(float(r.attrs["x"]) + 1.5, 1), round(float(r.attrs["x"]) + float(r.attrs["width"]) - 1.5, 1))
                     for r in dom.by_class("anomaly-band"))
        # A band's bar spans X(first) - 1.5 to X(last) + 1.5 (3 px at least).
        expect(got == sorted((round(X(f), 1), round(X(l), 1)) for f, l in want),
               "anomaly bands at %r; want the runs %r" % (got, want))
        expect(dom.body().get("data-anomaly-bands") == str(len(want)), "data-anomaly-bands %r" % dom.body().get("data-anomaly-bands"))
        titles = [r.title() for r in dom.by_class("anomaly-band")]
        expect(any(t.startswith("kl_spike: 10 lines, updates 1 to 10; 1 onset") for t in titles), "band titles %r" % titles)
        skip_marks = {round(float(m.attrs["x1"]), 1) for m in dom.by_class("skip-mark")}
        skip_want = [(5, 9)] + ([(15, 15)] if round(X(15), 1) not in skip_marks else [])
        skip_got = sorted({(round(float(r.attrs["x"]), 1), round(float(r.attrs["x"]) + float(r.attrs["width"]), 1))
                           for r in dom.by_class("skip-band")})
        expect(skip_got == sorted((round(X(f - 1), 1), round(X(l), 1)) for f, l in skip_want),
               "skip bands at %r; want the runs %r" % (skip_got, skip_want))
        expect(len(dom.by_class("skip-band")) == CHARTS * len(skip_want), "%d skip bands" % len(dom.by_class("skip-band")))
        body = dom.body()
        expect(body.get("data-skip-steps") == "6" and body.get("data-skip-marks") == "3",
               "data-skip-steps %r, data-skip-marks %r" % (body.get("data-skip-steps"), body.get("data-skip-marks")))

    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
