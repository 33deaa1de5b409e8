/* imap_types.h - the few IMAP values that both the parser and the client's
 * public interface name: a response's status and the keys of a search.
 *
 * No functions and no other includes, so imap_client.h and imap_cmds.h can
 * say what a result is without pulling in the parser.
 */
#ifndef IMAP_TYPES_H
#define IMAP_TYPES_H

enum imap_status {
	IMAP_STATUS_NONE = 0,  /* not a status response (e.g. * 3 FETCH);
	                          in a result: the connection died */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

/* What UID SEARCH looks for, as bits ANDed together; SEARCH_ALL (no bit)
   is every message.  See imap_uid_search() and imap_search_criteria(). */
enum imap_search_key {
	SEARCH_ALL = 0,
	SEARCH_SEEN = 1u << 0,
	SEARCH_UNSEEN = 1u << 1,
	SEARCH_DELETED = 1u << 2,
	SEARCH_UNDELETED = 1u << 3,
};

/* LIST attributes (RFC 3501, RFC 6154 special use), as bits: the
   client reports them, folders.c plans with them. */
enum imap_mbox_attr {
	MBOX_NOSELECT = 1u << 0,
	MBOX_NONEXISTENT = 1u << 1,
	MBOX_NOINFERIORS = 1u << 2,
	MBOX_HASCHILDREN = 1u << 3,
	MBOX_SUBSCRIBED = 1u << 4,
	MBOX_SENT = 1u << 8,       /* RFC 6154 special use */
	MBOX_DRAFTS = 1u << 9,
	MBOX_TRASH = 1u << 10,
	MBOX_JUNK = 1u << 11,
	MBOX_ARCHIVE = 1u << 12,
	MBOX_ALL = 1u << 13,
	MBOX_FLAGGED = 1u << 14,
};

#endif
