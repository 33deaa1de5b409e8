/* imap_probe.c - drive the IMAP client core directly against real
 * servers, for tests/integration/t_imap_core.py.
 *
 *   imap_probe login                 connect, log in, print capabilities
 *   imap_probe list                  NAMESPACE, ENABLE, ID, LIST with
 *                                    special-use attributes
 *   imap_probe fetch N               N pipelined UID FETCH commands over 1:*
 *   imap_probe stream UID            stream one message from the source
 *                                    to the destination's INBOX; print
 *                                    peak RSS
 *   imap_probe ops                   the typed commands on the source's
 *                                    INBOX (changes it): UID STORE and
 *                                    UID EXPUNGE over unsorted UIDs,
 *                                    SEARCH by keys and date, CREATE,
 *                                    SUBSCRIBE; one line of counts each
 *
 * Connection facts come from the environment, never a password in argv:
 *   SRC_HOST SRC_PORT SRC_SECURITY SRC_CA SRC_VERIFY SRC_USER SRC_PASSFILE
 *   SRC_MASTER (optional: log in as SRC_USER through this master user)
 *   DST_... the same for "stream".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap_cmds.h"
#include "log.h"
#include "msgbody.h"
#include "util.h"

static const char *env(const char *prefix, const char *key, const char *def)
{
	char name[64];
	const char *v;

	snprintf(name, sizeof(name), "%s_%s", prefix, key);
	v = getenv(name);
	return v != NULL && *v != '\0' ? v : def;
}

static char *read_password(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];

	if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(78);
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

static struct imap_client *open_side(const char *prefix)
{
	struct imap_client_opts o = { 0 };
	struct imap_client *c = NULL;
	const char *sec = env(prefix, "SECURITY", "starttls");
	char err[600];
	int rc;

	o.label = prefix;
	o.host = env(prefix, "HOST", "127.0.0.1");
	o.port = (uint16_t)atoi(env(prefix, "PORT", "143"));
	o.security = strcmp(sec, "tls") == 0 ? SECURITY_TLS :
		     strcmp(sec, "none") == 0 ? SECURITY_NONE : SECURITY_STARTTLS;
	o.ca_file = env(prefix, "CA", NULL);
	o.tls_verify = strcmp(env(prefix, "VERIFY", "yes"), "no") != 0;
	o.timeout_ms = 1000 * atoi(env(prefix, "TIMEOUT", "30"));
	o.spool_dir = env(prefix, "SPOOL", "/tmp");
	rc = imap_client_connect(&o, &c, err, sizeof(err));
	if (rc == 0) {
		char *pw = read_password(env(prefix, "PASSFILE", "/dev/null"));
		log_register_secret(pw);
		rc = imap_login(c, env(prefix, "USER", "nobody"), pw, env(prefix, "MASTER", NULL),
				'*', err, sizeof(err));
		/* Redaction keeps a pointer to a registered secret. */
		log_forget_secret(pw);
		explicit_wipe(pw, strlen(pw));
		free(pw);
	}
	if (rc != 0) {
		fprintf(stderr, "%s\n", err);
		imap_client_free(&c);
		exit(rc);
	}
	return c;
}

static void count_cb(void *ctx, struct imap_fetched *m)
{
	size_t *n = ctx;

	if (m->uid != 0 && m->size > 0)
		(*n)++;
}

static int do_fetch(int chunks)
{
	struct imap_client *c = open_side("SRC");
	struct imap_mailbox box;
	struct imap_result res;
	struct timespec t0, t1;
	size_t got = 0;
	int rc;

	if ((rc = imap_select(c, "INBOX", true, &box, &res)) != 0) {
		fprintf(stderr, "EXAMINE: %s\n", res.text);
		return rc;
	}
	char **sets = xcalloc((size_t)chunks, sizeof(*sets));
	uint32_t per = box.uidnext / (uint32_t)chunks + 1;
	for (int i = 0; i < chunks; i++)
		sets[i] = xasprintf("%u:%u", (uint32_t)i * per + 1, (uint32_t)(i + 1) * per);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = imap_uid_fetch_many(c, (const char *const *)sets, (size_t)chunks,
				 "FLAGS INTERNALDATE RFC822.SIZE", count_cb, &got, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("fetched %zu messages in %d pipelined commands, %.3f s\n", got, chunks,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (int i = 0; i < chunks; i++)
		free(sets[i]);
	free(sets);
	imap_client_logout(&c);
	return rc;
}

struct one_body {
	struct msgbody *body;
	char flags[512], date[64];
};

static void take_body(void *ctx, struct imap_fetched *m)
{
	struct one_body *b = ctx;

	if (m->body != NULL && b->body == NULL) {
		b->body = m->body;
		m->body = NULL;
		snprintf(b->flags, sizeof(b->flags), "%s", m->flags);
		snprintf(b->date, sizeof(b->date), "%s", m->internaldate);
	}
}

/* Peak RSS of this program.  VmHWM, not getrusage(): ru_maxrss keeps
   the high-water mark of whatever process image ran before execve(), so
   a large parent (the Python test) would be measured instead of us. */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kib = -1;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

static int do_stream(const char *uid)
{
	struct imap_client *src = open_side("SRC"), *dst = open_side("DST");
	struct imap_mailbox box;
	struct imap_result res;
	struct one_body b = { 0 };
	uint32_t uv, newuid;
	int rc;

	if ((rc = imap_select(src, env("SRC", "MAILBOX", "INBOX"), true, &box, &res)) != 0 ||
	    (rc = imap_uid_fetch(src, uid, "FLAGS INTERNALDATE BODY.PEEK[]", take_body, &b, &res)) != 0 ||
	    b.body == NULL) {
		fprintf(stderr, "fetch failed: %s\n", res.text);
		return rc ? rc : 1;
	}
	struct imap_append_msg am = { .flags = b.flags, .internaldate = b.date, .body = b.body };
	rc = imap_append(dst, "INBOX", &am, 1, &uv, &newuid, &res);
	printf("streamed %llu bytes, new uid %u, peak rss %ld KiB\n",
	       (unsigned long long)msgbody_size(b.body), newuid, peak_rss_kib());
	msgbody_free(&b.body);
	imap_client_logout(&src);
	imap_client_logout(&dst);
	return rc;
}

/* UIDs that have keys (and a date before 'before', unless 0); -1 on failure. */
static long count(struct imap_client *c, unsigned keys, time_t before)
{
	struct uid_list l;
	struct imap_result res;
	long n;

	if (imap_uid_search(c, keys, before, &l, &res) != 0) {
		fprintf(stderr, "UID SEARCH: %s\n", res.text);
		return -1;
	}
	n = (long)l.count;
	uid_list_free(&l);
	return n;
}

/* Every command checked by what the server says afterwards.  UIDs go in
   backwards, so the client must sort them; with more than IMAP_UID_CHUNK
   messages the STOREs take more than one command. */
static int do_ops(void)
{
	struct imap_client *c = open_side("SRC");
	struct imap_mailbox box;
	struct imap_result res;
	struct uid_list all;
	time_t now = time(NULL);
	int rc;

	if ((rc = imap_select(c, "INBOX", false, &box, &res)) != 0 ||
	    (rc = imap_uid_search(c, SEARCH_ALL, 0, &all, &res)) != 0) {
		fprintf(stderr, "SELECT/SEARCH: %s\n", res.text);
		return rc;
	}
	size_t n = all.count;
	uint32_t *rev = xcalloc(n + 1, sizeof(*rev));
	for (size_t i = 0; i < n; i++)
		rev[i] = all.uids[n - 1 - i];
	if ((rc = imap_uid_store(c, rev, n, true, "\\Seen", &res)) == 0)
		printf("store +seen %zu: seen %ld unseen %ld\n", n,
		       count(c, SEARCH_SEEN | SEARCH_UNDELETED, 0), count(c, SEARCH_UNSEEN, 0));
	/* \Deleted on the first three; UID EXPUNGE of those and a fourth:
	   only the three go. */
	if (rc == 0 && n >= 4 &&
	    (rc = imap_uid_store(c, all.uids, 3, true, "\\Deleted", &res)) == 0) {
		printf("store +deleted 3: deleted %ld\n", count(c, SEARCH_DELETED, 0));
		if ((rc = imap_uid_expunge(c, (uint32_t[]){ all.uids[3], all.uids[2],
						  all.uids[1], all.uids[0] }, 4, &res)) == 0)
			printf("uid expunge 4: left %ld\n", count(c, SEARCH_ALL, 0));
	}
	if (rc == 0 && (rc = imap_uid_store(c, rev, n, false, "\\Seen", &res)) == 0)
		printf("store -seen %zu: unseen %ld\n", n, count(c, SEARCH_UNSEEN, 0));
	if (rc == 0)
		printf("before tomorrow %ld, before 2-Jan-1970 %ld\n",
		       count(c, SEARCH_UNDELETED, now + 86400), count(c, SEARCH_ALL, 86400));
	if (rc == 0 && (rc = imap_create(c, "Probe", &res)) == 0 &&
	    (rc = imap_subscribe(c, "Probe", &res)) == 0) {
		struct imap_list_entry *v;
		size_t nl;
		if ((rc = imap_list(c, "Probe", &v, &nl, &res)) == 0) {
			printf("created %zu, subscribed %d\n", nl,
			       nl == 1 && (v[0].attrs & MBOX_SUBSCRIBED) != 0);
			imap_list_free(v, nl);
		}
	}
	if (rc != 0)
		fprintf(stderr, "failed: %s\n", res.text);
	free(rev);
	uid_list_free(&all);
	imap_client_logout(&c);
	return rc;
}

int main(int argc, char **argv)
{
	log_init("imap_probe", NULL, 0);
	if (argc >= 2 && strcmp(argv[1], "login") == 0) {
		struct imap_client *c = open_side("SRC");
		printf("logged in; UIDPLUS=%d MULTIAPPEND=%d LITERAL+=%d\n",
		       imap_client_has_cap(c, CAP_UIDPLUS), imap_client_has_cap(c, CAP_MULTIAPPEND),
		       imap_client_has_cap(c, CAP_LITERALPLUS));
		imap_client_logout(&c);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		struct imap_client *c = open_side("SRC");
		struct imap_list_entry *v;
		struct imap_result res;
		char prefix[256], delim;
		size_t n;
		int rc = imap_namespace(c, prefix, sizeof(prefix), &delim, &res);
		if (rc == 0)
			printf("namespace \"%s\" \"%c\"\n", prefix, delim ? delim : '-');
		if (rc == 0 && (rc = imap_enable(c, "CONDSTORE QRESYNC", &res)) == 0 &&
		    (rc = imap_id(c, &res)) == 0 && (rc = imap_list(c, "*", &v, &n, &res)) == 0) {
			for (size_t i = 0; i < n; i++)
				printf("mailbox \"%s\" \"%c\" %s%s%s%s%s\n", v[i].name,
				       v[i].delim ? v[i].delim : '-',
				       v[i].attrs & MBOX_SENT ? "\\Sent " : "",
				       v[i].attrs & MBOX_DRAFTS ? "\\Drafts " : "",
				       v[i].attrs & MBOX_TRASH ? "\\Trash " : "",
				       v[i].attrs & MBOX_JUNK ? "\\Junk " : "",
				       v[i].attrs & MBOX_SUBSCRIBED ? "\\Subscribed" : "");
			imap_list_free(v, n);
		}
		if (rc != 0)
			fprintf(stderr, "failed: %s\n", res.text);
		imap_client_logout(&c);
		return rc;
	}
	if (argc == 3 && strcmp(argv[1], "fetch") == 0)
		return do_fetch(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
	if (argc == 3 && strcmp(argv[1], "stream") == 0)
		return do_stream(argv[2]);
	if (argc == 2 && strcmp(argv[1], "ops") == 0)
		return do_ops();
	fprintf(stderr, "usage: imap_probe login | list | fetch N | stream UID | ops\n");
	return 64;
}
