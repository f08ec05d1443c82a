"""What the simic-report scripts share: the page's data block, and the
failures' summary that ends each script."""
import json
import re


def page_data(path):
    """The page's text and its data block, parsed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="simic-data">(.*?)</script>', text, re.S)
    return text, json.loads(m.group(1))


def finish(failures):
    """Prints each failure and their count; the script's exit code."""
    for f in failures:
        print("FAIL: " + f)
    print("%d failures" % len(failures))
    return 1 if failures else 0
