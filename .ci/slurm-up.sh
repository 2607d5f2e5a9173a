#!/usr/bin/env bash
# Start a one-node Slurm cluster (munge, MariaDB + slurmdbd accounting, slurmctld, slurmd)
# for the tests marked `slurm`. Debian, as root, no systemd. Prints the SLURM_CONF to use.
# Accounting is on because submitit reads job states from sacct.
set -euo pipefail
B=${B:-/tmp/capsweep-ci/slurm}
H=$(hostname -s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
# A clean state: stop daemons and data left by an earlier run on this machine.
pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x slurmdbd || true
pkill -x mariadbd || true; pkill -x munged || true; sleep 1
rm -rf "$B"; mkdir -p "$B"/etc "$B"/state "$B"/spool "$B"/log
export SLURM_CONF=$B/etc/slurm.conf

[ -s /etc/munge/munge.key ] || {
  mungekey -c -f -k /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
}
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

install -d -o mysql -g mysql "$B"/mysql "$B"/mysqlrun
mariadb-install-db --user=mysql --datadir="$B"/mysql --skip-test-db >"$B"/log/mysql_install.log 2>&1
setsid mariadbd --user=mysql --datadir="$B"/mysql --socket="$B"/mysqlrun/mysql.sock \
  --pid-file="$B"/mysqlrun/mysql.pid --bind-address=127.0.0.1 --port=3306 \
  --log-error="$B"/mysqlrun/mysql.err --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
for _ in $(seq 120); do
  mariadb-admin --socket="$B"/mysqlrun/mysql.sock ping >/dev/null 2>&1 && break; sleep 0.25
done
mariadb --socket="$B"/mysqlrun/mysql.sock -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
cat > "$B"/etc/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=$H
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$B/log/slurmdbd.log
PidFile=$B/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
CONF
chmod 600 "$B"/etc/slurmdbd.conf
slurmdbd

MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
cat > "$SLURM_CONF" <<CONF
ClusterName=capsweep
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/slurmctld.pid
SlurmdPidFile=$B/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
KillWait=5
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$H
JobAcctGatherType=jobacct_gather/linux
NodeName=$H CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
for _ in $(seq 120); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.25; done
sacctmgr -i add cluster capsweep >/dev/null
slurmctld
slurmd
for _ in $(seq 120); do [ "$(sinfo -h -o %T)" = idle ] && break; sleep 0.25; done
sinfo >&2
echo "$SLURM_CONF"
