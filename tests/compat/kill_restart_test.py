"""SIGKILL cairnd during a concurrent write load from real etcd clients (python3-etcd3),
restart it, and check the invariants: every acknowledged write is there with its
acknowledged revision, revisions have no gaps and are never reused, and writes continue
after the restart. Run with /usr/bin/python3.

Usage: kill_restart_test.py <cairnd binary>
Environment: CAIRN_CRASH_ITERATIONS (default 3), CAIRN_CRASH_SEED (default: time; printed).
"""
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cairnd_process import SKIP, Cairnd  # noqa: E402

try:
    import etcd3
    from etcd3 import etcdrpc
except ImportError as error:
    print("SKIP: python3-etcd3 is not installed (scripts/install-deps.sh installs it):", error)
    sys.exit(SKIP)

WRITERS = 8


def write_until_killed(client, writer, iteration, acked, stop):
    """Puts fresh keys until the server dies; records (key -> revision) of acknowledged puts."""
    i = 0
    while not stop.is_set():
        key = "w/%d/%d/%06d" % (iteration, writer, i)
        try:
            revision = client.put(key, key).header.revision
        except Exception:  # the server was killed: this write is unacknowledged
            return
        acked[key] = revision
        i += 1


def all_keys(client):
    response = client.kvstub.Range(etcdrpc.RangeRequest(key=b"\0", range_end=b"\0"), 30)
    return response.header.revision, {kv.key.decode(): kv for kv in response.kvs}


def main():
    binary = sys.argv[1]
    iterations = int(os.environ.get("CAIRN_CRASH_ITERATIONS", "3"))
    seed = int(os.environ.get("CAIRN_CRASH_SEED", str(int(time.time()))))
    print("kill_restart_test: seed %d (CAIRN_CRASH_SEED), %d iterations" % (seed, iterations))
    rng = random.Random(seed)
    work_dir = tempfile.mkdtemp(prefix="cairn_compat_kill_")
    data_dir = os.path.join(work_dir, "data")
    acked = {}
    # Revisions used by the after-restart put/delete pairs: no key holds them afterwards.
    skipped = set()
    server = None
    try:
        for iteration in range(iterations):
            server = Cairnd(binary, data_dir, os.path.join(work_dir, "cairnd.log")).start()
            client = etcd3.client(host=server.host, port=server.port, timeout=5)
            stop = threading.Event()
            threads = [threading.Thread(target=write_until_killed,
                                        args=(client, w, iteration, acked, stop))
                       for w in range(WRITERS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.5, 1.5))
            server.stop(signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join()
            client.close()
            server = Cairnd(binary, data_dir, os.path.join(work_dir, "cairnd.log")).start()
            client = etcd3.client(host=server.host, port=server.port, timeout=5)
            check_keys(client, acked, skipped)
            client.close()
            status = server.stop(signal.SIGTERM)
            server = None
            assert status == 0, "cairnd exited with %d after SIGTERM" % status
            print("iteration %d: %d acknowledged writes survived" % (iteration, len(acked)))
    except BaseException:
        if server is not None:
            print(server.log_tail())
            server.stop(signal.SIGKILL)
        raise
    shutil.rmtree(work_dir)
    print("PASS")


def check_keys(client, acked, skipped):
    current, kvs = all_keys(client)
    for key, revision in acked.items():
        assert key in kvs, "acknowledged write %s (revision %d) is lost" % (key, revision)
        assert kvs[key].mod_revision == revision, "%s: revision %d, acknowledged %d" % (
            key, kvs[key].mod_revision, revision)
    # Every load key is written once, so its mod revisions plus the revisions of the
    # put/delete pairs below are exactly 2..current: no gaps, no reuse.
    revisions = sorted([kv.mod_revision for kv in kvs.values()] + list(skipped))
    assert revisions == list(range(2, current + 1)), "revisions have gaps or repeats"
    put = client.put("after-restart", "x").header.revision
    assert put == current + 1, "revision after restart is %d, expected %d" % (put, current + 1)
    deleted = client.kvstub.DeleteRange(etcdrpc.DeleteRangeRequest(key=b"after-restart"), 10)
    skipped.update({put, deleted.header.revision})


if __name__ == "__main__":
    main()
