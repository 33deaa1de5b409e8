/* imap_cmds.c - the typed IMAP commands (see imap_cmds.h).
 *
 * Each command writes its IMAP text, hooks the untagged answers it
 * collects (STATUS, SEARCH, FETCH, LIST, NAMESPACE) and runs through the
 * engine (imap_client_p.h).  Server data that goes back on the wire (flags,
 * dates) is checked here once more, at the last place before the wire;
 * server data that comes in (UIDs, flags, dates) is checked before a
 * caller sees it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "imap_client_p.h"
#include "imap_cmds.h"
#include "imap_syntax.h"
#include "util.h"

/* A command refused before it went on the wire, as if the server had
   answered BAD: it is our bug. */
static int refuse(struct imap_result *res, const char *why)
{
	if (res != NULL) {
		memset(res, 0, sizeof(*res));
		res->status = IMAP_STATUS_BAD;
		res->scope = IMAP_SCOPE_MAILBOX;
		res->exit_class = EXIT_SOFTWARE;
		snprintf(res->text, sizeof(res->text), "%s", why);
	}
	return EXIT_SOFTWARE;
}

/* A command with nothing to do: OK, and nothing sent. */
static int nothing_to_do(struct imap_result *res)
{
	if (res != NULL) {
		memset(res, 0, sizeof(*res));
		res->status = IMAP_STATUS_OK;
	}
	return 0;
}

/* Idempotent commands are sent again when the server throttles them
   (imap_backoff_retry): RETRYING(c, res, "WHAT", rc = <run, filling r>)
   runs the statement until it succeeds, fails otherwise, or the backoff
   gives up.  r is res, or a result of its own when res is NULL. */
#define RETRYING(c, res, what, stmt) do { \
		struct imap_backoff bo_ = { 0 }; \
		struct imap_result own_, *r = (res) != NULL ? (res) : &own_; \
		do { \
			stmt; \
		} while (rc != 0 && imap_backoff_retry((c), &bo_, (what), r)); \
	} while (0)

/* "VERB mailbox", the name quoted. */
static int mailbox_cmd(struct imap_client *c, const char *verb, const char *mailbox,
		       struct imap_result *res)
{
	char *q = imap_quote(mailbox);
	int rc = imap_simple(c, res, "%s %s", verb, q);

	free(q);
	return rc;
}

/* ------------------------------------------------------------------ */
/* SELECT, STATUS, CREATE, SUBSCRIBE                                   */

int imap_select(struct imap_client *c, const char *mailbox, bool readonly,
		struct imap_mailbox *box_r, struct imap_result *res)
{
	int rc;

	memset(&c->box, 0, sizeof(c->box));
	c->selected = false;
	c->box_grew = false;
	RETRYING(c, res, readonly ? "EXAMINE" : "SELECT",
		 rc = mailbox_cmd(c, readonly ? "EXAMINE" : "SELECT", mailbox, r));
	c->selected = rc == 0;
	*box_r = c->box;
	return rc;
}

static bool status_untagged(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *resp)
{
	struct imap_mailbox *box = cmd->ctx;
	const struct imap_arg *a;
	uint64_t v;

	if (resp->name == NULL || strcmp(resp->name, "STATUS") != 0)
		return false;
	a = resp->args;
	if (a == NULL || a->next == NULL || a->next->type != IMAP_ARG_LIST)
		return true;
	for (a = a->next->list; a != NULL && a->next != NULL; a = a->next->next) {
		if (!imap_arg_get_number(a->next, &v))
			continue;
		if (imap_arg_is_atom(a, "UIDNEXT"))
			box->uidnext = (uint32_t)v;
		else if (imap_arg_is_atom(a, "UIDVALIDITY"))
			box->uidvalidity = (uint32_t)v;
		else if (imap_arg_is_atom(a, "MESSAGES"))
			box->exists = (uint32_t)v;
		else if (imap_arg_is_atom(a, "HIGHESTMODSEQ"))
			box->highestmodseq = v;
	}
	return true;
}

static int status_once(struct imap_client *c, const char *mailbox,
		       struct imap_mailbox *box_r, struct imap_result *res)
{
	struct imap_cmd *cmd = imap_cmd_new(c);
	char *q = imap_quote(mailbox);

	memset(box_r, 0, sizeof(*box_r));
	/* HIGHESTMODSEQ: an unchanged folder is skipped on its word. */
	imap_cmd_text(cmd, "STATUS %s (MESSAGES UIDNEXT UIDVALIDITY%s)", q,
		      imap_client_has_cap(c, CAP_CONDSTORE) ? " HIGHESTMODSEQ" : "");
	free(q);
	cmd->untagged = status_untagged;
	cmd->ctx = box_r;
	return imap_cmd_run(c, cmd, res);
}

int imap_status(struct imap_client *c, const char *mailbox,
		struct imap_mailbox *box_r, struct imap_result *res)
{
	int rc;

	RETRYING(c, res, "STATUS", rc = status_once(c, mailbox, box_r, r));
	return rc;
}

int imap_create(struct imap_client *c, const char *mailbox, struct imap_result *res)
{
	return mailbox_cmd(c, "CREATE", mailbox, res);
}

int imap_subscribe(struct imap_client *c, const char *mailbox, struct imap_result *res)
{
	return mailbox_cmd(c, "SUBSCRIBE", mailbox, res);
}

/* ------------------------------------------------------------------ */
/* UID SEARCH (UID lists and sets: uidset.c)                          */

/* A search answer is collected up to the selected mailbox's EXISTS plus
   this margin (an EXISTS may still come before the tagged reply); the
   exact check is made when the command is done. */
#define SEARCH_MARGIN 1000
#define SEARCH_MAX (50u * 1000 * 1000)

static size_t search_bound(const struct imap_client *c)
{
	return c->selected ? (size_t)c->box.exists + SEARCH_MARGIN : SEARCH_MAX;
}

static bool search_untagged(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *resp)
{
	struct uid_list *l = cmd->ctx;
	uint64_t v;

	if (resp->name == NULL)
		return false;
	if (strcmp(resp->name, "SEARCH") == 0) {
		for (const struct imap_arg *a = resp->args; a != NULL; a = a->next) {
			if (!imap_arg_get_number(a, &v) || v == 0 || v > UINT32_MAX)
				continue;
			if (l->count >= search_bound(c)) {
				imap_client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists more UIDs than "
					    "the mailbox has messages (%u)", c->box.exists);
				break;
			}
			uid_list_add(l, (uint32_t)v);
		}
		return true;
	}
	if (strcmp(resp->name, "ESEARCH") == 0) {
		for (const struct imap_arg *a = resp->args; a != NULL; a = a->next) {
			if (imap_arg_is_atom(a, "ALL") && a->next != NULL &&
			    a->next->type == IMAP_ARG_ATOM &&
			    !uid_set_parse(a->next->str, l, search_bound(c)))
				imap_client_fail(c, EXIT_PROTOCOL, "malformed ESEARCH result, or more UIDs "
					    "than the mailbox has messages (%u)", c->box.exists);
		}
		return true;
	}
	return false;
}

/* An answer no server could give for the selected mailbox: more UIDs
   than messages, or a UID at or past the UIDNEXT announced at SELECT
   while no new message was announced (EXISTS went up) since. */
static bool search_absurd(struct imap_client *c, const struct uid_list *l)
{
	if (!c->selected || l->count == 0)
		return false;
	if (l->count > c->box.exists) {
		imap_client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists %zu UIDs but the mailbox "
			    "has %u messages", l->count, c->box.exists);
		return true;
	}
	if (!c->box_grew && c->box.uidnext != 0 && l->uids[l->count - 1] >= c->box.uidnext) {
		imap_client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists UID %u but UIDNEXT is %u",
			    l->uids[l->count - 1], c->box.uidnext);
		return true;
	}
	return false;
}

int imap_uid_search(struct imap_client *c, unsigned keys, time_t before,
		    struct uid_list *uids_r, struct imap_result *res)
{
	char *criteria = imap_search_criteria(keys, before);
	struct imap_cmd *cmd;
	int rc;

	memset(uids_r, 0, sizeof(*uids_r));
	if (criteria == NULL)
		return refuse(res, "UID SEARCH: unknown search key, or a date out of range");
	RETRYING(c, res, "UID SEARCH", {
		uid_list_free(uids_r);   /* what a throttled try collected */
		cmd = imap_cmd_new(c);
		if (c->caps & CAP_ESEARCH)
			imap_cmd_text(cmd, "UID SEARCH RETURN (ALL) %s", criteria);
		else
			imap_cmd_text(cmd, "UID SEARCH %s", criteria);
		cmd->untagged = search_untagged;
		cmd->ctx = uids_r;
		rc = imap_cmd_run(c, cmd, r);
	});
	free(criteria);
	/* Sorted and without duplicates: a UID listed twice must not be
	   fetched and delivered twice. */
	uids_r->count = uid_array_sort_unique(uids_r->uids, uids_r->count);
	if (rc == 0 && search_absurd(c, uids_r)) {
		uid_list_free(uids_r);
		rc = c->failed;
		if (res != NULL)
			imap_client_dead_result(c, res);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* FETCH                                                               */

struct fetch_ctx {
	imap_fetch_cb *cb;
	void *ctx;
	/* The UIDs asked for, sorted; NULL: every FETCH is taken.  With
	   several fetches in flight, the server may answer them in any
	   order (Dovecot runs pipelined FETCHes side by side): an answer
	   goes to the command that asked for its UID. */
	const uint32_t *uids;
	size_t nuids;
};

static int cmp_uid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The UID a FETCH response names, 0 if none. */
static uint32_t response_uid(const struct imap_response *resp)
{
	uint64_t v;

	for (const struct imap_arg *a = resp->args->list; a != NULL && a->next != NULL;
	     a = a->next->next)
		if (imap_arg_is_atom(a, "UID") && imap_arg_get_number(a->next, &v) &&
		    v <= UINT32_MAX)
			return (uint32_t)v;
	return 0;
}

/* Only flags that can go back on the wire are kept (imap_flag_canonical);
   \Recent is dropped silently, anything else is counted. */
static void fetch_flags(struct imap_fetched *m, const struct imap_arg *list)
{
	char canon[IMAP_KEYWORD_MAX + 1];
	size_t o = 0;

	m->flags[0] = '\0';
	if (list->type != IMAP_ARG_LIST)
		return;
	for (const struct imap_arg *f = list->list; f != NULL; f = f->next) {
		if (f->type == IMAP_ARG_ATOM && strcasecmp(f->str, "\\Recent") == 0)
			continue;
		if (f->type != IMAP_ARG_ATOM || !imap_flag_canonical(f->str, canon)) {
			m->flags_dropped++;
			continue;
		}
		int n = snprintf(m->flags + o, sizeof(m->flags) - o, "%s%s",
				 o ? " " : "", canon);
		if (n < 0 || (size_t)n >= sizeof(m->flags) - o) {
			m->flags[o] = '\0';
			m->flags_dropped++;  /* absurdly many keywords: keep what fits */
			continue;
		}
		o += (size_t)n;
	}
}

/* The body is taken only from the exact section asked for: a partial
   (BODY[]<0>) or another section (BODY[HEADER]) is not the message. */
static bool is_body_item(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "BODY[]") == 0;
}

static bool fetch_untagged(struct imap_client *c, struct imap_cmd *cmd,
			   const struct imap_response *resp)
{
	struct fetch_ctx *fc = cmd->ctx;
	struct imap_fetched m;
	size_t streamed = 0;
	uint64_t v;

	if (resp->name == NULL || strcmp(resp->name, "FETCH") != 0 ||
	    resp->args == NULL || resp->args->type != IMAP_ARG_LIST)
		return false;
	if (fc->uids != NULL) {
		uint32_t uid = response_uid(resp);
		if (uid != 0 && bsearch(&uid, fc->uids, fc->nuids, sizeof(uid), cmp_uid) == NULL)
			return false;   /* another command's, or nobody's */
	}
	memset(&m, 0, sizeof(m));
	for (const struct imap_arg *a = resp->args->list; a != NULL && a->next != NULL;
	     a = a->next->next) {
		const struct imap_arg *val = a->next;
		if (val->type == IMAP_ARG_LITERAL_STREAMED && streamed < c->nstreamed &&
		    m.body == NULL && is_body_item(a)) {
			m.body = c->streamed[streamed];
			c->streamed[streamed] = NULL;
			streamed++;
			continue;
		}
		if (val->type == IMAP_ARG_LITERAL_STREAMED)
			streamed++;
		if (imap_arg_is_atom(a, "UID") && imap_arg_get_number(val, &v) && v <= UINT32_MAX)
			m.uid = (uint32_t)v;
		else if (imap_arg_is_atom(a, "FLAGS"))
			fetch_flags(&m, val);
		else if (imap_arg_is_atom(a, "INTERNALDATE"))
			m.date_invalid = val->type != IMAP_ARG_STRING ||
				!imap_date_time_canonical(val->str, m.internaldate);
		else if (imap_arg_is_atom(a, "RFC822.SIZE") && imap_arg_get_number(val, &v))
			m.size = v;
		else if (is_body_item(a) && m.body == NULL &&
			 (val->type == IMAP_ARG_LITERAL || val->type == IMAP_ARG_STRING)) {
			m.body = msgbody_new(c->opts.spool_dir);
			if (!msgbody_write(m.body, val->str, val->len))
				imap_client_fail(c, EXIT_IOERR, "cannot spool a message: %s",
					    strerror(errno));
		}
	}
	bool body = m.body != NULL;
	/* FETCH without UID is an unsolicited flag update: not ours. */
	if (m.uid != 0)
		fc->cb(fc->ctx, &m);
	msgbody_free(&m.body);
	/* A message body arrived: the remote's pace (max_messages_per_second). */
	if (body)
		imap_client_throttle_message(c);
	return true;
}

/* The caller's callback, counted: a throttled FETCH is sent again only
   if it handed nothing to the caller yet (a second answer for a message
   the caller has seen would be news to it). */
struct fetch_count {
	imap_fetch_cb *cb;
	void *ctx;
	unsigned n;
};

static void fetch_count_cb(void *ctx, struct imap_fetched *m)
{
	struct fetch_count *fc = ctx;

	fc->n++;
	fc->cb(fc->ctx, m);
}

int imap_uid_fetch(struct imap_client *c, const char *uidset, const char *items,
		   imap_fetch_cb *cb, void *ctx, struct imap_result *res)
{
	struct fetch_count fc = { cb, ctx, 0 };
	struct imap_backoff bo = { 0 };
	struct imap_result own, *r = res != NULL ? res : &own;
	int rc;

	do
		rc = imap_uid_fetch_many(c, &uidset, 1, items, fetch_count_cb, &fc, r);
	while (rc != 0 && fc.n == 0 && imap_backoff_retry(c, &bo, "UID FETCH", r));
	return rc;
}

int imap_uid_fetch_many(struct imap_client *c, const char *const *uidsets, size_t n,
			const char *items, imap_fetch_cb *cb, void *ctx,
			struct imap_result *res)
{
	struct fetch_ctx fc = { cb, ctx, NULL, 0 };
	struct imap_cmd **cmds = xcalloc(n, sizeof(*cmds));
	int rc;

	/* All on the wire at once: the server streams the answers back to
	   back, with no round trip between the commands. */
	for (size_t i = 0; i < n; i++) {
		cmds[i] = imap_cmd_new(c);
		imap_cmd_text(cmds[i], "UID FETCH %s (UID %s)", uidsets[i], items);
		cmds[i]->untagged = fetch_untagged;
		cmds[i]->ctx = &fc;
		imap_cmd_enqueue(c, cmds[i]);
	}
	rc = imap_cmds_wait(c, cmds, n, res);
	imap_cmds_release(c, cmds, n);   /* none keeps a pointer to fc */
	free(cmds);
	return rc;
}

struct imap_fetch_pending {
	struct fetch_ctx fc;
	uint32_t *uids;
	char *text;          /* the command after its tag, to send again */
	struct imap_cmd *cmd;
};

static void fetch_pending_send(struct imap_client *c, struct imap_fetch_pending *p)
{
	p->cmd = imap_cmd_new(c);
	imap_cmd_text(p->cmd, "%s", p->text);
	p->cmd->untagged = fetch_untagged;
	p->cmd->ctx = &p->fc;
	imap_cmd_enqueue(c, p->cmd);
	imap_client_flush(c);
}

struct imap_fetch_pending *imap_uid_fetch_send(struct imap_client *c, const uint32_t *uids,
					       size_t n, const char *items,
					       imap_fetch_cb *cb, void *ctx)
{
	struct imap_fetch_pending *p = xcalloc(1, sizeof(*p));

	p->uids = xcalloc(n + 1, sizeof(*p->uids));
	memcpy(p->uids, uids, n * sizeof(*uids));
	n = uid_array_sort_unique(p->uids, n);
	p->fc = (struct fetch_ctx){ cb, ctx, p->uids, n };
	char *set = uid_list_to_set(p->uids, n);
	p->text = xasprintf("UID FETCH %s (UID %s)", set, items);
	free(set);
	fetch_pending_send(c, p);
	return p;
}

int imap_uid_fetch_wait(struct imap_client *c, struct imap_fetch_pending **pp,
			struct imap_result *res)
{
	struct imap_fetch_pending *p = *pp;
	struct imap_backoff bo = { 0 };
	struct imap_result r;
	int rc;

	/* Throttled ([THROTTLED], Office 365's suggested backoff): sent
	   again after the wait.  What was answered before comes again; the
	   caller takes a UID once (the same as any server may answer a UID
	   twice). */
	for (;;) {
		rc = imap_cmd_wait(c, p->cmd);
		r = p->cmd->res;
		imap_cmds_release(c, &p->cmd, 1);   /* unhooks p->fc from a dead one */
		if (rc == 0 || !imap_backoff_retry(c, &bo, "UID FETCH", &r))
			break;
		fetch_pending_send(c, p);
	}
	if (res != NULL)
		*res = r;
	free(p->text);
	free(p->uids);
	free(p);
	*pp = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* APPEND                                                              */

/* "(\Seen $Label)" for space-separated flags (NULL: none), without the
   flags no server could take; for APPEND and STORE.  Flags and dates are
   checked again here, whoever built them: this is the last place before
   the wire (see imap_flag_canonical).  free() it. */
static char *flag_list(const char *flags)
{
	char canon[IMAP_KEYWORD_MAX + 1];
	const char *f = flags ? flags : "";
	struct buf b = { 0 };

	buf_append(&b, "(", 1);
	while (*f != '\0') {
		size_t len = strcspn(f, " ");
		char *one = xstrndup(f, len);
		if (imap_flag_canonical(one, canon))
			buf_appendf(&b, "%s%s", b.len > 1 ? " " : "", canon);
		free(one);
		f += len;
		f += strspn(f, " ");
	}
	buf_append(&b, ")", 2);   /* includes the NUL */
	return (char *)b.data;
}

static void append_one(struct imap_client *c, struct imap_cmd *cmd,
		       const struct imap_append_msg *m)
{
	char date[IMAP_DATE_TIME_LEN];
	char *flags = flag_list(m->flags);
	struct cmd_part *p;

	imap_cmd_text(cmd, " %s", flags);
	free(flags);
	if (m->internaldate != NULL && imap_date_time_canonical(m->internaldate, date))
		imap_cmd_text(cmd, " \"%s\"", date);
	imap_cmd_text(cmd, " ");
	p = imap_cmd_add_part(cmd, PART_BODY);
	p->body = m->body;
	/* NUL bytes only travel in a literal8, which BINARY allows. */
	p->literal8 = msgbody_has_nul(m->body) && (c->caps & CAP_BINARY);
}

static void fill_uids(const struct imap_result *r, size_t n,
		      uint32_t *uidvalidity_r, uint32_t *uids_r)
{
	struct uid_list l = { 0 };

	if (r->appenduid_set[0] != '\0' && uid_set_parse(r->appenduid_set, &l, n) &&
	    l.count == n) {
		memcpy(uids_r, l.uids, n * sizeof(*uids_r));
		*uidvalidity_r = r->appenduid_validity;
	}
	uid_list_free(&l);
}

int imap_append(struct imap_client *c, const char *mailbox,
		const struct imap_append_msg *msgs, size_t n,
		uint32_t *uidvalidity_r, uint32_t *uids_r, struct imap_result *res)
{
	char *q = imap_quote(mailbox);
	int rc = 0;

	*uidvalidity_r = 0;
	memset(uids_r, 0, n * sizeof(*uids_r));
	if (n > 1 && (c->caps & CAP_MULTIAPPEND)) {
		/* One transaction: all messages are saved, or none is
		   (RFC 3502), which keeps the journal's intents simple. */
		struct imap_cmd *cmd = imap_cmd_new(c);
		imap_cmd_text(cmd, "APPEND %s", q);
		for (size_t i = 0; i < n; i++)
			append_one(c, cmd, &msgs[i]);
		rc = imap_cmd_run(c, cmd, res);
		if (rc == 0)
			fill_uids(res, n, uidvalidity_r, uids_r);
		free(q);
		return rc;
	}
	/* Without MULTIAPPEND: pipeline single APPENDs, then collect. */
	struct imap_cmd **cmds = xcalloc(n, sizeof(*cmds));
	for (size_t i = 0; i < n; i++) {
		cmds[i] = imap_cmd_new(c);
		imap_cmd_text(cmds[i], "APPEND %s", q);
		append_one(c, cmds[i], &msgs[i]);
		imap_cmd_enqueue(c, cmds[i]);
	}
	rc = imap_cmds_wait(c, cmds, n, res);
	for (size_t i = 0; i < n; i++) {
		const struct imap_result *r = &cmds[i]->res;
		uint32_t uv = 0;
		if (r->status != IMAP_STATUS_OK || r->exit_class != EXIT_OK)
			continue;   /* not saved */
		fill_uids(r, 1, &uv, &uids_r[i]);
		if (uv != 0)
			*uidvalidity_r = uv;
	}
	imap_cmds_release(c, cmds, n);
	free(cmds);
	free(q);
	return rc;
}

/* ------------------------------------------------------------------ */
/* LIST, NAMESPACE, ENABLE, ID                                         */

struct list_ctx {
	struct imap_list_entry *v;
	size_t n, cap;
};

static unsigned list_attr(const char *a)
{
	static const struct { const char *name; unsigned attr; } map[] = {
		{ "\\Noselect", MBOX_NOSELECT }, { "\\NonExistent", MBOX_NONEXISTENT },
		{ "\\Noinferiors", MBOX_NOINFERIORS }, { "\\HasChildren", MBOX_HASCHILDREN },
		{ "\\Subscribed", MBOX_SUBSCRIBED }, { "\\Sent", MBOX_SENT },
		{ "\\Drafts", MBOX_DRAFTS }, { "\\Trash", MBOX_TRASH }, { "\\Junk", MBOX_JUNK },
		{ "\\Archive", MBOX_ARCHIVE }, { "\\All", MBOX_ALL }, { "\\Flagged", MBOX_FLAGGED },
	};

	for (size_t i = 0; i < N_ELEMENTS(map); i++)
		if (strcasecmp(a, map[i].name) == 0)
			return map[i].attr;
	return 0;
}

static bool list_untagged(struct imap_client *c, struct imap_cmd *cmd,
			  const struct imap_response *resp)
{
	struct list_ctx *lc = cmd->ctx;
	const struct imap_arg *attrs, *delim, *name;
	const char *d, *nm;

	(void)c;
	if (resp->name == NULL || strcmp(resp->name, "LIST") != 0)
		return false;
	attrs = resp->args;
	delim = attrs ? attrs->next : NULL;
	name = delim ? delim->next : NULL;
	if (attrs == NULL || attrs->type != IMAP_ARG_LIST || name == NULL ||
	    !imap_arg_get_nstring(delim, &d) || (nm = imap_arg_as_astring(name)) == NULL ||
	    strlen(nm) != name->len)
		return true;   /* malformed or NUL in a name: not a usable mailbox */
	if (lc->n == lc->cap) {
		lc->cap = lc->cap ? lc->cap * 2 : 32;
		lc->v = xreallocarray(lc->v, lc->cap, sizeof(*lc->v));
	}
	struct imap_list_entry *e = &lc->v[lc->n++];
	e->name = xstrdup(nm);
	e->delim = d != NULL ? d[0] : '\0';
	e->attrs = 0;
	for (const struct imap_arg *a = attrs->list; a != NULL; a = a->next)
		if (a->type == IMAP_ARG_ATOM)
			e->attrs |= list_attr(a->str);
	return true;
}

int imap_list(struct imap_client *c, const char *pattern,
	      struct imap_list_entry **entries_r, size_t *n_r, struct imap_result *res)
{
	struct list_ctx lc = { 0 };
	struct imap_cmd *cmd = imap_cmd_new(c);
	char *q = imap_quote(pattern);
	int rc;

	if ((c->caps & CAP_LIST_EXTENDED) && (c->caps & CAP_SPECIAL_USE))
		imap_cmd_text(cmd, "LIST \"\" %s RETURN (SPECIAL-USE SUBSCRIBED)", q);
	else
		imap_cmd_text(cmd, "LIST \"\" %s", q);
	free(q);
	cmd->untagged = list_untagged;
	cmd->ctx = &lc;
	rc = imap_cmd_run(c, cmd, res);
	*entries_r = lc.v;
	*n_r = lc.n;
	return rc;
}

void imap_list_free(struct imap_list_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(entries[i].name);
	free(entries);
}

struct ns_ctx {
	char *prefix;
	size_t len;
	char delim;
	bool found;
};

static bool namespace_untagged(struct imap_client *c, struct imap_cmd *cmd,
			       const struct imap_response *resp)
{
	struct ns_ctx *ns = cmd->ctx;
	const struct imap_arg *personal = resp->args, *first;
	const char *p, *d;

	(void)c;
	if (resp->name == NULL || strcmp(resp->name, "NAMESPACE") != 0)
		return false;
	/* (("prefix" "delim") ...) NIL NIL: the first personal one. */
	if (personal == NULL || personal->type != IMAP_ARG_LIST ||
	    (first = personal->list) == NULL || first->type != IMAP_ARG_LIST ||
	    first->list == NULL || first->list->next == NULL)
		return true;
	p = imap_arg_as_astring(first->list);
	if (p == NULL || !imap_arg_get_nstring(first->list->next, &d))
		return true;
	snprintf(ns->prefix, ns->len, "%s", p);
	ns->delim = d != NULL ? d[0] : '\0';
	ns->found = true;
	return true;
}

int imap_namespace(struct imap_client *c, char *prefix, size_t prefix_len,
		   char *delim_r, struct imap_result *res)
{
	struct ns_ctx ns = { prefix, prefix_len, '\0', false };
	int rc;

	prefix[0] = '\0';
	*delim_r = '\0';
	if (c->caps & CAP_NAMESPACE) {
		struct imap_cmd *cmd = imap_cmd_new(c);
		imap_cmd_text(cmd, "NAMESPACE");
		cmd->untagged = namespace_untagged;
		cmd->ctx = &ns;
		if ((rc = imap_cmd_run(c, cmd, res)) != 0)
			return rc;
		if (ns.found) {
			*delim_r = ns.delim;
			return 0;
		}
	}
	/* Without NAMESPACE: the delimiter of the root, per RFC 3501 6.3.8. */
	struct imap_list_entry *v = NULL;
	size_t n = 0;
	struct imap_cmd *cmd = imap_cmd_new(c);
	struct list_ctx lc = { 0 };
	imap_cmd_text(cmd, "LIST \"\" \"\"");
	cmd->untagged = list_untagged;
	cmd->ctx = &lc;
	rc = imap_cmd_run(c, cmd, res);
	v = lc.v;
	n = lc.n;
	if (rc == 0 && n > 0)
		*delim_r = v[0].delim;
	imap_list_free(v, n);
	return rc;
}

int imap_enable(struct imap_client *c, const char *exts, struct imap_result *res)
{
	if (!(c->caps & CAP_ENABLE))
		return 0;
	return imap_simple(c, res, "ENABLE %s", exts);
}

int imap_id(struct imap_client *c, struct imap_result *res)
{
	if (!(c->caps & CAP_ID))
		return 0;
	return imap_simple(c, res, "ID (\"name\" \"imapsync-task\" \"version\" \"%s\")",
			   PACKAGE_VERSION);
}

/* ------------------------------------------------------------------ */
/* commands over a UID array: STORE, EXPUNGE, FILTER                   */

/* Run "<verb> <set><tail>" for the UIDs of uids[0..n): a sorted copy
   without duplicates (and without 0, which is no UID) is cut into sets
   of at most chunk UIDs, one command each, in order, until one fails.
   res is that failure's result, or the last command's. */
static int run_over_uids(struct imap_client *c, const uint32_t *uids, size_t n,
			 size_t chunk, const char *verb, const char *tail, bool retry,
			 struct imap_result *res)
{
	uint32_t *v;
	size_t i, k;
	int rc = nothing_to_do(res);   /* the answer if no UID is given */

	if (n == 0)
		return rc;
	v = xreallocarray(NULL, n, sizeof(*v));
	memcpy(v, uids, n * sizeof(*v));
	n = uid_array_sort_unique(v, n);
	i = v[0] == 0 ? 1 : 0;         /* sorted: a 0 (no UID) comes first */
	for (; i < n && rc == 0; i += k) {
		k = n - i < chunk ? n - i : chunk;
		char *set = uid_list_to_set(v + i, k);
		if (retry)     /* idempotent: flags set or cleared again */
			RETRYING(c, res, verb, rc = imap_simple(c, r, "%s %s%s", verb, set, tail));
		else
			rc = imap_simple(c, res, "%s %s%s", verb, set, tail);
		free(set);
	}
	free(v);
	return rc;
}

int imap_uid_store(struct imap_client *c, const uint32_t *uids, size_t n, bool add,
		   const char *flags, struct imap_result *res)
{
	char *list = flag_list(flags);
	char *tail = xasprintf(" %cFLAGS.SILENT %s", add ? '+' : '-', list);
	int rc = run_over_uids(c, uids, n, IMAP_UID_CHUNK, "UID STORE", tail, true, res);

	free(tail);
	free(list);
	return rc;
}

int imap_uid_expunge(struct imap_client *c, const uint32_t *uids, size_t n,
		     struct imap_result *res)
{
	if (!(c->caps & CAP_UIDPLUS))
		return refuse(res, "UID EXPUNGE needs UIDPLUS, which the server does not offer");
	return run_over_uids(c, uids, n, IMAP_UID_CHUNK, "UID EXPUNGE", "", false, res);
}

int imap_expunge(struct imap_client *c, struct imap_result *res)
{
	return imap_simple(c, res, "EXPUNGE");
}

int imap_filter_sieve(struct imap_client *c, const uint32_t *uids, size_t n,
		      struct imap_result *res)
{
	/* One command: the script runs once over all of them. */
	return run_over_uids(c, uids, n, n, "FILTER SIEVE DELIVERY UID", "", false, res);
}
