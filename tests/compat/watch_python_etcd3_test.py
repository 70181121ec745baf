"""Drives cairnd's Watch service with Debian's python3-etcd3 client (run with /usr/bin/python3):
watch, watch_prefix, start_revision with prev_kv, cancel, and a compacted start revision.

Usage: watch_python_etcd3_test.py <cairnd binary>
"""
import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd3_harness import CairndTestCase, main  # noqa: E402  (exits with SKIP without etcd3)
import etcd3  # noqa: E402
from etcd3 import etcdrpc  # noqa: E402

TIMEOUT_S = 10


class WatchTest(CairndTestCase):
    def setUp(self):
        self.etcd.kvstub.DeleteRange(etcdrpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), 10)

    def watch_queue(self, key, **kwargs):
        """Returns (queue of responses or errors, watch id)."""
        responses = queue.Queue()
        watch_id = self.etcd.add_watch_callback(key, responses.put, **kwargs)
        self.addCleanup(self.etcd.cancel_watch, watch_id)
        return responses, watch_id

    def events(self, responses, count):
        events = []
        while len(events) < count:
            response = responses.get(timeout=TIMEOUT_S)
            if isinstance(response, Exception):
                raise response
            events.extend(response.events)
        return events

    def test_watch_key_live(self):
        events_iterator, cancel = self.etcd.watch("live")
        self.etcd.put("other", "x")
        put = self.etcd.put("live", "1")
        self.etcd.delete("live")
        first = next(events_iterator)
        self.assertIsInstance(first, etcd3.events.PutEvent)
        self.assertEqual(first.key, b"live")
        self.assertEqual(first.value, b"1")
        self.assertEqual(first.mod_revision, put.header.revision)
        second = next(events_iterator)
        self.assertIsInstance(second, etcd3.events.DeleteEvent)
        self.assertEqual(second.key, b"live")
        cancel()

    def test_watch_prefix(self):
        responses, _ = self.watch_queue("dir/", range_end=etcd3.utils.increment_last_byte(b"dir/"))
        self.etcd.put("dir/a", "1")
        self.etcd.put("dis", "outside")
        self.etcd.put("dir/b", "2")
        events = self.events(responses, 2)
        self.assertEqual([e.key for e in events], [b"dir/a", b"dir/b"])

    def test_watch_prefix_iterator(self):
        events_iterator, cancel = self.etcd.watch_prefix("pre/")
        self.etcd.put("pre/1", "a")
        self.etcd.put("pre/2", "b")
        self.assertEqual(next(events_iterator).key, b"pre/1")
        self.assertEqual(next(events_iterator).key, b"pre/2")
        cancel()

    def test_start_revision_with_prev_kv(self):
        first = self.etcd.put("hist", "v1").header.revision
        self.etcd.put("hist", "v2")
        self.etcd.delete("hist")
        responses, _ = self.watch_queue("hist", start_revision=first, prev_kv=True)
        events = self.events(responses, 3)
        self.assertEqual([type(e) for e in events],
                         [etcd3.events.PutEvent, etcd3.events.PutEvent, etcd3.events.DeleteEvent])
        self.assertEqual(events[0].value, b"v1")
        self.assertEqual(events[1].value, b"v2")
        self.assertEqual(events[1].prev_value, b"v1")
        self.assertEqual(events[2].prev_value, b"v2")
        self.assertEqual([e.mod_revision for e in events], [first, first + 1, first + 2])
        # Then live.
        self.etcd.put("hist", "v3")
        self.assertEqual(self.events(responses, 1)[0].value, b"v3")

    def test_many_events_in_order(self):
        responses, _ = self.watch_queue("n/", range_end=etcd3.utils.increment_last_byte(b"n/"))
        for i in range(300):
            self.etcd.put("n/%d" % (i % 7), str(i))
        events = self.events(responses, 300)
        self.assertEqual([e.value for e in events], [str(i).encode() for i in range(300)])

    def test_cancel_stops_events(self):
        responses, watch_id = self.watch_queue("c")
        self.etcd.put("c", "1")
        self.assertEqual(self.events(responses, 1)[0].value, b"1")
        self.etcd.cancel_watch(watch_id)
        self.etcd.put("c", "2")
        self.etcd.put("sentinel", "x")
        sentinel, _ = self.watch_queue("sentinel2")
        self.etcd.put("sentinel2", "y")
        self.events(sentinel, 1)
        self.assertTrue(responses.empty())

    def test_compacted_start_revision(self):
        first = self.etcd.put("comp", "1").header.revision
        last = self.etcd.put("comp", "2").header.revision
        self.etcd.compact(last)
        responses, _ = self.watch_queue("comp", start_revision=first)
        error = responses.get(timeout=TIMEOUT_S)
        self.assertIsInstance(error, etcd3.exceptions.RevisionCompactedError)
        self.assertEqual(error.compacted_revision, last)


if __name__ == "__main__":
    main()
