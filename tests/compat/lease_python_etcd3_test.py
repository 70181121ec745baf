"""Drives cairnd's Lease service with Debian's python3-etcd3 client (run with /usr/bin/python3).

Usage: lease_python_etcd3_test.py <cairnd binary>
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd3_harness import CairndTestCase, main  # noqa: E402  (exits with SKIP without etcd3)
import etcd3  # noqa: E402
import grpc  # noqa: E402
from etcd3 import etcdrpc  # noqa: E402

LEASE_NOT_FOUND = "etcdserver: requested lease not found"


class Etcd3LeaseTest(CairndTestCase):
    def test_grant_put_ttl_refresh_revoke(self):
        lease = self.etcd.lease(60)
        self.assertGreater(lease.id, 0)
        self.assertEqual(lease.granted_ttl, 60)
        self.etcd.put("py/a", "1", lease=lease)
        self.etcd.put("py/b", "2", lease=lease.id)
        self.assertEqual(sorted(lease.keys), [b"py/a", b"py/b"])
        self.assertLessEqual(lease.remaining_ttl, 60)
        self.assertGreater(lease.remaining_ttl, 55)
        refreshed = lease.refresh()
        self.assertEqual(refreshed[0].TTL, 60)
        self.assertEqual(refreshed[0].ID, lease.id)
        _, meta = self.etcd.get("py/a")
        self.assertEqual(meta.lease_id, lease.id)
        listed = self.etcd.leasestub.LeaseLeases(etcdrpc.LeaseLeasesRequest(), 10)
        self.assertIn(lease.id, [status.ID for status in listed.leases])
        lease.revoke()
        self.assertEqual(self.etcd.get("py/a"), (None, None))
        self.assertEqual(self.etcd.get("py/b"), (None, None))
        self.assertEqual(lease.remaining_ttl, -1)

    def test_minimum_ttl(self):
        lease = self.etcd.lease(1)
        self.assertEqual(lease.granted_ttl, 2)
        lease.revoke()

    def test_chosen_id_and_duplicate(self):
        lease = self.etcd.lease(30, lease_id=4242)
        self.assertEqual(lease.id, 4242)
        # python-etcd3 turns FAILED_PRECONDITION into its own exception; check the raw RPC.
        with self.assertRaises(etcd3.exceptions.PreconditionFailedError):
            self.etcd.lease(30, lease_id=4242)
        with self.assertRaises(grpc.RpcError) as raised:
            self.etcd.leasestub.LeaseGrant(etcdrpc.LeaseGrantRequest(TTL=30, ID=4242), 10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(raised.exception.details(), "etcdserver: lease already exists")
        lease.revoke()

    def test_put_with_missing_lease_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.etcd.put("py/missing", "x", lease=987654)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(raised.exception.details(), LEASE_NOT_FOUND)

    def test_revoke_missing_lease_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.etcd.revoke_lease(987654)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(raised.exception.details(), LEASE_NOT_FOUND)

    def test_expiry_deletes_keys(self):
        lease = self.etcd.lease(2)
        self.etcd.put("py/expiring", "v", lease=lease)
        self.etcd.put("py/plain", "v")
        deadline = time.monotonic() + 6
        while self.etcd.get("py/expiring")[0] is not None:
            self.assertLess(time.monotonic(), deadline, "the lease did not expire in time")
            time.sleep(0.1)
        self.assertEqual(self.etcd.get("py/plain")[0], b"v")
        self.assertEqual(lease.remaining_ttl, -1)
        self.etcd.delete("py/plain")


if __name__ == "__main__":
    main()
