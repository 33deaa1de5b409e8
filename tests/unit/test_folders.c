/* test_folders.c - the folder plan (folders.c): namespaces, name
 * translation, special use, collisions, exclusions, parents, order.
 *
 * Every plan made here is also checked against the invariants any plan
 * must keep (check_invariants()).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "folders.h"
#include "tap.h"
#include "util.h"

/* U+2215 DIVISION SLASH and U+2024 ONE DOT LEADER, in UTF-8. */
#define DIV_SLASH "\xe2\x88\x95"
#define DOT_LEADER "\xe2\x80\xa4"
#define ALL_WHY "\\All (Gmail) holds copies of every message"

static struct folder_plan plan;

/* The local Dovecot of a NethServer: no prefix, '/', special-use marks. */
static const struct folder_entry dovecot_local[] = {
	{ "INBOX", '/', MBOX_HASCHILDREN },
	{ "Sent", '/', MBOX_SENT },
	{ "Drafts", '/', MBOX_DRAFTS },
	{ "Trash", '/', MBOX_TRASH },
	{ "Junk", '/', MBOX_JUNK },
	{ "Lists", '/', MBOX_NOSELECT | MBOX_HASCHILDREN },
	{ "Lists/old", '/', 0 },
};
static const struct folder_side local_side = {
	dovecot_local, N_ELEMENTS(dovecot_local), '/', "", false, NULL
};

/* A local account with only INBOX: nothing is marked. */
static const struct folder_entry bare_local[] = {
	{ "INBOX", '/', 0 },
};
static const struct folder_side bare_side = {
	bare_local, N_ELEMENTS(bare_local), '/', "", false, NULL
};

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static const char *s_or_null(const char *s)
{
	return s != NULL ? s : "(null)";
}

static void plan_dump(void)
{
	for (size_t i = 0; i < plan.n; i++) {
		const struct plan_folder *f = &plan.v[i];

		diag("%zu: %s [%s] -> %s [%s] %s%s why=%s special=%#x", i,
		     f->remote_wire, f->remote_utf8, s_or_null(f->local_wire),
		     s_or_null(f->local_utf8), plan_action_name(f->action),
		     f->create ? " create" : "", s_or_null(f->why), f->special);
	}
}

static const struct plan_folder *find(const char *remote_wire)
{
	for (size_t i = 0; i < plan.n; i++) {
		if (strcmp(plan.v[i].remote_wire, remote_wire) == 0)
			return &plan.v[i];
	}
	return NULL;
}

static size_t pos(const char *remote_wire)
{
	const struct plan_folder *f = find(remote_wire);

	return f != NULL ? (size_t)(f - plan.v) : (size_t)-1;
}

/* Does the plan hold remote_wire with this action, remote_utf8, local
   name (NULL: none) and create flag? */
static bool has(const char *remote_wire, enum plan_action action,
		const char *utf8, const char *local, bool create)
{
	const struct plan_folder *f = find(remote_wire);

	if (f != NULL && f->action == action && str_eq(f->remote_utf8, utf8) &&
	    str_eq(f->local_wire, local) && f->create == create)
		return true;
	diag("expected %s [%s] -> %s %s%s", remote_wire, utf8, s_or_null(local),
	     plan_action_name(action), create ? " create" : "");
	plan_dump();
	return false;
}

static bool why_is(const char *remote_wire, const char *why)
{
	const struct plan_folder *f = find(remote_wire);

	if (f != NULL && str_eq(f->why, why))
		return true;
	diag("why of %s: \"%s\", expected \"%s\"", remote_wire,
	     f != NULL ? s_or_null(f->why) : "(no entry)", why);
	return false;
}

/* Is the first '/'-level prefix of path a (a proper ancestor)? */
static bool is_ancestor(const char *a, const char *path)
{
	size_t n = strlen(a);

	return strncmp(a, path, n) == 0 && path[n] == '/';
}

/* What every plan keeps; returns a description of the first break. */
static const char *invariant_broken(void)
{
	for (size_t i = 0; i < plan.n; i++) {
		const struct plan_folder *f = &plan.v[i];
		bool named = f->action != PLAN_BAD_NAME &&
			f->action != PLAN_OTHER_NAMESPACE;
		bool why = f->action == PLAN_EXCLUDED ||
			f->action == PLAN_COLLISION || f->action == PLAN_BAD_NAME;

		if (f->remote_wire == NULL || f->remote_utf8 == NULL)
			return "remote names are always set";
		if ((f->local_wire != NULL) != named ||
		    (f->local_utf8 != NULL) != named)
			return "local names exactly for translated folders";
		if ((f->why != NULL) != why)
			return "why exactly for excluded, collision, bad name";
		if (strcmp(f->remote_utf8, "INBOX") == 0 && f->action == PLAN_COPY &&
		    i != 0)
			return "INBOX comes first";
		for (size_t j = 0; j < plan.n; j++) {
			const struct plan_folder *g = &plan.v[j];

			if (j > i && is_ancestor(g->remote_utf8, f->remote_utf8))
				return "a parent comes after its child";
			if (j == i || g->local_wire == NULL || f->local_wire == NULL)
				continue;
			if (f->action == PLAN_COPY && g->action == PLAN_COPY &&
			    (strcmp(f->local_wire, g->local_wire) == 0 ||
			     strcmp(f->remote_utf8, g->remote_utf8) == 0))
				return "two folders copied to one name";
			if (f->create && g->create &&
			    strcmp(f->local_wire, g->local_wire) == 0)
				return "one local name created twice";
		}
	}
	return NULL;
}

static void make(const struct folder_side *remote, const struct folder_side *local,
		 folder_excluded_fn *excluded, void *ctx, const char *what)
{
	const char *broken;

	folder_plan_free(&plan);
	folder_plan_make(remote, local, excluded, ctx, &plan);
	broken = invariant_broken();
	ok(broken == NULL, "%s: plan invariants hold%s%s", what,
	   broken != NULL ? ": " : "", broken != NULL ? broken : "");
	if (broken != NULL)
		plan_dump();
}

/* ---- cases ------------------------------------------------------------ */

static void test_special_by_name(void)
{
	static const struct {
		const char *name;
		unsigned use;
	} v[] = {
		{ "Sent", MBOX_SENT },
		{ "sent items", MBOX_SENT },
		{ "SENT MESSAGES", MBOX_SENT },
		{ "[Gmail]/Sent Mail", MBOX_SENT },
		{ "[Google Mail]/Sent Mail", MBOX_SENT },
		{ "\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", MBOX_SENT },
		{ "\xc3\xa9l\xc3\xa9ments envoy\xc3\xa9s", MBOX_SENT },
		{ "\xc3\x89L\xc3\x89MENTS ENVOY\xc3\x89S", MBOX_SENT },
		{ "Posta inviata", MBOX_SENT },
		{ "Verzonden items", MBOX_SENT },
		{ "INBOX/Sent", MBOX_SENT },
		{ "Entw\xc3\xbcrfe", MBOX_DRAFTS },
		{ "ENTW\xc3\x9c" "RFE", MBOX_DRAFTS },
		{ "Concepten", MBOX_DRAFTS },
		{ "inbox/drafts", MBOX_DRAFTS },
		{ "Deleted Items", MBOX_TRASH },
		{ "Gel\xc3\xb6schte Elemente", MBOX_TRASH },
		{ "[Gmail]/Bin", MBOX_TRASH },
		{ "Junk E-mail", MBOX_JUNK },
		{ "spam", MBOX_JUNK },
		{ "[Gmail]/Spam", MBOX_JUNK },
		{ "Ind\xc3\xa9sirables", MBOX_JUNK },
		{ "Archive", MBOX_ARCHIVE },
		{ "Archiv", MBOX_ARCHIVE },
		{ "[Gmail]/All Mail", 0 },
		{ "Projects/Sent", 0 },
		{ "INBOX/Old/Sent", 0 },
		{ "Sent Items/2020", 0 },
		{ "Sentinel", 0 },
		{ "Bin", 0 },
		{ "", 0 },
		{ "INBOX", 0 },
	};

	for (size_t i = 0; i < N_ELEMENTS(v); i++) {
		unsigned use = folder_special_by_name(v[i].name);

		ok(use == v[i].use, "well-known name \"%s\": %#x (got %#x)",
		   v[i].name, v[i].use, use);
	}
}

/* Dovecot to Dovecot: nested, non-ASCII, '&', special use by attribute,
   other namespaces left out. */
static void test_dovecot_layout(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', 0 },
		{ "Sent", '/', MBOX_SENT },
		{ "Drafts", '/', MBOX_DRAFTS },
		{ "Trash", '/', MBOX_TRASH },
		{ "Archive", '/', MBOX_HASCHILDREN },
		{ "Archive/2023", '/', 0 },
		{ "Archive/2023/Q1", '/', 0 },
		{ "Entw&APw-rfe", '/', 0 },
		{ "&BBIERQQ+BDQETwRJBDgENQ-/Sub", '/', 0 },
		{ "A&-B", '/', 0 },
		{ "Shared", '/', MBOX_NOSELECT },
		{ "Shared/bob", '/', MBOX_NOSELECT },
		{ "Shared/bob/INBOX", '/', 0 },
		{ "Public/news", '/', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "", false, NULL
	};
	const struct plan_folder *f;

	make(&remote, &local_side, NULL, NULL, "dovecot");
	ok(plan.n == N_ELEMENTS(r) + 1, "dovecot: one entry per LIST line, "
	   "plus the unlisted parent (%zu)", plan.n);
	ok(pos("INBOX") == 0 && has("INBOX", PLAN_COPY, "INBOX", "INBOX", false),
	   "dovecot: INBOX first, onto INBOX");
	ok(has("Sent", PLAN_COPY, "Sent", "Sent", false) &&
	   has("Drafts", PLAN_COPY, "Drafts", "Drafts", false) &&
	   has("Trash", PLAN_COPY, "Trash", "Trash", false),
	   "dovecot: special-use folders onto the existing local ones");
	f = find("Sent");
	ok(f != NULL && f->special == MBOX_SENT && !f->special_by_name,
	   "dovecot: Sent is special by attribute");
	ok(has("Archive", PLAN_COPY, "Archive", "Archive", true) &&
	   has("Archive/2023", PLAN_COPY, "Archive/2023", "Archive/2023", true) &&
	   has("Archive/2023/Q1", PLAN_COPY, "Archive/2023/Q1", "Archive/2023/Q1",
	       true), "dovecot: nested folders created");
	ok(pos("Archive") < pos("Archive/2023") &&
	   pos("Archive/2023") < pos("Archive/2023/Q1"),
	   "dovecot: parents before children");
	f = find("Entw&APw-rfe");
	ok(has("Entw&APw-rfe", PLAN_COPY, "Entw\xc3\xbcrfe", "Entw&APw-rfe", true) &&
	   f->special == 0 && str_eq(f->local_utf8, "Entw\xc3\xbcrfe"),
	   "dovecot: mUTF-7 decoded, re-encoded; no well-known name when "
	   "the remote marks \\Drafts");
	ok(has("&BBIERQQ+BDQETwRJBDgENQ-", PLAN_PARENT_ONLY,
	       "\xd0\x92\xd1\x85\xd0\xbe\xd0\xb4\xd1\x8f\xd1\x89\xd0\xb8\xd0\xb5",
	       "&BBIERQQ+BDQETwRJBDgENQ-", true) &&
	   pos("&BBIERQQ+BDQETwRJBDgENQ-") < pos("&BBIERQQ+BDQETwRJBDgENQ-/Sub"),
	   "dovecot: a parent the LIST left out is added and created first");
	f = find("&BBIERQQ+BDQETwRJBDgENQ-");
	ok(f != NULL && f->attrs == MBOX_NONEXISTENT,
	   "dovecot: the added parent is \\NonExistent");
	ok(has("A&-B", PLAN_COPY, "A&B", "A&-B", true), "dovecot: '&' kept");
	ok(has("Shared", PLAN_OTHER_NAMESPACE, "Shared", NULL, false) &&
	   has("Shared/bob", PLAN_OTHER_NAMESPACE, "Shared/bob", NULL, false) &&
	   has("Shared/bob/INBOX", PLAN_OTHER_NAMESPACE, "Shared/bob/INBOX",
	       NULL, false) &&
	   has("Public/news", PLAN_OTHER_NAMESPACE, "Public/news", NULL, false),
	   "dovecot: Shared/ and Public/ are other namespaces");
}

/* Courier: "INBOX." prefix, '.' delimiter, no special-use marks. */
static void test_courier_layout(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '.', MBOX_HASCHILDREN },
		{ "INBOX.Sent", '.', 0 },
		{ "INBOX.Trash", '.', 0 },
		{ "INBOX.Entw&APw-rfe", '.', MBOX_HASCHILDREN },
		{ "INBOX.Entw&APw-rfe.2023", '.', 0 },
		{ "INBOX.Archive", '.', MBOX_HASCHILDREN },
		{ "INBOX.Archive.2023", '.', 0 },
		{ "INBOX.a/b", '.', 0 },
		{ "INBOX.100%", '.', 0 },
		{ "INBOX.x%2Fy", '.', 0 },
		{ "INBOX.Lists.dev", '.', 0 },
		{ "#shared.team", '.', 0 },
		{ "Shared.y", '.', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '.', "INBOX.", false, NULL
	};
	const struct plan_folder *f;

	make(&remote, &local_side, NULL, NULL, "courier");
	ok(pos("INBOX") == 0 && has("INBOX", PLAN_COPY, "INBOX", "INBOX", false),
	   "courier: INBOX is INBOX, not the prefix's root");
	ok(has("INBOX.Sent", PLAN_COPY, "Sent", "Sent", false) &&
	   has("INBOX.Trash", PLAN_COPY, "Trash", "Trash", false),
	   "courier: prefix removed; Sent, Trash onto the local ones by name");
	f = find("INBOX.Sent");
	ok(f != NULL && f->special == MBOX_SENT && f->special_by_name,
	   "courier: Sent is special by name");
	ok(has("INBOX.Entw&APw-rfe", PLAN_COPY, "Entw\xc3\xbcrfe", "Drafts", false) &&
	   has("INBOX.Entw&APw-rfe.2023", PLAN_COPY, "Entw\xc3\xbcrfe/2023",
	       "Drafts/2023", true),
	   "courier: Entw\xc3\xbcrfe onto local Drafts, its subfolder below it");
	ok(has("INBOX.Archive", PLAN_COPY, "Archive", "Archive", true) &&
	   has("INBOX.Archive.2023", PLAN_COPY, "Archive/2023", "Archive/2023",
	       true), "courier: INBOX.Archive.2023 is Archive/2023");
	ok(has("INBOX.a/b", PLAN_COPY, "a%2Fb", "a&IhU-b", true),
	   "courier: '/' inside a level: %%2F in remote_utf8, U+2215 locally");
	f = find("INBOX.a/b");
	ok(f != NULL && str_eq(f->local_utf8, "a" DIV_SLASH "b"),
	   "courier: local_utf8 shows the division slash");
	ok(has("INBOX.100%", PLAN_COPY, "100%", "100%", true) &&
	   has("INBOX.x%2Fy", PLAN_COPY, "x%252Fy", "x%2Fy", true),
	   "courier: '%%' escaped only where it reads as an escape");
	ok(has("INBOX.Lists", PLAN_PARENT_ONLY, "Lists", "Lists", false) &&
	   has("INBOX.Lists.dev", PLAN_COPY, "Lists/dev", "Lists/dev", true),
	   "courier: unlisted parent added; it exists locally, not created");
	ok(has("#shared.team", PLAN_OTHER_NAMESPACE, "#shared/team", NULL, false) &&
	   has("Shared.y", PLAN_OTHER_NAMESPACE, "Shared/y", NULL, false),
	   "courier: names outside INBOX. are other namespaces");
}

/* Cyrus: "INBOX/" prefix (unixhierarchysep), other users under "user/",
   shared folders without a prefix. */
static void test_cyrus_layout(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', 0 },
		{ "INBOX/Sent Items", '/', 0 },
		{ "INBOX/Work", '/', MBOX_HASCHILDREN },
		{ "INBOX/Work/2024", '/', 0 },
		{ "user/bob", '/', 0 },
		{ "user/bob/Stuff", '/', 0 },
		{ "Shared Folder/x", '/', 0 },
		{ "inbox", '/', 0 },
	};
	static const char *const others[] = { "user/", "", NULL };
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "INBOX/", false, others
	};

	make(&remote, &local_side, NULL, NULL, "cyrus");
	ok(has("INBOX/Sent Items", PLAN_COPY, "Sent Items", "Sent", false),
	   "cyrus: INBOX/Sent Items onto local Sent");
	ok(has("INBOX/Work/2024", PLAN_COPY, "Work/2024", "Work/2024", true),
	   "cyrus: prefix removed");
	ok(has("user/bob", PLAN_OTHER_NAMESPACE, "user/bob", NULL, false) &&
	   has("user/bob/Stuff", PLAN_OTHER_NAMESPACE, "user/bob/Stuff", NULL,
	       false) &&
	   has("Shared Folder/x", PLAN_OTHER_NAMESPACE, "Shared Folder/x", NULL,
	       false), "cyrus: other users and shared folders left out");
	ok(has("inbox", PLAN_COLLISION, "INBOX", "INBOX", false) &&
	   why_is("inbox", "INBOX"),
	   "cyrus: a second INBOX (any case) is a collision");
}

/* INBOX children on a prefix-less server; UTF8=ACCEPT on either side. */
static void test_inbox_children_and_utf8(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', MBOX_HASCHILDREN },
		{ "INBOX/Drafts", '/', 0 },
		{ "inbox/Work", '/', 0 },
		{ "Entw\xc3\xbcrfe2", '/', 0 },
	};
	static const struct folder_side remote_utf8 = {
		r, N_ELEMENTS(r), '/', "", true, NULL
	};
	static const struct folder_side local_utf8 = {
		dovecot_local, N_ELEMENTS(dovecot_local), '/', "", true, NULL
	};

	make(&remote_utf8, &local_side, NULL, NULL, "utf8");
	ok(has("INBOX/Drafts", PLAN_COPY, "INBOX/Drafts", "Drafts", false),
	   "utf8: INBOX/Drafts is Drafts by name");
	ok(has("inbox/Work", PLAN_COPY, "INBOX/Work", "INBOX/Work", true),
	   "utf8: inbox/Work is below the one INBOX");
	ok(has("Entw\xc3\xbcrfe2", PLAN_COPY, "Entw\xc3\xbcrfe2", "Entw&APw-rfe2",
	       true), "utf8: UTF-8 remote name encoded for an mUTF-7 local");
	make(&remote_utf8, &local_utf8, NULL, NULL, "utf8 both");
	ok(has("Entw\xc3\xbcrfe2", PLAN_COPY, "Entw\xc3\xbcrfe2",
	       "Entw\xc3\xbcrfe2", true), "utf8: UTF-8 on both sides");
}

/* Special use by attribute beats by name; by name on several folders is
   a collision; without a local special folder the name is kept. */
static void test_special_use(void)
{
	static const struct folder_entry attr[] = {
		{ "INBOX", '/', 0 },
		{ "Sent", '/', 0 },
		{ "Sent Items", '/', MBOX_SENT | MBOX_HASCHILDREN },
		{ "Sent Items/2020", '/', 0 },
		{ "Spam", '/', 0 },
		{ "Junk E-mail", '/', 0 },
		{ "Deleted Items", '/', MBOX_TRASH },
		{ "[Gmail]", '/', MBOX_NOSELECT },
		{ "[Gmail]/All Mail", '/', MBOX_ALL },
	};
	static const struct folder_side remote_attr = {
		attr, N_ELEMENTS(attr), '/', "", false, NULL
	};
	static const struct folder_entry names[] = {
		{ "INBOX", '/', 0 },
		{ "Sent Items", '/', 0 },
		{ "Sent", '/', 0 },
		{ "Gesendete Objekte", '/', 0 },
	};
	static const struct folder_side remote_names = {
		names, N_ELEMENTS(names), '/', "", false, NULL
	};
	const struct plan_folder *f;

	make(&remote_attr, &local_side, NULL, NULL, "special");
	ok(has("Sent Items", PLAN_COPY, "Sent Items", "Sent", false) &&
	   has("Sent", PLAN_COLLISION, "Sent", "Sent", false) &&
	   why_is("Sent", "Sent Items"),
	   "special: \\Sent wins over an unmarked Sent, which is reported");
	ok(has("Sent Items/2020", PLAN_COPY, "Sent Items/2020", "Sent/2020", true),
	   "special: a subfolder follows its special-use parent");
	ok(has("Junk E-mail", PLAN_COPY, "Junk E-mail", "Junk", false) &&
	   has("Spam", PLAN_COLLISION, "Spam", "Junk", false) &&
	   why_is("Spam", "Junk E-mail"),
	   "special: two well-known junk names collide on local Junk");
	ok(has("Deleted Items", PLAN_COPY, "Deleted Items", "Trash", false),
	   "special: \\Trash onto local Trash");
	ok(has("[Gmail]/All Mail", PLAN_EXCLUDED, "[Gmail]/All Mail",
	       "[Gmail]/All Mail", false) &&
	   why_is("[Gmail]/All Mail", ALL_WHY) &&
	   has("[Gmail]", PLAN_PARENT_ONLY, "[Gmail]", "[Gmail]", false),
	   "special: \\All excluded; its parent not created");

	make(&remote_names, &local_side, NULL, NULL, "by name");
	ok(has("Sent", PLAN_COPY, "Sent", "Sent", false) &&
	   has("Sent Items", PLAN_COLLISION, "Sent Items", "Sent", false) &&
	   why_is("Sent Items", "Sent") &&
	   has("Gesendete Objekte", PLAN_COLLISION, "Gesendete Objekte", "Sent",
	       false) && why_is("Gesendete Objekte", "Sent"),
	   "by name: three Sent folders, one copied, two reported");

	make(&remote_names, &bare_side, NULL, NULL, "no local special");
	ok(has("Sent", PLAN_COPY, "Sent", "Sent", true) &&
	   has("Sent Items", PLAN_COPY, "Sent Items", "Sent Items", true) &&
	   has("Gesendete Objekte", PLAN_COPY, "Gesendete Objekte",
	       "Gesendete Objekte", true),
	   "no local special: translated names created");
	f = find("Sent Items");
	ok(f != NULL && f->special == MBOX_SENT && f->special_by_name,
	   "no local special: still reported as Sent by name");
}

/* Collisions through the delimiter look-alike and INBOX's case. */
static void test_collisions(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX.a&IhU-b", '.', 0 },
		{ "INBOX.a/b", '.', 0 },
		{ "INBOX.INBOX", '.', 0 },
		{ "INBOX", '.', 0 },
		{ "INBOX.Inbox.x", '.', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '.', "INBOX.", false, NULL
	};

	make(&remote, &bare_side, NULL, NULL, "collision");
	ok(has("INBOX.a/b", PLAN_COPY, "a%2Fb", "a&IhU-b", true) &&
	   has("INBOX.a&IhU-b", PLAN_COLLISION, "a" DIV_SLASH "b", "a&IhU-b",
	       false) && why_is("INBOX.a&IhU-b", "a%2Fb"),
	   "collision: a literal U+2215 and an escaped '/' are reported");
	ok(has("INBOX", PLAN_COPY, "INBOX", "INBOX", false) &&
	   has("INBOX.INBOX", PLAN_COLLISION, "INBOX", "INBOX", false) &&
	   why_is("INBOX.INBOX", "INBOX"),
	   "collision: INBOX.INBOX does not merge into INBOX");
	ok(has("INBOX.Inbox.x", PLAN_COPY, "INBOX/x", "INBOX/x", true),
	   "collision: below INBOX in another case is below INBOX");
}

/* Remote '/', local '.' with a prefix: a '.' in a level is escaped. */
static void test_local_dot_delimiter(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', 0 },
		{ "v1.2", '/', 0 },
		{ "Projects/v1.2", '/', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "", false, NULL
	};
	static const struct folder_entry l[] = {
		{ "INBOX", '.', 0 },
		{ "INBOX.Sent", '.', MBOX_SENT },
	};
	static const struct folder_side local = {
		l, N_ELEMENTS(l), '.', "INBOX.", false, NULL
	};
	const struct plan_folder *f;

	make(&remote, &local, NULL, NULL, "local '.'");
	ok(has("v1.2", PLAN_COPY, "v1.2", "INBOX.v1&ICQ-2", true),
	   "local '.': a '.' in a level becomes U+2024, prefix added");
	f = find("v1.2");
	ok(f != NULL && str_eq(f->local_utf8, "INBOX.v1" DOT_LEADER "2"),
	   "local '.': local_utf8 shows the one dot leader");
	ok(has("Projects", PLAN_PARENT_ONLY, "Projects", "INBOX.Projects", true) &&
	   has("Projects/v1.2", PLAN_COPY, "Projects/v1.2",
	       "INBOX.Projects.v1&ICQ-2", true),
	   "local '.': hierarchy with the local delimiter");
}

/* \Noselect and \NonExistent parents: created only when a child needs
   them. */
static void test_noselect(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', 0 },
		{ "Lists", '/', MBOX_NOSELECT | MBOX_HASCHILDREN },
		{ "Lists/dev", '/', 0 },
		{ "Lists/old", '/', 0 },
		{ "Empty", '/', MBOX_NOSELECT },
		{ "Gone", '/', MBOX_NONEXISTENT | MBOX_HASCHILDREN },
		{ "Gone/x", '/', MBOX_NOSELECT },
		{ "Gone/x/y", '/', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "", false, NULL
	};

	make(&remote, &local_side, NULL, NULL, "noselect");
	ok(has("Lists", PLAN_PARENT_ONLY, "Lists", "Lists", false) &&
	   has("Lists/dev", PLAN_COPY, "Lists/dev", "Lists/dev", true) &&
	   has("Lists/old", PLAN_COPY, "Lists/old", "Lists/old", false),
	   "noselect: parent already there locally");
	ok(has("Empty", PLAN_PARENT_ONLY, "Empty", "Empty", false),
	   "noselect: no child, not created");
	ok(has("Gone", PLAN_PARENT_ONLY, "Gone", "Gone", true) &&
	   has("Gone/x", PLAN_PARENT_ONLY, "Gone/x", "Gone/x", true) &&
	   has("Gone/x/y", PLAN_COPY, "Gone/x/y", "Gone/x/y", true) &&
	   pos("Gone") < pos("Gone/x") && pos("Gone/x") < pos("Gone/x/y"),
	   "noselect: missing parents created, in order");
}

/* The exclusion callback: asked for each selectable personal folder
   with its remote_utf8, nothing else. */
struct excl {
	const char *const *names;       /* exclude these (exact) */
	char asked[512];                /* "name|name|" */
};

static bool excl_cb(void *ctx, const char *utf8, char **why_r)
{
	struct excl *e = ctx;

	strncat(e->asked, utf8, sizeof(e->asked) - strlen(e->asked) - 2);
	strcat(e->asked, "|");
	for (size_t i = 0; e->names[i] != NULL; i++) {
		if (strcmp(e->names[i], utf8) == 0) {
			*why_r = xasprintf("matches %s", e->names[i]);
			return true;
		}
	}
	return false;
}

static void test_exclusions(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '.', 0 },
		{ "INBOX.Archive", '.', 0 },
		{ "INBOX.Archive.2023", '.', 0 },
		{ "INBOX.Posta inviata", '.', 0 },
		{ "INBOX.Sent", '.', 0 },
		{ "INBOX.Lists", '.', MBOX_NOSELECT },
		{ "INBOX.Lists.a", '.', 0 },
		{ "INBOX.[Gmail].All Mail", '.', MBOX_ALL },
		{ "#public.x", '.', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '.', "INBOX.", false, NULL
	};
	static const char *const out[] = { "Archive", "Posta inviata", NULL };
	static const char *const inbox_out[] = { "INBOX", NULL };
	struct excl e = { out, "" };
	struct excl e2 = { inbox_out, "" };

	make(&remote, &local_side, excl_cb, &e, "exclude");
	ok(strcmp(e.asked, "INBOX|Archive|Archive/2023|Posta inviata|Sent|Lists/a|")
	   == 0, "exclude: asked for every selectable personal folder "
	   "(asked %s)", e.asked);
	ok(has("INBOX.Archive", PLAN_EXCLUDED, "Archive", "Archive", true) &&
	   why_is("INBOX.Archive", "matches Archive") &&
	   has("INBOX.Archive.2023", PLAN_COPY, "Archive/2023", "Archive/2023",
	       true),
	   "exclude: excluding a parent leaves its child; the parent is "
	   "created empty");
	ok(has("INBOX.Posta inviata", PLAN_EXCLUDED, "Posta inviata", "Sent",
	       false) && has("INBOX.Sent", PLAN_COPY, "Sent", "Sent", false),
	   "exclude: an excluded folder collides with nothing");
	ok(has("INBOX.[Gmail].All Mail", PLAN_EXCLUDED, "[Gmail]/All Mail",
	       "[Gmail]/All Mail", false), "exclude: \\All is never asked");

	make(&remote, &local_side, excl_cb, &e2, "exclude INBOX");
	ok(has("INBOX", PLAN_EXCLUDED, "INBOX", "INBOX", false),
	   "exclude: INBOX can be excluded");
}

/* Names that cannot be translated. */
static void test_bad_names(void)
{
	static const struct folder_entry r[] = {
		{ "INBOX", '/', 0 },
		{ "Bad&AGE-", '/', 0 },
		{ "Open&U,BTFw", '/', 0 },
		{ "Raw\xc3\xbc", '/', 0 },
		{ "Ctl&AAk-x", '/', 0 },
		{ "a//b", '/', 0 },
		{ "Bad&AGE-/child", '/', 0 },
		{ "Fine", '/', 0 },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "", false, NULL
	};
	static const struct folder_entry u[] = {
		{ "Raw\xc3", '/', 0 },
	};
	static const struct folder_side remote_u = {
		u, N_ELEMENTS(u), '/', "", true, NULL
	};

	make(&remote, &local_side, NULL, NULL, "bad names");
	ok(has("Bad&AGE-", PLAN_BAD_NAME, "\"Bad&AGE-\"", NULL, false) &&
	   why_is("Bad&AGE-", "not valid modified UTF-7: \"Bad&AGE-\""),
	   "bad: encoded printable ASCII");
	ok(has("Open&U,BTFw", PLAN_BAD_NAME, "\"Open&U,BTFw\"", NULL, false),
	   "bad: unterminated shift");
	ok(has("Raw\xc3\xbc", PLAN_BAD_NAME, "\"Raw\\xc3\\xbc\"", NULL, false) &&
	   why_is("Raw\xc3\xbc", "not valid modified UTF-7: \"Raw\\xc3\\xbc\""),
	   "bad: raw 8-bit, escaped in why");
	ok(has("Ctl&AAk-x", PLAN_BAD_NAME, "\"Ctl&AAk-x\"", NULL, false) &&
	   why_is("Ctl&AAk-x", "contains a control character: \"Ctl&AAk-x\""),
	   "bad: a control character");
	ok(has("a//b", PLAN_BAD_NAME, "\"a//b\"", NULL, false) &&
	   why_is("a//b", "empty hierarchy level: \"a//b\""),
	   "bad: an empty level");
	ok(has("Bad&AGE-/child", PLAN_BAD_NAME, "\"Bad&AGE-/child\"", NULL, false),
	   "bad: below a bad name");
	ok(has("Fine", PLAN_COPY, "Fine", "Fine", true),
	   "bad: the others go on");
	make(&remote_u, &local_side, NULL, NULL, "bad utf8");
	ok(has("Raw\xc3", PLAN_BAD_NAME, "\"Raw\\xc3\"", NULL, false) &&
	   why_is("Raw\xc3", "not valid UTF-8: \"Raw\\xc3\""),
	   "bad: invalid UTF-8 with UTF8=ACCEPT");
}

/* Order and stability; an empty LIST; the namespace root. */
static void test_order_and_edges(void)
{
	static const struct folder_entry r[] = {
		{ "b", '/', 0 },
		{ "a b", '/', 0 },
		{ "a/c", '/', 0 },
		{ "a", '/', 0 },
		{ "INBOX", '/', 0 },
		{ "Mail", '/', MBOX_NOSELECT },
	};
	static const struct folder_side remote = {
		r, N_ELEMENTS(r), '/', "", false, NULL
	};
	static const char *const no_others[] = { NULL };
	static const struct folder_side prefixed = {
		r, N_ELEMENTS(r), '/', "Mail/", false, no_others
	};
	static const struct folder_side empty = { NULL, 0, '/', "", false, NULL };

	make(&remote, &local_side, NULL, NULL, "order");
	ok(plan.n == 6 && pos("INBOX") == 0 && pos("a") < pos("a/c") &&
	   pos("a/c") < pos("a b") && pos("a b") < pos("b"),
	   "order: INBOX, then level by level (a, a/c, a b, b)");
	make(&prefixed, &local_side, NULL, NULL, "prefix Mail/");
	ok(plan.n == 5 && find("Mail") == NULL &&
	   has("a", PLAN_OTHER_NAMESPACE, "a", NULL, false),
	   "prefix Mail/: the root is left out, names outside it too");
	make(&empty, &local_side, NULL, NULL, "empty");
	ok(plan.n == 0, "empty: empty plan");
	folder_plan_free(&plan);
	ok(plan.v == NULL && plan.n == 0, "folder_plan_free empties the plan");
}

int main(void)
{
	test_special_by_name();
	test_dovecot_layout();
	test_courier_layout();
	test_cyrus_layout();
	test_inbox_children_and_utf8();
	test_special_use();
	test_collisions();
	test_local_dot_delimiter();
	test_noselect();
	test_exclusions();
	test_bad_names();
	test_order_and_edges();
	folder_plan_free(&plan);
	return tap_done();
}
