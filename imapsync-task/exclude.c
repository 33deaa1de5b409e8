/* exclude.c - compile and match the folder exclusion pattern (PCRE2). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "exclude.h"
#include "util.h"

/* Bounds for matching the exclude pattern against a folder name.  A sane
   pattern needs a few hundred steps for a folder name; "(a+)+$" needs
   billions and stops at the match limit within milliseconds. */
#define EXCLUDE_MATCH_LIMIT 100000
#define EXCLUDE_DEPTH_LIMIT 5000
#define EXCLUDE_HEAP_LIMIT_KIB 4096

struct exclude {
	pcre2_code *code;
	pcre2_match_context *mctx;
};

struct exclude *exclude_compile(const char *pattern, char **error_r)
{
	struct exclude *ex;
	pcre2_code *code;
	int errcode;
	PCRE2_SIZE erroffset;

	*error_r = NULL;
	code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
			     PCRE2_NEVER_BACKSLASH_C,
			     &errcode, &erroffset, NULL);
	if (code == NULL) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", errcode);
		*error_r = xasprintf("invalid regular expression at offset %zu: %s",
				     (size_t)erroffset, (const char *)msg);
		return NULL;
	}
	ex = xcalloc(1, sizeof(*ex));
	ex->code = code;
	ex->mctx = pcre2_match_context_create(NULL);
	if (ex->mctx == NULL)
		out_of_memory();
	pcre2_set_match_limit(ex->mctx, EXCLUDE_MATCH_LIMIT);
	pcre2_set_depth_limit(ex->mctx, EXCLUDE_DEPTH_LIMIT);
	pcre2_set_heap_limit(ex->mctx, EXCLUDE_HEAP_LIMIT_KIB);
	return ex;
}

void exclude_free(struct exclude **exp)
{
	struct exclude *ex = *exp;

	*exp = NULL;
	if (ex != NULL) {
		pcre2_code_free(ex->code);
		pcre2_match_context_free(ex->mctx);
		free(ex);
	}
}

bool exclude_match(const struct exclude *ex, const char *utf8_name,
		   int *err_r)
{
	pcre2_match_data *md;
	int rc;

	*err_r = 0;
	md = pcre2_match_data_create_from_pattern(ex->code, NULL);
	if (md == NULL) {
		*err_r = PCRE2_ERROR_NOMEMORY;
		return false;
	}
	rc = pcre2_match(ex->code, (PCRE2_SPTR)utf8_name, PCRE2_ZERO_TERMINATED,
			 0, 0, md, ex->mctx);
	pcre2_match_data_free(md);
	if (rc >= 0)
		return true;
	if (rc == PCRE2_ERROR_NOMATCH)
		return false;
	*err_r = rc;
	return false;
}

void exclude_strerror(int err, char *buf, size_t size)
{
	if (size == 0)
		return;
	if (err == PCRE2_ERROR_MATCHLIMIT || err == PCRE2_ERROR_DEPTHLIMIT ||
	    err == PCRE2_ERROR_HEAPLIMIT) {
		snprintf(buf, size, "exclude pattern too complex for this folder "
			 "name (PCRE2 limit hit)");
		return;
	}
	if (pcre2_get_error_message(err, (PCRE2_UCHAR *)buf, size) < 0)
		snprintf(buf, size, "PCRE2 error %d", err);
}
