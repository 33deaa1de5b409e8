/* folders.h - the folder plan of folders = all / all-except: which remote
 * folder goes to which local folder.
 *
 * Pure: it gets both LIST answers and NAMESPACE prefixes as values and
 * returns the plan as a value, so every rule below is unit-tested
 * without a server (tests/unit/test_folders.c).  Exclusion patterns come
 * in as a callback: this file knows no PCRE2 and no configuration.
 *
 * The rules (issue 10):
 *
 *  - Namespaces.  Only the remote's personal namespace is copied.  INBOX
 *    (any case) is always personal and always maps to local "INBOX"; so
 *    does "INBOX" under a Courier/Cyrus "INBOX." prefix.  Any other name
 *    that does not start with the personal prefix, or that starts with a
 *    longer prefix of another namespace (other_prefixes: other users',
 *    shared), is PLAN_OTHER_NAMESPACE.  The personal namespace's own root
 *    ("Mail" for prefix "Mail/") is no folder and is left out of the plan.
 *
 *  - Names.  The part after the prefix is split at the remote delimiter
 *    (the LIST line's; the side's when the line has NIL), each level is
 *    decoded from modified UTF-7 (or checked as UTF-8 with UTF8=ACCEPT);
 *    an undecodable level, an empty level or a control character makes
 *    the folder PLAN_BAD_NAME.
 *      remote_utf8 joins the levels with '/', which always means
 *      hierarchy there: a '/' inside a level is written "%2F", and a '%'
 *      that is followed by two hex digits is written "%25" (any other '%'
 *      stays as it is), so two remote names never share a remote_utf8.
 *      Courier "INBOX.Archive.2023" is "Archive/2023"; a level "a/b"
 *      under a '.' delimiter is "a%2Fb".  Exclusion patterns, the
 *      journal and the logs all use remote_utf8.
 *      The local name joins the levels with the local delimiter after the
 *      local prefix, each level encoded in modified UTF-7 unless the local
 *      side has UTF8=ACCEPT.  A level that contains the local delimiter is
 *      not split: the delimiter in it is replaced by a look-alike,
 *      '/' by U+2215 DIVISION SLASH, '.' by U+2024 ONE DOT LEADER, any
 *      other delimiter by '_' (remote "a/b" under '.' becomes local
 *      "a\u2215b" under '/').
 *
 *  - \Noselect and \NonExistent remote folders are PLAN_PARENT_ONLY: they
 *    are created locally only when a copied folder below them needs them.
 *    A parent that the remote LIST left out is added as PLAN_PARENT_ONLY
 *    too.
 *
 *  - Special use.  A remote folder marked \Sent \Drafts \Trash \Junk or
 *    \Archive, or, for a use that no remote folder is marked with, a
 *    folder with a well-known name (folder_special_by_name()) goes to the
 *    local folder the local LIST marks with the same use: remote "Sent
 *    Items" lands in local "Sent", not in a new "Sent Items".  Its
 *    subfolders follow it ("Sent Items/2020" -> "Sent/2020").  Without
 *    such a local folder the translated name is used.  \All folders
 *    (Gmail's "All Mail": copies of every message) are PLAN_EXCLUDED.
 *
 *  - Exclusions.  excluded() is asked for every selectable personal
 *    folder, INBOX included, with its full remote_utf8; nothing else.  A
 *    pattern that matches a parent does not by itself exclude children.
 *
 *  - Collisions.  Two copied folders with one local name (or one
 *    remote_utf8) are never merged: one is copied, the others are
 *    PLAN_COLLISION naming it in why.  The one copied is INBOX, else a
 *    folder mapped by special-use attribute, else one mapped by
 *    well-known name (first one with the local folder's very name), else
 *    the first in plan order.  So remote "Sent", "Sent Items" and
 *    "Gesendete Objekte", all unmarked, collide on local "Sent" and
 *    "Sent" is copied; a marked "Sent Items" wins over an unmarked
 *    "Sent".  Excluded folders collide
 *    with nothing: excluding one of the two is the way out.
 *
 *  - Order: INBOX first, then by remote_utf8 level by level ("a",
 *    "a/b", "a b"), so parents always come before their children and
 *    a local folder is created (create) before anything below it; ties
 *    keep LIST order.
 */
#ifndef FOLDERS_H
#define FOLDERS_H

#include <stdbool.h>
#include <stddef.h>

#include "imap_types.h"     /* MBOX_*: LIST attributes */

/* The uses that map a remote folder onto a local one. */
#define FOLDER_SPECIAL_USES (MBOX_SENT | MBOX_DRAFTS | MBOX_TRASH | \
			     MBOX_JUNK | MBOX_ARCHIVE)

/* One LIST answer line, the name as the server sent it. */
struct folder_entry {
	const char *name;
	char delim;             /* 0: NIL, a flat name */
	unsigned attrs;         /* enum imap_mbox_attr (MBOX_*) */
};

/* One server's folders. */
struct folder_side {
	const struct folder_entry *v;
	size_t n;
	/* The personal NAMESPACE ("" and the LIST delimiter without
	   NAMESPACE).  The local delimiter 0 is taken as '/'. */
	char delim;
	const char *prefix;
	/* UTF8=ACCEPT is enabled: names are UTF-8, else modified UTF-7. */
	bool utf8_names;
	/* Prefixes of the other users' and shared namespaces, NULL-terminated
	   (from NAMESPACE).  NULL: not known, and then "Shared" and "Public"
	   followed by the delimiter (NethServer's shared namespaces) count
	   as other namespaces. */
	const char *const *other_prefixes;
};

enum plan_action {
	PLAN_COPY,              /* copy its messages */
	PLAN_EXCLUDED,          /* left out by a pattern, or \All */
	PLAN_PARENT_ONLY,       /* \Noselect, \NonExistent or not listed */
	PLAN_COLLISION,         /* another remote folder has its local name */
	PLAN_BAD_NAME,          /* the name cannot be translated */
	PLAN_OTHER_NAMESPACE,   /* not the personal namespace */
};

struct plan_folder {
	/* As the remote names it: what SELECT/EXAMINE gets. */
	char *remote_wire;
	/* UTF-8, personal prefix removed, '/' as separator ("Archive/2023";
	   INBOX is "INBOX"): the journal key, what exclusions match, what
	   logs show.  For PLAN_OTHER_NAMESPACE the whole name decoded; for
	   PLAN_BAD_NAME (or an other namespace's name that does not decode)
	   the wire name in double quotes, bytes outside printable ASCII as
	   \xNN. */
	char *remote_utf8;
	/* The local name to CREATE/SELECT/APPEND (modified UTF-7 unless the
	   local side has utf8_names; local delimiter and prefix), and the
	   same in UTF-8 for logs.  NULL for PLAN_BAD_NAME and
	   PLAN_OTHER_NAMESPACE. */
	char *local_wire;
	char *local_utf8;
	unsigned attrs;         /* the remote LIST attributes (0: not listed) */
	/* MBOX_SENT..MBOX_ARCHIVE of the remote folder: by attribute,
	   or by well-known name for a use the remote marks on no folder. */
	unsigned special;
	bool special_by_name;
	/* The local folder does not exist: CREATE and SUBSCRIBE local_wire
	   before going on.  Set on a PLAN_COPY folder, and on the entry
	   (PARENT_ONLY, EXCLUDED, COLLISION) standing for a missing local
	   parent of a PLAN_COPY folder; only ever on the first entry of a
	   local name.  Nothing else is created. */
	bool create;
	enum plan_action action;
	/* EXCLUDED: the pattern's message (or the \All reason); COLLISION:
	   the remote_utf8 of the folder copied there instead; BAD_NAME:
	   why, with the name; else NULL. */
	char *why;
};

struct folder_plan {
	struct plan_folder *v;
	size_t n;
};

/* excluded(ctx, remote_utf8, &why): true to leave the folder out; why
   gets a malloc'd text (or NULL).  excluded may be NULL (folders = all). */
typedef bool folder_excluded_fn(void *ctx, const char *utf8, char **why_r);

void folder_plan_make(const struct folder_side *remote,
		      const struct folder_side *local,
		      folder_excluded_fn *excluded, void *ctx,
		      struct folder_plan *plan_r);
void folder_plan_free(struct folder_plan *p);

/* The well-known-name table: MBOX_SENT etc. for a name such as "Sent
   Items", "Gesendete Objekte" or "[Gmail]/Sent Mail", else 0.  path is a
   remote_utf8; it matches when it is a name of the table, or when it has
   two levels, the first "INBOX", "[Gmail]" or "[Google Mail]", and the
   second is a name of the table.  Case does not matter (ASCII and
   Latin-1 letters). */
unsigned folder_special_by_name(const char *utf8_leaf_or_path);

/* The name of an action ("copy", "excluded", "parent", "collision",
   "bad-name", "other-namespace") for plans and logs. */
const char *plan_action_name(enum plan_action a);

#endif
