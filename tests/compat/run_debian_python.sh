#!/bin/sh
# Runs a Python test with Debian's /usr/bin/python3 (where python3-etcd3 lives; a python3
# earlier on PATH may be another build without Debian's modules). Exit 77 (ctest: skipped)
# only when Debian's python3 itself is missing, which means python3-etcd3 is too.
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 is not installed"; exit 77; }
exec /usr/bin/python3 "$@"
