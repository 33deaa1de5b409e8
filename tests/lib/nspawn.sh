#!/bin/sh
# nspawn.sh - boot a throwaway Debian bookworm with a real systemd as PID 1,
# on machines whose own PID 1 is not systemd (CI, development boxes).
# See /work/shared/SYSTEMD-IN-CI.md for the facts this is built on.
#
#   nspawn.sh tools                    install systemd-container, debootstrap
#   nspawn.sh rootfs DIR               fill the empty DIR with a bookworm
#                                      root file system (cached as a tar)
#   nspawn.sh boot NAME DIR            run the container in the foreground;
#                                      exec's systemd-nspawn from a cgroup of
#                                      its own.  Start it in the background.
#   nspawn.sh leader NSPAWN_PID [SECS] print the PID of the container's PID 1
#   nspawn.sh enter LEADER CMD...      run CMD in all the container's
#                                      namespaces (systemctl, journalctl, ...)
#   nspawn.sh stop NAME NSPAWN_PID [LEADER]
#                                      poweroff, wait, kill after a timeout,
#                                      remove the cgroups and nspawn's
#                                      leftovers in /run.  Always safe to call.
#   nspawn.sh shell NAME DIR           boot DIR and attach a shell (by hand)
#
# Environment: IMAPSYNC_TASK_TEST_CACHE (default
# /var/cache/imapsync-task-test), IMAPSYNC_TASK_TEST_MIRROR (default: the
# bookworm mirror in the host's apt sources).  Needs root.
set -eu

SUITE=bookworm
# Libraries of the worker and the generator go in with the base system so
# the binaries built on the (same Debian 12) host run inside.  libasan8 and
# libubsan1 let a --enable-sanitizers build run too.
INCLUDE=systemd,systemd-sysv,dbus,libnss-systemd,libssl3,libpcre2-8-0,libiniparser1,libsystemd0,libasan8,libubsan1
# Bump when the way the root file system is made changes.
CACHE_VERSION=1
CACHE=${IMAPSYNC_TASK_TEST_CACHE:-/var/cache/imapsync-task-test}
CGROUP_PREFIX=imapsync-task-test.

log() { echo "nspawn.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- tools -----------------------------------------------------------------

cmd_tools() {
	missing=
	command -v systemd-nspawn >/dev/null 2>&1 || missing="$missing systemd-container"
	command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
	command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
	command -v nsenter >/dev/null 2>&1 || missing="$missing util-linux"
	command -v flock >/dev/null 2>&1 || missing="$missing util-linux"
	[ -n "$missing" ] || return 0
	log "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	timeout 600 apt-get install -y -q --no-install-recommends $missing >&2 || {
		timeout 300 apt-get update -q >&2
		# shellcheck disable=SC2086
		timeout 600 apt-get install -y -q --no-install-recommends $missing >&2
	}
}

# --- root file system ------------------------------------------------------

# The Debian mirror the host already uses for $SUITE (deb822 or one-line).
host_mirror() {
	if [ -n "${IMAPSYNC_TASK_TEST_MIRROR:-}" ]; then
		echo "$IMAPSYNC_TASK_TEST_MIRROR"
		return
	fi
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v suite="$SUITE" '
		function flush() {
			n = split(suites, s, " ")
			for (i = 1; i <= n; i++)
				if (s[i] == suite && uris != "" && !found) {
					split(uris, u, " "); print u[1]; found = 1
				}
			uris = ""; suites = ""
		}
		/^[ \t]*$/ { flush(); next }
		tolower($1) == "uris:" { $1 = ""; uris = $0 }
		tolower($1) == "suites:" { $1 = ""; suites = $0 }
		END { flush() }')
	if [ -z "$m" ]; then
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk -v suite="$SUITE" '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++
				if ($i ~ /^\[/) i++
				if ($(i + 1) == suite) { print $i; exit }
			}')
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

cache_tar() {
	key=$(printf '%s\n' "$SUITE" "$INCLUDE" "$CACHE_VERSION" "$(uname -m)" |
		sha256sum | cut -c1-12)
	echo "$CACHE/rootfs-$SUITE-$key.tar"
}

build_cache() {   # build_cache TAR (called with the cache lock held)
	tar_file=$1
	mirror=$(host_mirror)
	build=$(mktemp -d "$CACHE/build.XXXXXX")
	log "debootstrap $SUITE from $mirror (once; cached in $tar_file)"
	if ! timeout 900 debootstrap --variant=minbase --include="$INCLUDE" \
		"$SUITE" "$build/root" "$mirror" >"$build/debootstrap.log" 2>&1; then
		tail -n 20 "$build/debootstrap.log" >&2
		rm -rf "$build"
		die "debootstrap failed"
	fi
	prepare_root "$build/root"
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$build/root" \
		-cf "$build/root.tar" .
	mv "$build/root.tar" "$tar_file"
	rm -rf "$build"
}

# One-time adjustments of the cached root file system.
prepare_root() {
	root=$1
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	# A fresh machine id on every boot of a copy.
	: >"$root/etc/machine-id"
	echo imapsync-task-test >"$root/etc/hostname"
	# Nothing in the test needs these; they only slow the boot down or
	# fail without hardware.
	for u in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
		dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
		systemd-tmpfiles-clean.timer; do
		ln -sf /dev/null "$root/etc/systemd/system/$u"
	done
}

cmd_rootfs() {
	[ $# -eq 1 ] || die "usage: rootfs DIR"
	dir=$1
	mkdir -p "$CACHE" "$dir"
	tar_file=$(cache_tar)
	(
		flock -w 1200 9 || die "cache lock: timeout"
		[ -s "$tar_file" ] || build_cache "$tar_file"
	) 9>"$CACHE/.lock"
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -xf "$tar_file"
}

# --- cgroups ---------------------------------------------------------------

# Print "MOUNTPOINT CURRENT-PATH" for every cgroup hierarchy this process
# is in, v1 (one per controller set, plus name=systemd) and v2.
cgroup_places() {
	awk '
		FNR == NR {
			# /proc/self/mountinfo: fields after " - " are FSTYPE SOURCE OPTS
			for (i = 1; i <= NF; i++) if ($i == "-") break
			if ($(i + 1) == "cgroup2") v2 = $5
			else if ($(i + 1) == "cgroup") { mnt[$5] = "," $(i + 3) "," }
			next
		}
		{
			# /proc/self/cgroup: ID:CONTROLLERS:PATH
			split($0, f, ":"); ctrls = f[2]; path = substr($0, length(f[1] f[2]) + 3)
			if (ctrls == "") { if (v2 != "") print v2, path; next }
			n = split(ctrls, c, ",")
			for (m in mnt) {
				hit = 1
				for (i = 1; i <= n; i++) if (index(mnt[m], "," c[i] ",") == 0) hit = 0
				if (hit) { print m, path; break }
			}
		}' /proc/self/mountinfo /proc/self/cgroup
}

cgroup_dirs() {   # cgroup_dirs NAME: the cgroups of container NAME
	cgroup_places | while read -r mnt path; do
		echo "$mnt${path%/}/$CGROUP_PREFIX$1"
	done
}

cgroup_enter() {   # put this shell into a fresh cgroup in every hierarchy
	for d in $(cgroup_dirs "$1"); do
		mkdir -p "$d"
		# A new v1 cpuset is empty (no CPUs, no memory nodes): inherit.
		for f in cpuset.cpus cpuset.mems; do
			[ -f "$d/$f" ] && [ -z "$(cat "$d/$f")" ] &&
				cat "${d%/*}/$f" >"$d/$f"
		done
		echo $$ >"$d/cgroup.procs"
	done
}

cgroup_remove() {   # remove what cgroup_enter and nspawn left (empty only)
	for d in $(cgroup_dirs "$1"); do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ ! -d "$d" ] || log "cgroup $d not empty, left in place"
	done
}

# --- boot and drive ----------------------------------------------------------

cmd_boot() {
	[ $# -eq 2 ] || die "usage: boot NAME DIR"
	name=$1
	dir=$2
	[ -x "$dir/lib/systemd/systemd" ] || die "$dir: no systemd in it"
	cgroup_enter "$name"
	cd /
	# Unified cgroup hierarchy inside, so BPF-based settings
	# (DevicePolicy=, IPAddressDeny=) are really enforced; bpf() must then be
	# allowed through nspawn's own seccomp filter.  Host network (no
	# --private-network): the worker reaches Dovecot on the host's loopback.
	exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -D "$dir" -M "$name" \
		-b --register=no --keep-unit --link-journal=no \
		--console=read-only --system-call-filter=bpf
}

# The container's PID 1: the descendant of nspawn that is PID 1 in its own
# PID namespace (nspawn's first child is short-lived).
find_leader() {
	for task in /proc/"$1"/task/*/children; do
		# shellcheck disable=SC2013 # one line of space-separated PIDs
		for child in $(cat "$task" 2>/dev/null); do
			nspid=$(awk '$1 == "NSpid:" { print $NF }' "/proc/$child/status" 2>/dev/null)
			if [ "$nspid" = 1 ]; then
				echo "$child"
				return 0
			fi
			find_leader "$child" && return 0
		done
	done
	return 1
}

cmd_leader() {
	[ $# -ge 1 ] || die "usage: leader NSPAWN_PID [SECS]"
	deadline=$(($(date +%s) + ${2:-30}))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		kill -0 "$1" 2>/dev/null || die "nspawn ($1) exited"
		find_leader "$1" && return 0
		sleep 0.1
	done
	die "no container PID 1 under nspawn ($1) after ${2:-30}s"
}

cmd_enter() {
	[ $# -ge 2 ] || die "usage: enter LEADER CMD..."
	leader=$1
	shift
	exec nsenter --target "$leader" --all -- "$@"
}

wait_gone() {   # wait_gone PID SECS: 0 once PID is gone
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ "$i" -lt $(($2 * 10)) ] || return 1
		# A zombie child of someone else counts as gone.
		[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ] || return 0
		sleep 0.1
		i=$((i + 1))
	done
}

cmd_stop() {
	[ $# -ge 2 ] || die "usage: stop NAME NSPAWN_PID [LEADER]"
	name=$1
	nspawn_pid=$2
	leader=${3:-}
	# Never signal process groups or init by mistake.
	case $nspawn_pid in '' | *[!0-9]* | 0 | 1) die "stop: bad nspawn pid '$nspawn_pid'" ;; esac
	case $leader in *[!0-9]* | 0 | 1) die "stop: bad leader pid '$leader'" ;; esac
	if [ -z "$leader" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		leader=$(find_leader "$nspawn_pid" || true)
	fi
	if kill -0 "$nspawn_pid" 2>/dev/null; then
		if [ -n "$leader" ]; then
			timeout 10 nsenter --target "$leader" --all -- \
				systemctl poweroff --no-block >/dev/null 2>&1 ||
				kill -RTMIN+4 "$leader" 2>/dev/null || true
		else
			kill -TERM "$nspawn_pid" 2>/dev/null || true
		fi
		if ! wait_gone "$nspawn_pid" 30; then
			log "container $name did not power off in 30s; killing it"
			[ -z "$leader" ] || kill -KILL "$leader" 2>/dev/null || true
			kill -KILL "$nspawn_pid" 2>/dev/null || true
			wait_gone "$nspawn_pid" 10 || log "nspawn ($nspawn_pid) survived SIGKILL"
		fi
	fi
	# Anything still in our cgroups belongs to this container: end it.
	for d in $(cgroup_dirs "$name"); do
		[ -d "$d" ] || continue
		find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null |
			while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
	done
	sleep 0.2
	cgroup_remove "$name"
	# nspawn cannot remove this where /run is not a tmpfs.
	rm -rf "/run/systemd/nspawn/propagate/$name" "/run/systemd/nspawn/unix-export/$name"
}

cmd_shell() {
	[ $# -eq 2 ] || die "usage: shell NAME DIR"
	shell_name=$1
	sh "$0" boot "$1" "$2" >/dev/null 2>&1 &
	shell_pid=$!
	shell_leader=$(sh "$0" leader "$shell_pid" 30) || shell_leader=
	trap 'sh "$0" stop "$shell_name" "$shell_pid" "$shell_leader"' EXIT
	[ -n "$shell_leader" ] || exit 1
	nsenter --target "$shell_leader" --all -- systemctl is-system-running --wait || true
	nsenter --target "$shell_leader" --all -- /bin/bash -l || true
}

[ "$(id -u)" = 0 ] || die "needs root"
cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
	tools | rootfs | boot | leader | enter | stop | shell) "cmd_$cmd" "$@" ;;
	*) die "usage: nspawn.sh tools|rootfs|boot|leader|enter|stop|shell ..." ;;
esac
