"""deploy/coredns/README.md quotes stock CoreDNS's error for Corefile.rrl with its line number:
the quote must be what stock CoreDNS really says about the file as it is now."""

import os
import re

from .deploy_stack import REPO, run


def test_readme_quotes_the_real_error_line(tmp_path):
    from e2e_coredns.coredns_stack import INSTALL_STOCK, _binary
    coredns = _binary("DP_COREDNS", INSTALL_STOCK, "stock CoreDNS")
    env = dict(os.environ, DP_LISTEN="127.0.0.1", DP_WORKERS="127.0.0.1:1", DP_METRICS="127.0.0.1:1",
               DP_HEALTH="127.0.0.1:2", DP_READY="127.0.0.1:3")
    r = run([coredns, "-conf", REPO / "deploy" / "coredns" / "Corefile.rrl", "-dns.port", "0"], env=env,
            cwd=tmp_path, timeout=30)
    m = re.search(r"Corefile\.rrl:(\d+) - Error during parsing: Unknown directive 'rrl'", r.stdout + r.stderr)
    assert r.returncode != 0 and m, r.stdout + r.stderr
    readme = (REPO / "deploy" / "coredns" / "README.md").read_text()
    assert f"`Corefile.rrl:{m.group(1)} - Error during parsing: Unknown directive 'rrl'`" in readme
