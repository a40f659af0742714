#!/usr/bin/env bash
# A one-node SLURM on this machine, for `make test-cluster` (root, Debian 12, no systemd).
#
#   tests/cluster/slurm.sh start        install if missing, configure, start munged/slurmctld/slurmd
#   tests/cluster/slurm.sh stop         stop the daemons this script started, by their pid files
#   tests/cluster/slurm.sh run CMD...   start, run CMD, stop (whatever CMD does)
#
# The configuration goes to /etc/slurm/slurm.conf and gres.conf, where every SLURM command
# looks (the slurm plugin's job step drops SLURM_CONF from the environment of its inner srun, so
# a configuration elsewhere breaks the jobs); a slurm.conf this script did not write is never
# overwritten, and `stop` removes the files it wrote. State, spool, logs and pid files live in
# $SLURM_TEST_DIR (default /tmp/basis-nmce-slurm). Settings: accounting off, hence
# `slurm-status-command: squeue` in the profile; a fake GPU so that `--gpus=1` from
# `resources: gpu=1` is schedulable (scheduling only: the jobs still compute on the CPU);
# MinJobAge=3600 keeps ended jobs visible to squeue (the plugin's status) and to the test's
# `scontrol show job` for an hour, however slow the run.
set -euo pipefail

RUN_DIR=${SLURM_TEST_DIR:-/tmp/basis-nmce-slurm}
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# Written by basis-nmce tests/cluster/slurm.sh"

say() { echo "slurm.sh: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "needs root: it installs Debian packages and starts slurmd (run make test-cluster as root)"
        exit 2
    fi
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    say "installing slurmctld slurmd slurm-client munge (Debian packages)"
    local pkgs=(slurmctld slurmd slurm-client munge)
    # The packages' own start of the services fails without an init system; that is harmless.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    fi
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged already running: using it"
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge "$RUN_DIR/munge"
    chown munge:munge /run/munge /var/log/munge /var/lib/munge "$RUN_DIR/munge"
    runuser -u munge -- /usr/sbin/munged --pid-file="$RUN_DIR/munge/munged.pid"
    touch "$RUN_DIR/munged.ours"
}

write_config() {
    local host node
    host=$(hostname -s)
    # CPUs, sockets, cores, threads and memory exactly as slurmd measures them (a larger
    # RealMemory than the node has drains it).
    node=$(slurmd -C | grep '^NodeName=')
    for f in "$CONF" "$GRES"; do
        if [ -e "$f" ] && ! head -n1 "$f" | grep -qF "$MARK"; then
            say "$f exists and was not written by this script: not overwriting it"
            exit 1
        fi
    done
    mkdir -p /etc/slurm
    cat >"$CONF" <<EOF
$MARK: a one-node cluster for make test-cluster.
ClusterName=basisnmce
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$RUN_DIR/state
SlurmdSpoolDir=$RUN_DIR/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$RUN_DIR/slurmctld.log
SlurmdLogFile=$RUN_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
MailProg=/bin/true
ReturnToService=2
GresTypes=gpu
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # The fake GPU needs a File= or slurmd drops it and drains the node.
    printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$MARK" "$host" >"$GRES"
}

wait_idle() {
    local state
    for _ in $(seq 1 60); do
        state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
        case "$state" in
            idle*) say "node $(hostname -s) is $state"; return ;;
            drain* | down*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    say "the node did not become idle (state: ${state:-none}); logs in $RUN_DIR"
    tail -n 20 "$RUN_DIR/slurmctld.log" "$RUN_DIR/slurmd.log" >&2 || true
    exit 1
}

start() {
    need_root
    install
    if [ -f "$RUN_DIR/slurmctld.pid" ] && kill -0 "$(cat "$RUN_DIR/slurmctld.pid")" 2>/dev/null; then
        say "a test cluster is already running ($RUN_DIR); stop it first: $0 stop"
        exit 1
    fi
    # Fresh state every time (switching GRES on or off needs the state folders cleared).
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR/state" "$RUN_DIR/spool"
    start_munge
    write_config
    slurmctld
    slurmd
    wait_idle
    sinfo
}

stop_pid() {
    local name=$1 file=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

stop() {
    stop_pid slurmd "$RUN_DIR/slurmd.pid"
    stop_pid slurmctld "$RUN_DIR/slurmctld.pid"
    if [ -f "$RUN_DIR/munged.ours" ]; then
        stop_pid munged "$RUN_DIR/munge/munged.pid"
        rm -f "$RUN_DIR/munged.ours"
    fi
    for f in "$CONF" "$GRES"; do
        if [ -e "$f" ] && head -n1 "$f" | grep -qF "$MARK"; then
            rm -f "$f"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    run)
        shift
        start
        trap stop EXIT
        BASIS_NMCE_SLURM=1 "$@"
        ;;
    *)
        echo "usage: $0 start | stop | run COMMAND..." >&2
        exit 2
        ;;
esac
