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
	struct secret *remote_pw, *master_pw;
	struct imap_client *remote, *local;
};

/* Load both passwords (registered for redaction), connect and log in to
   both sides.  0, or an exit code after logging why; session_close()
   in either case. */
int session_open(const struct session_opts *so, const struct task *t,
		 const struct local_config *l, struct session *s);
void session_close(struct session *s);

#endif
