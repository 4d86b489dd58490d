#!/bin/bash
# A real one-node Slurm cluster on localhost, for tests/slurm (adapted from shared/slurm).
#   BASE=/abs/empty/dir cluster.sh start [dbd|none]     (dbd: accounting, so `sacct` works)
#   BASE=/abs/empty/dir cluster.sh stop
# Needs root and the Debian packages slurmctld slurmd slurm-client munge
# (+ slurmdbd mariadb-server for dbd). Exits non-zero, with the log tail, when a daemon
# does not come up. `stop` ends only the daemons whose PIDs `start` wrote under BASE.
# Ports: CTLD_PORT D_PORT DBD_PORT DB_PORT (defaults 6817 6818 6819 3306).
set -euo pipefail
BASE=${BASE:?set BASE to an absolute, empty directory}
case $BASE in /*) ;; *) echo "BASE must be absolute (slurmd exports SLURM_CONF=<its -f path> into jobs)" >&2; exit 2 ;; esac
ACCT=${2:-dbd}; HOST=$(hostname -s)
CTLD_PORT=${CTLD_PORT:-6817}; D_PORT=${D_PORT:-6818}; DBD_PORT=${DBD_PORT:-6819}; DB_PORT=${DB_PORT:-3306}
HERE=$(cd "$(dirname "$0")" && pwd)
export SLURM_CONF=$BASE/slurm.conf

bg() { local name=$1; shift; "$@" > "$BASE/log/$name.out" 2>&1 & echo $! > "$BASE/run/$name.bgpid"; }
die() { echo "cluster.sh: $1" >&2; for f in "${@:2}"; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done; exit 1; }
# wait_for SECONDS CMD...: poll CMD every 0.2 s
wait_for() { local n=$(( $1 * 5 )); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  for p in $CTLD_PORT $D_PORT; do port_free "$p" || die "port $p already in use (another Slurm running?)"; done
  mkdir -p "$BASE"/{state/ctld,state/d,run,log} /etc/slurm
  sed -e "s#@HOST@#$HOST#g" -e "s#@BASE@#$BASE#g" -e "s#@CTLD_PORT@#$CTLD_PORT#g" -e "s#@D_PORT@#$D_PORT#g" \
    "$HERE/slurm.conf.tmpl" > "$BASE/slurm.conf"
  # Two stand-in GPUs: slurmd drops file-less GPUs and wants character devices, so
  # point them at /dev/null and /dev/zero (task/none binds nothing; the host has no GPU)
  printf 'NodeName=%s Name=gpu File=/dev/null\nNodeName=%s Name=gpu File=/dev/zero\n' "$HOST" "$HOST" > "$BASE/gres.conf"
  if [ "$ACCT" = dbd ]; then
    sed -i -e 's#^JobAcctGatherType=.*#JobAcctGatherType=jobacct_gather/linux#' \
      -e "s#^AccountingStorageType=.*#AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\nAccountingStoragePort=$DBD_PORT\nAccountingStorageTRES=gres/gpu#" \
      "$BASE/slurm.conf"
  fi
  # Client commands (sbatch, sacct) of other shells read /etc/slurm/slurm.conf
  ln -sfn "$BASE/slurm.conf" /etc/slurm/slurm.conf

  # munge: reuse a working one, else start ours
  if ! (munge -n | unmunge) >/dev/null 2>&1; then
    if [ ! -f /etc/munge/munge.key ]; then
      mkdir -p /etc/munge
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
      chown -R munge:munge /etc/munge; chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    bg munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not start" "$BASE/log/munged.out"
  fi

  if [ "$ACCT" = dbd ]; then
    port_free "$DBD_PORT" || die "port $DBD_PORT already in use"
    port_free "$DB_PORT" || die "port $DB_PORT already in use"
    local sock=$BASE/run/mysqld.sock
    [ -d "$BASE/mysql/mysql" ] || mariadb-install-db --user=root --datadir="$BASE/mysql" \
      --auth-root-authentication-method=socket > "$BASE/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed" "$BASE/log/mariadb-install.log"
    bg mariadbd /usr/sbin/mariadbd --no-defaults --user=root --datadir="$BASE/mysql" --socket="$sock" \
      --pid-file="$BASE/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
      --log-error="$BASE/log/mariadbd.err"
    wait_for 30 mariadb --no-defaults -uroot -S "$sock" -e 'select 1' \
      || die "mariadbd did not start" "$BASE/log/mariadbd.err"
    mariadb --no-defaults -uroot -S "$sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
      CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat > "$BASE/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$BASE/slurmdbd.conf"
    # slurmdbd reads its conf from the directory of SLURM_CONF
    bg slurmdbd /usr/sbin/slurmdbd -D
    wait_for 30 grep -q "slurmdbd version .* started" "$BASE/log/slurmdbd.log" \
      || die "slurmdbd did not start" "$BASE/log/slurmdbd.log" "$BASE/log/slurmdbd.out"
  fi

  bg slurmctld /usr/sbin/slurmctld -D -f "$BASE/slurm.conf"
  bg slurmd /usr/sbin/slurmd -D -f "$BASE/slurm.conf"
  wait_for 60 sh -c "sinfo -h -o '%t' | grep -qE '^(idle|mix)'" \
    || die "node did not become idle" "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log"
  if [ "$ACCT" = dbd ]; then
    # the controller registers the cluster with slurmdbd on start; sacct must answer
    wait_for 30 sacct -n -X -S now-1hour || die "sacct does not answer" "$BASE/log/slurmdbd.log" "$BASE/log/slurmctld.log"
  fi
  sinfo -N -o '%N %t %c %m %G'
}

stop() {
  # our cluster, our jobs: cancel them so no slurmstepd outlives the daemons
  if [ -f "$BASE/run/slurmctld.bgpid" ]; then scancel --full --quiet --user=root 2>/dev/null || true; sleep 0.5; fi
  # TERM them all first (each takes ~2 s to exit), then wait; KILL what outlives 10 s
  local d f pids=()
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    f=$BASE/run/$d.bgpid; [ -f "$f" ] || continue
    pids+=("$d:$(cat "$f")"); kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "${p#*:}" 2>/dev/null || break; sleep 0.2; done
    kill -0 "${p#*:}" 2>/dev/null && kill -9 "${p#*:}" 2>/dev/null || true
    echo "stopped ${p%%:*} (${p#*:})"
  done
  # drop the global config link only when it is ours
  [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$BASE/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
  return 0
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: BASE=/abs/dir $0 start [dbd|none] | stop" >&2; exit 2 ;;
esac
