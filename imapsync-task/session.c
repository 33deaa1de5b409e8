/* session.c - one run's pair of IMAP sessions (see session.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "imap_cmds.h"
#include "log.h"
#include "progress.h"
#include "session.h"
#include "throttle.h"
#include "util.h"

static void client_opts(const struct session_opts *so, const struct endpoint *ep,
			const char *label, struct imap_client_opts *co)
{
	memset(co, 0, sizeof(*co));
	co->progress = so->progress;
	co->progress_ctx = so->progress_ctx;
	co->label = label;
	co->host = ep->host;
	co->port = ep->port;
	co->security = ep->security;
	co->ca_file = ep->ca_file;
	co->tls_verify = ep->tls_verify;
	co->timeout_ms = so->timeout_ms;
	co->spool_dir = so->spool_dir;
	co->trace = so->trace;
}

void session_close(struct session *s)
{
	session_close_pair(s, &s->remote, &s->local);
	throttle_free(&s->throttle);
	if (s->remote_pw != NULL)
		log_forget_secret(s->remote_pw->value);
	if (s->master_pw != NULL)
		log_forget_secret(s->master_pw->value);
	secret_free(&s->remote_pw);
	secret_free(&s->master_pw);
}

static int load_secrets(const struct task *t, const struct local_config *l,
			struct session *s)
{
	char err[512];
	char *id = xasprintf("task.%s.password", t->name);

	s->remote_pw = secret_load(id, t->password_file, err, sizeof(err));
	free(id);
	if (s->remote_pw == NULL) {
		log_warnx("remote password: %s", err);
		return EXIT_CONFIG;
	}
	log_register_secret(s->remote_pw->value);
	s->master_pw = secret_load("master.password", l->master_password_file, err, sizeof(err));
	if (s->master_pw == NULL) {
		log_warnx("local master password: %s", err);
		return EXIT_CONFIG;
	}
	log_register_secret(s->master_pw->value);
	return 0;
}

/* Connect and log in to both sides: remote as the task's user, local as
   local_user through the master user. */
/* Connect and log in one pair: the remote as the task's user, the
   local Dovecot through the master user.  0, or an exit code with err
   set (what was opened is in *remote_r, *local_r). */
static int open_pair(const struct session *s, struct imap_client **remote_r,
		     struct imap_client **local_r, char *err, size_t errlen)
{
	const struct session_opts *so = &s->so;
	const struct task *t = s->task;
	const struct local_config *l = s->lc;
	struct imap_client_opts co;
	int rc;

	client_opts(so, &t->remote, "remote", &co);
	/* Only the remote is paced, and backs off when it throttles us. */
	co.throttle = s->throttle;
	co.backoff = true;
	progress_step("connecting to remote %s:%u (%s)", t->remote.host, t->remote.port,
		      security_name(t->remote.security));
	rc = imap_client_connect(&co, remote_r, err, errlen);
	if (rc == 0) {
		progress_step("logging in to remote as %s", t->remote_user);
		rc = imap_login(*remote_r, t->remote_user, s->remote_pw->value, NULL, 0,
				err, errlen);
	}
	if (rc != 0)
		return rc;
	struct imap_result res;
	(void)imap_id(*remote_r, &res);   /* courtesy for the remote's logs */
	client_opts(so, &l->ep, "local (Dovecot master user)", &co);
	progress_step("connecting to local %s:%u (%s)", l->ep.host, l->ep.port,
		      security_name(l->ep.security));
	rc = imap_client_connect(&co, local_r, err, errlen);
	if (rc == 0) {
		progress_step("logging in to local as %s%c%s", t->local_user,
			      l->master_separator, l->master_user);
		rc = imap_login(*local_r, t->local_user, s->master_pw->value, l->master_user,
				l->master_separator, err, errlen);
	}
	if (rc != 0)
		return rc;
	/* Local waits read the remote's answers meanwhile (copy.c overlaps
	   the next batch's FETCH with this one's APPEND). */
	imap_client_set_partner(*local_r, *remote_r);
	return 0;
}

int session_open(const struct session_opts *so, const struct task *t,
		 const struct local_config *l, struct session *s)
{
	int rc;

	s->so = *so;
	s->task = t;
	s->lc = l;
	if ((rc = load_secrets(t, l, s)) != 0)
		return rc;
	if (t->max_bytes_per_second != 0 || t->max_messages_per_second > 0)
		s->throttle = throttle_new(t->max_bytes_per_second,
					   t->max_messages_per_second, NULL);
	char err[600];
	if ((rc = open_pair(s, &s->remote, &s->local, err, sizeof(err))) != 0) {
		log_warnx("%s", err);
		return rc;
	}
	log_debug("logged in to both sides");
	return 0;
}

int session_open_pair(void *ctx, struct imap_client **remote_r, struct imap_client **local_r)
{
	char err[600];
	int rc = open_pair(ctx, remote_r, local_r, err, sizeof(err));

	if (rc != 0) {
		/* Only speed is lost: not the run's error. */
		log_msg(LOGL_WARNING, "%s", err);
		session_close_pair(ctx, remote_r, local_r);
	}
	return rc;
}

void session_close_pair(void *ctx, struct imap_client **remote, struct imap_client **local)
{
	(void)ctx;
	/* The local's LOGOUT must not read a remote already gone. */
	if (*local != NULL)
		imap_client_set_partner(*local, NULL);
	imap_client_logout(remote);
	imap_client_logout(local);
}
