"""Drives a real cairnd with Debian's python3-etcd3 client (run with /usr/bin/python3).

Usage: python_etcd3_test.py <cairnd binary>
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd3_harness import CairndTestCase, main  # noqa: E402  (exits with SKIP without etcd3)
import etcd3  # noqa: E402
import grpc  # noqa: E402
from etcd3 import etcdrpc  # noqa: E402

COMPACTED = "etcdserver: mvcc: required revision has been compacted"


class Etcd3ClientTest(CairndTestCase):
    def setUp(self):
        # Every key: "\0" to "\0" (etcd's "from the smallest key"; an empty key is invalid).
        self.etcd.kvstub.DeleteRange(etcdrpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), 10)

    def test_put_get(self):
        response = self.etcd.put("greeting", "hello")
        self.assertGreater(response.header.revision, 1)
        self.assertNotEqual(response.header.member_id, 0)
        value, meta = self.etcd.get("greeting")
        self.assertEqual(value, b"hello")
        self.assertEqual(meta.key, b"greeting")
        self.assertEqual(meta.version, 1)
        self.assertEqual(meta.mod_revision, response.header.revision)
        self.assertEqual(self.etcd.get("missing"), (None, None))
        prev = self.etcd.put("greeting", "again", prev_kv=True)
        self.assertEqual(prev.prev_kv.value, b"hello")

    def test_get_prefix_sorted_and_count_only(self):
        for i in range(5):
            self.etcd.put("p/%d" % i, str(i))
        self.etcd.put("q", "other")
        values = [v for v, _ in self.etcd.get_prefix("p/")]
        self.assertEqual(values, [b"0", b"1", b"2", b"3", b"4"])
        descending = [m.key for _, m in self.etcd.get_prefix("p/", sort_order="descend")]
        self.assertEqual(descending[0], b"p/4")
        # count_only through the raw stub: python-etcd3 drops the count.
        request = etcdrpc.RangeRequest(key=b"p/", range_end=b"p0", count_only=True)
        response = self.etcd.kvstub.Range(request, 10)
        self.assertEqual(response.count, 5)
        self.assertEqual(len(response.kvs), 0)
        request = etcdrpc.RangeRequest(key=b"p/", range_end=b"p0", limit=2)
        response = self.etcd.kvstub.Range(request, 10)
        self.assertEqual((len(response.kvs), response.more, response.count), (2, True, 5))

    def test_delete(self):
        self.etcd.put("d/1", "1")
        self.etcd.put("d/2", "2")
        self.assertTrue(self.etcd.delete("d/1"))
        self.assertFalse(self.etcd.delete("d/1"))
        response = self.etcd.delete("d/2", prev_kv=True, return_response=True)
        self.assertEqual(response.deleted, 1)
        self.assertEqual(response.prev_kvs[0].value, b"2")
        self.assertEqual(list(self.etcd.get_prefix("d/")), [])

    def test_transaction(self):
        self.etcd.put("t", "1")
        succeeded, responses = self.etcd.transaction(
            compare=[self.etcd.transactions.value("t") == "1",
                     self.etcd.transactions.version("t") > 0],
            success=[self.etcd.transactions.put("t", "2"),
                     self.etcd.transactions.get("t")],
            failure=[self.etcd.transactions.put("t", "failed")])
        self.assertTrue(succeeded)
        self.assertEqual(responses[1][0][0], b"2")
        succeeded, _ = self.etcd.transaction(
            compare=[self.etcd.transactions.value("t") == "1"],
            success=[self.etcd.transactions.put("t", "wrong")],
            failure=[self.etcd.transactions.delete("t")])
        self.assertFalse(succeeded)
        self.assertEqual(self.etcd.get("t"), (None, None))

    def test_compaction_error(self):
        first = self.etcd.put("c", "1").header.revision
        self.etcd.put("c", "2")
        self.etcd.compact(first + 1)
        with self.assertRaises(grpc.RpcError) as raised:
            self.etcd.kvstub.Range(etcdrpc.RangeRequest(key=b"c", revision=first), 10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
        self.assertEqual(raised.exception.details(), COMPACTED)

    def test_empty_key_is_invalid_argument(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.etcd.put("", "x")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(raised.exception.details(), "etcdserver: key is not provided")


if __name__ == "__main__":
    main()
