"""Shared harness for the python3-etcd3 compat tests.

Importing it imports python3-etcd3, or exits with SKIP (77) when Debian's python3-etcd3 is
not installed. CairndTestCase starts one real cairnd per test class in a temporary directory
and gives the class `etcd`, a python3-etcd3 client to it; main() runs unittest with the cairnd
binary named on the command line. Run the tests with /usr/bin/python3.
"""
import os
import shutil
import sys
import tempfile
import unittest

from cairnd_process import SKIP, Cairnd

try:
    import etcd3
except ImportError as error:
    print("SKIP: python3-etcd3 is not installed (scripts/install-deps.sh installs it):", error)
    sys.exit(SKIP)

_cairnd_binary = None


class CairndTestCase(unittest.TestCase):
    """One cairnd for the whole class; it must exit 0 on SIGTERM at the end."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cairn_compat_%s_" % cls.__name__)
        cls.server = Cairnd(_cairnd_binary, os.path.join(cls.dir, "data"),
                            os.path.join(cls.dir, "cairnd.log")).start()
        cls.etcd = etcd3.client(host=cls.server.host, port=cls.server.port, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.etcd.close()
        status = cls.server.stop()
        shutil.rmtree(cls.dir)
        assert status == 0, "cairnd exited with %s after SIGTERM" % status


def main():
    global _cairnd_binary
    if len(sys.argv) != 2:
        sys.exit("usage: %s <cairnd binary>" % os.path.basename(sys.argv[0]))
    _cairnd_binary = sys.argv.pop(1)
    unittest.main(verbosity=2)
