#!/usr/bin/env python3
"""bench_vs_etcd_report.py on a made-up run: medians, the limits and each target's verdict.

Run by ctest (cairn_bench_report_test); needs only the standard library.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_vs_etcd_report.py")


def result(throughput, p50=1.0, p99=2.0, **extra):
    r = {"throughput_per_s": throughput, "errors": 0, "ok": 1000,
         "latency_ms": {"p50": p50, "p99": p99}, "client_cpu": {"us_per_request": 20.0},
         "series": {"put": {"ok": 1000}}, "wal_fsyncs": 100, "data_dir_bytes": 2**20,
         "server_vm_hwm_bytes": 2**20}
    r.update(extra)
    return r


class Run:
    """A RUN_DIR as scripts/bench-vs-etcd.sh leaves it."""

    def __init__(self, fdatasync_p50_us=146):
        self.dir = tempfile.TemporaryDirectory()
        os.makedirs(os.path.join(self.dir.name, "results"))
        machine = {"cores": 2, "cpu": "test", "memory_gib": 24, "fdatasync_p50_us": fdatasync_p50_us,
                   "fdatasync_p99_us": 300, "load_average": 0.1, "idle_pageout_s": None}
        self.write("machine.json", json.dumps(machine))
        self.write("versions.txt", "etcd: 3.4\ncairn: test\ninvocation: test")
        self.write("commands.txt", "cairn-bench ...")

    def write(self, name, text):
        with open(os.path.join(self.dir.name, name), "w") as f:
            f.write(text)

    def add(self, workload, server, rounds, step=""):
        """rounds: one result per round."""
        for i, r in enumerate(rounds, 1):
            name = f"{workload}.{server}.{i}{'.' + step if step else ''}.json"
            self.write(os.path.join("results", name), json.dumps(r))

    def report(self):
        out = subprocess.run([sys.executable, REPORT, self.dir.name], check=True,
                             capture_output=True, text=True).stdout
        return out

    def verdict(self, target_start):
        report = self.report()
        targets = report[report.index("Targets (issue 5)"):]
        rows = [line for line in targets.splitlines() if line.startswith("| " + target_start)]
        assert len(rows) == 1, (target_start, rows)
        return rows[0]


class TargetsTest(unittest.TestCase):
    def new_run(self, **kwargs):
        run = Run(**kwargs)
        self.addCleanup(run.dir.cleanup)
        return run

    def test_put_1x1_missed_below_the_floor_of_round_trip_plus_fdatasync(self):
        run = self.new_run(fdatasync_p50_us=146)
        # Medians: etcd 0.35 ms, Cairn 0.36 ms, null 0.08 ms (the outlying rounds don't count).
        run.add("put_1x1", "etcd", [result(2800, p50=v) for v in (0.34, 0.35, 0.90)])
        run.add("put_1x1", "cairn", [result(2700, p50=v) for v in (0.36, 0.20, 0.37)])
        run.add("put_1x1", "null", [result(12000, p50=v) for v in (0.08, 0.07, 0.09)])
        row = run.verdict("put 1/1")
        self.assertIn("1.03× (0.36 vs 0.35 ms)", row)
        # 0.6 × 0.35 = 0.21 ms < 0.08 + 0.146 = 0.226 ms.
        self.assertIn("**not met**: 0.6× etcd is 0.21 ms, below the floor of 0.226 ms", row)
        self.assertIn("gRPC round trip 0.08 ms + fdatasync p50 0.146 ms", row)
        self.assertIn("put 1/1 p50 0.08 ms", run.report())

    def test_put_1x1_missed_above_the_floor_gives_no_excuse(self):
        run = self.new_run(fdatasync_p50_us=100)
        run.add("put_1x1", "etcd", [result(2800, p50=0.5)])
        run.add("put_1x1", "cairn", [result(2700, p50=0.4)])
        run.add("put_1x1", "null", [result(12000, p50=0.05)])
        row = run.verdict("put 1/1")
        self.assertTrue(row.endswith("| **not met** |"), row)

    def test_put_1x1_met(self):
        run = self.new_run()
        run.add("put_1x1", "etcd", [result(2800, p50=0.5)])
        run.add("put_1x1", "cairn", [result(2700, p50=0.3)])
        self.assertTrue(run.verdict("put 1/1").endswith("| met |"))

    def test_put_100x1000_missed_above_the_null_servers_throughput(self):
        run = self.new_run()
        run.add("put_100x1000", "etcd", [result(28000, p99=70)])
        run.add("put_100x1000", "cairn", [result(26000, p99=60)])  # the client: 20 µs a put
        run.add("put_100x1000", "null", [result(60000)])
        row = run.verdict("put 100/1000")
        self.assertIn("throughput 0.93×; p99 0.86×", row)
        self.assertIn("**not met**: 3× etcd is 84k puts/s, above gRPC alone", row)
        self.assertIn("(60k puts/s against cairn-null-kv); at that rate the client alone would"
                      " take 1.68 of the 2 cores (20 µs per put in Cairn's run)", row)
        self.assertIn("put 100/1000 60k puts/s", run.report())

    def test_put_100x1000_the_limits_do_not_excuse_its_p99(self):
        run = self.new_run()
        run.add("put_100x1000", "etcd", [result(28000, p99=70)])
        run.add("put_100x1000", "cairn", [result(26000, p99=80)])
        run.add("put_100x1000", "null", [result(60000)])
        row = run.verdict("put 100/1000")
        self.assertIn("throughput 0.93×; p99 1.14×", row)
        self.assertIn("**not met**: 3× etcd is 84k puts/s, above gRPC alone", row)
        self.assertTrue(row.endswith("; p99 is above etcd's, which no limit measured here"
                                     " explains |"), row)

    def test_put_100x1000_p99_alone_fails_it(self):
        run = self.new_run()
        run.add("put_100x1000", "etcd", [result(10000, p99=50)])
        run.add("put_100x1000", "cairn", [result(31000, p99=51)])
        self.assertTrue(run.verdict("put 100/1000").endswith("| **not met** |"))

    def test_put_100x1000_at_three_times(self):
        for cairn, verdict in ((30000, "| met |"), (29999, "| **not met** |")):
            run = self.new_run()
            run.add("put_100x1000", "etcd", [result(10000, p99=50)])
            run.add("put_100x1000", "cairn", [result(cairn, p99=40)])
            self.assertTrue(run.verdict("put 100/1000").endswith(verdict), cairn)

    def test_ranges_and_txns_at_three_times(self):
        run = self.new_run()
        run.add("range_one_l", "etcd", [result(9000)])
        run.add("range_one_l", "cairn", [result(27000)])
        run.add("range_one_s", "etcd", [result(9000)])
        run.add("range_one_s", "cairn", [result(26999)])
        run.add("txn_put_4ops", "etcd", [result(6000)])
        run.add("txn_put_4ops", "cairn", [result(18000)])
        run.add("txn_mixed_1to1", "etcd", [result(7000)])
        run.add("txn_mixed_1to1", "cairn", [result(24000)])
        self.assertTrue(run.verdict("range one key").endswith("| **not met** |"))
        self.assertTrue(run.verdict("txn-put").endswith("| met |"))

    def test_a_target_half_measured_is_not_called_met(self):
        run = self.new_run()
        run.add("range_one_l", "etcd", [result(9000)])
        run.add("range_one_l", "cairn", [result(36000)])
        self.assertTrue(run.verdict("range one key").endswith("| partly measured |"))
        self.assertNotIn("| range prefix", run.report())

    def test_watch_and_1m(self):
        run = self.new_run()
        watch = {"config": {"streams": 10, "watchers_per_stream": 10000, "rate": 1000,
                            "duration_s": 20}}
        event = {"event": {"latency_ms": {"p99": 0.8}}}
        run.add("watch", "etcd", [result(1000, server_bytes_per_watcher=1400,
                                         series={"event": {"latency_ms": {"p99": 1.8}}},
                                         **watch)])
        run.add("watch", "cairn", [result(1000, server_bytes_per_watcher=701, series=event,
                                          **watch)])
        run.add("load_1m", "etcd", [result(27000, server_vm_hwm_bytes=554 * 2**20,
                                           data_dir_bytes=785 * 2**20)])
        run.add("load_1m", "cairn", [result(28000, server_vm_hwm_bytes=217 * 2**20,
                                            data_dir_bytes=786 * 2**20)])
        row = run.verdict("watch")
        self.assertIn("memory per watcher 0.50×", row)  # 701 / 1400 rounds to 0.50 but is over
        self.assertTrue(row.endswith("| **not met** |"), row)
        self.assertTrue(run.verdict("1M keys").endswith("| **not met** |"))

    def test_10m_keys_needs_every_pass_at_80_percent(self):
        run = self.new_run()
        run.add("put_100x1000", "cairn", [result(24000)])
        run.add("range_random_l", "cairn", [result(33000)])
        for step, value in (("put", 21000), ("put_next", 24000), ("put_sustained", 19300)):
            run.add("keys_10m", "cairn", [result(value)], step)
        run.add("keys_10m", "cairn", [result(34000)])
        row = run.verdict("10M keys")
        self.assertIn("put, first pass 0.88×; put, next pass 1.00×; put, four passes 0.80×;"
                      " range a random key 1.03×", row)
        self.assertTrue(row.endswith("| met |"), row)

        slow = self.new_run()
        slow.add("put_100x1000", "cairn", [result(24000)])
        slow.add("range_random_l", "cairn", [result(33000)])
        for step, value in (("put", 19100), ("put_next", 24000), ("put_sustained", 20000)):
            slow.add("keys_10m", "cairn", [result(value)], step)
        slow.add("keys_10m", "cairn", [result(34000)])
        self.assertTrue(slow.verdict("10M keys").endswith("| **not met** |"))

    def test_no_limits_paragraph_without_the_null_server(self):
        run = self.new_run()
        run.add("put_1x1", "etcd", [result(2800, p50=0.35)])
        run.add("put_1x1", "cairn", [result(2700, p50=0.36)])
        self.assertNotIn("cairn-null-kv", run.report())
        self.assertTrue(run.verdict("put 1/1").endswith("| **not met** |"))


if __name__ == "__main__":
    unittest.main()
