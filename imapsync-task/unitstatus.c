/* unitstatus.c - a task's service unit as systemd sees it (see
 * unitstatus.h).  The only file that talks D-Bus. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "unitstatus.h"
#include "util.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define UNIT_PATH_PREFIX "/org/freedesktop/systemd1/unit"
#define IF_UNIT "org.freedesktop.systemd1.Unit"
#define IF_SERVICE "org.freedesktop.systemd1.Service"
/* "list" must not hang on a stuck bus. */
#define CALL_TIMEOUT_USEC (3 * 1000 * 1000ULL)

struct unit_query {
	sd_bus *bus;
};

struct unit_query *unit_query_open(void)
{
	sd_bus *bus = NULL;

	if (getenv("IMAPSYNC_TASK_NO_SYSTEMD") != NULL || sd_booted() <= 0)
		return NULL;
	if (sd_bus_open_system(&bus) < 0)
		return NULL;
	(void)sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
	struct unit_query *q = xcalloc(1, sizeof(*q));
	q->bus = bus;
	return q;
}

void unit_query_close(struct unit_query **qp)
{
	if (*qp == NULL)
		return;
	sd_bus_flush_close_unref((*qp)->bus);
	free(*qp);
	*qp = NULL;
}

static bool get_string(sd_bus *bus, const char *path, const char *iface, const char *prop,
		       char *out, size_t len)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char *v = NULL;
	int r = sd_bus_get_property_string(bus, SYSTEMD_DEST, path, iface, prop, &e, &v);

	sd_bus_error_free(&e);
	if (r < 0)
		return false;
	snprintf(out, len, "%s", v != NULL ? v : "");
	free(v);
	return true;
}

static bool get_trivial(sd_bus *bus, const char *path, const char *iface, const char *prop,
			char type, void *out)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, iface, prop, &e, type, out);

	sd_bus_error_free(&e);
	return r >= 0;
}

bool unit_query_task(struct unit_query *q, const char *task, struct unit_status *st)
{
	char *path = NULL;
	int32_t code = 0, status = 0;
	uint64_t exit_usec = 0, change_usec = 0;

	memset(st, 0, sizeof(*st));
	if (q == NULL)
		return false;
	snprintf(st->unit, sizeof(st->unit), "imapsync-task@%s.service", task);
	/* Reading a property through the unit's object path makes systemd
	   load the unit if it is not loaded. */
	if (sd_bus_path_encode(UNIT_PATH_PREFIX, st->unit, &path) < 0)
		return false;
	bool ok = get_string(q->bus, path, IF_UNIT, "LoadState", st->load_state,
			     sizeof(st->load_state)) &&
		strcmp(st->load_state, "loaded") == 0 &&
		get_string(q->bus, path, IF_UNIT, "ActiveState", st->active_state,
			   sizeof(st->active_state));
	if (ok) {
		(void)get_string(q->bus, path, IF_UNIT, "SubState", st->sub_state,
				 sizeof(st->sub_state));
		(void)get_trivial(q->bus, path, IF_UNIT, "StateChangeTimestamp", 't', &change_usec);
		(void)get_string(q->bus, path, IF_SERVICE, "Result", st->result,
				 sizeof(st->result));
		(void)get_trivial(q->bus, path, IF_SERVICE, "ExecMainCode", 'i', &code);
		(void)get_trivial(q->bus, path, IF_SERVICE, "ExecMainStatus", 'i', &status);
		(void)get_trivial(q->bus, path, IF_SERVICE, "ExecMainExitTimestamp", 't',
				  &exit_usec);
		(void)get_string(q->bus, path, IF_SERVICE, "StatusText", st->status_text,
				 sizeof(st->status_text));
		st->exec_main_code = code;
		st->exec_main_status = status;
		st->exit_usec = exit_usec;
		st->change_usec = change_usec;
	}
	free(path);
	return ok;
}

bool unit_running(const struct unit_status *st)
{
	return strcmp(st->active_state, "active") == 0 ||
		strcmp(st->active_state, "activating") == 0 ||
		strcmp(st->active_state, "deactivating") == 0 ||
		strcmp(st->active_state, "reloading") == 0;
}

const char *unit_exit_status_name(int status)
{
	/* systemd's own exit statuses (systemd.exec(5), "PROCESS EXIT
	   CODES"): the service failed before or while starting the
	   program. */
	static const struct { int code; const char *name; } names[] = {
		{ 200, "CHDIR" }, { 201, "NICE" }, { 202, "FDS" }, { 203, "EXEC" },
		{ 204, "MEMORY" }, { 205, "LIMITS" }, { 206, "OOM_ADJUST" },
		{ 207, "SIGNAL_MASK" }, { 208, "STDIN" }, { 209, "STDOUT" },
		{ 210, "CHROOT" }, { 211, "IOPRIO" }, { 212, "TIMERSLACK" },
		{ 213, "SECUREBITS" }, { 214, "SETSCHEDULER" }, { 215, "CPUAFFINITY" },
		{ 216, "GROUP" }, { 217, "USER" }, { 218, "CAPABILITIES" },
		{ 219, "CGROUP" }, { 220, "SETSID" }, { 221, "CONFIRM" },
		{ 222, "STDERR" }, { 224, "PAM" }, { 225, "NETWORK" },
		{ 226, "NAMESPACE" }, { 227, "NO_NEW_PRIVILEGES" }, { 228, "SECCOMP" },
		{ 229, "SELINUX_CONTEXT" }, { 230, "PERSONALITY" },
		{ 231, "APPARMOR_PROFILE" }, { 232, "ADDRESS_FAMILIES" },
		{ 233, "RUNTIME_DIRECTORY" }, { 235, "CHOWN" },
		{ 236, "SMACK_PROCESS_LABEL" }, { 237, "KEYRING" },
		{ 238, "STATE_DIRECTORY" }, { 239, "CACHE_DIRECTORY" },
		{ 240, "LOGS_DIRECTORY" }, { 241, "CONFIGURATION_DIRECTORY" },
		{ 242, "NUMA_POLICY" }, { 243, "CREDENTIALS" }, { 245, "BPF" },
	};
	for (size_t i = 0; i < N_ELEMENTS(names); i++)
		if (names[i].code == status)
			return names[i].name;
	return NULL;
}

/* The exit statuses imapsync-task(8) documents. */
static bool worker_code(int status)
{
	static const int codes[] = { 0, 2, 64, 65, 69, 70, 73, 74, 75, 76, 77, 78, 100 };

	for (size_t i = 0; i < N_ELEMENTS(codes); i++)
		if (codes[i] == status)
			return true;
	return false;
}

bool unit_failed_in_worker(const struct unit_status *st)
{
	return strcmp(st->active_state, "failed") == 0 && strcmp(st->result, "exit-code") == 0 &&
		st->exec_main_code == 1 && worker_code(st->exec_main_status);
}

bool unit_failure_text(const struct unit_status *st, char *buf, size_t len)
{
	if (strcmp(st->active_state, "failed") != 0)
		return false;
	if (st->exec_main_code == 1 && strcmp(st->result, "exit-code") == 0) {
		const char *name = unit_exit_status_name(st->exec_main_status);
		if (name != NULL)
			snprintf(buf, len, "%d/%s", st->exec_main_status, name);
		else
			snprintf(buf, len, "exit-code %d", st->exec_main_status);
		return true;
	}
	if ((st->exec_main_code == 2 || st->exec_main_code == 3) &&
	    (strcmp(st->result, "signal") == 0 || strcmp(st->result, "core-dump") == 0)) {
		const char *sig = sigabbrev_np(st->exec_main_status);
		if (sig != NULL)
			snprintf(buf, len, "signal/%s", sig);
		else
			snprintf(buf, len, "signal %d", st->exec_main_status);
		return true;
	}
	snprintf(buf, len, "%s", st->result[0] != '\0' ? st->result : "failed");
	return true;
}
