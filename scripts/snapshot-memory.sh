#!/bin/bash
# Peak RSS (VmHWM) of a follower that catches up by snapshot (docs/decisions.md, "Snapshot
# transfer"): 3 cairnd on loopback, the third killed, VALUES values of 1 MiB (base64 of 768 KiB)
# and 300 small puts written, then the third restarted; it installs a snapshot of ~2 MiB per
# value. Needs etcdctl (etcd-client). Usage: bash scripts/snapshot-memory.sh build/bin/cairnd 60
set -u
CAIRND=$1; VALUES=${2:-60}
D=$(mktemp -d /tmp/cairn-snapmem.XXXXXX)
IC="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"
start() {
  local i=$1
  nice -n 19 $CAIRND --name m$i --data-dir $D/m$i --listen-client-urls http://127.0.0.1:2379$i \
    --advertise-client-urls http://127.0.0.1:2379$i --listen-peer-urls http://127.0.0.1:2380$i \
    --initial-advertise-peer-urls http://127.0.0.1:2380$i --initial-cluster $IC \
    --listen-metrics-urls http://127.0.0.1:2381$i --snapshot-count 200 --snapshot-catchup-entries 50 \
    >> $D/m$i.log 2>&1 &
  echo $! > $D/m$i.pid
}
EP=http://127.0.0.1:23791,http://127.0.0.1:23792
for i in 1 2 3; do start $i; done
sleep 3
ETCDCTL_API=3 etcdctl --endpoints=$EP put warm up >/dev/null || { echo "cluster not up"; tail $D/*.log; exit 1; }
sleep 1
kill -9 $(cat $D/m3.pid); sleep 0.5
head -c 786432 /dev/urandom | base64 -w0 > $D/value
for k in $(seq 1 $VALUES); do ETCDCTL_API=3 etcdctl --endpoints=$EP put big$k < $D/value >/dev/null || echo "put big$k failed"; done
for k in $(seq 1 300); do echo "put small$k v$k"; done | ETCDCTL_API=3 etcdctl --endpoints=$EP txn >/dev/null 2>&1
for k in $(seq 1 300); do ETCDCTL_API=3 etcdctl --endpoints=$EP put small$k v$k >/dev/null; done
start 3
PID=$(cat $D/m3.pid)
for t in $(seq 1 120); do
  sleep 0.5
  if grep -q "installed the snapshot" $D/m3.log; then break; fi
done
sleep 1
grep -h "prepared a snapshot\|installing the snapshot\|installed the snapshot" $D/m*.log
echo "follower m3: $(grep -E 'VmHWM|VmRSS' /proc/$PID/status | tr -s ' ' | tr '\n' ' ')"
for i in 1 2; do echo "m$i: $(grep -E 'VmHWM' /proc/$(cat $D/m$i.pid)/status | tr -s ' ')"; done
for i in 1 2 3; do kill $(cat $D/m$i.pid) 2>/dev/null; done
sleep 1
du -sh $D/m3/state
rm -rf $D
