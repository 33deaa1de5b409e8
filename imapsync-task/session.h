/* session.h - one run's pair of IMAP sessions: the secrets, then the
 * remote as the task's user and the local Dovecot as local_user through
 * the master user, each connected and logged in. */
#ifndef SESSION_H
#define SESSION_H

#include <stdbool.h>

#include "imap_client.h"
#include "secret.h"
#include "task.h"

struct session_opts {
	int timeout_ms;
	bool trace;                   /* log the protocol (secrets redacted) */
	const char *spool_dir;        /* where large bodies are spooled */
	void (*progress)(void *ctx);  /* a sign of life as data goes out */
	void *progress_ctx;
};

struct session {
	struct session_opts so;
	const struct task *task;
	const struct local_config *lc;
	struct secret *remote_pw, *master_pw;
	struct imap_client *remote, *local;
	struct throttle *throttle;    /* paces the remote; NULL: unlimited */
};

/* Load both passwords (registered for redaction), connect and log in to
   both sides.  0, or an exit code after logging why; session_close()
   in either case. */
int session_open(const struct session_opts *so, const struct task *t,
		 const struct local_config *l, struct session *s);
void session_close(struct session *s);
/* Another pair like the first, for folders copied side by side; ctx is
   the struct session (the shapes of sync_env's open_pair and
   close_pair).  0, or an exit code after logging why, nothing left
   open. */
int session_open_pair(void *ctx, struct imap_client **remote_r, struct imap_client **local_r);
void session_close_pair(void *ctx, struct imap_client **remote, struct imap_client **local);

#endif
