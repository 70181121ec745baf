"""Starts and stops a real cairnd on a free loopback port for the Python compat tests.

cairnd listens on port 0 and logs the port it bound, so tests never race for ports.
"""
import os
import re
import signal
import subprocess
import time

SKIP = 77  # ctest SKIP_RETURN_CODE


class Cairnd:
    def __init__(self, binary, data_dir, log_path, extra_flags=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_flags = list(extra_flags)
        self.process = None
        self.host = None
        self.port = None

    def start(self, timeout_s=10):
        self.log = open(self.log_path, "ab")
        offset = self.log.tell()  # the log may hold earlier runs' lines
        self.process = subprocess.Popen(
            [self.binary, "--data-dir", self.data_dir,
             "--listen-client-urls", "http://127.0.0.1:0",
             "--listen-metrics-urls", "http://127.0.0.1:0"] + self.extra_flags,
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                found = re.findall(rb"serving etcd v3 clients on ([0-9.]+):([0-9]+)", f.read())
            if found:
                self.host, self.port = found[-1][0].decode(), int(found[-1][1])
                return self
            if self.process.poll() is not None:
                raise RuntimeError("cairnd exited during startup:\n" + self.log_tail())
            time.sleep(0.05)
        raise RuntimeError("cairnd did not report its address:\n" + self.log_tail())

    def stop(self, sig=signal.SIGTERM, timeout_s=20):
        """Stops cairnd; returns its exit status."""
        if self.process is None:
            return None
        self.process.send_signal(sig)
        status = self.process.wait(timeout=timeout_s)
        self.process = None
        self.log.close()
        return status

    def log_tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")
