"""What the process-level server tests share: reading the CLI's JSON,
waiting for a condition, and the digits as labelled CSV rows."""
import gzip
import os
import re
import time

DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "core", "data", "digits.csv.gz")


def field(msg, name):
    """A JSON field by its proto name or its lowerCamelCase JSON name."""
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
    return msg.get(name, msg.get(camel))


def wait_for(predicate, timeout, what):
    """predicate()'s first true value within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def digit_rows(n):
    """The first n digits as CSV rows: the label, then 64 pixels / 16."""
    out = []
    for r in gzip.open(DIGITS, "rt").read().splitlines()[:n]:
        cells = r.split(",")
        out.append(",".join([cells[-1]] + [str(int(c) / 16) for c in cells[:-1]]))
    return out
