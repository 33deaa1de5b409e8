#!/bin/sh
# t_install.sh - "make install" as a hand install from source does it.
#
#   1. This build, installed into a staging DESTDIR: tasks/ is created
#      empty, imapsync-task.conf and the example (in $(docdir)/examples)
#      are installed, the reload helper names the installed generator;
#      "make install" again keeps an edited imapsync-task.conf, "make
#      uninstall" removes it only when unchanged and leaves no other file.
#   2. The documented configure line, --prefix=/usr --sysconfdir=/etc
#      --localstatedir=/var, in a scratch build dir (configured, nothing
#      compiled): the units, the helper and "make -n install" use /usr/sbin,
#      /etc/imapsync-task and /var, and systemd's directories from
#      pkg-config.
# Prints TAP.
set -u

: "${TOP_SRCDIR:?}" "${TOP_BUILDDIR:?}"
n=0
failed=0

ok() {   # ok STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
diag() { sed 's/^/# /'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# A make of its own: not the make check's jobserver, variables or level.
submake() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES make -s "$@"
}
# shellcheck disable=SC2016 # make's $($*), not the shell's
printf 'print-%%:\n\t@echo $($*)\n' >"$tmp/print.mk"
var() {   # var BUILD_DIR NAME: the value of make variable NAME, expanded
	submake -C "$1" -f Makefile -f "$tmp/print.mk" "print-$2"
}

# --- 1. this build, into a DESTDIR -----------------------------------------
B=$TOP_BUILDDIR
D=$tmp/dest
sysconfdir=$(var "$B" sysconfdir)
docdir=$(var "$B" docdir)
sbindir=$(var "$B" sbindir)
gendir=$(var "$B" systemdsystemgeneratordir)
conf=$D$sysconfdir/imapsync-task/imapsync-task.conf
echo "# sysconfdir=$sysconfdir docdir=$docdir sbindir=$sbindir gendir=$gendir"

submake -C "$B" install DESTDIR="$D" >"$tmp/install.log" 2>&1
st=$?
[ $st -eq 0 ] || diag <"$tmp/install.log"
ok $st "make install DESTDIR=... succeeds"

test -d "$D$sysconfdir/imapsync-task/tasks" &&
	[ -z "$(ls -A "$D$sysconfdir/imapsync-task/tasks")" ]
ok $? "tasks/ is created, empty ($sysconfdir/imapsync-task/tasks)"

cmp -s "$TOP_SRCDIR/etc/imapsync-task.conf" "$conf"
ok $? "imapsync-task.conf is installed"

cmp -s "$TOP_SRCDIR/etc/tasks/example.ini.sample" "$D$docdir/examples/example.ini.sample"
ok $? "the annotated example is in $docdir/examples/"

helper=$D$sbindir/imapsync-task-reload
test -x "$helper" && grep -qx "GENERATOR='$gendir/imapsync-task-generator'" "$helper" &&
	test -x "$D$gendir/imapsync-task-generator"
ok $? "imapsync-task-reload is installed and names the installed generator"

for page in man8/imapsync-task.8 man8/imapsync-task-reload.8 man5/imapsync-task.ini.5; do
	test -f "$D$(var "$B" mandir)/$page" || { echo "# missing $page"; false; } || break
done
ok $? "the man pages are installed"

# An upgrade from source keeps the admin's configuration.
echo "; edited by the admin" >>"$conf"
cp "$conf" "$tmp/edited.conf"
submake -C "$B" install DESTDIR="$D" >"$tmp/install2.log" 2>&1
st=$?
cmp -s "$tmp/edited.conf" "$conf" && [ $st -eq 0 ]
ok $? "make install again keeps an edited imapsync-task.conf"

submake -C "$B" uninstall DESTDIR="$D" >"$tmp/uninstall.log" 2>&1
cmp -s "$tmp/edited.conf" "$conf"
ok $? "make uninstall leaves an edited imapsync-task.conf"

cp "$TOP_SRCDIR/etc/imapsync-task.conf" "$conf"
submake -C "$B" uninstall DESTDIR="$D" >"$tmp/uninstall2.log" 2>&1
left=$(find "$D" -type f -o -type l)
printf '%s\n' "$left" | diag
[ -z "$left" ]
ok $? "make uninstall removes an unchanged imapsync-task.conf and every other file"

# --- 2. the documented configure line ----------------------------------------
C=$tmp/conf-usr
mkdir -p "$C"
if (cd "$C" && "$TOP_SRCDIR/configure" --prefix=/usr --sysconfdir=/etc \
	--localstatedir=/var >"$tmp/configure.log" 2>&1); then
	st=0
else
	st=1
	tail -n 30 "$tmp/configure.log" | diag
fi
ok $st "configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var"

if [ $st -eq 0 ]; then
	submake -C "$C" units/imapsync-task@.service imapsync-task/imapsync-task-reload \
		>/dev/null 2>&1
	grep -qx 'ExecStart=/usr/sbin/imapsync-task run %i' "$C/units/imapsync-task@.service" &&
		grep -qx 'Environment=IMAPSYNC_TASK_CONFIG_DIR=/etc/imapsync-task' \
			"$C/units/imapsync-task@.service"
	ok $? "the service runs /usr/sbin/imapsync-task with /etc/imapsync-task"

	pc_units=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
	pc_gens=$(pkg-config --variable=systemdsystemgeneratordir systemd 2>/dev/null)
	[ "$(var "$C" localstatedir)" = /var ] &&
		[ "$(var "$C" systemdsystemunitdir)" = "${pc_units:-/usr/lib/systemd/system}" ] &&
		[ "$(var "$C" systemdsystemgeneratordir)" = "${pc_gens:-/usr/lib/systemd/system-generators}" ] &&
		grep -qx "GENERATOR='${pc_gens:-/usr/lib/systemd/system-generators}/imapsync-task-generator'" \
			"$C/imapsync-task/imapsync-task-reload"
	ok $? "state under /var; units and generator where pkg-config systemd says (${pc_units:-?}, ${pc_gens:-?})"

	# What install would do, without building or installing anything.
	submake -C "$C" -n install-data-local install-dist_exampleDATA >"$tmp/dry.log" 2>&1
	grep -q "/etc/imapsync-task/tasks" "$tmp/dry.log" &&
		grep -q "/usr/share/doc/imapsync-task/examples" "$tmp/dry.log"
	st=$?
	[ $st -eq 0 ] || diag <"$tmp/dry.log"
	ok $st "make install would create /etc/imapsync-task/tasks and install the example in /usr/share/doc/imapsync-task/examples"
fi

echo "1..$n"
[ $failed -eq 0 ]
