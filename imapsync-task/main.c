/* main.c - the imapsync-task command: options, commands, exit codes.
 *
 *   imapsync-task run [--dry-run] [-v] NAME
 *   imapsync-task check [--connect] [NAME...]
 *   imapsync-task list
 *   imapsync-task status NAME
 *   imapsync-task import-csv [--check] [--update] FILE
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account_lock.h"
#include "csv_import.h"
#include "dry_run.h"
#include "exitcode.h"
#include "imap_client.h"
#include "journal.h"
#include "log.h"
#include "net.h"
#include "progress.h"
#include "report.h"
#include "runlog.h"
#include "secret.h"
#include "session.h"
#include "state_owner.h"
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
	bool csv_check, csv_update; /* import-csv --check, --update */
	bool json;               /* list, status: JSON on stdout */
	int verbose;
	int timeout_ms;
	unsigned lock_wait;      /* seconds a run may wait for an account */
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
		"  list [--json]                  every task: mode, schedule, last result\n"
		"                                 and why, remote, deletion policy\n"
		"  status [--json] NAME           the last runs, lifetime counters, state\n"
		"  import-csv [--check] [--update] FILE\n"
		"                                 tasks from a CSV file (NethServer's\n"
		"                                 import-csv-tasks format; - for stdin)\n"
		"\n"
		"Options:\n"
		"  --config-dir DIR   configuration (default $IMAPSYNC_TASK_CONFIG_DIR,\n"
		"                     else %s/imapsync-task)\n"
		"  --state-dir DIR    state root (default $STATE_DIRECTORY, else\n"
		"                     %s/lib/imapsync-task)\n"
		"  --timeout SEC      silence allowed per network step (default 120)\n"
		"  --json             list, status: JSON output (keys in imapsync-task(8))\n"
		"  -v, --verbose      each step (-v), the IMAP protocol trace (-vv)\n"
		"  --lock-wait SEC    how long a run waits for another task using the\n"
		"                     same remote account or local user (default 300)\n"
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
		/* The unit lists two directories, ':'-separated in an order
		   of systemd's: the task's and the account locks'
		   (account_lock.h).  The task's is the one named NAME; else
		   the first other than the locks' is a root. */
		const char *root = NULL;
		size_t rootlen = 0;
		for (const char *p = env; *p != '\0';) {
			size_t len = strcspn(p, ":");
			const char *end = p + len, *base = memrchr(p, '/', len);
			base = base != NULL ? base + 1 : p;
			if ((size_t)(end - base) == strlen(name) &&
			    strncmp(base, name, strlen(name)) == 0)
				return xstrndup(p, len);
			bool locks = (size_t)(end - base) == strlen(ACCOUNT_LOCKS_DIR) &&
				strncmp(base, ACCOUNT_LOCKS_DIR, strlen(ACCOUNT_LOCKS_DIR)) == 0;
			if (root == NULL && len > 0 && !locks) {
				root = p;
				rootlen = len;
			}
			p = *end == ':' ? end + 1 : end;
		}
		if (root != NULL)
			return xasprintf("%.*s/%s", (int)rootlen, root, name);
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
	progress_tick();
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
			.open_pair = session_open_pair, .close_pair = session_close_pair,
			.pair_ctx = &s,
		};
		if (t->delivery == DELIVERY_LMTP &&
		    (rc = lmtp_open(l->lmtp, o->timeout_ms, touch_lock, NULL, &env.lmtp,
				    err, sizeof(err))) != 0) {
			log_warnx("%s", err);
		} else {
			/* LMTP waits read the remote's next batch meanwhile. */
			if (env.lmtp != NULL)
				lmtp_set_side_reader(env.lmtp, imap_client_side_fd,
						     imap_client_side_read, s.remote);
			rc = t->folders == FOLDERS_INBOX ? sync_inbox(&env, counts)
				: sync_folders(&env, counts);
			if (rc != 0)
				log_warnx("%s", env.error);
		}
		lmtp_close(&env.lmtp);
		dry_free(&env);
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
	struct account_locks alocks = { { -1, -1 } };
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
	/* systemctl status, a terminal's progress line, -v lines. */
	progress_init(o->verbose, isatty(STDERR_FILENO) && !log_to_journal());
	if ((rc = load_both(o, argv[0], &l, &t)) != 0) {
		log_summary(argv[0], &counts, elapsed(&t0), rc);
		return rc;
	}
	/* A mode that cannot run (delivery = lmtp or sieve with all
	   folders) is refused by task_load() above: before any lock, state
	   or connection. */
	dir = task_state_dir(o, t->name);
	/* A hand run never writes into the service's state (state_owner.h);
	   then the task's own lock, then its accounts' (account_lock.h). */
	rc = state_owner_check(dir, t->name, o->dry_run, err, sizeof(err));
	if (rc == 0)
		rc = runlog_lock(dir, &lockfd, &holder, err, sizeof(err));
	if (rc == 0 && o->dry_run)
		state_owner_adopt(lockfd, dir);
	if (rc == 0)
		rc = account_locks_take(dir, t, o->lock_wait, &stop_requested, &alocks, err,
					sizeof(err));
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
	progress_finish("%s: copied %llu, skipped %llu, deleted %llu (exit %d)%s%s",
			exit_code_verdict(rc), (unsigned long long)counts.copied,
			(unsigned long long)counts.skipped, (unsigned long long)counts.deleted, rc,
			rc != 0 && rc != EXIT_SKIPPED && log_first_error()[0] ? ": " : "",
			rc != 0 && rc != EXIT_SKIPPED ? log_first_error() : "");
	if (!o->dry_run) {
		struct run_record r = { .start = start, .end = time(NULL), .exit_code = rc,
					.copied = counts.copied, .skipped = counts.skipped,
					.deleted = counts.deleted, .errors = counts.errors,
					.bytes = counts.bytes };
		/* Why it failed, for list and status: the first error told. */
		if (rc != 0 && rc != EXIT_SKIPPED) {
			snprintf(r.error, sizeof(r.error), "%s", log_first_error());
			snprintf(r.side, sizeof(r.side), "%s",
				 runlog_error_side(rc, log_first_error()));
		}
		if (runlog_append(dir, &r) < 0)
			log_warn("cannot record the run in %s", dir);
	}
out:
	account_locks_release(&alocks);
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

	/* "ok" only once both logins worked; a failure goes to stderr. */
	if (rc == 0) {
		printf("%s: ok (%s, %s)\n", t->name, folder_mode_name(t->folders),
		       t->manual ? "manual" : t->interval);
		printf("%s: logged in to remote %s:%u and local %s:%u as %s%c%s\n", t->name,
		       t->remote.host, t->remote.port, l->ep.host, l->ep.port, t->local_user,
		       l->master_separator, l->master_user);
	} else {
		fprintf(stderr, "%s: not ok: connecting or logging in failed (exit %d, %s)\n",
			t->name, rc, exit_code_verdict(rc));
	}
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
		if (!o->connect)
			printf("%s: ok (%s, %s)\n", t->name, folder_mode_name(t->folders),
			       t->manual ? "manual" : t->interval);
		else if (l == NULL)
			fprintf(stderr, "%s: valid, but not logged in: the local configuration "
				"is invalid\n", t->name);
		else {
			log_set_task(t->name);
			int rc = check_connect(o, t, l);
			if (rc != 0 && worst == 0)
				worst = rc;
		}
		task_free(&t);
	}
	/* Valid each, but two copying one account into one user: said, not
	   an error (their runs take turns, account_lock.h). */
	account_check_duplicates(o->config_dir, all != NULL ? NULL : argv,
				 all != NULL ? 0 : (size_t)argc, stderr);
	task_names_free(&all);
	local_config_free(&l);
	return worst;
}

/* ------------------------------------------------------------------ */
/* list and status                                                     */

static char *state_dir_of(const void *ctx, const char *name)
{
	return task_state_dir(ctx, name);
}

static int cmd_list(const struct options *o, int argc, char **argv)
{
	struct report_opts ro = { o->config_dir, o->json, state_dir_of, o };

	(void)argv;
	if (argc != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return report_list(&ro);
}

static int cmd_status(const struct options *o, int argc, char **argv)
{
	struct report_opts ro = { o->config_dir, o->json, state_dir_of, o };

	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return report_status(&ro, argv[0]);
}

/* ------------------------------------------------------------------ */
/* import-csv                                                          */

static int cmd_import_csv(const struct options *o, int argc, char **argv)
{
	struct csv_import_opts io = { .config_dir = o->config_dir, .check = o->csv_check,
				      .update = o->csv_update };

	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	io.file = argv[0];
	return csv_import(&io);
}

/* ------------------------------------------------------------------ */

enum { OPT_CSV_CHECK = 0x100, OPT_CSV_UPDATE };

static const struct option longopts[] = {
	{ "config-dir", required_argument, NULL, 'c' },
	{ "state-dir", required_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "lock-wait", required_argument, NULL, 'w' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "connect", no_argument, NULL, 'C' },
	{ "check", no_argument, NULL, OPT_CSV_CHECK },
	{ "update", no_argument, NULL, OPT_CSV_UPDATE },
	{ "json", no_argument, NULL, 'j' },
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
		case 'w':
			if (!str_to_u32(optarg, &secs) || secs > 86400) {
				fprintf(stderr, "imapsync-task: --lock-wait: 0 to 86400 seconds\n");
				return OPT_USAGE;
			}
			o->lock_wait = secs;
			break;
		case 'n': o->dry_run = true; break;
		case 'C': o->connect = true; break;
		case OPT_CSV_CHECK: o->csv_check = true; break;
		case OPT_CSV_UPDATE: o->csv_update = true; break;
		case 'j': o->json = true; break;
		case 'v': o->verbose++; break;
		case 'h': usage(stdout); return OPT_DONE;
		case 'V': printf("imapsync-task %s\n", PACKAGE_VERSION); return OPT_DONE;
		default: usage(stderr); return OPT_USAGE;
		}
	}
	return OPT_GO;
}

/* Every message body in flight past the 1 MiB kept in memory is an
   open spool file: with max_connections pairs, each with a batch being
   saved and the next fetched ahead, that is thousands at once, and
   systemd starts a service with a soft limit of 1,024 open files (the
   hard one much higher, for programs that need more: systemd.exec(5)).
   Take the hard limit; a failure only leaves the soft one. */
static void raise_file_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct options o = { .timeout_ms = DEFAULT_TIMEOUT_MS,
			     .lock_wait = ACCOUNT_LOCK_WAIT_DEFAULT };
	const char *env_dir = getenv("IMAPSYNC_TASK_CONFIG_DIR");
	char *default_dir = xasprintf("%s/imapsync-task", SYSCONFDIR);
	enum opt_result opt;
	int rc;

	o.config_dir = env_dir != NULL && *env_dir != '\0' ? env_dir : default_dir;
	/* Message buffers of 128 KiB and more are mapped and unmapped, not
	   kept in the heap: a fixed threshold, where glibc's own would grow
	   with every large buffer freed. */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	raise_file_limit();
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
	/* 0, not 1: glibc then forgets the first pass's "+" (stop at the
	   first operand), so options after the task name count too. */
	optind = 0;
	opt = parse_options(cargc, cargv, "hnvC", &o);
	if (opt != OPT_GO) {
		free(default_dir);
		return opt == OPT_DONE ? 0 : EXIT_USAGE;
	}
	cargc -= optind;
	cargv += optind;
	if ((o.dry_run && strcmp(cmd, "run") != 0) || (o.connect && strcmp(cmd, "check") != 0) ||
	    (o.json && strcmp(cmd, "list") != 0 && strcmp(cmd, "status") != 0)) {
		usage(stderr);
		rc = EXIT_USAGE;
	} else if ((o.csv_check || o.csv_update) && strcmp(cmd, "import-csv") != 0) {
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
	else if (strcmp(cmd, "import-csv") == 0)
		rc = cmd_import_csv(&o, cargc, cargv);
	else {
		fprintf(stderr, "imapsync-task: unknown command '%s'\n", cmd);
		usage(stderr);
		rc = EXIT_USAGE;
	}
	free(default_dir);
	return rc;
}
