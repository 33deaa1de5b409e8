/* imap_login.c - authentication: SASL PLAIN (with SASL-IR or after a
 * "+") when the server offers it, else LOGIN with both strings as
 * literals.  Credentials are never hand-quoted, never traced, and every
 * form of them that went on the wire is registered with log.c as a
 * secret, so a server that echoes one does not get it into a log.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "imap_client_p.h"
#include "imap_syntax.h"
#include "util.h"

static char *base64_encode(const unsigned char *in, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len) v |= in[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static bool credential_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

static int login_run(struct imap_client *c, const char *user, const char *password,
		     const char *authzid, char sep, char *err, size_t errlen)
{
	struct imap_result res;
	struct imap_cmd *cmd;
	int rc;

	if (!credential_ok(user) || !credential_ok(password) ||
	    (authzid != NULL && !credential_ok(authzid))) {
		snprintf(err, errlen, "%s: user name or password contains CR or LF", c->label);
		return EXIT_CONFIG;
	}
	if (c->caps & CAP_LOGINDISABLED && !(c->caps & CAP_AUTH_PLAIN)) {
		snprintf(err, errlen, "%s: server refuses logins (LOGINDISABLED)", c->label);
		return EXIT_NOPERM;
	}
	/* The password as an IMAP quoted string would escape " and \. */
	char *quoted = imap_quote(password);
	quoted[strlen(quoted) - 1] = '\0';
	if (strcmp(quoted + 1, password) != 0)
		imap_client_keep_secret(c, 1, xstrdup(quoted + 1));
	explicit_wipe(quoted, strlen(quoted));
	free(quoted);
	cmd = imap_cmd_new(c);
	cmd->barrier = true;
	if (c->caps & CAP_AUTH_PLAIN) {
		/* SASL PLAIN: authzid NUL authcid NUL password.  For a master
		   login the target user is the authzid and the master user
		   authenticates, so no separator is ever joined by hand. */
		struct buf sasl = { 0 };
		const char *authcid = authzid != NULL ? authzid : user;
		const char *target = authzid != NULL ? user : "";
		buf_append(&sasl, target, strlen(target));
		buf_append(&sasl, "", 1);
		buf_append(&sasl, authcid, strlen(authcid));
		buf_append(&sasl, "", 1);
		buf_append(&sasl, password, strlen(password));
		char *b64 = base64_encode(sasl.data, sasl.len);
		explicit_wipe(sasl.data, sasl.len);
		buf_free(&sasl);
		if (c->caps & CAP_SASL_IR) {
			imap_cmd_text(cmd, "AUTHENTICATE PLAIN ");
			struct cmd_part *p = imap_cmd_add_part(cmd, PART_TEXT);
			p->secret = true;
			buf_append(&p->data, b64, strlen(b64));
		} else {
			imap_cmd_text(cmd, "AUTHENTICATE PLAIN\r\n");
			struct cmd_part *p = imap_cmd_add_part(cmd, PART_CONT_LINE);
			p->secret = true;
			buf_append(&p->data, b64, strlen(b64));
		}
		imap_client_keep_secret(c, 0, b64);
	} else {
		char *login = authzid != NULL ? xasprintf("%s%c%s", user, sep, authzid)
					      : xstrdup(user);
		imap_cmd_text(cmd, "LOGIN ");
		imap_cmd_literal(cmd, login, strlen(login), false);
		imap_cmd_text(cmd, " ");
		imap_cmd_literal(cmd, password, strlen(password), true);
		free(login);
	}
	rc = imap_cmd_run(c, cmd, &res);
	if (rc == 0) {
		/* Servers may change capabilities after login. */
		if (res.code[0] == '\0' || strcmp(res.code, "CAPABILITY") != 0)
			return imap_client_query_caps(c, err, errlen);
		return 0;
	}
	if (res.status == IMAP_STATUS_NONE) {
		snprintf(err, errlen, "%s", res.text);
		return rc;
	}
	/* A master login refused as AUTHORIZATIONFAILED: the master user's
	   password was right, but it may not become user -- with Dovecot
	   most often because there is no such user. */
	bool no_user = authzid != NULL && strcmp(res.code, "AUTHORIZATIONFAILED") == 0;
	snprintf(err, errlen, "%s: login as %s%s%s%s failed%s%s: %s%s%s%s", c->label, user,
		 authzid ? " (master user " : "", authzid ? authzid : "",
		 authzid ? ")" : "", res.code[0] ? " " : "", res.code, res.text,
		 no_user ? "; the local user " : "", no_user ? user : "",
		 no_user ? " may not exist (check local_user), or the master user may "
			   "not log in as it" : "");
	/* A NO to a login is an authentication failure whatever the code. */
	return res.status == IMAP_STATUS_NO ? EXIT_NOPERM : rc;
}

int imap_login(struct imap_client *c, const char *user, const char *password,
	       const char *authzid, char sep, char *err, size_t errlen)
{
	int rc;

	imap_client_setup_begin(c);
	rc = login_run(c, user, password, authzid, sep, err, errlen);
	imap_client_setup_end(c);
	return rc;
}
