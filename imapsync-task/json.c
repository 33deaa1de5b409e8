/* json.c - a tiny JSON writer (see json.h). */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "json.h"

void json_init(struct json *j, struct buf *out, bool pretty)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->pretty = pretty;
}

static void indent(struct json *j)
{
	if (!j->pretty)
		return;
	buf_append(j->out, "\n", 1);
	for (int i = 0; i < j->depth; i++)
		buf_append(j->out, "  ", 2);
}

/* Before any value or key: the comma and the line break it needs. */
static void before_item(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (j->has_items[j->depth - 1])
			buf_append(j->out, ",", 1);
		j->has_items[j->depth - 1] = true;
		indent(j);
	}
}

static void open_container(struct json *j, char c)
{
	before_item(j);
	buf_append(j->out, &c, 1);
	if (j->depth < JSON_MAX_DEPTH)
		j->has_items[j->depth] = false;
	j->depth++;
}

static void close_container(struct json *j, char c)
{
	bool items = j->depth > 0 && j->depth <= JSON_MAX_DEPTH && j->has_items[j->depth - 1];

	if (j->depth > 0)
		j->depth--;
	if (items)
		indent(j);
	buf_append(j->out, &c, 1);
}

void json_object_begin(struct json *j) { open_container(j, '{'); }
void json_object_end(struct json *j) { close_container(j, '}'); }
void json_array_begin(struct json *j) { open_container(j, '['); }
void json_array_end(struct json *j) { close_container(j, ']'); }

void json_key(struct json *j, const char *key)
{
	before_item(j);
	json_escape(j->out, key, strlen(key));
	buf_append(j->out, j->pretty ? ": " : ":", j->pretty ? 2 : 1);
	j->after_key = true;
}

void json_escape(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	buf_append(out, "\"", 1);
	while (p < end) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			buf_append(out, e, 2);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': buf_append(out, "\\n", 2); break;
			case '\r': buf_append(out, "\\r", 2); break;
			case '\t': buf_append(out, "\\t", 2); break;
			case '\b': buf_append(out, "\\b", 2); break;
			case '\f': buf_append(out, "\\f", 2); break;
			default: buf_appendf(out, "\\u%04x", c); break;
			}
			p++;
		} else if (c < 0x80) {
			buf_append(out, p, 1);
			p++;
		} else {
			uint32_t cp;
			size_t n = utf8_decode(p, (size_t)(end - p), &cp);
			if (n == 0) {
				buf_append(out, "\\ufffd", 6);
				p++;
			} else {
				buf_append(out, p, n);
				p += n;
			}
		}
	}
	buf_append(out, "\"", 1);
}

void json_string(struct json *j, const char *s)
{
	before_item(j);
	if (s == NULL)
		buf_append(j->out, "null", 4);
	else
		json_escape(j->out, s, strlen(s));
}

void json_int(struct json *j, int64_t v)
{
	before_item(j);
	buf_appendf(j->out, "%" PRId64, v);
}

void json_uint(struct json *j, uint64_t v)
{
	before_item(j);
	buf_appendf(j->out, "%" PRIu64, v);
}

void json_bool(struct json *j, bool v)
{
	before_item(j);
	buf_append(j->out, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json *j)
{
	before_item(j);
	buf_append(j->out, "null", 4);
}

void json_finish(struct json *j)
{
	buf_append(j->out, "\n", 1);
	buf_reserve(j->out, 1);
	j->out->data[j->out->len] = '\0';
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_kv_int(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	json_int(j, v);
}

void json_kv_uint(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_uint(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_kv_null(struct json *j, const char *key)
{
	json_key(j, key);
	json_null(j);
}
