#!/usr/bin/env bash
# test-postgres.sh: a throwaway PostgreSQL server for the test suite.
#
# Usage:
#   eval "$(scripts/test-postgres.sh start)"
#       Creates a cluster in a new temp dir, starts it on a free loopback
#       port and prints, for eval:
#         export DEV8_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable'
#         export DEV8_TEST_PGDIR='/tmp/dev8-pg.XXXXXX'
#       Tests (internal/testutil/pgtest) create and drop their own databases
#       on that server.
#   eval "$(scripts/test-postgres.sh stop [DIR])"
#       Stops the server in DIR (default: $DEV8_TEST_PGDIR), waits until
#       it has exited, deletes DIR and prints `unset ...` for the variables.
#       Plain `scripts/test-postgres.sh stop DIR` works too.
#   scripts/test-postgres.sh run -- COMMAND [ARG...]
#       start, run COMMAND with the variables exported, stop (also when
#       COMMAND fails or is interrupted); exits with COMMAND's status.
#       e.g. scripts/test-postgres.sh run -- go test -race ./...
#
# Binaries: $PG_BINDIR if set, else the directory of `initdb` on PATH, else
# the newest /usr/lib/postgresql/*/bin (Debian's layout). Not installed:
# a message on stderr and exit status 2 (apt-get install -y postgresql).
#
# PostgreSQL refuses to run as root, so when EUID is 0 every server command
# runs as the `postgres` system user (runuser) and the temp dir is handed to
# that user. The temp dir is made under $TMPDIR (default /tmp), which must
# then be traversable by `postgres`.
#
# The server is for tests only: trust authentication on 127.0.0.1 and its own
# socket dir, fsync off, and up to 300 connections (parallel test packages
# each open pools against their own databases).
set -euo pipefail

prog=${0##*/}
marker=.dev8-test-postgres # identifies a dir this script made; stop deletes nothing else

die() {
	echo "$prog: $*" >&2
	exit 1
}

find_bindir() {
	if [[ -n ${PG_BINDIR:-} ]]; then
		[[ -x $PG_BINDIR/initdb ]] || die "PG_BINDIR=$PG_BINDIR has no initdb"
		echo "$PG_BINDIR"
		return 0
	fi
	local initdb dir
	if initdb=$(command -v initdb 2>/dev/null); then
		dir=$(dirname "$(readlink -f "$initdb")")
		if [[ -x $dir/pg_ctl && -x $dir/postgres ]]; then
			echo "$dir"
			return 0
		fi
	fi
	dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n $dir && -x $dir/initdb ]]; then
		echo "$dir"
		return 0
	fi
	echo "$prog: PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql/*/bin)." >&2
	echo "$prog: install it (Debian: apt-get install -y postgresql) or set PG_BINDIR." >&2
	exit 2
}

# as_pg runs a command as the user that owns the cluster: the current user,
# or `postgres` when we are root. It runs from the cluster dir so the server
# never tries to chdir into a home it cannot read.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		(cd "$dir" && runuser -u postgres -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

port_in_use() {
	# Connecting succeeds only if something listens there.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_server creates and starts a cluster, setting the globals dir and
# url. On failure or interruption the EXIT trap (cleanup) removes it.
start_server() {
	local bindir
	bindir=$(find_bindir)
	if [[ $EUID -eq 0 ]]; then
		id -u postgres >/dev/null 2>&1 ||
			die "running as root needs the 'postgres' system user (PostgreSQL will not run as root)"
		command -v runuser >/dev/null || die "running as root needs runuser (util-linux)"
	fi

	dir=$(mktemp -d "${TMPDIR:-/tmp}/dev8-pg.XXXXXX")
	touch "$dir/$marker"
	if [[ $EUID -eq 0 ]]; then
		chown -R postgres: "$dir"
		as_pg test -w "$dir" ||
			{ rm -rf "$dir"; die "user postgres cannot write $dir; set TMPDIR to a dir it can reach, e.g. TMPDIR=/tmp"; }
	fi
	if ! as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		die "initdb failed"
	fi
	cat >>"$dir/data/postgresql.conf" <<-EOF
		# dev8 test server (scripts/test-postgres.sh)
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir'
		max_connections = 300
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		log_min_messages = warning
	EOF

	# Another process can take a port between the check and the bind, so a
	# bind failure just means trying another one.
	local port attempt started=
	for attempt in $(seq 1 20); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use "$port" && continue
		# -w: pg_ctl returns once the server accepts connections or has died.
		if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start \
			>"$dir/pg_ctl.log" 2>&1; then
			started=1
			break
		fi
		grep -qiE 'could not (bind|create listen)|address already in use' "$dir/postgres.log" 2>/dev/null || break
	done
	if [[ -z $started ]]; then
		tail -n 20 "$dir/postgres.log" "$dir/pg_ctl.log" >&2 2>/dev/null || true
		die "PostgreSQL did not start"
	fi

	# pg_ctl -w already waited; this confirms the TCP listener the tests use.
	local isready=$bindir/pg_isready
	[[ -x $isready ]] || isready=pg_isready
	local tries=0
	until "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 5; do
		tries=$((tries + 1))
		if ((tries >= 50)); then
			tail -n 20 "$dir/postgres.log" >&2 || true
			die "PostgreSQL started but does not accept connections on 127.0.0.1:$port"
		fi
		sleep 0.1
	done

	url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	echo "$prog: PostgreSQL ($("$bindir/postgres" --version)) on 127.0.0.1:$port, data in $dir" >&2
}

# dir is the cluster this invocation made (if any); keep says it has been
# handed over to the caller and must survive this script's exit.
dir=
keep=

# cleanup runs on every exit: it removes a cluster this invocation made
# unless it was handed over. It runs stop in a subshell so a failing stop
# (which calls die) cannot cut the trap short.
cleanup() {
	if [[ -n $dir && -z $keep && -d $dir ]]; then
		(cmd_stop_dir "$dir") >/dev/null 2>&1 || echo "$prog: could not clean up $dir" >&2
	fi
	return 0
}

cmd_start() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_server
	keep=1
	echo "export DEV8_TEST_DATABASE_URL='$url'"
	echo "export DEV8_TEST_PGDIR='$dir'"
}

# cmd_stop_dir stops the server in $1 (if one runs), waits for it to exit and
# deletes the dir.
cmd_stop_dir() {
	dir=$1
	[[ -n $dir ]] || die "stop: no dir given and DEV8_TEST_PGDIR is not set"
	[[ -d $dir ]] || die "stop: $dir does not exist"
	[[ -f $dir/$marker ]] || die "stop: $dir was not made by $prog; not touching it"

	local pidfile=$dir/data/postmaster.pid pid=
	if [[ -f $pidfile ]]; then
		pid=$(head -n 1 "$pidfile")
		local bindir
		bindir=$(find_bindir)
		as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		# pg_ctl gave up; this pid is the postmaster we started (it came
		# from our own pid file), and killing it takes its children along.
		kill -KILL "$pid" 2>/dev/null || true
		local i
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && die "stop: postmaster $pid is still running; $dir kept"
	fi
	rm -rf "$dir"
}

cmd_stop() {
	cmd_stop_dir "${1:-${DEV8_TEST_PGDIR:-}}"
	echo "unset DEV8_TEST_DATABASE_URL DEV8_TEST_PGDIR"
}

cmd_run() {
	[[ ${1:-} == -- ]] && shift
	(($# > 0)) || die "run: no command given"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_server
	export DEV8_TEST_DATABASE_URL=$url DEV8_TEST_PGDIR=$dir

	# The command runs in the background so that a signal to this script
	# is handled now (bash defers traps until a foreground child exits);
	# the handler passes it on as TERM and waits before cleaning up.
	# Background jobs get /dev/null as stdin unless given another.
	local child status=0
	exec 3<&0
	"$@" <&3 3<&- &
	child=$!
	exec 3<&-
	trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT
	trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
	wait "$child" || status=$?
	exit "$status"
}

case ${1:-} in
start) cmd_start ;;
stop)
	shift
	cmd_stop "$@"
	;;
run)
	shift
	cmd_run "$@"
	;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
