#!/bin/sh
# t_units.sh - the built units load cleanly in systemd and stay hardened.
#
#   systemd-analyze verify --man=no   on an instance of each template: any
#                                      output is a failure (bad values are
#                                      only warnings there)
#   systemd-analyze security --offline=true --threshold=15
#                                      the service scores 1.5 or lower
#
# verify checks that ExecStart= is executable, so the service is verified
# as a copy whose ExecStart= points at the built worker.  Prints TAP.
set -u

: "${TOP_SRCDIR:?}" "${TOP_BUILDDIR:?}" "${IMAPSYNC_TASK_BIN:?}"
units=$TOP_BUILDDIR/units
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

# systemd-analyze comes with the systemd package; a bare CI image may lack it.
if ! command -v systemd-analyze >/dev/null 2>&1; then
	"$SHELL" "$TOP_SRCDIR/tests/lib/nspawn.sh" tools 2>&1 | diag
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "Bail out! systemd-analyze not found and could not be installed"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

service=$units/imapsync-task@.service
timer=$units/imapsync-task@.timer
test -f "$service" && test -f "$timer"
ok $? "built units exist in $units"

# --- what the build substituted ----------------------------------------
grep -n '@[a-z_]*@' "$service" "$timer" | diag
! grep -q '@[a-z_]*@' "$service" "$timer"
ok $? "no unsubstituted @variables@ left"

exec_path=$(sed -n 's/^ExecStart=\([^ ]*\) run %i$/\1/p' "$service")
case $exec_path in
	/*/imapsync-task) st=0 ;;
	*) st=1 ;;
esac
ok $st "ExecStart= runs an absolute .../imapsync-task run %i ($exec_path)"

confdir=$(sed -n 's/^Environment=IMAPSYNC_TASK_CONFIG_DIR=//p' "$service")
grep -qx "LoadCredential=task.%i.password:$confdir/tasks/%i.pwd" "$service" &&
	grep -qx "LoadCredential=master.password:$confdir/master.pwd" "$service"
ok $? "credentials come from the configured dir ($confdir)"

grep -qx 'SuccessExitStatus=2' "$service" &&
	grep -qx 'StateDirectory=imapsync-task/%i' "$service" &&
	grep -qx 'DynamicUser=yes' "$service"
ok $? "SuccessExitStatus=2, StateDirectory=imapsync-task/%i, DynamicUser=yes"

# Progress (sd_notify STATUS=) reaches systemd only with NotifyAccess=.
grep -qx 'NotifyAccess=main' "$service"
ok $? "NotifyAccess=main: systemctl status shows the worker's STATUS= text"

# The worker must reach IMAP servers anywhere.
! grep -qE '^(IPAddressDeny|IPAddressAllow|PrivateNetwork)=' "$service"
ok $? "no IP address filter and no private network"

# --- systemd-analyze verify ---------------------------------------------
sed "s|^ExecStart=[^ ]*|ExecStart=$IMAPSYNC_TASK_BIN|" "$service" \
	>"$tmp/imapsync-task@example.service"
cp "$timer" "$tmp/imapsync-task@example.timer"
cp "$timer" "$tmp/imapsync-task@.timer"
cp "$tmp/imapsync-task@example.service" "$tmp/imapsync-task@.service"

for unit in imapsync-task@example.service imapsync-task@example.timer; do
	out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice \
		timeout 60 systemd-analyze verify --man=no "./$unit" 2>&1)
	st=$?
	[ -n "$out" ] && printf '%s\n' "$out" | diag
	[ $st -eq 0 ] && [ -z "$out" ]
	ok $? "systemd-analyze verify $unit: exit 0, no output"
done

# The instance found by name through the template (as systemd loads it).
out=$(cd "$tmp" && SYSTEMD_UNIT_PATH="$tmp:" SYSTEMD_LOG_LEVEL=notice \
	timeout 60 systemd-analyze verify --man=no imapsync-task@other.timer 2>&1)
st=$?
[ -n "$out" ] && printf '%s\n' "$out" | diag
[ $st -eq 0 ] && [ -z "$out" ]
ok $? "systemd-analyze verify imapsync-task@other.timer via the templates: silent"

# --- systemd-analyze security ---------------------------------------------
out=$(timeout 60 systemd-analyze security --offline=true --threshold=15 \
	"$tmp/imapsync-task@example.service" 2>&1)
st=$?
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "# exposure score: ${score:-unknown} (threshold 1.5)"
printf '%s\n' "$out" | grep '✗' | diag
[ $st -eq 0 ] && [ -n "$score" ]
ok $? "systemd-analyze security --offline=true --threshold=15 passes (score $score)"

# The same, on the unit exactly as built (ExecStart= not rewritten).
out=$(cd "$units" && timeout 60 systemd-analyze security --offline=true \
	--threshold=15 ./imapsync-task@.service 2>&1)
ok $? "security threshold also holds for the unit as installed"

echo "1..$n"
[ $failed -eq 0 ]
