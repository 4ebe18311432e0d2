#!/usr/bin/env bash
# The Slurm test cluster of slurmbatch's test suite: one machine, real daemons, accounting.
#
#   tests/cluster/cluster.sh start [--max-array N]   install what is missing, configure,
#                                                    start, wait for a smoke job in sacct
#   tests/cluster/cluster.sh stop [--purge]          stop our daemons (by pid file only);
#                                                    --purge also deletes state and configs
#   tests/cluster/cluster.sh status                  exit 0 when the cluster answers
#   tests/cluster/cluster.sh accounting-off          stop slurmdbd only (sacct then fails;
#                                                    'start' brings it back)
#
# Runs as root on Debian 12 without systemd. Idempotent: a running daemon is left alone;
# a changed configuration (e.g. another --max-array) is applied with a restart of
# slurmctld and slurmd. It runs its own munged, MariaDB (127.0.0.1:$SB_DB_PORT), slurmdbd,
# slurmctld and one slurmd declaring $SB_CPUS CPUs (more than the machine has, thanks to
# SlurmdParameters=config_overrides) and $SB_GPUS fake GPUs (character devices in
# gres.conf), with partitions 'debug' (default) and 'urgent' (preempts debug by requeue).
# State lives in $SB_CLUSTER_DIR; slurm.conf, gres.conf and slurmdbd.conf go to
# /etc/slurm, where every Slurm client and submitit find them.
set -euo pipefail

DIR=${SB_CLUSTER_DIR:-/var/tmp/slurmbatch-cluster}
CONF=/etc/slurm
CLUSTER=${SB_CLUSTER_NAME:-sbtest}
CPUS=${SB_CPUS:-8}
GPUS=${SB_GPUS:-4}
MEM=${SB_MEM_MB:-16000}
DB_PORT=${SB_DB_PORT:-3307}
MAX_ARRAY=${SB_MAX_ARRAY:-10001}
TIMEOUT=${SB_TIMEOUT:-240}
NODE=$(hostname -s)
MUNGE_SOCK=$DIR/munge/munge.socket.2
MYSQL_SOCK=$DIR/mysql-run/mysqld.sock
export SLURM_CONF=$CONF/slurm.conf

say() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# running <pidfile> <program>: the pid in the file is alive and is that program
running() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 < "$1")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# until_ok <seconds> <what> <command...>
until_ok() {
    local limit=$(( $(date +%s) + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$limit" ]; then
            echo "[cluster] timed out waiting for $what; last log lines:" >&2
            tail -n 20 "$DIR"/log/*.log "$DIR"/munge/munged.log >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.3
    done
}

install_packages() {
    local pkgs="slurm-wlm slurmdbd slurm-client munge mariadb-server mariadb-client" missing="" p
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=" $p"
    done
    [ -z "$missing" ] && return 0
    say "installing$missing"
    # keep the packages' scripts from starting the system's own daemons
    local policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_made=1
    fi
    local ok=0 try
    for try in 1 2 3; do
        if DEBIAN_FRONTEND=noninteractive apt-get update -q >"$DIR/log/apt.log" 2>&1 &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
               $missing >>"$DIR/log/apt.log" 2>&1; then
            ok=1; break
        fi
        sleep $((try * 5))
    done
    [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $ok = 1 ] || { tail -n 30 "$DIR/log/apt.log" >&2; die "apt-get install failed"; }
}

# write <file> <mode>: content from stdin; records the file name in CHANGED if it changed
CHANGED=""
write() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat > "$tmp"
    chmod "$2" "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 0; fi
    if [ -f "$1" ] && ! grep -q '^# written by slurmbatch tests/cluster/cluster.sh' "$1"; then
        cp -p "$1" "$1.before-slurmbatch"
        say "kept the previous $1 as $1.before-slurmbatch"
    fi
    mv -f "$tmp" "$1"
    CHANGED+=" $(basename "$1")"
}

configure() {
    mkdir -p "$DIR"/{log,run,spool/slurmctld,spool/slurmd,dev,munge,mysql-run} "$CONF"
    chmod 755 "$DIR" "$DIR"/{log,run,dev}
    chown munge:munge "$DIR/munge"; chmod 755 "$DIR/munge"
    chown mysql:mysql "$DIR/mysql-run"; chmod 755 "$DIR/mysql-run"
    local i gres_node=""
    for ((i = 0; i < GPUS; i++)); do   # gres.conf needs character devices: c 1 3 is /dev/null
        [ -c "$DIR/dev/gpu$i" ] || { rm -f "$DIR/dev/gpu$i"; mknod -m 666 "$DIR/dev/gpu$i" c 1 3; }
    done
    [ "$GPUS" -gt 0 ] && gres_node="Gres=gpu:$GPUS"
    write "$CONF/slurm.conf" 644 <<EOF
# written by slurmbatch tests/cluster/cluster.sh (rewritten on every start)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again cred_expire+1 s later (default 120)
AuthInfo=socket=$MUNGE_SOCK,cred_expire=20
SlurmUser=root
SlurmdUser=root
MailProg=/bin/true
# a cancelled or timed-out task frees the node after KillWait s (default 30)
KillWait=5
StateSaveLocation=$DIR/spool/slurmctld
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
SlurmdParameters=config_overrides
MaxArraySize=$MAX_ARRAY
MaxJobCount=200000
MinJobAge=60
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# with a non-default munge socket, clients of slurmdbd find it here
AccountingStoragePass=$MUNGE_SOCK
JobCompType=jobcomp/none
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $gres_node State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=20
PartitionName=urgent Nodes=$NODE Default=NO MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    write "$CONF/gres.conf" 644 <<EOF
# written by slurmbatch tests/cluster/cluster.sh
$( [ "$GPUS" -gt 0 ] && echo "NodeName=$NODE Name=gpu File=$DIR/dev/gpu[0-$((GPUS - 1))]" )
EOF
    [ -s "$DIR/db.pass" ] || (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/db.pass")
    write "$CONF/slurmdbd.conf" 600 <<EOF
# written by slurmbatch tests/cluster/cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$DIR/db.pass")
StorageLoc=slurm_acct_db
EOF
}

start_munge() {
    [ -s "$DIR/munge/munge.key" ] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$DIR/munge/munge.key"; chmod 400 "$DIR/munge/munge.key"
    if ! running "$DIR/munge/munged.pid" munged; then
        rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
        runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
            --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
            --seed-file="$DIR/munge/munged.seed" </dev/null >>"$DIR/log/daemons.out" 2>&1 ||
            die "munged: $(tail -n 3 "$DIR/log/daemons.out")"
        say "munged started"
    fi
    until_ok 30 munged bash -c "munge -n --socket='$MUNGE_SOCK' | unmunge --socket='$MUNGE_SOCK'"
}

start_mariadb() {
    if [ ! -d "$DIR/mysql/mysql" ]; then
        rm -rf "$DIR/mysql"; mkdir -p "$DIR/mysql"; chown mysql:mysql "$DIR/mysql"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql" \
            --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
            || { tail -n 20 "$DIR/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
    fi
    if ! running "$DIR/mysql-run/mariadb.pid" mariadbd; then
        touch "$DIR/log/mariadb.log"; chown mysql:mysql "$DIR/log/mariadb.log"
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" \
            --socket="$MYSQL_SOCK" --pid-file="$DIR/mysql-run/mariadb.pid" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$DIR/log/mariadb.log" \
            --skip-name-resolve --innodb-buffer-pool-size=512M --innodb-log-file-size=64M \
            --innodb-lock-wait-timeout=900 --max-allowed-packet=64M \
            </dev/null >>"$DIR/log/daemons.out" 2>&1 &
        say "mariadbd started on 127.0.0.1:$DB_PORT"
    fi
    until_ok 60 MariaDB mariadb-admin --no-defaults --socket="$MYSQL_SOCK" -u root ping
    until_ok 30 "MariaDB pid file" test -s "$DIR/mysql-run/mariadb.pid"
    local pw; pw=$(cat "$DIR/db.pass")
    mariadb --no-defaults --socket="$MYSQL_SOCK" -u root -e "
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pw';
        ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
        ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pw';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
    if ! running "$DIR/run/slurmdbd.pid" slurmdbd; then
        slurmdbd </dev/null >>"$DIR/log/daemons.out" 2>&1 || die "slurmdbd: $(tail -n 5 "$DIR/log/slurmdbd.log")"
        say "slurmdbd started"
    fi
    until_ok 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    local restart=0
    case "$CHANGED" in *slurm.conf*|*gres.conf*) restart=1 ;; esac
    if [ $restart = 1 ]; then   # node, array and gres changes need a restart, not a reconfigure
        stop_daemon slurmd "$DIR/run/slurmd.pid" slurmd
        stop_daemon slurmctld "$DIR/run/slurmctld.pid" slurmctld
    fi
    if ! running "$DIR/run/slurmctld.pid" slurmctld; then
        slurmctld </dev/null >>"$DIR/log/daemons.out" 2>&1 || die "slurmctld: $(tail -n 5 "$DIR/log/slurmctld.log")"
        say "slurmctld started"
    fi
    until_ok 60 slurmctld scontrol ping
    if ! running "$DIR/run/slurmd.pid" slurmd; then
        slurmd -N "$NODE" </dev/null >>"$DIR/log/daemons.out" 2>&1 || die "slurmd: $(tail -n 5 "$DIR/log/slurmd.log")"
        say "slurmd started"
    fi
    until_ok 60 "node $NODE" bash -c "sinfo -h -N -p debug -o '%T' | grep -qE '^(idle|mixed|allocated|completing)'"
    until_ok 60 sacct sacct -n -X -S now-1hour
}

smoke() {
    local job
    job=$(sbatch --parsable -J slurmbatch-smoke -o /dev/null -e /dev/null --wrap true)
    until_ok 90 "smoke job $job COMPLETED in sacct" bash -c "sacct -n -X -P -j $job -o State | grep -qx COMPLETED"
    say "smoke job $job COMPLETED in sacct; MaxArraySize=$(scontrol show config | awk '/^MaxArraySize/ {print $3}')"
}

# stop_daemon <name> <pidfile> <program>: SIGTERM by pid file, SIGKILL after 30 s
stop_daemon() {
    local pid i
    if ! running "$2" "$3"; then rm -f "$2"; return 0; fi
    pid=$(tr -dc 0-9 < "$2")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
        sleep 0.1
    done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$2"
    say "$1 stopped"
}

cmd=${1:-start}; shift || true
while [ $# -gt 0 ]; do
    case "$1" in
        --max-array) MAX_ARRAY=$2; shift 2 ;;
        --purge) PURGE=1; shift ;;
        *) die "unknown option $1 (start [--max-array N] | stop [--purge] | status)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

case "$cmd" in
    start)
        mkdir -p "$DIR/log"
        install_packages
        configure
        start_munge
        start_mariadb
        start_slurm
        smoke
        ;;
    stop)
        if running "$DIR/run/slurmctld.pid" slurmctld; then
            jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
            if [ -n "$jobs" ]; then scancel $jobs 2>/dev/null || true; sleep 2; fi
        fi
        stop_daemon slurmd "$DIR/run/slurmd.pid" slurmd
        stop_daemon slurmctld "$DIR/run/slurmctld.pid" slurmctld
        stop_daemon slurmdbd "$DIR/run/slurmdbd.pid" slurmdbd
        stop_daemon mariadbd "$DIR/mysql-run/mariadb.pid" mariadbd
        stop_daemon munged "$DIR/munge/munged.pid" munged
        if [ "${PURGE:-0}" = 1 ]; then
            for f in slurm.conf gres.conf slurmdbd.conf; do
                grep -q '^# written by slurmbatch' "$CONF/$f" 2>/dev/null && rm -f "$CONF/$f"
            done
            rm -rf "$DIR"
            say "purged $DIR and the configuration files"
        fi
        ;;
    accounting-off)
        stop_daemon slurmdbd "$DIR/run/slurmdbd.pid" slurmdbd
        ;;
    status)
        running "$DIR/run/slurmctld.pid" slurmctld && running "$DIR/run/slurmd.pid" slurmd &&
            running "$DIR/run/slurmdbd.pid" slurmdbd && scontrol ping >/dev/null 2>&1 &&
            sacct -n -X -S now-1hour >/dev/null 2>&1 && { sinfo -h -o '%P %a %D %T %N'; exit 0; }
        echo "cluster not running" >&2; exit 1
        ;;
    *) die "usage: $0 start [--max-array N] | stop [--purge] | status | accounting-off" ;;
esac
