/* json.h - a tiny JSON writer for "list --json" and "status --json".
 *
 * Values are written in order into a struct buf; the writer puts the
 * commas, colons and (with pretty) the indentation.  Strings are escaped
 * as RFC 8259 requires: '"', '\\' and every control character, and any
 * byte sequence that is not valid UTF-8 becomes U+FFFD, so the output is
 * always valid JSON in valid UTF-8 whatever a server or a file sent.
 *
 *     struct buf b = { 0 };
 *     struct json j;
 *     json_init(&j, &b, true);
 *     json_object_begin(&j);
 *     json_kv_string(&j, "name", "john");
 *     json_key(&j, "runs"); json_array_begin(&j); ... json_array_end(&j);
 *     json_object_end(&j);
 *     json_finish(&j);           (a final newline; b.data is a C string)
 */
#ifndef JSON_H
#define JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define JSON_MAX_DEPTH 16

struct json {
	struct buf *out;
	bool pretty;
	int depth;
	bool has_items[JSON_MAX_DEPTH];   /* per open container */
	bool after_key;
};

void json_init(struct json *j, struct buf *out, bool pretty);
void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
/* The key of the next value (inside an object). */
void json_key(struct json *j, const char *key);
/* A string; NULL writes null. */
void json_string(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* A final newline and a terminating NUL (not counted in out->len). */
void json_finish(struct json *j);

/* key + value in one call. */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, int64_t v);
void json_kv_uint(struct json *j, const char *key, uint64_t v);
void json_kv_bool(struct json *j, const char *key, bool v);
void json_kv_null(struct json *j, const char *key);

/* Append s (len bytes) as a quoted, escaped JSON string. */
void json_escape(struct buf *out, const char *s, size_t len);

#endif
