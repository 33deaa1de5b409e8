/* report.c - "list" and "status", as text or JSON (see report.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "journal.h"
#include "json.h"
#include "report.h"
#include "runlog.h"
#include "task.h"
#include "unitstatus.h"
#include "util.h"

#define JSON_FORMAT_VERSION 1
#define STATUS_RUNS 10
/* A unit's exit and the worker's record of the same run are this close. */
#define SAME_RUN_SEC 10

/* Everything told about one task file. */
struct entry {
	char *name;               /* the file name without .ini */
	char *file;
	bool name_valid;
	struct task *t;           /* NULL: the file does not load */
	char config_error[512];   /* first problem of the configuration, "" none */
	unsigned config_errors;
	char *dir;                /* state directory; NULL for an invalid name */
	bool has_run;
	struct run_record last;
	bool has_unit;
	struct unit_status unit;
	/* the last result, whichever source tells it */
	const char *result;       /* "never", a verdict, "running", "invalid",
	                             or the unit's failure ("243/CREDENTIALS") */
	const char *source;       /* "run", "unit", "config", NULL */
	char result_buf[64];
	time_t when;              /* 0: unknown */
	const char *error;        /* NULL: none */
	const char *side;
	char error_buf[600];
};

/* ------------------------------------------------------------------ */
/* gathering                                                           */

struct errsink {
	char *first;
	size_t len;
	unsigned n;
	bool print;
};

static void collect_error(void *ctx, const char *line)
{
	struct errsink *s = ctx;

	if (s->n++ == 0)
		snprintf(s->first, s->len, "%s", line);
	if (s->print)
		fprintf(stderr, "%s\n", line);
}

/* Every tasks/NAME.ini, valid name or not (hidden files aside), sorted. */
static char **scan_task_files(const char *config_dir, size_t *n_r)
{
	char *dir = xasprintf("%s/tasks", config_dir);
	DIR *d = opendir(dir);
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;

	free(dir);
	*n_r = 0;
	if (d == NULL)
		return NULL;
	v = xcalloc(1, sizeof(*v));
	while ((errno = 0, de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 4 || strcmp(de->d_name + len - 4, ".ini") != 0)
			continue;
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = xstrndup(de->d_name, len - 4);
		v[n] = NULL;
	}
	int e = errno;
	closedir(d);
	if (e != 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		errno = e;
		return NULL;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(v[k - 1], v[k]) > 0; k--) {
			char *tmp = v[k];
			v[k] = v[k - 1];
			v[k - 1] = tmp;
		}
	*n_r = n;
	return v;
}

static void decide_result(struct entry *e)
{
	char fail[64];

	e->result = "never";
	e->source = NULL;
	e->when = 0;
	e->error = NULL;
	e->side = NULL;
	if (!e->name_valid || e->t == NULL) {
		e->result = "invalid";
		e->source = "config";
		e->error = e->config_error;
		e->side = "config";
		return;
	}
	if (e->has_unit && unit_running(&e->unit)) {
		e->result = "running";
		e->source = "unit";
		e->when = (time_t)(e->unit.change_usec / 1000000);
		return;
	}
	/* A failed unit tells more than the record when the worker did not
	   end that run itself (243/CREDENTIALS, a signal, a timeout) or
	   left no record of it. */
	if (e->has_unit && unit_failure_text(&e->unit, fail, sizeof(fail))) {
		time_t ended = (time_t)((e->unit.exit_usec ? e->unit.exit_usec
					 : e->unit.change_usec) / 1000000);
		bool recorded = e->has_run && unit_failed_in_worker(&e->unit) &&
			e->last.exit_code == e->unit.exec_main_status &&
			(ended == 0 || (e->last.end >= ended - SAME_RUN_SEC &&
					e->last.end <= ended + SAME_RUN_SEC));
		bool newer = !e->has_run || ended == 0 || ended > e->last.end + SAME_RUN_SEC;
		if (!recorded && newer && unit_failed_in_worker(&e->unit)) {
			/* The worker ended it, but left no record (a
			   configuration error, a lock held, a state
			   directory it could not use): its verdict. */
			int code = e->unit.exec_main_status;
			const char *side = runlog_error_side(code, "");
			e->result = exit_code_verdict(code);
			e->source = "unit";
			e->when = ended;
			snprintf(e->error_buf, sizeof(e->error_buf), "unit %s failed with exit "
				 "status %d (%s); the worker recorded no run, see journalctl -u %s",
				 e->unit.unit, code, e->result, e->unit.unit);
			e->error = e->error_buf;
			e->side = side[0] != '\0' ? side : NULL;
			return;
		}
		if (!recorded && newer) {
			snprintf(e->result_buf, sizeof(e->result_buf), "%s", fail);
			e->result = e->result_buf;
			e->source = "unit";
			e->when = ended;
			const char *hint = "";
			if (e->unit.exec_main_code == 1 && e->unit.exec_main_status == 243)
				hint = ": a credential could not be loaded (LoadCredential=); "
				       "is the password file missing?";
			snprintf(e->error_buf, sizeof(e->error_buf), "unit %s failed: %s%s",
				 e->unit.unit, fail, hint);
			e->error = e->error_buf;
			e->side = e->unit.exec_main_code == 1 && e->unit.exec_main_status == 243
				? "config" : "unit";
			return;
		}
	}
	if (e->has_run) {
		e->result = exit_code_verdict(e->last.exit_code);
		e->source = "run";
		e->when = e->last.end;
		if (e->last.error[0] != '\0') {
			e->error = e->last.error;
			e->side = e->last.side[0] != '\0' ? e->last.side
				: runlog_error_side(e->last.exit_code, e->last.error);
			if (e->side[0] == '\0')
				e->side = NULL;
		}
	}
}

static void gather(const struct report_opts *o, const char *name, struct unit_query *uq,
		   bool print_errors, struct entry *e)
{
	struct errsink sink;

	memset(e, 0, sizeof(*e));
	sink = (struct errsink){ e->config_error, sizeof(e->config_error), 0, print_errors };
	e->name = xstrdup(name);
	e->file = xasprintf("%s/tasks/%s.ini", o->config_dir, name);
	e->name_valid = task_name_valid(name);
	if (!e->name_valid) {
		snprintf(e->config_error, sizeof(e->config_error),
			 "%s: invalid task name (allowed: A-Z a-z 0-9 _ . -, not starting "
			 "with a dot)", e->file);
		e->config_errors = 1;
		if (print_errors)
			fprintf(stderr, "%s\n", e->config_error);
		decide_result(e);
		return;
	}
	/* The task as a run would load it; if only its password is the
	   problem, the task is still shown (the problem too). */
	e->t = task_load(o->config_dir, name, collect_error, &sink);
	if (e->t == NULL) {
		struct errsink quiet = { NULL, 0, 0, false };
		char dummy[8];
		quiet.first = dummy;
		quiet.len = sizeof(dummy);
		e->t = task_load_with(o->config_dir, name, TASK_LOAD_NO_PASSWORD_CHECK,
				      collect_error, &quiet);
	}
	e->config_errors = sink.n;
	e->dir = o->state_dir(o->ctx, name);
	e->has_run = runlog_read(e->dir, &e->last, 1) == 1;
	e->has_unit = unit_query_task(uq, name, &e->unit);
	decide_result(e);
}

static void entry_free(struct entry *e)
{
	free(e->name);
	free(e->file);
	free(e->dir);
	task_free(&e->t);
}

/* ------------------------------------------------------------------ */
/* text                                                                */

/* s fit for a terminal line: control characters and bytes that are not
   UTF-8 become '?' (a file name must not forge lines).  Eight buffers in
   turn, enough for one printf. */
static const char *safe(const char *s)
{
	static char bufs[8][1024];
	static unsigned next;
	char *out = bufs[next++ % N_ELEMENTS(bufs)];
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t o = 0, len = strlen((const char *)p);

	for (size_t i = 0; i < len && o + 5 < sizeof(bufs[0]);) {
		uint32_t cp;
		size_t n = p[i] < 0x80 ? 1 : utf8_decode(p + i, len - i, &cp);
		if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, p + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "never");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void delete_text(const struct task *t, char *buf, size_t len, bool words)
{
	if (t->delete_mode == DELETE_OLDER_THAN)
		snprintf(buf, len, words ? "older-than (%u days)" : "older-than:%ud",
			 t->delete_older_than_days);
	else
		snprintf(buf, len, "%s", delete_mode_name(t->delete_mode));
}

static void remote_text(const struct task *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%u", t->remote.host, t->remote.port);
}

static void print_list_entry(const struct entry *e)
{
	char when[32], del[48] = "-", remote[300] = "-", n[3][24];
	const struct task *t = e->t;
	bool counts = e->source != NULL && strcmp(e->source, "run") == 0;
	const uint64_t v[3] = { e->last.copied, e->last.skipped, e->last.deleted };

	fmt_time(e->when, when, sizeof(when));
	for (int i = 0; i < 3; i++) {
		if (counts)
			snprintf(n[i], sizeof(n[i]), "%llu", (unsigned long long)v[i]);
		else
			snprintf(n[i], sizeof(n[i]), "-");
	}
	if (t != NULL) {
		delete_text(t, del, sizeof(del), false);
		remote_text(t, remote, sizeof(remote));
	}
	const char *folders = !e->name_valid ? "(invalid-name)"
		: t == NULL ? "(invalid)" : folder_mode_name(t->folders);
	printf("%-20s %-10s %-10s %-19s %-17s %8s %8s %8s  %-24s %s\n", safe(e->name), folders,
	       t ? (t->manual ? "manual" : t->interval) : "-", when, e->result,
	       n[0], n[1], n[2], safe(remote), del);
	if (e->error != NULL && e->error[0] != '\0')
		printf("    error (%s): %s\n", e->side ? e->side : "unknown", safe(e->error));
	if (strcmp(e->result, "running") == 0 && e->unit.status_text[0] != '\0')
		printf("    now: %s\n", safe(e->unit.status_text));
	if (t != NULL && e->config_error[0] != '\0')
		printf("    problem (config): %s\n", safe(e->config_error));
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static void json_run(struct json *j, const struct run_record *r)
{
	json_object_begin(j);
	json_kv_int(j, "start", (int64_t)r->start);
	json_kv_int(j, "end", (int64_t)r->end);
	json_kv_int(j, "exit_code", r->exit_code);
	json_kv_string(j, "verdict", exit_code_verdict(r->exit_code));
	json_kv_uint(j, "copied", r->copied);
	json_kv_uint(j, "skipped", r->skipped);
	json_kv_uint(j, "deleted", r->deleted);
	json_kv_uint(j, "errors", r->errors);
	json_kv_uint(j, "bytes", r->bytes);
	const char *side = r->side[0] != '\0' ? r->side
		: r->error[0] != '\0' ? runlog_error_side(r->exit_code, r->error) : "";
	json_kv_string(j, "error", r->error[0] != '\0' ? r->error : NULL);
	json_kv_string(j, "error_side", side[0] != '\0' ? side : NULL);
	json_object_end(j);
}

static const char *exec_code_name(int code)
{
	switch (code) {
	case 1: return "exited";
	case 2: return "killed";
	case 3: return "dumped";
	default: return NULL;
	}
}

static void json_unit(struct json *j, const struct unit_status *u)
{
	char fail[64];

	json_object_begin(j);
	json_kv_string(j, "name", u->unit);
	json_kv_string(j, "active_state", u->active_state);
	json_kv_string(j, "sub_state", u->sub_state);
	json_kv_string(j, "result", u->result[0] != '\0' ? u->result : NULL);
	json_kv_string(j, "exec_main_code", exec_code_name(u->exec_main_code));
	if (u->exec_main_code != 0)
		json_kv_int(j, "exec_main_status", u->exec_main_status);
	else
		json_kv_null(j, "exec_main_status");
	json_kv_string(j, "failure", unit_failure_text(u, fail, sizeof(fail)) ? fail : NULL);
	json_kv_string(j, "status_text", u->status_text[0] != '\0' ? u->status_text : NULL);
	if (u->change_usec != 0)
		json_kv_int(j, "changed", (int64_t)(u->change_usec / 1000000));
	else
		json_kv_null(j, "changed");
	json_object_end(j);
}

/* The keys every task object has (list and status). */
static void json_entry_fields(struct json *j, const struct entry *e)
{
	const struct task *t = e->t;

	json_kv_string(j, "name", e->name);
	json_kv_string(j, "file", e->file);
	json_kv_bool(j, "valid", e->name_valid && t != NULL);
	json_kv_string(j, "config_error", e->config_error[0] != '\0' ? e->config_error : NULL);
	json_kv_string(j, "folders", t ? folder_mode_name(t->folders) : NULL);
	json_kv_string(j, "schedule", t ? (t->manual ? "manual" : t->interval) : NULL);
	json_kv_string(j, "delivery", t ? delivery_mode_name(t->delivery) : NULL);
	json_kv_string(j, "delete_policy", t ? delete_mode_name(t->delete_mode) : NULL);
	if (t != NULL && t->delete_mode == DELETE_OLDER_THAN)
		json_kv_uint(j, "delete_days", t->delete_older_than_days);
	else
		json_kv_null(j, "delete_days");
	json_kv_string(j, "local_user", t ? t->local_user : NULL);
	json_kv_string(j, "remote_host", t ? t->remote.host : NULL);
	if (t != NULL)
		json_kv_uint(j, "remote_port", t->remote.port);
	else
		json_kv_null(j, "remote_port");
	json_kv_string(j, "remote_user", t ? t->remote_user : NULL);
	json_kv_string(j, "remote_security", t ? security_name(t->remote.security) : NULL);
	json_kv_string(j, "state_dir", e->dir);
	json_kv_string(j, "result", e->result);
	json_kv_string(j, "result_source", e->source);
	if (e->when != 0)
		json_kv_int(j, "result_time", (int64_t)e->when);
	else
		json_kv_null(j, "result_time");
	json_kv_string(j, "error", e->error != NULL && e->error[0] != '\0' ? e->error : NULL);
	json_kv_string(j, "error_side", e->error != NULL && e->error[0] != '\0' ? e->side : NULL);
	bool running = strcmp(e->result, "running") == 0;
	json_kv_bool(j, "running", running);
	json_kv_string(j, "progress", running && e->unit.status_text[0] != '\0'
		       ? e->unit.status_text : NULL);
	json_key(j, "last_run");
	if (e->has_run)
		json_run(j, &e->last);
	else
		json_null(j);
	json_key(j, "unit");
	if (e->has_unit)
		json_unit(j, &e->unit);
	else
		json_null(j);
}

static void print_json(struct buf *b)
{
	fwrite(b->data, 1, b->len, stdout);
	buf_free(b);
}

/* ------------------------------------------------------------------ */
/* list                                                                */

int report_list(const struct report_opts *o)
{
	size_t n;
	char **names = scan_task_files(o->config_dir, &n);
	struct unit_query *uq;
	struct buf b = { 0 };
	struct json j;

	if (names == NULL) {
		fprintf(stderr, "%s/tasks: %s\n", o->config_dir, strerror(errno));
		return EXIT_CONFIG;
	}
	uq = unit_query_open();
	if (o->json) {
		json_init(&j, &b, true);
		json_object_begin(&j);
		json_kv_int(&j, "version", JSON_FORMAT_VERSION);
		json_key(&j, "tasks");
		json_array_begin(&j);
	} else {
		printf("%-20s %-10s %-10s %-19s %-17s %8s %8s %8s  %-24s %s\n", "TASK", "FOLDERS",
		       "SCHEDULE", "LAST RUN", "RESULT", "COPIED", "SKIPPED", "DELETED", "REMOTE",
		       "DELETE");
	}
	for (size_t i = 0; i < n; i++) {
		struct entry e;
		gather(o, names[i], uq, false, &e);
		if (o->json) {
			json_object_begin(&j);
			json_entry_fields(&j, &e);
			json_object_end(&j);
		} else {
			print_list_entry(&e);
		}
		entry_free(&e);
		free(names[i]);
	}
	free(names);
	unit_query_close(&uq);
	if (o->json) {
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
		print_json(&b);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* status                                                              */

static void print_status_text(const struct entry *e, const struct run_record *recs, size_t n,
			      const struct run_record *tot, uint64_t runs,
			      const struct journal *jr, const char *jerr)
{
	const struct task *t = e->t;
	char a[32], b[32], del[48];

	delete_text(t, del, sizeof(del), true);
	printf("task %s: %s -> %s, folders %s, delete %s, delivery %s, schedule %s\n",
	       t->name, t->remote_user, t->local_user, folder_mode_name(t->folders), del,
	       delivery_mode_name(t->delivery), t->manual ? "manual" : t->interval);
	printf("remote: %s@%s:%u (%s)\n", t->remote_user, t->remote.host, t->remote.port,
	       security_name(t->remote.security));
	if (e->config_error[0] != '\0')
		printf("problem (config): %s\n", safe(e->config_error));
	printf("state directory: %s\n", safe(e->dir));
	fmt_time(e->when, a, sizeof(a));
	printf("last result: %s%s%s\n", e->result, e->when ? " at " : "", e->when ? a : "");
	if (e->error != NULL && e->error[0] != '\0')
		printf("last error (%s): %s\n", e->side ? e->side : "unknown", safe(e->error));
	if (e->has_unit) {
		char fail[64];
		printf("unit %s: %s (%s)", e->unit.unit, e->unit.active_state, e->unit.sub_state);
		if (unit_failure_text(&e->unit, fail, sizeof(fail)))
			printf(", %s", fail);
		printf("\n");
		if (unit_running(&e->unit) && e->unit.status_text[0] != '\0')
			printf("now: %s\n", safe(e->unit.status_text));
	}
	printf("\nlast runs:\n");
	if (n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < n; i++) {
		fmt_time(recs[i].start, a, sizeof(a));
		printf("  %s  %4llds  %-17s exit %-3d copied %llu skipped %llu deleted %llu errors %llu bytes %llu\n",
		       a, (long long)(recs[i].end - recs[i].start), exit_code_verdict(recs[i].exit_code),
		       recs[i].exit_code, (unsigned long long)recs[i].copied,
		       (unsigned long long)recs[i].skipped, (unsigned long long)recs[i].deleted,
		       (unsigned long long)recs[i].errors, (unsigned long long)recs[i].bytes);
		if (recs[i].error[0] != '\0') {
			const char *side = recs[i].side[0] != '\0' ? recs[i].side
				: runlog_error_side(recs[i].exit_code, recs[i].error);
			printf("      error (%s): %s\n", side[0] ? side : "unknown",
			       safe(recs[i].error));
		}
	}
	if (runs > 0) {
		fmt_time(tot->start, a, sizeof(a));
		fmt_time(tot->end, b, sizeof(b));
		printf("\nlifetime: %llu runs since %s (last %s): copied %llu skipped %llu deleted %llu errors %llu bytes %llu\n",
		       (unsigned long long)runs, a, b, (unsigned long long)tot->copied,
		       (unsigned long long)tot->skipped, (unsigned long long)tot->deleted,
		       (unsigned long long)tot->errors, (unsigned long long)tot->bytes);
	}
	if (jr != NULL)
		printf("\nfolder INBOX: %zu pending, %zu delivered (not yet \\Seen on remote), "
		       "%zu delivered and \\Seen, %zu skipped\n",
		       journal_count(jr, J_INTENT), journal_count(jr, J_DELIVERED),
		       journal_count(jr, J_SEEN), journal_count(jr, J_SKIPPED));
	if (jerr != NULL)
		fprintf(stderr, "state: %s\n", jerr);
}

static void print_status_json(const struct entry *e, const struct run_record *recs, size_t n,
			      const struct run_record *tot, uint64_t runs,
			      const struct journal *jr, const char *jerr)
{
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b, true);
	json_object_begin(&j);
	json_kv_int(&j, "version", JSON_FORMAT_VERSION);
	json_entry_fields(&j, e);
	json_key(&j, "runs");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++)
		json_run(&j, &recs[i]);
	json_array_end(&j);
	json_key(&j, "totals");
	if (runs > 0) {
		json_object_begin(&j);
		json_kv_uint(&j, "runs", runs);
		json_kv_int(&j, "first_start", (int64_t)tot->start);
		json_kv_int(&j, "last_end", (int64_t)tot->end);
		json_kv_uint(&j, "copied", tot->copied);
		json_kv_uint(&j, "skipped", tot->skipped);
		json_kv_uint(&j, "deleted", tot->deleted);
		json_kv_uint(&j, "errors", tot->errors);
		json_kv_uint(&j, "bytes", tot->bytes);
		json_object_end(&j);
	} else {
		json_null(&j);
	}
	json_key(&j, "journal");
	if (jr != NULL) {
		json_object_begin(&j);
		json_kv_uint(&j, "pending", journal_count(jr, J_INTENT));
		json_kv_uint(&j, "delivered", journal_count(jr, J_DELIVERED));
		json_kv_uint(&j, "seen", journal_count(jr, J_SEEN));
		json_kv_uint(&j, "skipped", journal_count(jr, J_SKIPPED));
		json_object_end(&j);
	} else {
		json_null(&j);
	}
	json_kv_string(&j, "journal_error", jerr);
	json_object_end(&j);
	json_finish(&j);
	print_json(&b);
}

int report_status(const struct report_opts *o, const char *name)
{
	struct run_record recs[STATUS_RUNS], tot;
	struct journal *j = NULL;
	struct unit_query *uq = NULL;
	struct entry e;
	uint64_t runs = 0;
	char err[512];
	const char *jerr = NULL;
	int rc = 0;

	if (task_name_valid(name))
		uq = unit_query_open();
	/* Text: the loader's errors go to stderr as "check" prints them. */
	gather(o, name, uq, !o->json, &e);
	unit_query_close(&uq);
	if (!e.name_valid || e.t == NULL) {
		if (o->json) {
			struct buf b = { 0 };
			struct json jw;
			json_init(&jw, &b, true);
			json_object_begin(&jw);
			json_kv_int(&jw, "version", JSON_FORMAT_VERSION);
			json_entry_fields(&jw, &e);
			json_object_end(&jw);
			json_finish(&jw);
			print_json(&b);
		}
		entry_free(&e);
		return EXIT_CONFIG;
	}
	size_t n = runlog_read(e.dir, recs, N_ELEMENTS(recs));
	if (runlog_totals(e.dir, &tot, &runs) != 0)
		runs = 0;
	struct stat st;
	if (stat(e.dir, &st) == 0) {
		rc = journal_open(e.dir, NULL, true, &j, err, sizeof(err));
		if (rc != 0)
			jerr = err;
	}
	if (o->json)
		print_status_json(&e, recs, n, &tot, runs, j, jerr);
	else
		print_status_text(&e, recs, n, &tot, runs, j, jerr);
	journal_close(&j);
	entry_free(&e);
	return rc;
}
