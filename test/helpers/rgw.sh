#!/usr/bin/env bash
# A throw-away S3 store for tests: single-node Ceph (one mon, one memstore
# OSD, no mgr) and radosgw on 127.0.0.1, from Debian's packages (.ci/run
# installs them). Everything lives under $RGW_DATA.
#
#   RGW_DATA=DIR RGW_PORT=P MON_PORT=Q rgw.sh start   → prints KEY=VALUE lines (endpoint, keys)
#   RGW_DATA=DIR rgw.sh stop                           → kills what start started, removes DIR
#
# Written from the workplace's recipe (../shared/ceph-rgw/), which has the
# measurements and the quirks of RGW 16.2's S3 API.
set -euo pipefail
D="${RGW_DATA:?set RGW_DATA}"
IP=127.0.0.1

stop() {
  for f in "$D"/run/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.5
  for f in "$D"/run/*.pid; do [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$D"
}

start() {
  local port="${RGW_PORT:-7480}" mon="${MON_PORT:-6789}"
  local access="${S3_ACCESS_KEY:-STOWAGETESTKEY000001}" secret="${S3_SECRET_KEY:-stowagetestsecret0000000000000000000001}"
  mkdir -p "$D"/{mon,osd,run,log,rgw,tmp}
  local conf="$D/ceph.conf" fsid
  fsid=$(uuidgen)
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_host = v1:$IP:$mon
public_addr = $IP
ms_bind_msgr2 = false
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $D/run
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid
log_file = $D/log/\$name.log
mon_cluster_log_file = $D/log/cluster.log
crash_dir = $D/tmp
tmp_dir = $D/tmp
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
[mon]
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
mon_data = $D/mon/\$id
mon_data_avail_crit = 1
mon_data_avail_warn = 2
[osd]
osd_data = $D/osd/\$id
osd_objectstore = memstore
memstore_device_bytes = 4294967296
osd_max_object_size = 134217728
[client.admin]
keyring = $D/admin.keyring
[client.rgw.a]
keyring = $D/rgw/keyring
rgw_frontends = beast endpoint=$IP:$port
rgw_data = $D/rgw
rgw_thread_pool_size = 64
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
CONF
  export CEPH_CONF="$conf"
  ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$D/admin.keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$D/mon.keyring" --import-keyring "$D/admin.keyring" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v1:$IP:$mon]" "$D/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
  ceph-mon -i a
  for i in $(seq 1 100); do ceph --connect-timeout 2 mon stat >/dev/null 2>&1 && break; [ "$i" = 100 ] && { tail -20 "$D/log/mon.a.log" >&2; exit 1; }; sleep 0.3; done
  local uuid id
  uuid=$(uuidgen)
  id=$(ceph osd new "$uuid")
  mkdir -p "$D/osd/$id"
  ceph-osd -i "$id" --no-mon-config --mkfs --mkkey --osd-uuid "$uuid" >"$D/log/osd-mkfs.log" 2>&1
  ceph auth add "osd.$id" osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$D/osd/$id/keyring" >/dev/null 2>&1
  ceph-osd -i "$id"
  for i in $(seq 1 200); do ceph osd dump 2>/dev/null | grep -q "^osd.$id up" && break; [ "$i" = 200 ] && { tail -30 "$D/log/osd.$id.log" >&2; exit 1; }; sleep 0.3; done
  # RGW would create its pools lazily, making the first requests slow.
  for p in .rgw.root default.rgw.log default.rgw.control default.rgw.meta default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ceph osd pool create "$p" 8 8 >/dev/null 2>&1
    ceph osd pool application enable "$p" rgw >/dev/null 2>&1
  done
  ceph auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$D/rgw/keyring"
  radosgw -n client.rgw.a
  for i in $(seq 1 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$IP:$port/" || true)" = 200 ] && break; [ "$i" = 300 ] && { tail -30 "$D/log/client.rgw.a.log" >&2; exit 1; }; sleep 0.3; done
  radosgw-admin user create --uid=stowage --display-name=stowage --access-key="$access" --secret-key="$secret" >/dev/null 2>"$D/log/user.err"
  echo "S3_ENDPOINT=http://$IP:$port"
  echo "AWS_ACCESS_KEY_ID=$access"
  echo "AWS_SECRET_ACCESS_KEY=$secret"
  echo "AWS_REGION=us-east-1"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: RGW_DATA=DIR $0 start|stop" >&2; exit 2 ;;
esac
