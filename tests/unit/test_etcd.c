// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd's JSON gateway without I/O (user/daemon/etcd.c): the URL, base64,
 * and the range and watch answers, good and hostile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "unit.h"

static void etcd_url_good(void **state)
{
	static const struct {
		const char *url, *ep0, *ep1, *key;
		size_t n;
	} cases[] = {
		{ "etcd://127.0.0.1:2379/tcpshift/site", "127.0.0.1:2379", NULL, "/tcpshift/site", 1 },
		{ "etcd://etcd.example.org/k", "etcd.example.org:2379", NULL, "/k", 1 },
		{ "etcd://[2001:db8::1]:2380/a/b-c_d.e", "[2001:db8::1]:2380", NULL, "/a/b-c_d.e", 1 },
		{ "etcd://[::1]/x", "[::1]:2379", NULL, "/x", 1 },
		{ "etcd://10.0.0.1:2379,10.0.0.2:2381/k=v", "10.0.0.1:2379", "10.0.0.2:2381", "/k=v", 2 },
	};
	struct ts_etcd_url u;
	struct ts_err err;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		ASSERT_TRUE(!ts_etcd_url_parse(cases[i].url, &u, &err), "%s: %s", cases[i].url,
			    err.msg);
		ASSERT_EQ(u.nendpoints, cases[i].n, cases[i].url);
		ASSERT_TRUE(!strcmp(u.endpoints[0], cases[i].ep0), "%s: endpoint %s", cases[i].url,
			    u.endpoints[0]);
		ASSERT_TRUE(!cases[i].ep1 || !strcmp(u.endpoints[1], cases[i].ep1),
			    "%s: endpoint 2 %s", cases[i].url, u.endpoints[1]);
		ASSERT_TRUE(!strcmp(u.key, cases[i].key), "%s: key %s", cases[i].url, u.key);
	}
}

static void etcd_url_bad(void **state)
{
	static const char *const bad[] = {
		"", "etcd:/", "etcd://", "http://127.0.0.1:2379/k", "etcd://127.0.0.1:2379",
		"etcd://127.0.0.1:2379/", "etcd://:2379/k", "etcd://h:/k", "etcd://h:0/k",
		"etcd://h:65536/k", "etcd://h:99999999999/k", "etcd://h:-1/k", "etcd://h:+1/k",
		"etcd://h:1x/k", "etcd://[::1/k", "etcd://[::1]x/k", "etcd://[zz::1]/k",
		"etcd://[]/k", "etcd://h_x/k", "etcd://h x/k", "etcd://user@h/k", "etcd://a,,b/k",
		"etcd://a,/k", "etcd://h/k?x", "etcd://h/k#f", "etcd://h/k%41", "etcd://h/k x",
		"etcd://h/k\n", "etcd://h/k\x01", "etcd://h/\xff",
		"etcd://a,b,c,d,e,f,g,h,i/k",	/* 9 endpoints */
	};
	char longkey[TS_ETCD_KEY_MAX + 32], longhost[300];
	struct ts_etcd_url u;
	struct ts_err err;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		ASSERT_EQ(ts_etcd_url_parse(bad[i], &u, &err), -TS_ERR_USAGE, bad[i]);
		ASSERT_TRUE(err.msg[0] && !strchr(err.msg, '\n'), "'%s': one line: %s", bad[i],
			    err.msg);
	}
	snprintf(longkey, sizeof(longkey), "etcd://h/%0*d", TS_ETCD_KEY_MAX, 0);
	ASSERT_EQ(ts_etcd_url_parse(longkey, &u, &err), -TS_ERR_USAGE, "a key too long");
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost, "etcd://", 7);
	strcpy(longhost + sizeof(longhost) - 4, "/k");
	ASSERT_EQ(ts_etcd_url_parse(longhost, &u, &err), -TS_ERR_USAGE, "a host too long");
	ASSERT_EQ(ts_etcd_key_check("/tcpshift/status/gw1", "--status-key", &err), 0, "a key");
	ASSERT_EQ(ts_etcd_key_check("status", "--status-key", &err), -TS_ERR_USAGE, "no /");
	ASSERT_TRUE(strstr(err.msg, "--status-key"), "names the option: %s", err.msg);
}

static void etcd_base64(void **state)
{
	static const struct {
		const char *plain, *enc;
	} vectors[] = {	/* RFC 4648, section 10 */
		{ "", "" },	    { "f", "Zg==" },	    { "fo", "Zm8=" },
		{ "foo", "Zm9v" },  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = { "Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v!A==",
					   "Zm=v", "Zm9\n", "Zg=A", "Zh==", "Zm9=" };
	struct rng rng = { 14 };
	char enc[64], dec[64], buf[48];
	size_t n;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
		ts_base64_encode(vectors[i].plain, strlen(vectors[i].plain), enc);
		ASSERT_TRUE(!strcmp(enc, vectors[i].enc), "encode '%s': %s", vectors[i].plain, enc);
		ASSERT_EQ(ts_base64_decode(enc, strlen(enc), dec, &n), 0, vectors[i].enc);
		ASSERT_TRUE(n == strlen(vectors[i].plain) && !memcmp(dec, vectors[i].plain, n),
			    "decode %s", vectors[i].enc);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ASSERT_TRUE(ts_base64_decode(bad[i], strlen(bad[i]), dec, &n), "'%s' refused",
			    bad[i]);
	for (int round = 0; round < 1000; round++) {
		size_t len = rng_below(&rng, sizeof(buf));

		for (size_t i = 0; i < len; i++)
			buf[i] = (char)rng_below(&rng, 256);
		ts_base64_encode(buf, len, enc);
		ASSERT_EQ(strlen(enc), (len + 2) / 3 * 4, "encoded length");
		ASSERT_EQ(ts_base64_decode(enc, strlen(enc), dec, &n), 0, "random decodes");
		ASSERT_TRUE(n == len && !memcmp(dec, buf, len), "round trip of %zu bytes", len);
	}
}

#define KEY64 "L3RzL3NpdGU="	/* "/ts/site" */
#define HDR "\"header\":{\"cluster_id\":\"1\",\"revision\":\"7\"}"

static void etcd_range_answers(void **state)
{
	struct ts_etcd_range r;
	struct ts_err err;
	const char *body;

	(void)state;
	/* found: {"a":1} */
	body = "{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\",\"create_revision\":\"2\","
	       "\"mod_revision\":\"5\",\"version\":\"1\",\"value\":\"eyJhIjoxfQ==\"}],\"count\":\"1\"}";
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, "range found");
	ASSERT_EQ(r.revision, 7, "revision");
	ASSERT_TRUE(r.kv.found && r.kv.mod_revision == 5 && r.kv.len == 7 &&
			    !strcmp(r.kv.value, "{\"a\":1}"),
		    "the value");
	ts_etcd_kv_free(&r.kv);
	/* missing: no kvs (proto3 leaves empty lists out) */
	body = "{" HDR "}";
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, "range missing");
	ASSERT_TRUE(!r.kv.found && r.revision == 7, "missing");
	/* another key only: not ours */
	body = "{" HDR ",\"kvs\":[{\"key\":\"L290aGVy\",\"mod_revision\":\"5\",\"value\":\"eA==\"}]}";
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, "another key");
	ASSERT_TRUE(!r.kv.found, "another key is not ours");
	/* an empty value is found, empty */
	body = "{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\",\"mod_revision\":\"6\"}]}";
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, "empty value");
	ASSERT_TRUE(r.kv.found && r.kv.len == 0 && r.kv.value && !r.kv.value[0], "empty value");
	ts_etcd_kv_free(&r.kv);

	static const char *const bad[] = {
		"", "not json", "[]", "{}", "{\"header\":{}}", "{\"header\":{\"revision\":\"-1\"}}",
		"{\"header\":{\"revision\":\"7x\"}}", "{\"header\":{\"revision\":true}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{" HDR ",\"kvs\":{}}", "{" HDR ",\"kvs\":[1]}",
		"{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":\"!!!!\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\",\"value\":7}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\",\"mod_revision\":\"x\"}]}",
		"{" HDR "} trailing",
		"{\"error\":\"etcdserver: permission denied\",\"code\":7,"
		"\"message\":\"etcdserver: permission denied\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		ASSERT_EQ(ts_etcd_range_parse(bad[i], strlen(bad[i]), KEY64, &r, &err),
			  -TS_ERR_RUNTIME, bad[i]);
		ASSERT_TRUE(err.msg[0] && !r.kv.value, "'%s': an error, nothing kept", bad[i]);
	}
	ASSERT_TRUE(strstr(err.msg, "permission denied"), "etcd's reason: %s", err.msg);
}

static void etcd_range_too_large(void **state)
{
	static const char head[] = "{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\","
				   "\"mod_revision\":\"9\",\"value\":\"";
	size_t big = ((size_t)TS_ETCD_VALUE_MAX / 3 + 2) * 4;	/* decodes past the limit */
	char *body = malloc(sizeof(head) + big + 8);
	struct ts_etcd_range r;
	struct ts_err err;

	(void)state;
	ASSERT_TRUE(body, "memory");
	strcpy(body, head);
	memset(body + sizeof(head) - 1, 'A', big);
	strcpy(body + sizeof(head) - 1 + big, "\"}]}");
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, "parsed");
	ASSERT_TRUE(r.kv.found && r.kv.too_large && !r.kv.value && r.kv.mod_revision == 9,
		    "too large: refused undecoded, with its revision");
	free(body);
}

/* The largest value etcd takes by default (TS_ETCD_VALUE_MAX) is decoded. */
static void etcd_range_largest_value(void **state)
{
	static const char head[] = "{" HDR ",\"kvs\":[{\"key\":\"" KEY64 "\","
				   "\"mod_revision\":\"9\",\"value\":\"";
	size_t n = (size_t)TS_ETCD_VALUE_MAX / 3 * 4;	/* base64 of VALUE_MAX bytes */
	char *body = malloc(sizeof(head) + n + 8);
	struct ts_etcd_range r;
	struct ts_err err;

	(void)state;
	ASSERT_TRUE(body, "memory");
	strcpy(body, head);
	memset(body + sizeof(head) - 1, 'A', n);
	strcpy(body + sizeof(head) - 1 + n, "\"}]}");
	ASSERT_TRUE(strlen(body) <= TS_ETCD_BODY_MAX, "within the answer's bound");
	ASSERT_EQ(ts_etcd_range_parse(body, strlen(body), KEY64, &r, &err), 0, err.msg);
	ASSERT_TRUE(r.kv.found && !r.kv.too_large && r.kv.len == TS_ETCD_VALUE_MAX,
		    "decoded: %zu bytes", r.kv.len);
	ts_etcd_kv_free(&r.kv);
	free(body);
}

/* Answers past the bounds of their bytes, nesting, arrays and objects, or
 * values are refused before json-c builds a tree: peak memory grows by a few
 * MiB, where json-c's tree of 2 MiB of "{}," took 500 MiB. */
static void etcd_answers_bounded_before_parsing(void **state)
{
	static const struct {
		const char	*head, *rep;
		size_t		n;
		const char	*tail, *why;
	} cases[] = {
		{ "{" HDR ",\"kvs\":[", "{},", 700000, "{}]}", "more than 1024 arrays and objects" },
		{ "{" HDR ",\"x\":[", "0,", 1000000, "0]}", "more than 8192 values" },
		{ "", "[", 100000, "", "nested deeper than 16 levels" },
		{ "{" HDR ",\"x\":\"", "A", TS_ETCD_BODY_MAX, "\"}", "more than 2162688 bytes" },
	};
	struct ts_etcd_watch w;
	struct ts_etcd_range r;
	struct ts_err err;
	long before = peak_rss_kib();

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *t = repeated(cases[i].head, cases[i].rep, cases[i].n, cases[i].tail);

		ASSERT_TRUE(t, "memory");
		ASSERT_EQ(ts_etcd_range_parse(t, strlen(t), KEY64, &r, &err), -TS_ERR_RUNTIME,
			  cases[i].why);
		ASSERT_TRUE(strstr(err.msg, "refused unparsed") && strstr(err.msg, cases[i].why),
			    "range: %s", err.msg);
		ASSERT_EQ(ts_etcd_watch_parse(t, strlen(t), KEY64, &w, &err), -TS_ERR_RUNTIME,
			  cases[i].why);
		ASSERT_TRUE(strstr(err.msg, "refused unparsed") && strstr(err.msg, cases[i].why),
			    "watch: %s", err.msg);
		free(t);
	}
	ASSERT_TRUE(peak_rss_kib() - before < 16 << 10, "peak memory grew by %ld KiB",
		    peak_rss_kib() - before);
}

static void etcd_watch_messages(void **state)
{
	struct ts_etcd_watch w;
	struct ts_err err;
	const char *m;

	(void)state;
	m = "{\"result\":{" HDR ",\"created\":true}}";
	ASSERT_EQ(ts_etcd_watch_parse(m, strlen(m), KEY64, &w, &err), 0, "created");
	ASSERT_TRUE(w.created && !w.event && !w.canceled && w.revision == 7, "created");
	/* two puts and another key's: the last of ours wins */
	m = "{\"result\":{" HDR ",\"events\":["
	    "{\"kv\":{\"key\":\"" KEY64 "\",\"mod_revision\":\"8\",\"value\":\"eyJhIjoxfQ==\"}},"
	    "{\"kv\":{\"key\":\"" KEY64 "\",\"mod_revision\":\"9\",\"value\":\"eyJhIjoyfQ==\"}},"
	    "{\"kv\":{\"key\":\"L290aGVy\",\"mod_revision\":\"10\",\"value\":\"eA==\"}}]}}";
	ASSERT_EQ(ts_etcd_watch_parse(m, strlen(m), KEY64, &w, &err), 0, "events");
	ASSERT_TRUE(w.event && w.kv.found && w.kv.mod_revision == 9 &&
			    !strcmp(w.kv.value, "{\"a\":2}"),
		    "the last event of our key");
	ts_etcd_kv_free(&w.kv);
	m = "{\"result\":{" HDR ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"" KEY64
	    "\",\"mod_revision\":\"11\"}}]}}";
	ASSERT_EQ(ts_etcd_watch_parse(m, strlen(m), KEY64, &w, &err), 0, "delete");
	ASSERT_TRUE(w.event && !w.kv.found && w.kv.mod_revision == 11, "a deletion");
	ts_etcd_kv_free(&w.kv);
	m = "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"3\"}}";
	ASSERT_EQ(ts_etcd_watch_parse(m, strlen(m), KEY64, &w, &err), 0, "compacted");
	ASSERT_TRUE(w.canceled && w.compact_revision == 3, "compacted");
	m = "{\"result\":{\"canceled\":true,\"cancel_reason\":\"no\\nline\"}}";
	ASSERT_EQ(ts_etcd_watch_parse(m, strlen(m), KEY64, &w, &err), 0, "canceled");
	ASSERT_TRUE(w.canceled && !strcmp(w.reason, "no?line"), "a reason on one line: %s",
		    w.reason);

	static const char *const bad[] = {
		"", "{", "null", "{\"result\":1}", "{}",
		"{\"result\":{\"header\":{\"revision\":\"a\"}}}",
		"{\"result\":{\"events\":{}}}",
		"{\"result\":{\"events\":[{}]}}",
		"{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"" KEY64 "\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":1,\"kv\":{\"key\":\"" KEY64 "\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"" KEY64 "\",\"value\":\"@@@@\"}}]}}",
		"{\"result\":{\"compact_revision\":\"-4\"}}",
		"{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		ASSERT_EQ(ts_etcd_watch_parse(bad[i], strlen(bad[i]), KEY64, &w, &err),
			  -TS_ERR_RUNTIME, bad[i]);
		ASSERT_TRUE(err.msg[0] && !w.kv.value, "'%s': an error, nothing kept", bad[i]);
	}
	ASSERT_TRUE(strstr(err.msg, "no leader"), "etcd's reason: %s", err.msg);
}

int run_etcd_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(etcd_url_good),	  cmocka_unit_test(etcd_url_bad),
		cmocka_unit_test(etcd_base64),	  cmocka_unit_test(etcd_range_answers),
		cmocka_unit_test(etcd_range_too_large), cmocka_unit_test(etcd_watch_messages),
		cmocka_unit_test(etcd_range_largest_value),
		cmocka_unit_test(etcd_answers_bounded_before_parsing),
	};

	return cmocka_run_group_tests_name("etcd", tests, NULL, NULL);
}
