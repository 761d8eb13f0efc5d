#!/usr/bin/env bash
# azurite.sh start|stop|restart|env|status — run the Azurite blob emulator
# pinned in package.json for asr's azblob tests.
#
#   eval "$(.ci/azurite/azurite.sh start)"   # starts it, exports the connection string
#   .ci/azurite/azurite.sh restart           # same port, same data (fault tests)
#   .ci/azurite/azurite.sh stop              # stops it and deletes its data
#
# Only the export line goes to stdout; everything else goes to stderr so the
# eval above stays safe. State (pid, port, data, log) lives in
# $ASR_AZURITE_DIR, default ${TMPDIR:-/tmp}/asr-azurite. Azurite listens on
# loopback only, keeps its data in a --location directory (so a restart keeps
# it) and has telemetry off (the machines have no network).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${ASR_AZURITE_DIR:-${TMPDIR:-/tmp}/asr-azurite}
# The emulator's published development account; not a secret.
account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
wait_secs=${ASR_AZURITE_WAIT:-60}

log() { printf 'azurite.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

running_pid() {
	local pid
	[[ -f $state/pid ]] || return 1
	pid=$(<"$state/pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	printf '%s\n' "$pid"
}

print_env() {
	local port
	port=$(<"$state/port")
	printf "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=http://127.0.0.1:%s/%s;'\n" \
		"$account" "$key" "$port" "$account"
}

free_port() {
	# Bind port 0 on loopback and let the kernel choose; node is on the
	# machine anyway since Azurite needs it.
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

answers() {
	# A TCP connect is enough: Azurite opens its port only once ready.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

install() {
	command -v node >/dev/null || die "node not found: install nodejs and npm (Debian: apt-get install nodejs npm)"
	if [[ ! -x $here/node_modules/.bin/azurite-blob ]]; then
		log "installing azurite with npm ci in $here"
		(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
			die "npm ci failed in $here: check the network to the npm registry and package-lock.json"
	fi
}

# launch PORT: start Azurite on PORT (0 = pick one) and wait until it answers.
launch() {
	local port=$1 pid i
	[[ $port != 0 ]] || port=$(free_port)
	mkdir -p "$state/data"
	printf '%s\n' "$port" >"$state/port"
	# setsid: the emulator must outlive the shell that eval'd us and must not
	# get that shell's terminal signals.
	setsid "$here/node_modules/.bin/azurite-blob" \
		--blobHost 127.0.0.1 --blobPort "$port" \
		--location "$state/data" \
		--skipApiVersionCheck --loose --silent --disableTelemetry \
		</dev/null >>"$state/log" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$state/pid"
	for ((i = 0; i < wait_secs * 10; i++)); do
		if answers "$port"; then
			log "azurite-blob pid $pid on 127.0.0.1:$port (state $state)"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || die "azurite-blob exited at start; see $state/log"
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	die "azurite-blob did not answer on 127.0.0.1:$port within ${wait_secs}s; see $state/log"
}

# halt: stop the recorded process (TERM, then KILL after 10 s).
halt() {
	local pid i
	pid=$(running_pid) || { rm -f "$state/pid"; return 0; }
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "azurite-blob pid $pid ignored TERM; killing"
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$state/pid"
}

cmd=${1:-}
case $cmd in
start)
	mkdir -p "$state"
	if running_pid >/dev/null; then
		log "already running (state $state)"
	else
		install
		launch "${ASR_AZURITE_PORT:-0}"
	fi
	print_env
	;;
stop)
	halt
	rm -rf "$state/data" "$state/port"
	log "stopped"
	;;
restart)
	[[ -f $state/port ]] || die "nothing to restart in $state: run start first"
	port=$(<"$state/port")
	halt
	install
	launch "$port"
	print_env
	;;
env)
	running_pid >/dev/null || die "not running (state $state): run start first"
	print_env
	;;
status)
	if pid=$(running_pid); then
		log "running: pid $pid port $(<"$state/port")"
	else
		log "not running"
		exit 1
	fi
	;;
*)
	die "usage: azurite.sh start|stop|restart|env|status"
	;;
esac
