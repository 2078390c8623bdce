# A private one-node Slurm (munged + slurmctld + slurmd on 127.0.0.1) for the
# Slurm integration tests.  Source it from a bash or POSIX sh script (sh:
# set $top to the source tree first) run as root:
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
#        SLURM_ENV_PLUGSTACK (extra plugstack.conf lines).
#
# The full bbcache setup (SLURM_ENV_BBCACHE=BUILD_DIR): on top of the above,
#   - $SLURM_TOP/etc/bbcache.conf: nvme_root=$SLURM_TOP/nvme,
#     state_dir=$SLURM_TOP/bbstate, s3_endpoint_url=$SLURM_ENV_S3_ENDPOINT,
#     allowed_origins=$SLURM_ENV_ALLOWED_ORIGINS (default *), plus the lines
#     of $SLURM_ENV_BBCONF_EXTRA;
#   - the plugstack.conf line of the SPANK plugin from BUILD_DIR
#     (bbcache=, preload=, conf=, srun=, wait_timeout=$SLURM_ENV_WAIT_TIMEOUT);
#   - BBCACHE_CONF and BBCACHE_BIN in slurmctld's environment only (what
#     burst_buffer.lua reads), not in this shell's exported environment, so
#     a job gets the configuration only through the plugin's conf= argument;
#   - two users of this environment only, bbt<N> and bbu<N> (unless
#     SLURM_TEST_USER / SLURM_TEST_USER2 name others), with their homes in
#     $SLURM_TOP/home, deleted again on stop: concurrent environments on one
#     machine must not share a home (~/.aws/credentials) or a user's processes;
#   - with SLURM_ENV_S3_KEY and SLURM_ENV_S3_SECRET (plain shell variables,
#     do not export the secret): the test user's ~/.aws/credentials (0600,
#     owned by the user; for a user named by the caller, a home directory is
#     made if missing and removed again, an existing file is put back).
# Exported then too: BBCACHE_CONF_FILE, BBCACHE_NVME, BBCACHE_STATE,
# BBCACHE_SPANK, BBCACHE_PRELOAD, BBCACHE_BIN, SLURM_TEST_USER2,
# SLURM_TEST_HOME (the test user's home).
# Facts this relies on: ../shared/reference/slurm-single-node/README.md.

slurm_env_die() { echo "slurm-env: $*" >&2; exit 1; }
_slurm_env_cred= _slurm_env_made_home= _slurm_env_made_aws= _slurm_env_cred_backup=

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

# Where this file is: bash knows; a POSIX sh (dash) caller sets $top (the
# source tree) or SLURM_ENV_DIR.
if [ -n "${SLURM_ENV_DIR:-}" ]; then
	_slurm_env_here=$SLURM_ENV_DIR
elif [ -n "${BASH_VERSION:-}" ]; then
	eval '_slurm_env_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)'
elif [ -n "${top:-}" ] && [ -f "$top/tests/slurm/slurm-env.sh" ]; then
	_slurm_env_here=$top/tests/slurm
else
	_slurm_env_here=$(cd "$(dirname "$0")" && pwd)
fi
SLURM_BB_LUA=${SLURM_BB_LUA:-$_slurm_env_here/../../plugin/burst_buffer.lua}
[ -r "$SLURM_BB_LUA" ] || slurm_env_die "no burst_buffer.lua at $SLURM_BB_LUA"
SLURM_BB_LUA=$(cd "$(dirname "$SLURM_BB_LUA")" && pwd)/$(basename "$SLURM_BB_LUA")

# The full bbcache setup: every piece from the build directory, or fail.
if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
	_bd=$(cd "$SLURM_ENV_BBCACHE" 2>/dev/null && pwd) ||
		slurm_env_die "SLURM_ENV_BBCACHE=$SLURM_ENV_BBCACHE is not a directory"
	BBCACHE_BIN=${BBCACHE_BIN:-$_bd/agent/bbcache}
	[ -x "$BBCACHE_BIN" ] || slurm_env_die "no $BBCACHE_BIN: build bbcache first"
	BBCACHE_SPANK=
	for _p in "$_bd/plugin/.libs/bbcache_spank.so" "$_bd/plugin/bbcache_spank.so"; do
		[ -f "$_p" ] && BBCACHE_SPANK=$_p && break
	done
	[ -n "$BBCACHE_SPANK" ] ||
		slurm_env_die "the SPANK plugin is not built: no $_bd/plugin/.libs/bbcache_spank.so (configure found no spank.h? libslurm-dev)"
	BBCACHE_PRELOAD=$_bd/mpi-io/.libs/libbbcache_preload.so
	[ -f "$BBCACHE_PRELOAD" ] || slurm_env_die "no $BBCACHE_PRELOAD: build bbcache first"
	command -v srun >/dev/null 2>&1 || slurm_env_die "srun not found (slurm-client)"
	export BBCACHE_BIN BBCACHE_SPANK BBCACHE_PRELOAD
fi

SLURM_NODE=$(hostname -s)
SLURM_TOP=$(mktemp -d /tmp/bbslurm.XXXXXX) || slurm_env_die "mktemp failed"
# Users made here (deleted by slurm_env_stop).
_slurm_env_users_made=
if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
	_n=$(($$ % 100000))
	while id "bbt$_n" >/dev/null 2>&1 || id "bbu$_n" >/dev/null 2>&1; do _n=$((_n + 1)); done
	[ -n "${SLURM_TEST_USER:-}" ] || SLURM_TEST_USER=bbt$_n
	[ -n "${SLURM_TEST_USER2:-}" ] || SLURM_TEST_USER2=bbu$_n
fi
SLURM_TEST_USER=${SLURM_TEST_USER:-bbtest}
# The programs the job's user runs (bbcache, bbcached, the interposer) are
# copied where that user can reach them: the build tree may be under a
# directory only root can enter (/root/...).
if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
	mkdir -p "$SLURM_TOP/bin"
	cp "$BBCACHE_BIN" "$SLURM_TOP/bin/bbcache" &&
		cp "$(dirname "$BBCACHE_BIN")/bbcached" "$SLURM_TOP/bin/bbcached" &&
		cp "$BBCACHE_PRELOAD" "$SLURM_TOP/bin/libbbcache_preload.so" ||
		slurm_env_die "cannot copy the bbcache programs into $SLURM_TOP/bin"
	chmod 0755 "$SLURM_TOP/bin" "$SLURM_TOP/bin"/*
	BBCACHE_BIN=$SLURM_TOP/bin/bbcache
	BBCACHE_PRELOAD=$SLURM_TOP/bin/libbbcache_preload.so
	export BBCACHE_BIN BBCACHE_PRELOAD
fi
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

# Undo what slurm_env_creds did in the test user's home (idempotent).
_slurm_env_creds_undo() {
	[ -n "${_slurm_env_cred:-}" ] || return 0
	if [ -n "${_slurm_env_made_home:-}" ]; then
		rm -rf "$_slurm_env_made_home"
	elif [ -n "${_slurm_env_cred_backup:-}" ] && [ -f "$_slurm_env_cred_backup" ]; then
		cat "$_slurm_env_cred_backup" >"$_slurm_env_cred" && rm -f "$_slurm_env_cred_backup"
	else
		rm -f "$_slurm_env_cred"
		[ -n "${_slurm_env_made_aws:-}" ] && rmdir "$_slurm_env_made_aws" 2>/dev/null
	fi
	_slurm_env_cred= _slurm_env_made_home= _slurm_env_made_aws= _slurm_env_cred_backup=
	return 0
}

slurm_env_stop() {
	local f p i pids
	_slurm_env_creds_undo
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
	for f in $_slurm_env_users_made; do
		for i in 1 2 3 4 5 6 7 8 9 10; do
			userdel "$f" 2>/dev/null && break
			id "$f" >/dev/null 2>&1 || break
			sleep 0.3 # /etc/passwd locked by another useradd, or a process left
		done
		id "$f" >/dev/null 2>&1 && echo "slurm-env: could not delete the user $f" >&2
	done
	_slurm_env_users_made=
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
# No slurmdbd (so no sacct); the job completion records, what sacct would
# show of a job, go to a text file the tests can look at.
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_TOP/log/jobcomp.txt
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
# Job ids from a per-environment base: /dev/shm/bbcache.ID is machine-wide,
# so two environments (or other tests) must not hand out the same ids.
FirstJobId=$((1000000 + ($$ % 60000) * 100))
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
$_nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$SLURM_NODE Default=YES MaxTime=INFINITE State=UP
EOF

# burst_buffer.conf: the example admins get (contrib/slurm/), when there.
if [ -r "$_slurm_env_here/../../contrib/slurm/burst_buffer.conf.example" ]; then
	cp "$_slurm_env_here/../../contrib/slurm/burst_buffer.conf.example" "$SLURM_TOP/etc/burst_buffer.conf"
else
	printf '%s\n' Directive=BB Flags=TeardownFailure StageInTimeout=600 StageOutTimeout=600 \
		OtherTimeout=300 >"$SLURM_TOP/etc/burst_buffer.conf"
fi

# The bbcache configuration (SLURM_ENV_BBCACHE): NVMe root and controller
# state under $SLURM_TOP, the test's S3 endpoint and allowed origins.
if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
	BBCACHE_CONF_FILE=$SLURM_TOP/etc/bbcache.conf
	BBCACHE_NVME=$SLURM_TOP/nvme
	BBCACHE_STATE=$SLURM_TOP/bbstate
	mkdir -p "$BBCACHE_NVME" "$BBCACHE_STATE"
	chmod 0755 "$BBCACHE_NVME" "$BBCACHE_STATE" "$SLURM_TOP/etc"
	{
		echo "# Written by tests/slurm/slurm-env.sh"
		echo "nvme_root = $BBCACHE_NVME"
		echo "state_dir = $BBCACHE_STATE"
		[ -n "${SLURM_ENV_S3_ENDPOINT:-}" ] && echo "s3_endpoint_url = $SLURM_ENV_S3_ENDPOINT"
		[ -n "${SLURM_ENV_S3_ENDPOINT:-}" ] && echo "s3_region = us-east-1"
		echo "allowed_origins = ${SLURM_ENV_ALLOWED_ORIGINS:-*}"
		[ -n "${SLURM_ENV_BBCONF_EXTRA:-}" ] && printf '%s\n' "$SLURM_ENV_BBCONF_EXTRA"
	} >"$BBCACHE_CONF_FILE"
	chmod 0644 "$BBCACHE_CONF_FILE"
	export BBCACHE_CONF_FILE BBCACHE_NVME BBCACHE_STATE
fi

{
	echo "# Written by tests/slurm/slurm-env.sh"
	if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
		printf 'required %s bbcache=%s preload=%s conf=%s srun=%s%s\n' "$BBCACHE_SPANK" \
			"$BBCACHE_BIN" "$BBCACHE_PRELOAD" "$BBCACHE_CONF_FILE" "$(command -v srun)" \
			"${SLURM_ENV_WAIT_TIMEOUT:+ wait_timeout=$SLURM_ENV_WAIT_TIMEOUT}"
	fi
	[ -n "${SLURM_ENV_PLUGSTACK:-}" ] && printf '%s\n' "$SLURM_ENV_PLUGSTACK"
} >"$SLURM_TOP/etc/plugstack.conf"

# burst_buffer/lua loads burst_buffer.lua from the directory of slurm.conf.
ln -s "$SLURM_BB_LUA" "$SLURM_TOP/etc/burst_buffer.lua"

# slurm_env_user NAME: create NAME if missing (home $SLURM_TOP/home/NAME,
# made 0700, when created here).
slurm_env_user() {
	local i
	id "$1" >/dev/null 2>&1 && return 0
	mkdir -p "$SLURM_TOP/home"
	chmod 0755 "$SLURM_TOP/home"
	for i in 1 2 3 4 5 6 7 8 9 10; do
		useradd -r -M -d "$SLURM_TOP/home/$1" -s /usr/sbin/nologin "$1" 2>/dev/null && break
		sleep 0.3 # /etc/passwd locked by another useradd
	done
	id "$1" >/dev/null 2>&1 || slurm_env_die "cannot create the test user $1"
	_slurm_env_users_made="$_slurm_env_users_made $1"
	mkdir -p "$SLURM_TOP/home/$1" && chown "$1:$(id -gn "$1")" "$SLURM_TOP/home/$1" &&
		chmod 0700 "$SLURM_TOP/home/$1" || slurm_env_die "cannot make the home of $1"
}
slurm_env_user "$SLURM_TEST_USER"
chown "$SLURM_TEST_USER" "$SLURM_TOP/jobs"

# slurm_env_creds KEY SECRET: the test user's ~/.aws/credentials, 0600,
# owned by the user ([default] profile); undone by slurm_env_stop.
slurm_env_creds() {
	local home grp
	_slurm_env_creds_undo
	home=$(getent passwd "$SLURM_TEST_USER" | cut -d: -f6)
	grp=$(id -gn "$SLURM_TEST_USER")
	case $home in
	/ | /nonexistent | /nonexistent/* | "") slurm_env_die "the test user $SLURM_TEST_USER has no usable home ($home)" ;;
	esac
	_slurm_env_cred=$home/.aws/credentials
	if [ ! -d "$home" ]; then
		mkdir -p "$home" && chown "$SLURM_TEST_USER:$grp" "$home" && chmod 0700 "$home" ||
			slurm_env_die "cannot make $home"
		_slurm_env_made_home=$home
	fi
	if [ ! -d "$home/.aws" ]; then
		mkdir "$home/.aws" && chown "$SLURM_TEST_USER:$grp" "$home/.aws" && chmod 0700 "$home/.aws" ||
			slurm_env_die "cannot make $home/.aws"
		_slurm_env_made_aws=$home/.aws
	fi
	if [ -z "$_slurm_env_made_home" ] && [ -f "$_slurm_env_cred" ]; then
		_slurm_env_cred_backup=$SLURM_TOP/aws-credentials.saved
		cp -p "$_slurm_env_cred" "$_slurm_env_cred_backup"
	fi
	(umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
		"$1" "$2" >"$_slurm_env_cred") || slurm_env_die "cannot write $_slurm_env_cred"
	chown "$SLURM_TEST_USER:$grp" "$_slurm_env_cred"
	chmod 0600 "$_slurm_env_cred"
	SLURM_TEST_HOME=$home
	export SLURM_TEST_HOME
}

if [ -n "${SLURM_ENV_BBCACHE:-}" ]; then
	slurm_env_user "$SLURM_TEST_USER2"
	export SLURM_TEST_USER2
	if [ -n "${SLURM_ENV_S3_KEY:-}" ] && [ -n "${SLURM_ENV_S3_SECRET:-}" ]; then
		slurm_env_creds "$SLURM_ENV_S3_KEY" "$SLURM_ENV_S3_SECRET"
	fi
fi

# slurmctld (and the Lua it runs) inherits this environment.
[ -n "${BBCACHE_BIN:-}" ] && export BBCACHE_BIN

munged --socket="$SLURM_TOP/munge/munge.socket" --key-file="$SLURM_TOP/munge/munge.key" \
	--log-file="$SLURM_TOP/log/munged.log" --pid-file="$SLURM_TOP/run/munged.pid" \
	--seed-file="$SLURM_TOP/munge/munged.seed" ||
	{ slurm_env_logs; slurm_env_die "munged did not start"; }
# BBCACHE_CONF for burst_buffer.lua: slurmctld's environment only.
env ${BBCACHE_CONF_FILE:+BBCACHE_CONF=$BBCACHE_CONF_FILE} slurmctld -i ||
	{ slurm_env_logs; slurm_env_die "slurmctld did not start"; }
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
unset _i _p _port _nodeline _bd _n
