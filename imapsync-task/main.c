/* main.c - the imapsync-task command: options, commands, exit codes.
 *
 *   imapsync-task run [--dry-run] [-v] NAME
 *   imapsync-task check [--connect] [NAME...]
 *   imapsync-task list
 *   imapsync-task status NAME
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "imap_client.h"
#include "journal.h"
#include "log.h"
#include "net.h"
#include "runlog.h"
#include "secret.h"
#include "session.h"
#include "sync.h"
#include "task.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

#define DEFAULT_TIMEOUT_MS (120 * 1000)

struct options {
	const char *config_dir;
	const char *state_dir;   /* root; NULL: from the environment */
	bool dry_run, connect;
	int verbose;
	int timeout_ms;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	/* First signal: finish the current step and stop cleanly.  Second:
	   leave at once; the journal is consistent at every step. */
	if (stop_requested)
		_exit(EXIT_TEMPFAIL);
	stop_requested = 1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: imapsync-task [OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  run [--dry-run] [-v] NAME      run one task now (what the timer runs)\n"
		"  check [--connect] [NAME...]    validate tasks (all when none given);\n"
		"                                 --connect also logs in to both sides\n"
		"  list                           every task: mode, schedule, last run\n"
		"  status NAME                    the last runs, lifetime counters, state\n"
		"\n"
		"Options:\n"
		"  --config-dir DIR   configuration (default $IMAPSYNC_TASK_CONFIG_DIR,\n"
		"                     else %s/imapsync-task)\n"
		"  --state-dir DIR    state root (default $STATE_DIRECTORY, else\n"
		"                     %s/lib/imapsync-task)\n"
		"  --timeout SEC      silence allowed per network step (default 120)\n"
		"  -h, --help         this help\n"
		"  -V, --version      version\n"
		"\n"
		"Exit codes: 0 ok, 2 some messages skipped, 64 usage, 65 state needs an\n"
		"operator, 69 cannot connect, 70 internal error, 73 quota or disk full,\n"
		"74 state I/O error, 75 temporary failure (the next run resumes),\n"
		"76 TLS or protocol violation, 77 authentication failed, 78 configuration.\n",
		SYSCONFDIR, LOCALSTATEDIR);
}

/* ------------------------------------------------------------------ */
/* configuration and paths                                             */

static void ignore_config_error(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static void print_config_error(void *ctx, const char *line)
{
	int *count = ctx;

	(*count)++;
	fprintf(stderr, "%s\n", line);
}

/* The task's own state directory.  Under systemd StateDirectory=
   imapsync-task/NAME gives it directly; elsewhere it is ROOT/NAME. */
static char *task_state_dir(const struct options *o, const char *name)
{
	const char *env = getenv("STATE_DIRECTORY");

	if (o->state_dir != NULL)
		return xasprintf("%s/%s", o->state_dir, name);
	if (env != NULL && *env != '\0') {
		const char *base = strrchr(env, '/');
		base = base != NULL ? base + 1 : env;
		if (strcmp(base, name) == 0)
			return xstrdup(env);
		return xasprintf("%s/%s", env, name);
	}
	return xasprintf("%s/lib/imapsync-task/%s", LOCALSTATEDIR, name);
}

static int load_both(const struct options *o, const char *name,
		     struct local_config **local_r, struct task **task_r)
{
	int errors = 0;

	*local_r = local_config_load(o->config_dir, print_config_error, &errors);
	*task_r = task_load(o->config_dir, name, print_config_error, &errors);
	if (*local_r == NULL || *task_r == NULL) {
		local_config_free(local_r);
		task_free(task_r);
		return EXIT_CONFIG;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

static int run_lock_fd = -1;

static void touch_lock(void *ctx)
{
	(void)ctx;
	if (run_lock_fd >= 0)
		runlog_touch(run_lock_fd);
}

/* Every folder mode copies with APPEND; LMTP and Sieve deliver into the
   INBOX, so they go with folders = inbox only. */
static bool mode_supported(const struct task *t, const char **why_r)
{
	*why_r = "delivery = lmtp and delivery = sieve deliver into the INBOX: "
		 "with folders = all or all-except use delivery = append";
	return t->folders == FOLDERS_INBOX || t->delivery == DELIVERY_APPEND;
}

static struct session_opts session_opts_of(const struct options *o, const char *spool)
{
	return (struct session_opts){ .timeout_ms = o->timeout_ms, .trace = o->verbose >= 2,
				      .spool_dir = spool, .progress = touch_lock };
}

/* ------------------------------------------------------------------ */
/* run                                                                 */

static void log_summary(const char *name, const struct sync_counts *c, double secs,
			int code)
{
	char f[8][64];
	const char *fields[9];

	snprintf(f[0], sizeof(f[0]), "COPIED=%llu", (unsigned long long)c->copied);
	snprintf(f[1], sizeof(f[1]), "SKIPPED=%llu", (unsigned long long)c->skipped);
	snprintf(f[2], sizeof(f[2]), "DELETED=%llu", (unsigned long long)c->deleted);
	snprintf(f[3], sizeof(f[3]), "ERRORS=%llu", (unsigned long long)c->errors);
	snprintf(f[4], sizeof(f[4]), "BYTES=%llu", (unsigned long long)c->bytes);
	snprintf(f[5], sizeof(f[5]), "SECONDS=%.1f", secs);
	snprintf(f[6], sizeof(f[6]), "VERDICT=%s", exit_code_verdict(code));
	snprintf(f[7], sizeof(f[7]), "EXIT_CODE=%d", code);
	for (int i = 0; i < 8; i++)
		fields[i] = f[i];
	fields[8] = NULL;
	log_struct(code == 0 || code == EXIT_SKIPPED ? LOGL_NOTICE : LOGL_ERR, fields,
		   "summary: task=%s copied=%llu skipped=%llu deleted=%llu errors=%llu "
		   "bytes=%llu seconds=%.1f seen-elsewhere=%llu kept-old=%llu reconciled=%llu "
		   "verdict=%s exit=%d",
		   name, (unsigned long long)c->copied, (unsigned long long)c->skipped,
		   (unsigned long long)c->deleted, (unsigned long long)c->errors,
		   (unsigned long long)c->bytes, secs, (unsigned long long)c->seen_elsewhere,
		   (unsigned long long)c->kept_old, (unsigned long long)c->reconciled,
		   exit_code_verdict(code), code);
}

static double elapsed(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int run_sync(const struct options *o, struct task *t, struct local_config *l,
		    const char *dir, struct sync_counts *counts)
{
	struct session s = { 0 };
	struct journal *j = NULL;
	char err[600];
	int rc;

	/* The state is bound to its task and remote account: another task's
	   state copied here is refused, not acted on (deletions!).  Not to
	   the port: moving from 143 to 993 is the same mailbox. */
	char *owner = xasprintf("task=%s remote=%s@%s", t->name, t->remote_user,
				t->remote.host);
	rc = journal_open(dir, owner, o->dry_run, &j, err, sizeof(err));
	free(owner);
	if (rc != 0) {
		log_warnx("%s", err);
		return rc;
	}
	struct session_opts so = session_opts_of(o, dir);
	rc = session_open(&so, t, l, &s);
	if (rc == 0) {
		struct sync_env env = {
			.task = t, .local = l, .remote = s.remote, .local_imap = s.local,
			.journal = j, .spool_dir = dir, .dry_run = o->dry_run,
			.progress = isatty(STDERR_FILENO) || o->verbose > 0,
			.stop = &stop_requested, .now = time(NULL),
			.last_alive = run_lock_fd >= 0 ? runlog_lock_mtime(run_lock_fd) : 0,
		};
		if (t->delivery == DELIVERY_LMTP &&
		    (rc = lmtp_open(l->lmtp, o->timeout_ms, touch_lock, NULL, &env.lmtp,
				    err, sizeof(err))) != 0) {
			log_warnx("%s", err);
		} else {
			rc = t->folders == FOLDERS_INBOX ? sync_inbox(&env, counts)
				: sync_folders(&env, counts);
			if (rc != 0)
				log_warnx("%s", env.error);
		}
		lmtp_close(&env.lmtp);
	}
	/* Fold the journal into the snapshot even after a failure: every
	   line in it is a completed step. */
	int crc = o->dry_run ? 0 : journal_commit(j);
	if (crc != 0) {
		/* 73 for a full disk, 74 for other I/O errors. */
		log_warnx("state: %s", journal_error(j));
		if (rc == 0)
			rc = crc;
	}
	journal_close(&j);
	session_close(&s);
	if (rc == 0 && counts->skipped > 0)
		rc = EXIT_SKIPPED;
	return rc;
}

static int cmd_run(const struct options *o, int argc, char **argv)
{
	struct local_config *l = NULL;
	struct task *t = NULL;
	struct sync_counts counts = { 0 };
	struct timespec t0;
	time_t start = time(NULL);
	char err[512], *dir = NULL;
	pid_t holder;
	int lockfd = -1, rc;

	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!task_name_valid(argv[0])) {
		fprintf(stderr, "imapsync-task: invalid task name (allowed: A-Z a-z 0-9 _ . -)\n");
		return EXIT_CONFIG;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	log_init("imapsync-task", argv[0], o->verbose);
	if ((rc = load_both(o, argv[0], &l, &t)) != 0) {
		log_summary(argv[0], &counts, elapsed(&t0), rc);
		return rc;
	}
	const char *why;
	if (!mode_supported(t, &why)) {
		/* Refused before any lock, state or connection, as check
		   refuses it: no server sees a login for a task we cannot run. */
		log_warnx("%s", why);
		rc = EXIT_CONFIG;
		log_summary(t->name, &counts, elapsed(&t0), rc);
		goto out;
	}
	dir = task_state_dir(o, t->name);
	rc = runlog_lock(dir, &lockfd, &holder, err, sizeof(err));
	if (rc != 0) {
		log_warnx("%s", err);
		counts.errors++;
		log_summary(t->name, &counts, elapsed(&t0), rc);
		goto out;
	}
	run_lock_fd = lockfd;
	log_info("run started%s: remote %s@%s:%u (%s) -> local %s", o->dry_run ? " (dry run)" : "",
		 t->remote_user, t->remote.host, t->remote.port, security_name(t->remote.security),
		 t->local_user);
	rc = run_sync(o, t, l, dir, &counts);
	/* Our last sign of life: a server still finishing an APPEND we
	   could not wait for is given time from here (sync_inbox.c). */
	runlog_touch(lockfd);
	if (rc != 0 && rc != EXIT_SKIPPED)
		counts.errors++;
	log_summary(t->name, &counts, elapsed(&t0), rc);
	if (!o->dry_run) {
		struct run_record r = { .start = start, .end = time(NULL), .exit_code = rc,
					.copied = counts.copied, .skipped = counts.skipped,
					.deleted = counts.deleted, .errors = counts.errors,
					.bytes = counts.bytes };
		if (runlog_append(dir, &r) < 0)
			log_warn("cannot record the run in %s", dir);
	}
out:
	if (lockfd >= 0)
		close(lockfd);
	run_lock_fd = -1;
	free(dir);
	task_free(&t);
	local_config_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* check                                                               */

static int check_connect(const struct options *o, struct task *t, struct local_config *l)
{
	struct session s = { 0 };
	char *spool = xstrdup("/tmp");
	struct session_opts so = session_opts_of(o, spool);
	int rc = session_open(&so, t, l, &s);

	if (rc == 0)
		printf("%s: logged in to remote %s:%u and local %s:%u as %s%c%s\n", t->name,
		       t->remote.host, t->remote.port, l->ep.host, l->ep.port, t->local_user,
		       l->master_separator, l->master_user);
	session_close(&s);
	free(spool);
	return rc;
}

static int cmd_check(const struct options *o, int argc, char **argv)
{
	char **all = NULL;
	int worst = 0, errors = 0;
	struct local_config *l;

	log_init("imapsync-task", NULL, o->verbose);
	l = local_config_load(o->config_dir, print_config_error, &errors);
	if (l == NULL)
		worst = EXIT_CONFIG;
	if (argc == 0) {
		all = task_list_names(o->config_dir);
		if (all == NULL) {
			fprintf(stderr, "%s/tasks: %s\n", o->config_dir, strerror(errno));
			local_config_free(&l);
			return EXIT_CONFIG;
		}
		for (argc = 0; all[argc] != NULL; argc++)
			;
		argv = all;
	}
	for (int i = 0; i < argc; i++) {
		int e = 0;
		struct task *t;

		if (!task_name_valid(argv[i])) {
			fprintf(stderr, "%s: invalid task name\n", argv[i]);
			worst = EXIT_CONFIG;
			continue;
		}
		t = task_load(o->config_dir, argv[i], print_config_error, &e);
		if (t == NULL) {
			worst = EXIT_CONFIG;
			continue;
		}
		const char *why;
		if (!mode_supported(t, &why)) {
			/* Valid syntax, but it cannot run: say so now rather
			   than at every timer run. */
			fprintf(stderr, "%s: %s\n", t->path, why);
			worst = EXIT_CONFIG;
			task_free(&t);
			continue;
		}
		printf("%s: ok (%s, %s)\n", t->name, folder_mode_name(t->folders),
		       t->manual ? "manual" : t->interval);
		if (o->connect && l != NULL) {
			log_set_task(t->name);
			int rc = check_connect(o, t, l);
			if (rc != 0 && worst == 0)
				worst = rc;
		}
		task_free(&t);
	}
	task_names_free(&all);
	local_config_free(&l);
	return worst;
}

/* ------------------------------------------------------------------ */
/* list and status                                                     */

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

static int cmd_list(const struct options *o, int argc, char **argv)
{
	char **names;
	(void)argv;

	if (argc != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	names = task_list_names(o->config_dir);
	if (names == NULL) {
		fprintf(stderr, "%s/tasks: %s\n", o->config_dir, strerror(errno));
		return EXIT_CONFIG;
	}
	printf("%-20s %-10s %-10s %-19s %-17s %8s %8s %8s\n", "TASK", "FOLDERS", "SCHEDULE",
	       "LAST RUN", "RESULT", "COPIED", "SKIPPED", "DELETED");
	for (size_t i = 0; names[i] != NULL; i++) {
		int e = 0;
		struct task *t = task_load(o->config_dir, names[i], ignore_config_error, &e);
		char *dir = task_state_dir(o, names[i]);
		struct run_record r;
		char when[32];

		(void)e;
		size_t n = runlog_read(dir, &r, 1);
		fmt_time(n ? r.end : 0, when, sizeof(when));
		printf("%-20s %-10s %-10s %-19s %-17s %8llu %8llu %8llu\n", names[i],
		       t ? folder_mode_name(t->folders) : "(invalid)",
		       t ? (t->manual ? "manual" : t->interval) : "-", when,
		       n ? exit_code_verdict(r.exit_code) : "-",
		       n ? (unsigned long long)r.copied : 0ULL,
		       n ? (unsigned long long)r.skipped : 0ULL,
		       n ? (unsigned long long)r.deleted : 0ULL);
		task_free(&t);
		free(dir);
	}
	task_names_free(&names);
	return 0;
}

static int cmd_status(const struct options *o, int argc, char **argv)
{
	struct run_record recs[10], tot;
	struct journal *j = NULL;
	struct task *t;
	uint64_t runs;
	char err[512], a[32], b[32];
	int e = 0, rc = 0;

	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!task_name_valid(argv[0])) {
		fprintf(stderr, "%s: invalid task name\n", argv[0]);
		return EXIT_CONFIG;
	}
	t = task_load(o->config_dir, argv[0], print_config_error, &e);
	if (t == NULL)
		return EXIT_CONFIG;
	char *dir = task_state_dir(o, t->name);
	printf("task %s: %s -> %s, folders %s, delete %s, delivery %s, schedule %s\n",
	       t->name, t->remote_user, t->local_user, folder_mode_name(t->folders),
	       delete_mode_name(t->delete_mode), delivery_mode_name(t->delivery),
	       t->manual ? "manual" : t->interval);
	printf("state directory: %s\n\nlast runs:\n", dir);
	size_t n = runlog_read(dir, recs, N_ELEMENTS(recs));
	if (n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < n; i++) {
		fmt_time(recs[i].start, a, sizeof(a));
		printf("  %s  %4llds  %-17s exit %-3d copied %llu skipped %llu deleted %llu errors %llu bytes %llu\n",
		       a, (long long)(recs[i].end - recs[i].start), exit_code_verdict(recs[i].exit_code),
		       recs[i].exit_code, (unsigned long long)recs[i].copied,
		       (unsigned long long)recs[i].skipped, (unsigned long long)recs[i].deleted,
		       (unsigned long long)recs[i].errors, (unsigned long long)recs[i].bytes);
	}
	if (runlog_totals(dir, &tot, &runs) == 0 && runs > 0) {
		fmt_time(tot.start, a, sizeof(a));
		fmt_time(tot.end, b, sizeof(b));
		printf("\nlifetime: %llu runs since %s (last %s): copied %llu skipped %llu deleted %llu errors %llu bytes %llu\n",
		       (unsigned long long)runs, a, b, (unsigned long long)tot.copied,
		       (unsigned long long)tot.skipped, (unsigned long long)tot.deleted,
		       (unsigned long long)tot.errors, (unsigned long long)tot.bytes);
	}
	struct stat st;
	if (stat(dir, &st) == 0) {
		if ((rc = journal_open(dir, NULL, true, &j, err, sizeof(err))) != 0) {
			fprintf(stderr, "state: %s\n", err);
		} else {
			printf("\nfolder INBOX: %zu pending, %zu delivered (not yet \\Seen on remote), "
			       "%zu delivered and \\Seen, %zu skipped\n",
			       journal_count(j, J_INTENT), journal_count(j, J_DELIVERED),
			       journal_count(j, J_SEEN), journal_count(j, J_SKIPPED));
			journal_close(&j);
		}
	}
	free(dir);
	task_free(&t);
	return rc;
}

/* ------------------------------------------------------------------ */

static const struct option longopts[] = {
	{ "config-dir", required_argument, NULL, 'c' },
	{ "state-dir", required_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "connect", no_argument, NULL, 'C' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

enum opt_result { OPT_GO, OPT_DONE, OPT_USAGE };

/* Options may stand before and after the command; both passes share
   this.  Whether --dry-run and --connect fit the command is checked by
   the caller once the command is known. */
static enum opt_result parse_options(int argc, char **argv, const char *shortopts,
				     struct options *o)
{
	uint32_t secs;
	int c;

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config_dir = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 't':
			if (!str_to_u32(optarg, &secs) || secs == 0 || secs > 86400) {
				fprintf(stderr, "imapsync-task: --timeout: 1 to 86400 seconds\n");
				return OPT_USAGE;
			}
			o->timeout_ms = (int)secs * 1000;
			break;
		case 'n': o->dry_run = true; break;
		case 'C': o->connect = true; break;
		case 'v': o->verbose++; break;
		case 'h': usage(stdout); return OPT_DONE;
		case 'V': printf("imapsync-task %s\n", PACKAGE_VERSION); return OPT_DONE;
		default: usage(stderr); return OPT_USAGE;
		}
	}
	return OPT_GO;
}

int main(int argc, char **argv)
{
	struct options o = { .timeout_ms = DEFAULT_TIMEOUT_MS };
	const char *env_dir = getenv("IMAPSYNC_TASK_CONFIG_DIR");
	char *default_dir = xasprintf("%s/imapsync-task", SYSCONFDIR);
	enum opt_result opt;
	int rc;

	o.config_dir = env_dir != NULL && *env_dir != '\0' ? env_dir : default_dir;
	secret_protect_process();
	install_signals();
	net_set_stop_flag(&stop_requested);
	/* "+": stop at the command; its own options are parsed after it. */
	opt = parse_options(argc, argv, "+hVv", &o);
	if (opt == OPT_GO && optind >= argc) {
		usage(stderr);
		opt = OPT_USAGE;
	}
	if (opt != OPT_GO) {
		free(default_dir);
		return opt == OPT_DONE ? 0 : EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	optind = 1;
	opt = parse_options(cargc, cargv, "hnvC", &o);
	if (opt != OPT_GO) {
		free(default_dir);
		return opt == OPT_DONE ? 0 : EXIT_USAGE;
	}
	cargc -= optind;
	cargv += optind;
	if ((o.dry_run && strcmp(cmd, "run") != 0) || (o.connect && strcmp(cmd, "check") != 0)) {
		usage(stderr);
		rc = EXIT_USAGE;
	} else if (strcmp(cmd, "run") == 0)
		rc = cmd_run(&o, cargc, cargv);
	else if (strcmp(cmd, "check") == 0)
		rc = cmd_check(&o, cargc, cargv);
	else if (strcmp(cmd, "list") == 0)
		rc = cmd_list(&o, cargc, cargv);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(&o, cargc, cargv);
	else {
		fprintf(stderr, "imapsync-task: unknown command '%s'\n", cmd);
		usage(stderr);
		rc = EXIT_USAGE;
	}
	free(default_dir);
	return rc;
}
