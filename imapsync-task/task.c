/* task.c - validated configuration: imapsync-task.conf and tasks/NAME.ini.
 *
 * The schema of both files: which sections and keys there are, what
 * each value may be, the defaults.  Reading the files is ini.c's job,
 * compiling the exclude patterns exclude.c's, time spans timespan.c's;
 * every error goes into the file's report as "FILE:LINE: key: reason".
 *
 * Nothing here reads a password: the password files are only checked for
 * existence and mode (secret.c reads them).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exclude.h"
#include "ini.h"
#include "task.h"
#include "timespan.h"
#include "util.h"

#define CONF_FILE_NAME "imapsync-task.conf"
#define TASKS_DIR_NAME "tasks"

#define MIN_DAYS 1
#define MAX_DAYS 36500
/* max_bytes_per_second: 1k to 10G; max_messages_per_second: 0.01 to
   10000, at most two decimals (hundredths). */
#define MIN_BYTES_PER_SEC 1024ULL
#define MAX_BYTES_PER_SEC (10ULL << 30)
#define MIN_MSGS_PER_SEC_100 1ULL
#define MAX_MSGS_PER_SEC_100 1000000ULL
/* max_connections: connection pairs (one to the remote, one to the
   local Dovecot) for folders copied side by side.  2 by default: every
   hosted provider allows that many sessions per account (Gmail 15,
   Microsoft 365 20, most ISPs 4 to 10), and on a small host two pairs
   already keep the local server busy while the remote is read. */
#define DEFAULT_CONNECTIONS 2
#define MAX_CONNECTIONS 8

/* ---------------------------------------------------------------------
 * Small string checks.
 */

static bool has_space_or_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * The schema: allowed sections and keys.  These names are a contract
 * with users; never rename them.
 */

static const char *const local_keys[] = {
	"host", "port", "security", "master_user", "master_separator",
	"master_password_file", "ca_file", "tls_verify", "lmtp", NULL
};
static const struct ini_section_spec local_sections[] = {
	{ "local", local_keys, false, NULL },
	{ NULL, NULL, false, NULL }
};

static const char *const task_keys[] = {
	"local_user", "folders", "exclude", "delete",
	"delete_older_than_days", "delivery", "interval", NULL
};
/* Keys that may appear once per value. */
static const char *const task_list_keys[] = { "exclude", NULL };
static const char *const remote_keys[] = {
	"host", "port", "security", "user", "password_file", "ca_file",
	"tls_verify", "max_bytes_per_second", "max_messages_per_second",
	"max_connections", NULL
};
static const struct ini_section_spec task_sections[] = {
	{ "task", task_keys, true, task_list_keys },
	{ "remote", remote_keys, true, NULL },
	{ NULL, NULL, false, NULL }
};

/* A key that looks like it holds a secret.  Such a value is never echoed,
   and the key is refused wherever it stands. */
static const char *key_is_secret(const char *key)
{
	size_t n = strlen(key);

	if (n >= 5 && strcmp(key + n - 5, "_file") == 0)
		return NULL;
	if (strcmp(key, "pass") == 0 || strcmp(key, "pw") == 0 ||
	    strcmp(key, "pwd") == 0 || strstr(key, "password") != NULL ||
	    strstr(key, "passwd") != NULL || strstr(key, "secret") != NULL)
		return "passwords belong in password_file, not in the INI";
	return NULL;
}

static const struct ini_schema local_schema = { local_sections, key_is_secret };
static const struct ini_schema task_schema = { task_sections, key_is_secret };

/* The values of each enum: one table per enum, in the order of the enum
   (name i is value i), NULL-terminated; get_enum() reads them, the
   *_name() functions print them.  Also a contract with users. */
static const char *const security_names[] = { "starttls", "tls", "none", NULL };
static const char *const folder_names[] = { "inbox", "all", "all-except", NULL };
static const char *const delete_names[] = { "never", "after-sync", "older-than", NULL };
static const char *const delivery_names[] = { "append", "sieve", "lmtp", NULL };

_Static_assert(N_ELEMENTS(security_names) == SECURITY_NONE + 2 &&
	       N_ELEMENTS(folder_names) == FOLDERS_ALL_EXCEPT + 2 &&
	       N_ELEMENTS(delete_names) == DELETE_OLDER_THAN + 2 &&
	       N_ELEMENTS(delivery_names) == DELIVERY_LMTP + 2,
	       "one name for each value of each enum");

static const char *enum_name(const char *const *names, int value)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (i == value)
			return names[i];
	}
	return "?";
}

const char *security_name(enum security s)
{
	return enum_name(security_names, (int)s);
}

const char *folder_mode_name(enum folder_mode m)
{
	return enum_name(folder_names, (int)m);
}

const char *delete_mode_name(enum delete_mode m)
{
	return enum_name(delete_names, (int)m);
}

const char *delivery_mode_name(enum delivery_mode m)
{
	return enum_name(delivery_names, (int)m);
}

/* ---------------------------------------------------------------------
 * Value parsers.  Each reports its own errors at the key's line.
 */

struct loader {
	struct ini *ini;
	struct ini_report rep;
	char *base_dir;         /* absolute dir for relative paths */
};

/* Entry of a key, NULL if absent. */
static const struct ini_entry *
get(struct loader *l, const char *section, const char *key, const char **val_r)
{
	const struct ini_entry *e = ini_find(l->ini, section, key);

	*val_r = e != NULL ? ini_value(l->ini, e) : NULL;
	return e;
}

/* Free what the loader holds and hand its report to err; returns the
   number of errors. */
static size_t loader_finish(struct loader *l, task_error_fn *err, void *ctx)
{
	ini_free(&l->ini);
	free(l->base_dir);
	l->base_dir = NULL;
	return ini_report_flush(&l->rep, err, ctx);
}

static unsigned section_line(struct loader *l, const char *section)
{
	return ini_section_line(l->ini, section);
}

static void report_missing(struct loader *l, const char *section,
			   const char *key)
{
	unsigned line = section_line(l, section);

	/* a missing section is reported once, not per key */
	if (line != 0)
		ini_report_add(&l->rep, line, key, "required key is missing");
}

/* The value of section.key as an index into names, dflt if the key is
   absent, -1 if the value is none of names (reported).  *e_r (if not
   NULL) is the key's entry.  Case does not matter ("STARTTLS"): the
   names are ASCII and none differ in case only. */
static int get_enum(struct loader *l, const char *section, const char *key,
		    const char *const *names, int dflt,
		    const struct ini_entry **e_r)
{
	const struct ini_entry *e;
	const char *val;
	char *all, *q;

	e = get(l, section, key, &val);
	if (e_r != NULL)
		*e_r = e;
	if (e == NULL)
		return dflt;
	for (int i = 0; names[i] != NULL; i++) {
		if (strcasecmp(val, names[i]) == 0)
			return i;
	}
	all = str_join(names, ", ");
	q = ini_quote(val);
	ini_report_add(&l->rep, e->line, e->key, "invalid value %s (valid: %s)",
		       q, all);
	free(q);
	free(all);
	return -1;
}

static bool parse_bool(struct loader *l, const struct ini_entry *e,
		       const char *val, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "1", NULL };
	static const char *const no[] = { "no", "false", "0", NULL };
	char *q;

	/* in any case, as the enums */
	for (size_t i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(val, yes[i]) == 0 || strcasecmp(val, no[i]) == 0) {
			*b_r = strcasecmp(val, yes[i]) == 0;
			return true;
		}
	}
	q = ini_quote(val);
	ini_report_add(&l->rep, e->line, e->key,
		       "invalid value %s (valid: yes, no, true, false, 1, 0)", q);
	free(q);
	return false;
}

static bool parse_number(struct loader *l, const struct ini_entry *e,
			 const char *val, uint64_t min, uint64_t max,
			 uint64_t *num_r)
{
	uint64_t n;
	char *q;

	if (!str_to_u64(val, &n)) {
		q = ini_quote(val);
		ini_report_add(&l->rep, e->line, e->key, "not a number: %s", q);
		free(q);
		return false;
	}
	if (n < min || n > max) {
		ini_report_add(&l->rep, e->line, e->key,
			       "out of range: %llu (valid: %llu-%llu)",
			       (unsigned long long)n, (unsigned long long)min,
			       (unsigned long long)max);
		return false;
	}
	*num_r = n;
	return true;
}

/* A byte count: digits, then optionally k, M or G (any case; powers of
   1024), nothing else: "200000", "500k", "2M". */
static bool parse_size(struct loader *l, const struct ini_entry *e,
		       const char *val, uint64_t min, uint64_t max,
		       uint64_t *num_r)
{
	size_t digits = strspn(val, "0123456789");
	char *num = xstrndup(val, digits);
	unsigned shift = 0;
	uint64_t n;
	bool good;

	switch (val[digits]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case '\0': break;
	default: shift = 99; break;
	}
	good = digits > 0 && shift != 99 && (shift == 0 || val[digits + 1] == '\0') &&
		str_to_u64(num, &n);
	free(num);
	if (!good) {
		char *q = ini_quote(val);
		ini_report_add(&l->rep, e->line, e->key,
			       "not a size: %s (bytes, or with k, M or G: 500k, 2M)", q);
		free(q);
		return false;
	}
	if (n > (max >> shift) || (n << shift) < min) {
		ini_report_add(&l->rep, e->line, e->key,
			       "out of range: %s (valid: 1k-10G, in bytes per second)", val);
		return false;
	}
	*num_r = n << shift;
	return true;
}

/* A rate with up to two decimals ("0.5", "4", "2.25"): no sign, no
   exponent.  *hundredths_r gets it times 100. */
static bool parse_decimal(struct loader *l, const struct ini_entry *e,
			  const char *val, uint64_t min, uint64_t max,
			  uint64_t *hundredths_r)
{
	size_t whole = strspn(val, "0123456789"), frac = 0;
	uint64_t n = 0;
	bool good = whole > 0 && whole <= 12;

	if (good && val[whole] == '.') {
		frac = strspn(val + whole + 1, "0123456789");
		good = frac >= 1 && frac <= 2 && val[whole + 1 + frac] == '\0';
	} else if (good) {
		good = val[whole] == '\0';
	}
	if (!good) {
		char *q = ini_quote(val);
		ini_report_add(&l->rep, e->line, e->key,
			       "not a number: %s (e.g. 4, 0.5; at most two decimals)", q);
		free(q);
		return false;
	}
	for (size_t i = 0; i < whole; i++)
		n = n * 10 + (uint64_t)(val[i] - '0');
	n *= 100;
	if (frac >= 1)
		n += (uint64_t)(val[whole + 1] - '0') * 10;
	if (frac == 2)
		n += (uint64_t)(val[whole + 2] - '0');
	if (n < min || n > max) {
		ini_report_add(&l->rep, e->line, e->key,
			       "out of range: %s (valid: 0.01-10000)", val);
		return false;
	}
	*hundredths_r = n;
	return true;
}

/* A host or user name: not empty, no control characters, and no spaces
   unless spaces_ok. */
static bool check_name(struct loader *l, const struct ini_entry *e,
		       const char *val, bool spaces_ok)
{
	if (*val == '\0') {
		ini_report_add(&l->rep, e->line, e->key, "must not be empty");
		return false;
	}
	if (spaces_ok ? has_control(val) : has_space_or_control(val)) {
		ini_report_add(&l->rep, e->line, e->key, "must not contain %s",
			       spaces_ok ? "control characters" :
			       "spaces or control characters");
		return false;
	}
	return true;
}

static char *resolve_path(const char *dir, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	return xasprintf("%s/%s", dir, path);
}

/* The shared [local]/[remote] connection keys. */
static void parse_endpoint(struct loader *l, const char *section,
			   struct endpoint *ep, const char *default_host)
{
	const struct ini_entry *e;
	const char *v;
	int idx;
	uint64_t n;

	ep->security = SECURITY_STARTTLS;
	ep->tls_verify = true;
	ep->ca_file = NULL;
	ep->host = NULL;

	idx = get_enum(l, section, "security", security_names,
		       SECURITY_STARTTLS, NULL);
	if (idx >= 0)
		ep->security = (enum security)idx;
	ep->port = ep->security == SECURITY_TLS ? 993 : 143;
	if ((e = get(l, section, "port", &v)) != NULL &&
	    parse_number(l, e, v, 1, 65535, &n))
		ep->port = (uint16_t)n;

	if ((e = get(l, section, "host", &v)) != NULL) {
		if (check_name(l, e, v, false))
			ep->host = xstrdup(v);
	} else if (default_host != NULL) {
		ep->host = xstrdup(default_host);
	} else {
		report_missing(l, section, "host");
	}

	if ((e = get(l, section, "tls_verify", &v)) != NULL)
		(void)parse_bool(l, e, v, &ep->tls_verify);

	if ((e = get(l, section, "ca_file", &v)) != NULL && *v != '\0') {
		struct stat st;
		char *path = resolve_path(l->base_dir, v);

		if (has_control(v)) {
			ini_report_add(&l->rep, e->line, e->key,
				       "must not contain control characters");
			free(path);
		} else if (stat(path, &st) < 0) {
			ini_report_add(&l->rep, e->line, e->key, "%s: %s", path,
				       strerror(errno));
			free(path);
		} else if (!S_ISREG(st.st_mode)) {
			ini_report_add(&l->rep, e->line, e->key,
				       "%s: not a regular file", path);
			free(path);
		} else {
			ep->ca_file = path;
		}
	}
}

/* A password file must exist, be a regular file and be accessible by
   its owner only -- unless systemd passed the credential. */
static void check_password_file(struct loader *l, unsigned line,
				const char *key, const char *path,
				const char *cred_id)
{
	const char *cdir = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;

	if (cdir != NULL && *cdir != '\0') {
		char *cpath = xasprintf("%s/%s", cdir, cred_id);
		bool have = stat(cpath, &st) == 0 && S_ISREG(st.st_mode);

		free(cpath);
		if (have)
			return;
	}
	if (stat(path, &st) < 0) {
		ini_report_add(&l->rep, line, key,
			       "%s: %s (create it with mode 0600, or pass the "
			       "credential %s with LoadCredential=)",
			       path, strerror(errno), cred_id);
	} else if (!S_ISREG(st.st_mode)) {
		ini_report_add(&l->rep, line, key, "%s: not a regular file", path);
	} else if ((st.st_mode & 077) != 0) {
		ini_report_add(&l->rep, line, key,
			       "%s: is accessible by group or others (mode %04o); "
			       "run chmod 600 on it",
			       path, (unsigned)(st.st_mode & 07777));
	}
}

/* "dir/name" without doubling a trailing slash of dir. */
static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);

	if (n > 0 && dir[n - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}

/* config_dir made absolute (for paths stored in the result). */
static char *absolute_dir(const char *dir)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(dir);
	if (strcmp(dir, ".") == 0)
		return xstrdup(cwd);
	return path_join(cwd, dir);
}

/* ---------------------------------------------------------------------
 * imapsync-task.conf
 */

static bool check_lmtp(const char *v)
{
	const char *colon;
	uint64_t port;

	if (v[0] == '/')
		return strlen(v) < 108 && !has_control(v);  /* sun_path */
	colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return false;
	if (!str_to_u64(colon + 1, &port) || port < 1 || port > 65535)
		return false;
	if (v[0] == '[' && colon[-1] != ']')
		return false;
	for (const char *p = v; p < colon; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

static void local_config_clear(struct local_config *cfg)
{
	free(cfg->ep.host);
	free(cfg->ep.ca_file);
	free(cfg->master_user);
	free(cfg->master_password_file);
	free(cfg->lmtp);
	free(cfg->path);
}

void local_config_free(struct local_config **cfgp)
{
	struct local_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	local_config_clear(cfg);
	free(cfg);
	*cfgp = NULL;
}

struct local_config *local_config_load(const char *config_dir,
				       task_error_fn *err, void *ctx)
{
	return local_config_load_with(config_dir, 0, err, ctx);
}

struct local_config *local_config_load_with(const char *config_dir,
					    unsigned flags,
					    task_error_fn *err, void *ctx)
{
	bool check = (flags & TASK_LOAD_NO_PASSWORD_CHECK) == 0;
	struct loader l = { 0 };
	struct local_config *cfg = xcalloc(1, sizeof(*cfg));
	const struct ini_entry *e;
	const char *v;

	cfg->path = path_join(config_dir, CONF_FILE_NAME);
	ini_report_init(&l.rep, cfg->path);
	l.base_dir = absolute_dir(config_dir);

	l.ini = ini_load(cfg->path, &local_schema, 0, &l.rep);
	if (l.ini != NULL) {
		parse_endpoint(&l, "local", &cfg->ep, "127.0.0.1");

		cfg->master_separator = '*';
		if ((e = get(&l, "local", "master_separator", &v)) != NULL) {
			if (strlen(v) != 1 || !ispunct((unsigned char)v[0]))
				ini_report_add(&l.rep, e->line, e->key,
					       "must be a single punctuation character "
					       "(Dovecot's auth_master_user_separator)");
			else
				cfg->master_separator = v[0];
		}

		if ((e = get(&l, "local", "master_user", &v)) != NULL) {
			if (*v == '\0' || has_space_or_control(v))
				ini_report_add(&l.rep, e->line, e->key,
					       "must be non-empty, without spaces or "
					       "control characters");
			else if (strchr(v, cfg->master_separator) != NULL)
				ini_report_add(&l.rep, e->line, e->key,
					       "must not contain the master separator '%c'",
					       cfg->master_separator);
			else
				cfg->master_user = xstrdup(v);
		} else {
			cfg->master_user = xstrdup("vmail");
		}

		if ((e = get(&l, "local", "master_password_file", &v)) != NULL) {
			if (*v == '\0' || has_control(v)) {
				ini_report_add(&l.rep, e->line, e->key,
					       "must be a file name");
			} else {
				cfg->master_password_file = resolve_path(l.base_dir, v);
				if (check)
					check_password_file(&l, e->line, e->key,
							    cfg->master_password_file,
							    "master.password");
			}
		} else {
			cfg->master_password_file = path_join(l.base_dir, "master.pwd");
			if (check)
				check_password_file(&l, section_line(&l, "local"),
						    "master_password_file",
						    cfg->master_password_file,
						    "master.password");
		}

		if ((e = get(&l, "local", "lmtp", &v)) != NULL) {
			if (!check_lmtp(v)) {
				char *q = ini_quote(v);

				ini_report_add(&l.rep, e->line, e->key,
					       "invalid value %s (host:port or an "
					       "absolute unix socket path)", q);
				free(q);
			} else {
				cfg->lmtp = xstrdup(v);
			}
		} else {
			cfg->lmtp = xstrdup("127.0.0.1:24");
		}
	}

	if (loader_finish(&l, err, ctx) > 0)
		local_config_free(&cfg);
	return cfg;
}

/* ---------------------------------------------------------------------
 * tasks/NAME.ini
 */

bool task_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return false;       /* also refuses "." and ".." */
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];

		if (n >= TASK_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* The master separator from imapsync-task.conf, for checking local_user;
   '*' when it cannot be read (local_config_load reports why). */
static char read_master_separator(const char *config_dir)
{
	struct ini_report rep;
	struct ini *ini;
	const struct ini_entry *e;
	const char *v;
	char sep = '*';
	char *path = path_join(config_dir, CONF_FILE_NAME);

	ini_report_init(&rep, path);
	ini = ini_load(path, &local_schema, INI_LOAD_PEEK, &rep);
	if (ini != NULL) {
		e = ini_find(ini, "local", "master_separator");
		v = e != NULL ? ini_value(ini, e) : NULL;
		if (v != NULL && strlen(v) == 1 && ispunct((unsigned char)v[0]))
			sep = v[0];
		ini_free(&ini);
	}
	ini_report_flush(&rep, NULL, NULL);
	free(path);
	return sep;
}

/* An exclude pattern, compiled (NULL after reporting why not). */
static struct exclude *compile_exclude(struct loader *l,
				       const struct ini_entry *e,
				       const char *pattern)
{
	struct exclude *ex;
	char *error;

	ex = exclude_compile(pattern, &error);
	if (ex == NULL) {
		ini_report_add(&l->rep, e->line, e->key, "%s", error);
		free(error);
	}
	return ex;
}

/* The exclude lines: one pattern each (a list key).  Each is compiled
   whenever it is there, so that a broken one is reported even next to
   another error; they are kept with folders = all-except only. */
static void parse_excludes(struct loader *l, struct task *t, bool folders_ok)
{
	bool except = folders_ok && t->folders == FOLDERS_ALL_EXCEPT;
	const struct ini_entry *e = ini_find(l->ini, "task", "exclude");
	size_t n = 0;

	if (e == NULL && except)
		ini_report_add(&l->rep, section_line(l, "task"), "exclude",
			       "required key is missing (folders = all-except "
			       "needs it)");
	for (; e != NULL; e = ini_find_next(l->ini, e)) {
		const char *v = ini_value(l->ini, e);
		struct exclude *ex = *v != '\0' ? compile_exclude(l, e, v) : NULL;

		if (except && *v == '\0')
			ini_report_add(&l->rep, e->line, e->key,
				       "must not be empty with folders = all-except");
		else if (!except && folders_ok)
			ini_report_add(&l->rep, e->line, e->key,
				       "only valid with folders = all-except "
				       "(folders is %s)", folder_mode_name(t->folders));
		if (ex == NULL || !except) {
			exclude_free(&ex);
			continue;
		}
		t->exclude = xreallocarray(t->exclude, n + 2, sizeof(*t->exclude));
		t->exclude_re = xreallocarray(t->exclude_re, n + 2,
					      sizeof(*t->exclude_re));
		t->exclude[n] = xstrdup(v);
		t->exclude_re[n++] = ex;
		t->exclude[n] = NULL;
		t->exclude_re[n] = NULL;
	}
}

static void parse_task_section(struct loader *l, struct task *t, char sep)
{
	const struct ini_entry *e, *e_days;
	const char *v, *v_days;
	int idx;
	uint64_t n;

	if ((e = get(l, "task", "local_user", &v)) != NULL) {
		if (!check_name(l, e, v, false)) {
			/* reported */
		} else if (strchr(v, sep) != NULL) {
			ini_report_add(&l->rep, e->line, e->key,
				       "must not contain the master separator '%c'", sep);
		} else {
			t->local_user = xstrdup(v);
		}
	} else {
		report_missing(l, "task", "local_user");
	}

	t->folders = FOLDERS_INBOX;
	idx = get_enum(l, "task", "folders", folder_names, FOLDERS_INBOX, NULL);
	bool folders_ok = idx >= 0;
	if (folders_ok)
		t->folders = (enum folder_mode)idx;

	parse_excludes(l, t, folders_ok);

	t->delete_mode = DELETE_NEVER;
	idx = get_enum(l, "task", "delete", delete_names, DELETE_NEVER, NULL);
	bool delete_ok = idx >= 0;
	if (delete_ok)
		t->delete_mode = (enum delete_mode)idx;
	e_days = get(l, "task", "delete_older_than_days", &v_days);
	if (delete_ok && t->delete_mode == DELETE_OLDER_THAN) {
		if (e_days == NULL) {
			ini_report_add(&l->rep, section_line(l, "task"),
				       "delete_older_than_days",
				       "required key is missing (delete = older-than "
				       "needs it)");
		} else if (parse_number(l, e_days, v_days, MIN_DAYS, MAX_DAYS, &n)) {
			t->delete_older_than_days = (unsigned)n;
		}
	} else if (e_days != NULL && delete_ok) {
		ini_report_add(&l->rep, e_days->line, e_days->key,
			       "only valid with delete = older-than (delete is %s)",
			       delete_mode_name(t->delete_mode));
	}

	t->delivery = DELIVERY_APPEND;
	idx = get_enum(l, "task", "delivery", delivery_names, DELIVERY_APPEND, &e);
	if (idx >= 0)
		t->delivery = (enum delivery_mode)idx;
	if (e != NULL && t->delivery != DELIVERY_APPEND && folders_ok &&
	    t->folders != FOLDERS_INBOX)
		ini_report_add(&l->rep, e->line, e->key,
			       "delivery = %s is only valid with folders = inbox "
			       "(folders is %s)",
			       delivery_mode_name(t->delivery),
			       folder_mode_name(t->folders));

	if ((e = get(l, "task", "interval", &v)) != NULL) {
		if (strcasecmp(v, "manual") == 0) {
			t->manual = true;
		} else if (!timespan_parse(v, &n)) {
			char *q = ini_quote(v);

			ini_report_add(&l->rep, e->line, e->key,
				       "invalid time span %s (e.g. 15min, 1h 30min, 1d; "
				       "units: s, min, h, d, w; or manual)", q);
			free(q);
		} else if (n < TASK_MIN_INTERVAL_SEC) {
			ini_report_add(&l->rep, e->line, e->key,
				       "too short: %llus (at least 1min, or manual)",
				       (unsigned long long)n);
		} else {
			t->interval = xstrdup(v);
			t->interval_sec = n;
		}
	} else {
		report_missing(l, "task", "interval");
	}
}

static void parse_remote_section(struct loader *l, struct task *t,
				 unsigned flags)
{
	bool check = (flags & TASK_LOAD_NO_PASSWORD_CHECK) == 0;
	const struct ini_entry *e;
	const char *v;
	char *cred_id;
	uint64_t n;

	parse_endpoint(l, "remote", &t->remote, NULL);

	if ((e = get(l, "remote", "user", &v)) != NULL) {
		if (check_name(l, e, v, true))
			t->remote_user = xstrdup(v);
	} else {
		report_missing(l, "remote", "user");
	}

	/* Pacing for hosted providers; absent: unlimited. */
	if ((e = get(l, "remote", "max_bytes_per_second", &v)) != NULL)
		(void)parse_size(l, e, v, MIN_BYTES_PER_SEC, MAX_BYTES_PER_SEC,
				 &t->max_bytes_per_second);
	if ((e = get(l, "remote", "max_messages_per_second", &v)) != NULL &&
	    parse_decimal(l, e, v, MIN_MSGS_PER_SEC_100, MAX_MSGS_PER_SEC_100, &n))
		t->max_messages_per_second = (double)n / 100;

	t->max_connections = DEFAULT_CONNECTIONS;
	if ((e = get(l, "remote", "max_connections", &v)) != NULL &&
	    parse_number(l, e, v, 1, MAX_CONNECTIONS, &n))
		t->max_connections = (unsigned)n;

	cred_id = xasprintf("task.%s.password", t->name);
	if ((e = get(l, "remote", "password_file", &v)) != NULL) {
		if (*v == '\0' || has_control(v)) {
			ini_report_add(&l->rep, e->line, e->key, "must be a file name");
		} else {
			t->password_file = resolve_path(l->base_dir, v);
			if (check)
				check_password_file(l, e->line, e->key,
						    t->password_file, cred_id);
		}
	} else {
		char *file = xasprintf("%s.pwd", t->name);

		t->password_file = path_join(l->base_dir, file);
		free(file);
		if (check)
			check_password_file(l, section_line(l, "remote"),
					    "password_file", t->password_file,
					    cred_id);
	}
	free(cred_id);
}

void task_free(struct task **tp)
{
	struct task *t = *tp;

	if (t == NULL)
		return;
	free(t->name);
	free(t->path);
	free(t->local_user);
	for (size_t i = 0; t->exclude != NULL && t->exclude[i] != NULL; i++) {
		free(t->exclude[i]);
		exclude_free(&t->exclude_re[i]);
	}
	free(t->exclude);
	free(t->exclude_re);
	free(t->interval);
	free(t->remote.host);
	free(t->remote.ca_file);
	free(t->remote_user);
	free(t->password_file);
	free(t);
	*tp = NULL;
}

struct task *task_load(const char *config_dir, const char *name,
		       task_error_fn *err, void *ctx)
{
	return task_load_with(config_dir, name, 0, err, ctx);
}

struct task *task_load_with(const char *config_dir, const char *name,
			    unsigned flags, task_error_fn *err, void *ctx)
{
	struct loader l = { 0 };
	struct task *t;
	char *tasks_dir, *file, *abs;
	char sep;

	if (!task_name_valid(name)) {
		/* No path is built from an invalid name. */
		char *q = ini_quote(name != NULL ? name : "");

		ini_report_init(&l.rep, "task");
		ini_report_add(&l.rep, 0, NULL,
			       "invalid task name %s (letters, digits, '_', '.', '-'; "
			       "not starting with '.'; at most %d characters)",
			       q, TASK_NAME_MAX);
		free(q);
		loader_finish(&l, err, ctx);
		return NULL;
	}

	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	tasks_dir = path_join(config_dir, TASKS_DIR_NAME);
	file = xasprintf("%s.ini", name);
	t->path = path_join(tasks_dir, file);
	free(file);
	abs = absolute_dir(config_dir);
	l.base_dir = path_join(abs, TASKS_DIR_NAME);
	free(abs);
	ini_report_init(&l.rep, t->path);

	sep = read_master_separator(config_dir);
	l.ini = ini_load(t->path, &task_schema, 0, &l.rep);
	if (l.ini != NULL) {
		parse_task_section(&l, t, sep);
		parse_remote_section(&l, t, flags);
	}

	free(tasks_dir);
	if (loader_finish(&l, err, ctx) > 0)
		task_free(&t);
	return t;
}

const char *task_folder_exclude_match(const struct task *t,
				      const char *utf8_name, int *err_r)
{
	int err;

	*err_r = 0;
	if (t->folders != FOLDERS_ALL_EXCEPT || t->exclude_re == NULL)
		return NULL;
	for (size_t i = 0; t->exclude_re[i] != NULL; i++) {
		if (exclude_match(t->exclude_re[i], utf8_name, &err)) {
			*err_r = 0;
			return t->exclude[i];
		}
		if (err != 0 && *err_r == 0)
			*err_r = err;
	}
	return NULL;
}

bool task_folder_excluded(const struct task *t, const char *utf8_name,
			  int *err_r)
{
	return task_folder_exclude_match(t, utf8_name, err_r) != NULL;
}

void task_match_strerror(int err, char *buf, size_t size)
{
	exclude_strerror(err, buf, size);
}

bool task_parse_timespan(const char *text, uint64_t *sec_r)
{
	return timespan_parse(text, sec_r);
}

/* ---------------------------------------------------------------------
 * Listing.
 */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **task_list_names(const char *config_dir)
{
	char *dir = path_join(config_dir, TASKS_DIR_NAME);
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names;
	size_t n = 0;

	free(dir);
	if (d == NULL)
		return NULL;
	names = xcalloc(1, sizeof(*names));
	for (;;) {
		size_t len;
		char *name;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 4 ||
		    strcmp(de->d_name + len - 4, ".ini") != 0)
			continue;
		name = xstrndup(de->d_name, len - 4);
		if (!task_name_valid(name)) {
			free(name);
			continue;
		}
		names = xreallocarray(names, n + 2, sizeof(*names));
		names[n++] = name;
		names[n] = NULL;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		task_names_free(&names);
		errno = saved;
		return NULL;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	return names;
}

void task_names_free(char ***namesp)
{
	char **names = *namesp;

	if (names == NULL)
		return;
	for (size_t i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
	*namesp = NULL;
}

