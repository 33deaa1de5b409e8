/* test_json.c - the JSON writer: structure, commas, escaping, invalid
 * UTF-8, pretty and compact output. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tap.h"
#include "util.h"

static char *escaped(const char *s, size_t len)
{
	struct buf b = { 0 };

	json_escape(&b, s, len);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static int check_escape(const char *in, size_t len, const char *want, const char *what)
{
	char *got = escaped(in, len);
	int r = ok(strcmp(got, want) == 0, "%s: %s", what, got);

	free(got);
	return r;
}

int main(void)
{
	struct buf b = { 0 };
	struct json j;

	check_escape("plain", 5, "\"plain\"", "plain text as is");
	check_escape("a\"b\\c", 5, "\"a\\\"b\\\\c\"", "quote and backslash escaped");
	check_escape("l1\r\nl2\tx\b\f", 10, "\"l1\\r\\nl2\\tx\\b\\f\"", "short escapes");
	check_escape("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"", "other controls as \\u00XX");
	check_escape("a\0b", 3, "\"a\\u0000b\"", "NUL inside the length is escaped");
	check_escape("Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7", 15,
		     "\"Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x93\xa7\"", "valid UTF-8 kept");
	check_escape("x\xff\xfey", 4, "\"x\\ufffd\\ufffdy\"", "invalid bytes become U+FFFD");
	check_escape("\xc3", 1, "\"\\ufffd\"", "a truncated sequence becomes U+FFFD");
	check_escape("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"", "an overlong '/' is not let through");
	check_escape("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"", "a surrogate is refused");
	check_escape("/</script>", 10, "\"/</script>\"", "slash needs no escape");

	/* Compact structure: commas only between items, nested containers. */
	json_init(&j, &b, false);
	json_object_begin(&j);
	json_kv_string(&j, "name", "t\"1");
	json_kv_int(&j, "neg", -5);
	json_kv_uint(&j, "big", UINT64_MAX);
	json_kv_bool(&j, "yes", true);
	json_kv_bool(&j, "no", false);
	json_kv_null(&j, "nothing");
	json_kv_string(&j, "nullstr", NULL);
	json_key(&j, "list");
	json_array_begin(&j);
	json_int(&j, 1);
	json_object_begin(&j);
	json_object_end(&j);
	json_array_begin(&j);
	json_array_end(&j);
	json_string(&j, "z");
	json_array_end(&j);
	json_key(&j, "empty");
	json_object_begin(&j);
	json_object_end(&j);
	json_object_end(&j);
	json_finish(&j);
	ok(strcmp((char *)b.data,
		  "{\"name\":\"t\\\"1\",\"neg\":-5,\"big\":18446744073709551615,\"yes\":true,"
		  "\"no\":false,\"nothing\":null,\"nullstr\":null,\"list\":[1,{},[],\"z\"],"
		  "\"empty\":{}}\n") == 0, "compact document: %.*s", (int)b.len - 1, (char *)b.data);
	buf_free(&b);

	/* Pretty: two spaces per level, empty containers stay on one line. */
	json_init(&j, &b, true);
	json_object_begin(&j);
	json_kv_int(&j, "a", 1);
	json_key(&j, "b");
	json_array_begin(&j);
	json_string(&j, "x");
	json_array_end(&j);
	json_key(&j, "c");
	json_array_begin(&j);
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	if (!ok(strcmp((char *)b.data,
		       "{\n  \"a\": 1,\n  \"b\": [\n    \"x\"\n  ],\n  \"c\": []\n}\n") == 0,
		"pretty document: two spaces per level, empty containers on one line"))
		diag("got: %s", (char *)b.data);
	buf_free(&b);

	/* A top-level array of scalars. */
	json_init(&j, &b, false);
	json_array_begin(&j);
	json_null(&j);
	json_bool(&j, true);
	json_array_end(&j);
	json_finish(&j);
	ok(strcmp((char *)b.data, "[null,true]\n") == 0, "top-level array: %.*s", (int)b.len - 1,
	   (char *)b.data);
	buf_free(&b);

	/* Keys are escaped too. */
	json_init(&j, &b, false);
	json_object_begin(&j);
	json_kv_int(&j, "k\n\"", 0);
	json_object_end(&j);
	json_finish(&j);
	ok(strcmp((char *)b.data, "{\"k\\n\\\"\":0}\n") == 0, "keys are escaped: %.*s",
	   (int)b.len - 1, (char *)b.data);
	buf_free(&b);
	return tap_done();
}
