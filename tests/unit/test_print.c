// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The output writer (user/lib/print.c): one description of the values gives
 * the text and the JSON; untrusted strings never break the JSON nor add a
 * line to the text; a failed command prints no partial document; a streamed
 * array is written as its elements close.
 */
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "print.h"
#include "unit.h"

/* The output of describe(arg) as text or JSON, in a malloc'd string. */
static char *run(bool json, unsigned int flags, void (*describe)(const void *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ASSERT_TRUE(f, "open_memstream");
	print_start(f, json, flags);
	describe(arg);
	ASSERT_EQ(print_end(), 0, "print_end");
	fclose(f);
	return buf;
}

struct backend_row {
	const char *name;
	unsigned long long weight;
	double share;
	bool draining;
	const char *service;	/* NULL: none */
};

static void describe_row(const void *arg)
{
	const struct backend_row *b = arg;

	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "%-6s", b->name);
	print_u64(PRINT_ANY, "weight", " %4llu", b->weight);
	print_double(PRINT_JSON, "share", NULL, b->share);
	print_double(PRINT_FP, NULL, " %6.2f%%", 100 * b->share);
	print_bool(PRINT_JSON, "draining", NULL, b->draining);
	if (b->draining)
		print_text(" (draining)");
	print_string(PRINT_ANY, "service", " %s", b->service);
	print_open_array("tags");
	print_string(PRINT_ANY, NULL, " [%s]", "a");
	print_close_array();
	print_text("\n");
	print_close_object();
}

static void one_description_gives_text_and_json(void **state)
{
	struct backend_row b = { "v1", 90, 0.75, true, "web" };
	char *text = run(false, 0, describe_row, &b), *json = run(true, 0, describe_row, &b);

	ASSERT_TRUE(!strcmp(text, "v1       90  75.00% (draining) web [a]\n"), "text: '%s'", text);
	ASSERT_TRUE(!strcmp(json, "{\"name\":\"v1\",\"weight\":90,\"share\":0.75,\"draining\":true,"
				  "\"service\":\"web\",\"tags\":[\"a\"]}\n"),
		    "json: '%s'", json);
	free(text);
	free(json);
	b.service = NULL;
	text = run(false, 0, describe_row, &b);
	json = run(true, 0, describe_row, &b);
	ASSERT_TRUE(strstr(text, " - [a]\n"), "no string: '-' as text: '%s'", text);
	ASSERT_TRUE(strstr(json, "\"service\":null"), "no string: null in JSON: '%s'", json);
	free(text);
	free(json);
}

static void describe_name(const void *arg)
{
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "name %s", arg);
	print_u64(PRINT_ANY, "weight", " %llu\n", 1);
	print_close_object();
}

static void hostile_names_break_neither_json_nor_lines(void **state)
{
	static const struct {
		const char *name;
		const char *text;	/* as text */
		const char *json;	/* the name JSON gives back */
	} cases[] = {
		{ "v1", "name v1 1\n", "v1" },
		{ "a\"b", "name a\"b 1\n", "a\"b" },
		{ "a\\b", "name a\\x5cb 1\n", "a\\b" },
		{ "a\nweight 99", "name a\\x0aweight 99 1\n", "a\nweight 99" },
		{ "a\r\tb", "name a\\x0d\\x09b 1\n", "a\r\tb" },
		{ "\x1b[2J", "name \\x1b[2J 1\n", "\x1b[2J" },
		{ "a\x7f", "name a\\x7f 1\n", "a\x7f" },
		{ "\",\"weight\":9,\"x\":\"", "name \",\"weight\":9,\"x\":\" 1\n",
		  "\",\"weight\":9,\"x\":\"" },
		/* UTF-8 is kept in JSON; bytes that are not become U+FFFD */
		{ "caf\xc3\xa9", "name caf\\xc3\\xa9 1\n", "caf\xc3\xa9" },
		{ "a\xff\xc3", "name a\\xff\\xc3 1\n", "a\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xc2\x9b" "2J", "name \\xc2\\x9b2J 1\n", "\xc2\x9b" "2J" },
		{ "\xed\xa0\x80", "name \\xed\\xa0\\x80 1\n",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = run(false, 0, describe_name, cases[i].name);
		char *json = run(true, 0, describe_name, cases[i].name);
		json_object *o = json_tokener_parse(json), *v;

		ASSERT_TRUE(!strcmp(text, cases[i].text), "case %zu: text '%s'", i, text);
		ASSERT_TRUE(strchr(text, '\n') == text + strlen(text) - 1,
			    "case %zu: one line of text", i);
		ASSERT_TRUE(o && json_object_is_type(o, json_type_object),
			    "case %zu: JSON parses: '%s'", i, json);
		ASSERT_TRUE(json_object_object_length(o) == 2, "case %zu: two members", i);
		ASSERT_TRUE(json_object_object_get_ex(o, "name", &v) &&
				    !strcmp(json_object_get_string(v), cases[i].json),
			    "case %zu: the name comes back", i);
		ASSERT_TRUE(json_object_object_get_ex(o, "weight", &v) &&
				    json_object_get_int64(v) == 1,
			    "case %zu: the weight stays", i);
		ASSERT_TRUE(strchr(json, '\n') == json + strlen(json) - 1,
			    "case %zu: one line of JSON", i);
		json_object_put(o);
		free(text);
		free(json);
	}
}

static void describe_half(const void *arg)
{
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "name %s\n", "v1");
	print_open_array("backends");
	/* the command fails here */
}

static void failed_command_prints_no_partial_json(void **state)
{
	char *json = run(true, 0, describe_half, NULL), *text = run(false, 0, describe_half, NULL);

	ASSERT_TRUE(!strcmp(json, ""), "nothing in JSON: '%s'", json);
	ASSERT_TRUE(!strcmp(text, "name v1\n"), "text as far as it went: '%s'", text);
	free(json);
	free(text);
}

static void describe_series(const void *arg)
{
	static const float v[] = { 1.5f, 0, 12.25f, 3 };

	print_open_object(NULL);
	print_decimals("series", v, 4, 1);
	print_decimals("empty", v, 0, 1);
	print_text("nothing of it as text\n");
	print_close_object();
}

/* An array of numbers written whole by one object: the same JSON as a value
 * each (the shortest decimal form), nothing as text. */
static void number_arrays_are_json_only_and_shortest(void **state)
{
	char *json = run(true, 0, describe_series, NULL);
	char *text = run(false, 0, describe_series, NULL);

	ASSERT_TRUE(!strcmp(json, "{\"series\":[1.5,0,12.2,3],\"empty\":[]}\n"), "json: %s",
		    json);
	ASSERT_TRUE(!strcmp(text, "nothing of it as text\n"), "text: %s", text);
	free(json);
	free(text);
}

static void streamed_array_is_written_as_elements_close(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	print_start(f, true, PRINT_F_STREAM);
	print_open_array(NULL);
	for (int i = 0; i < 3; i++) {
		print_open_object(NULL);
		print_u64(PRINT_ANY, "n", "%llu\n", i);
		print_close_object();
		fflush(f);
		ASSERT_TRUE(strstr(buf, i ? ",{\"n\":" : "[{\"n\":0}"),
			    "element %d written when it closed: '%s'", i, buf);
	}
	print_close_array();
	ASSERT_EQ(print_end(), 0, "print_end");
	fclose(f);
	ASSERT_TRUE(!strcmp(buf, "[{\"n\":0},{\"n\":1},{\"n\":2}]\n"), "the array: '%s'", buf);
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	print_start(f, true, PRINT_F_STREAM);
	print_open_array(NULL);
	print_close_array();
	print_end();
	fclose(f);
	ASSERT_TRUE(!strcmp(buf, "[]\n"), "an empty streamed array: '%s'", buf);
	free(buf);
}

/* stats' shape: an object of an array of objects and an object. Streamed,
 * each service is written when it closes; the document is the one built
 * whole, byte for byte. */
static void describe_stats(const void *arg)
{
	print_open_object(NULL);
	print_open_array("services");
	for (int i = 0; i < 3; i++) {
		print_open_object(NULL);
		print_string(PRINT_ANY, "name", "%s\n", i == 1 ? "a\"b" : "s");
		print_open_array("backends");
		print_open_object(NULL);
		print_u64(PRINT_ANY, "flows", "%llu\n", i);
		print_close_object();
		print_close_array();
		print_close_object();
	}
	print_close_array();
	print_open_object("counters");
	print_u64(PRINT_ANY, "new_flows", "%llu\n", 7);
	print_close_object();
	print_u64(PRINT_ANY, "version", "%llu\n", 3);
	print_close_object();
}

static void streamed_object_is_the_document_built_whole(void **state)
{
	char *whole = run(true, 0, describe_stats, NULL);
	char *streamed = run(true, PRINT_F_STREAM, describe_stats, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ASSERT_TRUE(!strcmp(whole, streamed), "streamed '%s', built whole '%s'", streamed, whole);
	free(whole);
	free(streamed);
	/* the first service is out before the second opens */
	print_start(f, true, PRINT_F_STREAM);
	print_open_object(NULL);
	print_open_array("services");
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "%s\n", "first");
	print_close_object();
	fflush(f);
	ASSERT_TRUE(!strcmp(buf, "{\"services\":[{\"name\":\"first\"}"), "written so far: '%s'",
		    buf);
	print_close_array();
	print_close_object();
	print_end();
	fclose(f);
	free(buf);
}

int run_print_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_description_gives_text_and_json),
		cmocka_unit_test(hostile_names_break_neither_json_nor_lines),
		cmocka_unit_test(streamed_object_is_the_document_built_whole),
		cmocka_unit_test(failed_command_prints_no_partial_json),
		cmocka_unit_test(streamed_array_is_written_as_elements_close),
		cmocka_unit_test(number_arrays_are_json_only_and_shortest),
	};

	return cmocka_run_group_tests_name("print", tests, NULL, NULL);
}
