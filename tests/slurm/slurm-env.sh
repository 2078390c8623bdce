# A private one-node Slurm (munged + slurmctld + slurmd on 127.0.0.1) for the
# Slurm integration tests.  Source it from a bash script run as root:
#
#   BBCACHE_BIN=/path/to/bbcache . tests/slurm/slurm-env.sh
#
# It installs nothing: without slurmctld, slurmd and munged it prints the
# apt-get line and exits 1.  It writes its own configuration (slurm.conf with
# BurstBufferType=burst_buffer/lua, burst_buffer.conf with Directive=BB, a
# plugstack.conf, a link to plugin/burst_buffer.lua) and its own munge key
# under a fresh directory $SLURM_TOP, starts the three daemons, waits until
# sinfo shows the node idle and creates the test user if missing.  An EXIT
# trap stops the daemons by their pid files (never by name) and removes
# $SLURM_TOP; a caller that needs its own EXIT trap calls slurm_env_stop in it.
#
# Exported afterwards: SLURM_CONF, SLURM_TOP, SLURM_TEST_USER, SLURM_NODE.
# Helpers: slurm_as_user CMD... (runs CMD as the test user with SLURM_CONF),
#          slurm_env_stop, slurm_env_logs (tails the daemon logs, for failures).
#
# Knobs: SLURM_TEST_USER (default bbtest), SLURM_ENV_KEEP=1 keeps $SLURM_TOP,
#        SLURM_ENV_PORT (slurmctld port; slurmd uses the next one),
#        SLURM_ENV_PLUGSTACK (extra plugstack.conf lines, e.g. our SPANK .so).
# Facts this relies on: ../shared/reference/slurm-single-node/README.md.

slurm_env_die() { echo "slurm-env: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || slurm_env_die "must run as root (it starts slurmd and munged)"
for _p in slurmctld slurmd munged sinfo sbatch scontrol; do
	command -v $_p >/dev/null 2>&1 && continue
	echo "slurm-env: $_p not found; install Slurm and munge first:" >&2
	echo "  apt-get install -y slurm-wlm munge" >&2
	exit 1
done
[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/burst_buffer_lua.so ] ||
	ls /usr/lib/*/slurm*/burst_buffer_lua.so >/dev/null 2>&1 ||
	echo "slurm-env: warning: burst_buffer_lua.so not found; #BB jobs will fail" >&2

_slurm_env_here=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
SLURM_BB_LUA=${SLURM_BB_LUA:-$_slurm_env_here/../../plugin/burst_buffer.lua}
[ -r "$SLURM_BB_LUA" ] || slurm_env_die "no burst_buffer.lua at $SLURM_BB_LUA"
SLURM_BB_LUA=$(cd "$(dirname "$SLURM_BB_LUA")" && pwd)/$(basename "$SLURM_BB_LUA")

SLURM_TEST_USER=${SLURM_TEST_USER:-bbtest}
SLURM_NODE=$(hostname -s)
SLURM_TOP=$(mktemp -d /tmp/bbslurm.XXXXXX) || slurm_env_die "mktemp failed"
export SLURM_TOP SLURM_TEST_USER SLURM_NODE
export SLURM_CONF=$SLURM_TOP/etc/slurm.conf
# munged refuses a socket directory without o+x, and the test user's sbatch
# must reach the socket: the tree is world-searchable, the key is not.
chmod 0755 "$SLURM_TOP"
mkdir -p "$SLURM_TOP"/etc "$SLURM_TOP"/munge "$SLURM_TOP"/state "$SLURM_TOP"/spool \
	"$SLURM_TOP"/log "$SLURM_TOP"/run "$SLURM_TOP"/tmpfs "$SLURM_TOP"/jobs
chmod 0755 "$SLURM_TOP"/munge "$SLURM_TOP"/jobs

_slurm_env_alive() { # true while any of the pids lives
	local q
	for q in "$@"; do kill -0 "$q" 2>/dev/null && return 0; done
	return 1
}

slurm_env_stop() {
	local f p i pids
	[ -n "${SLURM_TOP:-}" ] && [ -d "$SLURM_TOP/run" ] || return 0
	# slurmd and slurmctld together (each takes 1-2 s to exit), then munged,
	# which they may still need while shutting down.
	for pids in "slurmd slurmctld" munged; do
		p=
		for f in $pids; do
			[ -s "$SLURM_TOP/run/$f.pid" ] && p="$p $(cat "$SLURM_TOP/run/$f.pid")"
		done
		[ -n "$p" ] || continue
		kill -TERM $p 2>/dev/null
		for i in $(seq 1 200); do
			_slurm_env_alive $p || break
			sleep 0.05
		done
		for f in $p; do
			kill -0 "$f" 2>/dev/null || continue
			echo "slurm-env: pid $f ($pids) still alive after 10 s, KILL" >&2
			kill -KILL "$f" 2>/dev/null
		done
	done
	rm -f "$SLURM_TOP"/run/*.pid
	if [ "${SLURM_ENV_KEEP:-0}" = 1 ]; then
		echo "slurm-env: kept $SLURM_TOP" >&2
	else
		rm -rf "$SLURM_TOP"
	fi
	SLURM_TOP=
}

slurm_env_logs() {
	local f
	for f in "$SLURM_TOP"/log/*.log; do
		echo "==== $f (last 30 lines)"
		tail -n 30 "$f"
	done >&2
}

slurm_as_user() {
	runuser -u "$SLURM_TEST_USER" -- env SLURM_CONF="$SLURM_CONF" "$@"
}

trap 'slurm_env_stop' EXIT
trap 'exit 130' INT TERM

# Ports: two free TCP ports (slurmctld, slurmd), derived from our pid so two
# environments on one machine do not collide.
_slurm_env_port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
_port=${SLURM_ENV_PORT:-$((17000 + ($$ % 400) * 2))}
while ! _slurm_env_port_free $_port || ! _slurm_env_port_free $((_port + 1)); do
	_port=$((_port + 2))
done

# Our own munge key (root-owned, 0400); no dependence on /etc/munge.
dd if=/dev/urandom of="$SLURM_TOP/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$SLURM_TOP/munge/munge.key"

# The node line from the hardware, so slurmd never disagrees with slurm.conf.
_nodeline=$(slurmd -C 2>/dev/null | head -n 1)
case $_nodeline in
NodeName=*) ;;
*) _nodeline="NodeName=$SLURM_NODE CPUs=$(nproc)" ;;
esac

cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/slurm-env.sh: a private one-node cluster on loopback.
ClusterName=bbcachetest
SlurmctldHost=$SLURM_NODE(127.0.0.1)
SlurmctldPort=$_port
SlurmdPort=$((_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_TOP/munge/munge.socket
StateSaveLocation=$SLURM_TOP/state
SlurmdSpoolDir=$SLURM_TOP/spool/slurmd-%n
SlurmctldPidFile=$SLURM_TOP/run/slurmctld.pid
SlurmdPidFile=$SLURM_TOP/run/slurmd.pid
SlurmctldLogFile=$SLURM_TOP/log/slurmctld.log
SlurmdLogFile=$SLURM_TOP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
DebugFlags=BurstBuffer
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
ReturnToService=2
PlugStackConfig=$SLURM_TOP/etc/plugstack.conf
BurstBufferType=burst_buffer/lua
PrologFlags=Alloc
TmpFS=$SLURM_TOP/tmpfs
MinJobAge=300
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
$_nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$SLURM_NODE Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$SLURM_TOP/etc/burst_buffer.conf" <<EOF
Directive=BB
Flags=TeardownFailure
StageInTimeout=600
StageOutTimeout=600
OtherTimeout=300
EOF

# The SPANK plugin (bbcache_spank.so) does not exist yet; callers add lines.
{
	echo "# Written by tests/slurm/slurm-env.sh"
	[ -n "${SLURM_ENV_PLUGSTACK:-}" ] && printf '%s\n' "$SLURM_ENV_PLUGSTACK"
} >"$SLURM_TOP/etc/plugstack.conf"

# burst_buffer/lua loads burst_buffer.lua from the directory of slurm.conf.
ln -s "$SLURM_BB_LUA" "$SLURM_TOP/etc/burst_buffer.lua"

if ! id "$SLURM_TEST_USER" >/dev/null 2>&1; then
	useradd -r -M -s /usr/sbin/nologin "$SLURM_TEST_USER" ||
		slurm_env_die "cannot create the test user $SLURM_TEST_USER"
fi
chown "$SLURM_TEST_USER" "$SLURM_TOP/jobs"

# slurmctld (and the Lua it runs) inherits this environment.
[ -n "${BBCACHE_BIN:-}" ] && export BBCACHE_BIN

munged --socket="$SLURM_TOP/munge/munge.socket" --key-file="$SLURM_TOP/munge/munge.key" \
	--log-file="$SLURM_TOP/log/munged.log" --pid-file="$SLURM_TOP/run/munged.pid" \
	--seed-file="$SLURM_TOP/munge/munged.seed" ||
	{ slurm_env_logs; slurm_env_die "munged did not start"; }
slurmctld -i || { slurm_env_logs; slurm_env_die "slurmctld did not start"; }
slurmd || { slurm_env_logs; slurm_env_die "slurmd did not start"; }
_i=0
until sinfo -h -o '%T' 2>/dev/null | grep -qx idle; do
	_i=$((_i + 1))
	if [ $_i -gt 300 ]; then
		sinfo 2>&1 >&2
		slurm_env_logs
		slurm_env_die "the node did not become idle in 30 s"
	fi
	sleep 0.1
done
unset _i _p _port _nodeline
