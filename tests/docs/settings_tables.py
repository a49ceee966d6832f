#!/usr/bin/env python3
"""The settings tables in the READMEs are the programs' own declarations (`--settings-table`),
so they cannot drift: with --check (the test) a table that differs fails; with --write the
tables are regenerated in place (run scripts/settings-tables.sh after changing a setting).

A table sits between `<!-- settings-table: PROGRAM -->` and `<!-- end settings-table -->`."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "worker" / "README.md", REPO / "balancer" / "README.md"]
BLOCK = re.compile(r"(<!-- settings-table: ([\w-]+) -->\n)(.*?)(<!-- end settings-table -->)", re.S)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--balancer", required=True)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    binaries = {"domain-park-worker": args.worker, "domain-park-balancer": args.balancer}
    tables = {name: subprocess.run([b, "--settings-table"], check=True, capture_output=True, text=True).stdout
              for name, b in binaries.items()}
    found, stale = 0, []
    for doc in DOCS:
        text = doc.read_text()

        def replace(m):
            nonlocal found
            found += 1
            want = tables[m.group(2)]
            if m.group(3) != want:
                stale.append(f"{doc.relative_to(REPO)}: {m.group(2)}")
            return m.group(1) + want + m.group(4)

        new = BLOCK.sub(replace, text)
        if args.write and new != text:
            doc.write_text(new)
    if found == 0:
        sys.exit("no settings tables found")
    if stale and not args.write:
        sys.exit("settings tables differ from --settings-table (run scripts/settings-tables.sh): " + ", ".join(stale))
    print(f"{found} settings tables {'written' if args.write else 'up to date'}")


if __name__ == "__main__":
    main()
