#!/bin/sh
# t_completion.sh - the bash completion (etc/bash-completion/imapsync-task):
# sourced into bash, its function is called with COMP_WORDS/COMP_CWORD
# as bash would set them, and COMPREPLY is compared for a few command
# lines: commands, global and per-command options, task names from
# --config-dir or $IMAPSYNC_TASK_CONFIG_DIR, files for import-csv.  The
# commands it offers are those --help lists.  Prints TAP.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
LC_ALL=C
export LC_ALL

: "${TOP_BUILDDIR:?}" "${IMAPSYNC_TASK_BIN:?}"
comp=$TOP_BUILDDIR/etc/bash-completion/imapsync-task
n=0
failed=0

ok() {   # ok STATUS DESCRIPTION [DETAIL]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/#   /'
	fi
}

if [ ! -f "$comp" ]; then
	echo "Bail out! $comp not built"
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_completion.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/etc/tasks" "$tmp/other/tasks" "$tmp/cwd/subdir"
for t in alpha beta.x john_john_example.org; do
	: >"$tmp/etc/tasks/$t.ini"
done
: >"$tmp/etc/tasks/alpha.pwd"            # not a task
: >"$tmp/etc/tasks/bad name.ini"         # not a valid task name
: >"$tmp/etc/tasks/.hidden.ini"          # nor this
: >"$tmp/other/tasks/gamma.ini"
: >"$tmp/cwd/users.csv"

# shellcheck source=/dev/null
. "$comp"
complete -p imapsync-task >/dev/null 2>&1
ok $? "sourcing it registers a completion for imapsync-task"

# complete WORDS... : the last word is the one being completed; prints
# COMPREPLY sorted, space-separated.
complete_line() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_imapsync_task
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

# expect DESCRIPTION "WANT" WORDS...
expect() {
	desc=$1 want=$2
	shift 2
	got=$(complete_line "$@")
	[ "$got" = "$want" ]
	ok $? "$desc" "words: $* | got: [$got] | want: [$want]"
}

unset IMAPSYNC_TASK_CONFIG_DIR
expect "the commands" "check import-csv list run status" imapsync-task ""
expect "a command from its start" "status" imapsync-task st
expect "global options before the command" \
	"--config-dir --help --lock-wait --state-dir --timeout --verbose --version" imapsync-task --
expect "a global option from its start" "--config-dir" imapsync-task --co
expect "run's options" "--dry-run" imapsync-task run --d
expect "import-csv's options" "--check --config-dir" imapsync-task import-csv --c
expect "import-csv: --update" "--update" imapsync-task import-csv --u
expect "check: --connect" "--config-dir --connect" imapsync-task check --con
expect "list: --json" "--json" imapsync-task list --j
expect "task names from --config-dir" "alpha beta.x john_john_example.org" \
	imapsync-task --config-dir "$tmp/etc" run ""
expect "task names by prefix (no .pwd, no invalid names)" "alpha" \
	imapsync-task --config-dir "$tmp/etc" status a
expect "--config-dir=DIR as bash splits it" "beta.x" \
	imapsync-task --config-dir = "$tmp/etc" run b
expect "status takes one name only" "" \
	imapsync-task --config-dir "$tmp/etc" status alpha ""
expect "check takes several" "alpha beta.x john_john_example.org" \
	imapsync-task --config-dir "$tmp/etc" check alpha ""
expect "options after the command are skipped" "john_john_example.org" \
	imapsync-task run --dry-run --config-dir "$tmp/etc" -v j
IMAPSYNC_TASK_CONFIG_DIR=$tmp/other
export IMAPSYNC_TASK_CONFIG_DIR
expect "task names from \$IMAPSYNC_TASK_CONFIG_DIR" "gamma" imapsync-task run ""
expect "--config-dir wins over the environment" "alpha" \
	imapsync-task --config-dir "$tmp/etc" run al
unset IMAPSYNC_TASK_CONFIG_DIR
expect "--config-dir completes directories" "$tmp/other" imapsync-task --config-dir "$tmp/oth"
expect "no completion for --timeout's number" "" imapsync-task --timeout ""
cd "$tmp/cwd" || exit 1
expect "import-csv completes files" "subdir users.csv" imapsync-task import-csv ""
expect "import-csv takes one file" "" imapsync-task import-csv users.csv ""
cd / || exit 1

# The commands offered are those the program knows.
help=$("$IMAPSYNC_TASK_BIN" --help)
known=$(printf '%s\n' "$help" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' | sort | tr '\n' ' ' |
	sed 's/ $//')
offered=$(complete_line imapsync-task "")
[ "$known" = "$offered" ]
ok $? "the commands are those --help lists" "help: [$known] completion: [$offered]"
for opt in --dry-run --connect --json --check --update --config-dir --state-dir --timeout \
	--lock-wait; do
	case $help in
	*"$opt"*) ok 0 "--help knows $opt" ;;
	*) ok 1 "--help knows $opt" "$help" ;;
	esac
done

echo "1..$n"
[ "$failed" -eq 0 ]
