/* lmtp.c - a small LMTP client (RFC 2033) for delivery = lmtp.
 *
 * A session holds up to LMTP_CONNS connections, each greeted with LHLO
 * once.  lmtp_deliver_batch drives them all from one poll() loop in this
 * thread: each connection is a small state machine (struct lmtp_conn)
 * stepped when its socket is ready, so several messages are on the wire
 * at once.  With PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one
 * write and the body follows the 354; without it, one command per reply.
 * Bodies are streamed from their msgbody with dot-stuffing, a chunk at a
 * time; never held whole in memory.  Replies are classified by their
 * codes, with the enhanced status code telling a full mailbox (x.2.2)
 * apart.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "exitcode.h"
#include "lmtp.h"
#include "net.h"
#include "util.h"

#define LMTP_LINE_MAX 4096
#define LMTP_CHUNK 65536

enum conn_state {
	CS_IDLE,      /* greeted, no transaction */
	CS_ENVELOPE,  /* MAIL (RCPT, DATA) sent, their replies awaited */
	CS_BODY,      /* after 354: the body goes out */
	CS_FINAL,     /* the final "." queued; its reply awaited */
	CS_RSET,      /* after a refusal: RSET sent, its reply awaited */
	CS_DEAD,      /* lost or never opened */
};

struct lmtp_conn {
	struct net_conn *conn;
	int fd;
	bool pipelining;        /* the server announced PIPELINING in LHLO */
	enum conn_state state;
	struct buf in;          /* received, not parsed yet */
	struct buf out;         /* to send, from out_off on */
	size_t out_off;
	int64_t deadline;       /* of silence: every byte either way resets it */
	/* The transaction under way. */
	struct lmtp_msg *msg;
	const char *rcpt;
	int replies;            /* envelope replies read: MAIL, RCPT, DATA */
	bool refused;           /* one of them refused: code and text say how */
	int code;
	char text[LMTP_LINE_MAX];
	bool discard;           /* a 354 after a refusal: "." without a body */
	uint64_t body_off;
	bool at_line_start;
};

struct lmtp_session {
	struct lmtp_conn conns[LMTP_CONNS];
	char *target;
	bool opened_all;        /* the extra connections were tried */
	bool halt;              /* start no more transactions in this batch */
	int timeout_ms;
	void (*progress)(void *ctx);
	void *progress_ctx;
	int64_t last_progress;
	/* Another connection read while deliveries wait (lmtp_set_side_reader). */
	int (*side_fd)(void *ctx, bool *ready_r);
	void (*side_read)(void *ctx);
	void *side_ctx;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void alive(struct lmtp_session *s)
{
	s->last_progress = now_ms();
	if (s->progress != NULL)
		s->progress(s->progress_ctx);
}

/* Take one reply (possibly multi-line "250-...") from c->in.  1: *code_r
   has the three-digit code and text the last line; 0: more data needed;
   -1: not a reply.  *pipelining_r (may be NULL) is set when a line
   announces PIPELINING (the LHLO reply). */
static int parse_reply(struct lmtp_conn *c, int *code_r, char *text, size_t len,
		       bool *pipelining_r)
{
	for (;;) {
		unsigned char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (nl == NULL)
			return c->in.len > LMTP_LINE_MAX ? -1 : 0;
		size_t linelen = (size_t)(nl - c->in.data) + 1;
		char line[LMTP_LINE_MAX + 1];
		size_t copy = linelen < sizeof(line) ? linelen : sizeof(line) - 1;
		memcpy(line, c->in.data, copy);
		line[copy] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		buf_consume(&c->in, linelen);
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
			return -1;
		if (pipelining_r != NULL && (line[3] == '-' || line[3] == ' ') &&
		    strncasecmp(line + 4, "PIPELINING", 10) == 0 &&
		    (line[14] == '\0' || line[14] == ' '))
			*pipelining_r = true;
		if (line[3] == '-')
			continue;
		*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		snprintf(text, len, "%s", line);
		return 1;
	}
}

/* Wait for one reply (greeting, LHLO, QUIT): only outside a batch. */
static bool read_reply_wait(struct lmtp_session *s, struct lmtp_conn *c, int *code_r,
			    char *text, size_t len, bool *pipelining_r)
{
	for (;;) {
		int r = parse_reply(c, code_r, text, len, pipelining_r);
		if (r != 0)
			return r > 0;
		enum net_status st;
		buf_reserve(&c->in, 4096);
		ssize_t n = net_read(c->conn, c->in.data + c->in.len, 4096, s->timeout_ms, &st);
		if (n < 0)
			return false;
		c->in.len += (size_t)n;
	}
}

/* Queue prefix + arg + suffix as one line; arg never holds CR or LF. */
static bool queue_line(struct lmtp_conn *c, const char *prefix, const char *arg,
		       const char *suffix)
{
	char line[1100];
	int n = snprintf(line, sizeof(line), "%s%s%s\r\n", prefix, arg, suffix);

	if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(arg, "\r\n") != NULL)
		return false;
	buf_append(&c->out, line, (size_t)n);
	return true;
}

static void conn_close(struct lmtp_conn *c)
{
	net_close(&c->conn);
	c->fd = -1;
	c->state = CS_DEAD;
	c->msg = NULL;
	buf_free(&c->in);
	buf_free(&c->out);
	c->out_off = 0;
}

/* Connect and greet: 0, or an exit code with err set. */
static int conn_open(struct lmtp_session *s, struct lmtp_conn *c, char *err, size_t errlen)
{
	const char *target = s->target;
	char sub[400], text[LMTP_LINE_MAX];
	enum net_status st;
	int code;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = CS_DEAD;
	if (target[0] == '/') {
		st = net_connect_unix(target, s->timeout_ms, &c->conn, sub, sizeof(sub));
	} else {
		const char *colon = strrchr(target, ':');
		char *host = colon ? xstrndup(target, (size_t)(colon - target)) : xstrdup(target);
		uint32_t port = 24;
		if (colon != NULL && (!str_to_u32(colon + 1, &port) || port == 0 || port > 65535)) {
			free(host);
			snprintf(err, errlen, "lmtp: bad address %s", target);
			return EXIT_CONFIG;
		}
		st = net_connect(host, (uint16_t)port, s->timeout_ms, &c->conn, sub, sizeof(sub));
		free(host);
	}
	if (st != NET_OK) {
		snprintf(err, errlen, "local LMTP: %s", sub);
		return EXIT_UNAVAILABLE;
	}
	c->fd = net_fd(c->conn);
	bool pipelining = false;
	if (!read_reply_wait(s, c, &code, text, sizeof(text), NULL) || code != 220 ||
	    !queue_line(c, "LHLO ", "imapsync-task.localhost", "") ||
	    net_write(c->conn, c->out.data, c->out.len, s->timeout_ms) != NET_OK ||
	    !read_reply_wait(s, c, &code, text, sizeof(text), &pipelining) || code != 250) {
		snprintf(err, errlen, "local LMTP at %s: no usable greeting", target);
		conn_close(c);
		return EXIT_UNAVAILABLE;
	}
	c->out.len = 0;
	c->pipelining = pipelining;
	c->state = CS_IDLE;
	return 0;
}

int lmtp_open(const char *target, int timeout_ms, void (*progress)(void *ctx),
	      void *progress_ctx, struct lmtp_session **s_r, char *err, size_t errlen)
{
	struct lmtp_session *s = xcalloc(1, sizeof(*s));

	for (size_t i = 0; i < LMTP_CONNS; i++) {
		s->conns[i].fd = -1;
		s->conns[i].state = CS_DEAD;
	}
	s->target = xstrdup(target);
	s->timeout_ms = timeout_ms;
	s->progress = progress;
	s->progress_ctx = progress_ctx;
	int rc = conn_open(s, &s->conns[0], err, errlen);
	if (rc != 0) {
		lmtp_close(&s);
		return rc;
	}
	*s_r = s;
	return 0;
}

/* The other connections, once a batch has more than one message: a
   connection that does not open costs only speed.  A test that cuts a
   connection at a byte offset (tests/integration/t_faultproxy.py) needs
   one connection's bytes alone on the wire: IMAPSYNC_TEST_LMTP_CONNS
   lowers the number, as IMAPSYNC_TEST_KILL_AT stops a run (journal.c). */
static void open_more(struct lmtp_session *s)
{
	const char *test = getenv("IMAPSYNC_TEST_LMTP_CONNS");
	uint32_t max = LMTP_CONNS;
	char err[600];

	if (s->opened_all)
		return;
	s->opened_all = true;
	if (test != NULL && (!str_to_u32(test, &max) || max < 1 || max > LMTP_CONNS))
		max = LMTP_CONNS;
	for (size_t i = 1; i < max; i++)
		if (s->conns[i].state == CS_DEAD && conn_open(s, &s->conns[i], err, sizeof(err)) != 0)
			break;
}

void lmtp_close(struct lmtp_session **sp)
{
	struct lmtp_session *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < LMTP_CONNS; i++) {
		struct lmtp_conn *c = &s->conns[i];
		if (c->state == CS_IDLE) {
			c->out.len = c->out_off = 0;
			if (queue_line(c, "QUIT", "", ""))
				(void)net_write(c->conn, c->out.data, c->out.len, s->timeout_ms);
		}
		conn_close(c);
	}
	free(s->target);
	free(s);
	*sp = NULL;
}

static enum lmtp_outcome classify(int code, const char *text)
{
	int c, cls, sub, detail;

	if (code == 250)
		return LMTP_DELIVERED;
	/* Enhanced status code (RFC 3463) x.2.2: mailbox full. */
	if (sscanf(text, "%d %d.%d.%d", &c, &cls, &sub, &detail) == 4 && sub == 2 && detail == 2)
		return LMTP_OVERQUOTA;
	return code >= 500 ? LMTP_PERMFAIL : LMTP_TEMPFAIL;
}

/* The message of c has its outcome.  One that ends the run (a full
   mailbox, a temporary failure, an unknown outcome) stops the batch:
   no further message starts, those under way finish. */
static void settle(struct lmtp_session *s, struct lmtp_conn *c, enum lmtp_outcome o,
		   const char *prefix, const char *arg)
{
	struct lmtp_msg *m = c->msg;

	c->msg = NULL;
	if (m == NULL)
		return;
	m->outcome = o;
	if (o != LMTP_DELIVERED)
		snprintf(m->err, sizeof(m->err), "%s%s", prefix, arg);
	if (o == LMTP_OVERQUOTA || o == LMTP_TEMPFAIL || o == LMTP_LOST)
		s->halt = true;
}

/* The connection is gone (EOF, error, silence, a signal, nonsense). */
static void conn_lost(struct lmtp_session *s, struct lmtp_conn *c, const char *why)
{
	switch (c->state) {
	case CS_ENVELOPE:
		/* No body went: the server cannot have taken the message.  A
		   refusal it sent before hanging up still says why. */
		if (c->refused)
			settle(s, c, classify(c->code, c->text),
			       "local LMTP refused the message: ", c->text);
		else
			settle(s, c, LMTP_TEMPFAIL, "local LMTP: connection lost: ", why);
		break;
	case CS_BODY:
	case CS_FINAL:
		if (c->discard)
			settle(s, c, classify(c->code, c->text),
			       "local LMTP refused the message: ", c->text);
		else
			/* From here on a lost connection leaves the outcome
			   unknown: the intent stays for reconciliation. */
			settle(s, c, LMTP_LOST,
			       "local LMTP: connection lost during delivery: ", why);
		break;
	default:
		break;
	}
	conn_close(c);
}

/* Refused (by a reply to MAIL, RCPT, DATA or the final dot): the
   message is settled; RSET readies the connection for the next one. */
static void refuse(struct lmtp_session *s, struct lmtp_conn *c)
{
	settle(s, c, classify(c->code, c->text), "local LMTP refused the message: ", c->text);
	(void)queue_line(c, "RSET", "", "");
	c->state = CS_RSET;
}

static bool conn_start(struct lmtp_session *s, struct lmtp_conn *c, struct lmtp_msg *m,
		       const char *rcpt)
{
	m->tried = true;
	c->msg = m;
	c->rcpt = rcpt;
	c->replies = 0;
	c->refused = false;
	c->discard = false;
	c->body_off = 0;
	c->at_line_start = true;
	c->deadline = now_ms() + s->timeout_ms;
	c->out.len = c->out_off = 0;
	c->state = CS_ENVELOPE;
	if (!queue_line(c, "MAIL FROM:<", m->from, ">") ||
	    (c->pipelining && (!queue_line(c, "RCPT TO:<", rcpt, ">") ||
			       !queue_line(c, "DATA", "", "")))) {
		/* Nothing went out: the connection stays usable. */
		c->out.len = 0;
		c->state = CS_IDLE;
		settle(s, c, LMTP_TEMPFAIL, "local LMTP: cannot send the envelope of ",
		       m->from);
		return false;
	}
	return true;
}

/* Append p[0..n) dot-stuffed to c->out. */
static void stuff(struct lmtp_conn *c, const unsigned char *p, size_t n)
{
	while (n > 0) {
		if (c->at_line_start && p[0] == '.')
			buf_append(&c->out, ".", 1);
		const unsigned char *nl = memchr(p, '\n', n);
		size_t run = nl != NULL ? (size_t)(nl - p) + 1 : n;
		buf_append(&c->out, p, run);
		c->at_line_start = nl != NULL;
		p += run;
		n -= run;
	}
}

/* The next piece of the body into c->out (empty): false when the spool
   cannot be read. */
static bool fill_body(struct lmtp_conn *c)
{
	unsigned char chunk[LMTP_CHUNK];
	uint64_t size = msgbody_size(c->msg->body);

	c->out.len = c->out_off = 0;
	if (c->body_off < size) {
		ssize_t n = msgbody_read(c->msg->body, c->body_off, chunk, sizeof(chunk));
		if (n <= 0)
			return false;
		stuff(c, chunk, (size_t)n);
		c->body_off += (uint64_t)n;
	}
	if (c->body_off >= size) {
		/* A guaranteed final CRLF, then the end of data. */
		const char *end = c->at_line_start ? ".\r\n" : "\r\n.\r\n";
		buf_append(&c->out, end, strlen(end));
		c->state = CS_FINAL;
	}
	return true;
}

/* Send what c has queued, the body included as the socket takes it.
   false when the connection is lost (c is closed then). */
static bool conn_send(struct lmtp_session *s, struct lmtp_conn *c)
{
	for (;;) {
		while (c->out_off < c->out.len) {
			ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				c->out_off += (size_t)n;
				c->deadline = now_ms() + s->timeout_ms;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return true;
			conn_lost(s, c, n < 0 ? strerror(errno) : "write failed");
			return false;
		}
		c->out.len = c->out_off = 0;
		if (c->state == CS_BODY || (c->state == CS_FINAL && !c->discard)) {
			/* A sign of life while the message goes out: a run that
			   dies now leaves a delivery the server may still
			   complete, and the next run waits for it from this
			   moment (reconcile_folder). */
			alive(s);
		}
		if (c->state != CS_BODY)
			return true;
		if (!fill_body(c)) {
			conn_lost(s, c, "cannot read the spooled message");
			return false;
		}
	}
}

/* One complete reply for c.  false when c is lost. */
static bool on_reply(struct lmtp_session *s, struct lmtp_conn *c, int code, const char *text)
{
	switch (c->state) {
	case CS_ENVELOPE: {
		int want = c->replies < 2 ? 250 : 354;
		c->replies++;
		if (code != want && !c->refused) {
			c->refused = true;
			c->code = code;
			snprintf(c->text, sizeof(c->text), "%s", text);
		}
		if (!c->pipelining && c->refused) {
			refuse(s, c);   /* nothing after the refused command went */
		} else if (!c->pipelining && c->replies == 1) {
			(void)queue_line(c, "RCPT TO:<", c->rcpt, ">");
		} else if (!c->pipelining && c->replies == 2) {
			(void)queue_line(c, "DATA", "", "");
		} else if (c->replies == 3) {
			if (code != 354) {
				refuse(s, c);
			} else if (c->refused) {
				/* DATA accepted after a refused MAIL or RCPT (RFC
				   2920 says it must not be): no recipient, so "."
				   delivers nothing. */
				c->discard = true;
				buf_append(&c->out, ".\r\n", 3);
				c->state = CS_FINAL;
			} else {
				c->state = CS_BODY;
				if (!fill_body(c)) {
					conn_lost(s, c, "cannot read the spooled message");
					return false;
				}
			}
		}
		return true;
	}
	case CS_FINAL:
		if (c->out_off < c->out.len)
			break;   /* a reply before the end of data */
		if (c->discard) {
			refuse(s, c);
		} else if (code == 250) {
			settle(s, c, LMTP_DELIVERED, "", "");
			c->state = CS_IDLE;
		} else {
			c->code = code;
			snprintf(c->text, sizeof(c->text), "%s", text);
			refuse(s, c);
		}
		return true;
	case CS_RSET:
		c->state = CS_IDLE;
		return true;
	default:
		break;
	}
	conn_lost(s, c, "unexpected reply");
	return false;
}

/* Read what the server sent and act on each complete reply. */
static bool conn_receive(struct lmtp_session *s, struct lmtp_conn *c)
{
	buf_reserve(&c->in, 4096);
	ssize_t n = recv(c->fd, c->in.data + c->in.len, 4096, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_lost(s, c, n == 0 ? "closed by the server" : strerror(errno));
		return false;
	}
	if (n < 0)
		return true;
	c->in.len += (size_t)n;
	c->deadline = now_ms() + s->timeout_ms;
	for (;;) {
		char text[LMTP_LINE_MAX];
		int code, r = parse_reply(c, &code, text, sizeof(text), NULL);
		if (r < 0) {
			conn_lost(s, c, "malformed reply");
			return false;
		}
		if (r == 0)
			return true;
		if (!on_reply(s, c, code, text))
			return false;
		/* What a reply queued (RCPT, DATA, body, RSET) goes now. */
		if (c->out_off < c->out.len && !conn_send(s, c))
			return false;
	}
}

static bool busy(const struct lmtp_conn *c)
{
	return c->state != CS_IDLE && c->state != CS_DEAD;
}

void lmtp_deliver_batch(struct lmtp_session *s, const char *rcpt, struct lmtp_msg *msgs,
			size_t n, volatile sig_atomic_t *stop)
{
	struct pollfd pfd[LMTP_CONNS + 1];
	size_t idx[LMTP_CONNS], next = 0;

	for (size_t i = 0; i < n; i++) {
		msgs[i].tried = false;
		msgs[i].err[0] = '\0';
	}
	s->halt = false;
	if (n > 1)
		open_more(s);
	s->last_progress = now_ms();
	for (;;) {
		bool stopping = stop != NULL && *stop;
		for (size_t k = 0; k < LMTP_CONNS; k++) {
			struct lmtp_conn *c = &s->conns[k];
			if (stopping && busy(c))
				conn_lost(s, c, "stopped by a signal");
			if (stopping)
				s->halt = true;
			while (!s->halt && next < n && c->state == CS_IDLE) {
				if (conn_start(s, c, &msgs[next++], rcpt))
					(void)conn_send(s, c);
			}
		}
		if (!s->halt && next < n) {
			bool any = false;
			for (size_t k = 0; k < LMTP_CONNS; k++)
				any = any || s->conns[k].state != CS_DEAD;
			if (!any) {
				/* Every connection is gone: the rest cannot go. */
				struct lmtp_msg *m = &msgs[next++];
				m->tried = true;
				m->outcome = LMTP_TEMPFAIL;
				snprintf(m->err, sizeof(m->err), "local LMTP: connection lost");
				s->halt = true;
			}
		}
		nfds_t nfds = 0;
		int64_t now = now_ms(), wait = 1000;
		for (size_t k = 0; k < LMTP_CONNS; k++) {
			struct lmtp_conn *c = &s->conns[k];
			if (!busy(c))
				continue;
			pfd[nfds] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
			if (c->out_off < c->out.len)
				pfd[nfds].events |= POLLOUT;
			idx[nfds++] = k;
			if (c->deadline - now < wait)
				wait = c->deadline - now;
		}
		if (nfds == 0)
			return;
		/* The remote's answers for the next batch, read meanwhile. */
		bool side_ready = false;
		int sfd = s->side_fd != NULL ? s->side_fd(s->side_ctx, &side_ready) : -1;
		nfds_t nconn = nfds;
		if (sfd >= 0)
			pfd[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		int r = poll(pfd, nfds, side_ready || wait < 0 ? 0 : (int)wait);
		if (sfd >= 0 && (side_ready || (r > 0 && pfd[nconn].revents != 0)))
			s->side_read(s->side_ctx);
		nfds = nconn;
		if (r < 0 && errno != EINTR) {
			for (nfds_t i = 0; i < nfds; i++)
				conn_lost(s, &s->conns[idx[i]], strerror(errno));
			continue;
		}
		now = now_ms();
		/* While the server takes or saves a message this run is alive:
		   a crash now must leave the next run its full grace. */
		if (now - s->last_progress >= 1000)
			alive(s);
		for (nfds_t i = 0; r > 0 && i < nfds; i++) {
			struct lmtp_conn *c = &s->conns[idx[i]];
			short ev = pfd[i].revents;
			if ((ev & POLLOUT) && !conn_send(s, c))
				continue;
			if ((ev & (POLLIN | POLLHUP | POLLERR)) && busy(c))
				(void)conn_receive(s, c);
		}
		for (nfds_t i = 0; i < nfds; i++) {
			struct lmtp_conn *c = &s->conns[idx[i]];
			if (busy(c) && now_ms() >= c->deadline) {
				char why[64];
				snprintf(why, sizeof(why), "the server sent nothing for %d s",
					 s->timeout_ms / 1000);
				conn_lost(s, c, why);
			}
		}
	}
}

void lmtp_set_side_reader(struct lmtp_session *s, int (*fd_of)(void *ctx, bool *ready_r),
			  void (*read)(void *ctx), void *ctx)
{
	s->side_fd = fd_of;
	s->side_read = read;
	s->side_ctx = ctx;
}

enum lmtp_outcome lmtp_deliver(struct lmtp_session *s, const char *from,
			       const char *rcpt, const struct msgbody *body,
			       char *err, size_t errlen)
{
	struct lmtp_msg m = { .from = from, .body = body };

	lmtp_deliver_batch(s, rcpt, &m, 1, NULL);
	if (!m.tried) {
		m.outcome = LMTP_TEMPFAIL;
		snprintf(m.err, sizeof(m.err), "local LMTP: connection lost");
	}
	snprintf(err, errlen, "%s", m.err);
	return m.outcome;
}

/* Copy the first address-looking token of a header value: <...> or a
   bare word with '@'.  Never more than len-1 bytes, no CR/LF/<>. */
static void extract_address(const char *v, char *buf, size_t len)
{
	const char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	const char *start = NULL, *end = NULL;

	if (lt != NULL && gt != NULL) {
		start = lt + 1;
		end = gt;
	} else {
		for (const char *p = v; *p != '\0'; p++) {
			if (*p == '@') {
				start = p;
				while (start > v && !strchr(" \t,;\"", start[-1]))
					start--;
				end = p;
				while (*end != '\0' && !strchr(" \t,;\"\r\n", *end))
					end++;
				break;
			}
		}
	}
	buf[0] = '\0';
	if (start == NULL || end <= start || (size_t)(end - start) >= len)
		return;
	for (const char *p = start; p < end; p++)
		if (*p <= ' ' || *p == '<' || *p == '>' || (unsigned char)*p >= 0x7f)
			return;
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
}

void lmtp_envelope_sender(const struct msgbody *body, char *buf, size_t len)
{
	char head[16384], from[512] = "";
	ssize_t n = msgbody_read(body, 0, head, sizeof(head) - 1);

	buf[0] = '\0';
	if (n <= 0)
		return;
	head[n] = '\0';
	char *end = strstr(head, "\r\n\r\n");
	if (end == NULL)
		end = strstr(head, "\n\n");
	if (end != NULL)
		*end = '\0';
	for (char *line = head; line != NULL && *line != '\0';) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncasecmp(line, "Return-Path:", 12) == 0) {
			extract_address(line + 12, buf, len);
			if (buf[0] != '\0' || strchr(line + 12, '<') != NULL)
				return;   /* "<>" is a deliberate null sender */
		} else if (from[0] == '\0' && strncasecmp(line, "From:", 5) == 0) {
			extract_address(line + 5, from, sizeof(from));
		}
		line = next;
	}
	snprintf(buf, len, "%s", from);
}
