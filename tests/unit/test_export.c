// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Configuration documents (user/lib/doc.c): the format `tcpshift export`
 * prints and `tcpshift import` reads. What is checked:
 *  - the text of a configuration is fixed, byte for byte (invariant 6: two
 *    gateways with the same configuration export the same document), and
 *    does not depend on the order things were given in;
 *  - text -> document -> text round-trips;
 *  - every kind of bad document is refused as a usage error with one line
 *    that starts with the place in the document (what `import` prints after
 *    "tcpshift: FILE: "), and leaves the document empty;
 *  - the plan (ts_doc_plan) lists what an import would change, in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libtcpshift.h"
#include "unit.h"

/* The document of the README's example, as `tcpshift export` prints it. */
static const char golden[] =
	"{\n"
	"  \"tcpshift\": 1,\n"
	"  \"seed\": 2086625005,\n"
	"  \"services\": [\n"
	"    {\n"
	"      \"name\": \"tcp-echo\",\n"
	"      \"vip\": \"198.18.100.1:8008\",\n"
	"      \"table_size\": 16381,\n"
	"      \"backends\": [\n"
	"        {\n"
	"          \"name\": \"v1\",\n"
	"          \"addr\": \"198.18.2.11:8008\",\n"
	"          \"weight\": 90\n"
	"        },\n"
	"        {\n"
	"          \"name\": \"v2\",\n"
	"          \"addr\": \"198.18.2.12:8008\",\n"
	"          \"weight\": 10\n"
	"        }\n"
	"      ]\n"
	"    },\n"
	"    {\n"
	"      \"name\": \"web6\",\n"
	"      \"vip\": \"[2001:2:100::1]:80\",\n"
	"      \"table_size\": 65537,\n"
	"      \"backends\": [\n"
	"      ]\n"
	"    }\n"
	"  ]\n"
	"}\n";

/* A configuration as ts_config_read gives it, built by hand. */
static void config_add_backend(struct ts_service_cfg *s, const char *name, const char *ep,
			       __u32 weight)
{
	struct ts_backend_cfg *b = &s->backends[s->nbackends++];
	struct ts_endpoint e;

	ASSERT_TRUE(ts_parse_endpoint(ep, &e, NULL) == 0, "bad test endpoint %s", ep);
	memset(b, 0, sizeof(*b));
	b->id = (__u32)s->nbackends * 7;
	b->weight = weight;
	memcpy(b->be.addr, e.addr, sizeof(b->be.addr));
	b->be.port = e.port;
	b->be.family = e.family;
	b->be.state = TS_BACKEND_ACTIVE;
	snprintf(b->be.name, sizeof(b->be.name), "%s", name);
}

static void config_service(struct ts_service_cfg *s, const char *name, const char *vip,
			   __u32 table_size)
{
	struct ts_endpoint e;

	ASSERT_TRUE(ts_parse_endpoint(vip, &e, NULL) == 0, "bad test VIP %s", vip);
	memset(s, 0, sizeof(*s));
	memcpy(s->key.addr, e.addr, sizeof(s->key.addr));
	s->key.port = e.port;
	s->key.family = e.family;
	s->key.proto = 6;
	s->svc.table_size = table_size;
	s->svc.flags = TS_SERVICE_F_FIXED_SIZE;
	s->backends = calloc(8, sizeof(*s->backends));	/* enough for these tests */
	snprintf(s->svc.name, sizeof(s->svc.name), "%s", name);
}

static void export_text_is_fixed(void **state)
{
	struct ts_service_cfg *svc = calloc(2, sizeof(*svc));
	struct ts_config cfg = { .nservices = 2, .services = svc };
	struct ts_err err = { .status = TS_OK };
	struct ts_doc doc;
	char *text;

	/* given out of order: the document sorts services and backends */
	config_service(&svc[0], "web6", "[2001:2:100::1]:80", 65537);
	config_service(&svc[1], "tcp-echo", "198.18.100.1:8008", 16381);
	config_add_backend(&svc[1], "v2", "198.18.2.12:8008", 10);
	config_add_backend(&svc[1], "v1", "198.18.2.11:8008", 90);
	ASSERT_TRUE(ts_doc_from_config(&cfg, TS_DEFAULT_SEED, &doc, &err) == 0, "%s", err.msg);
	text = ts_doc_format(&doc);
	ASSERT_TRUE(text != NULL, "ts_doc_format failed");
	if (strcmp(text, golden))
		fail_msg("export text differs from the golden document:\n%s", text);
	free(text);
	ts_doc_free(&doc);
	ts_config_free(&cfg);
}

static bool docs_equal(const struct ts_doc *a, const struct ts_doc *b)
{
	if (a->seed != b->seed || a->nservices != b->nservices)
		return false;
	for (size_t i = 0; i < a->nservices; i++) {
		const struct ts_doc_service *x = &a->services[i], *y = &b->services[i];

		if (strcmp(x->name, y->name) || memcmp(&x->vip, &y->vip, sizeof(x->vip)) ||
		    x->table_size != y->table_size || x->nbackends != y->nbackends)
			return false;
		for (size_t j = 0; j < x->nbackends; j++)
			if (strcmp(x->backends[j].name, y->backends[j].name) ||
			    memcmp(&x->backends[j].addr, &y->backends[j].addr,
				   sizeof(x->backends[j].addr)) ||
			    x->backends[j].weight != y->backends[j].weight)
				return false;
	}
	return true;
}

static void parse(const char *text, struct ts_doc *doc)
{
	struct ts_err err = { .status = TS_OK };
	int r = ts_doc_parse(text, strlen(text), doc, &err);

	ASSERT_TRUE(r == 0, "ts_doc_parse refused a good document: %s\n%s", err.msg, text);
}

static void golden_round_trips(void **state)
{
	struct ts_doc doc, again;
	char *text, *text2;

	parse(golden, &doc);
	ASSERT_EQ(doc.seed, TS_DEFAULT_SEED, "seed");
	ASSERT_EQ(doc.nservices, 2, "services");
	ASSERT_TRUE(!strcmp(doc.services[0].name, "tcp-echo"), "first service %s",
		    doc.services[0].name);
	ASSERT_EQ(doc.services[0].nbackends, 2, "backends of tcp-echo");
	ASSERT_EQ(doc.services[0].backends[0].weight, 90, "weight of v1");
	ASSERT_EQ(ntohs(doc.services[0].backends[1].addr.port), 8008, "port of v2");
	ASSERT_EQ(doc.services[1].vip.family, TS_AF_INET6, "family of web6");
	ASSERT_EQ(doc.services[1].table_size, 65537, "table size of web6");
	text = ts_doc_format(&doc);
	ASSERT_TRUE(text && !strcmp(text, golden), "golden -> document -> text differs:\n%s",
		    text ? text : "(null)");
	parse(text, &again);
	ASSERT_TRUE(docs_equal(&doc, &again), "text -> document -> text -> document differs");
	text2 = ts_doc_format(&again);
	ASSERT_TRUE(text2 && !strcmp(text, text2), "second round trip differs");
	free(text);
	free(text2);
	ts_doc_free(&doc);
	ts_doc_free(&again);
}

/* The same configuration written in another order and layout gives the same
 * document and the same text; absent keys take the CLI's defaults. */
static void order_and_defaults_do_not_matter(void **state)
{
	static const char a[] =
		"{\"services\":[{\"backends\":[{\"weight\":10,\"addr\":\"198.18.2.12:8008\","
		"\"name\":\"v2\"},{\"name\":\"v1\",\"addr\":\"198.18.2.11:8008\",\"weight\":1}],"
		"\"vip\":\"198.18.100.1:8008\",\"name\":\"web\"},{\"name\":\"a\",\"vip\":"
		"\"198.18.100.2:80\",\"table_size\":7}],\"seed\":0,\"tcpshift\":1}";
	static const char b[] =
		"\n\t{ \"tcpshift\" : 1 , \"seed\" : 0 , \"services\" : [\r\n"
		"  { \"name\": \"a\", \"vip\": \"198.18.100.2:80\", \"table_size\": 7,"
		" \"backends\": [] },\n"
		"  { \"name\": \"web\", \"vip\": \"198.18.100.1:8008\","
		" \"backends\": [ { \"name\": \"v1\", \"addr\": \"198.18.2.11:8008\" },"
		" { \"name\": \"v2\", \"addr\": \"198.18.2.12:8008\", \"weight\": 10 } ] } ] }\n\n";
	struct ts_doc da, db;
	char *ta, *tb;

	parse(a, &da);
	parse(b, &db);
	ASSERT_TRUE(docs_equal(&da, &db), "the two spellings give different documents");
	ASSERT_EQ(da.services[1].table_size, 0, "default table size: follows the backends");
	ASSERT_EQ(da.services[1].backends[0].weight, 1, "default weight");
	ASSERT_EQ(da.services[0].nbackends, 0, "absent backends");
	ta = ts_doc_format(&da);
	tb = ts_doc_format(&db);
	ASSERT_TRUE(ta && tb && !strcmp(ta, tb), "the two spellings print differently");
	free(ta);
	free(tb);
	ts_doc_free(&da);
	ts_doc_free(&db);
}

/* The parser reads exactly len bytes: no NUL terminator needed, none read. */
static void reads_exactly_len_bytes(void **state)
{
	static const char base[] = "{\"tcpshift\":1,\"seed\":5,\"services\":[]}";
	struct ts_err err = { .status = TS_OK };
	size_t n = strlen(base);
	char *buf = malloc(n);	/* no terminator: ASan would see a read past it */
	struct ts_doc doc;

	memcpy(buf, base, n);
	ASSERT_TRUE(ts_doc_parse(buf, n, &doc, &err) == 0, "%s", err.msg);
	ASSERT_EQ(doc.seed, 5, "seed");
	ts_doc_free(&doc);
	/* a prefix is an incomplete document */
	ASSERT_TRUE(ts_doc_parse(buf, n - 1, &doc, &err) == -TS_ERR_USAGE,
		    "a truncated document was accepted");
	free(buf);
}

/* Documents at the limits are accepted: 1024 backends in a service, 262144 in all,
 * 65536 services. */
static char *big_document(size_t nservices, size_t nbackends)
{
	size_t cap = 128 + nservices * (96 + nbackends * 80), o = 0;
	char *t = malloc(cap);

	o += (size_t)snprintf(t + o, cap - o, "{\"tcpshift\":1,\"seed\":1,\"services\":[");
	for (size_t i = 0; i < nservices; i++) {
		o += (size_t)snprintf(t + o, cap - o,
				      "%s{\"name\":\"s%zu\",\"vip\":\"198.18.100.%zu:%zu\","
				      "\"table_size\":7,\"backends\":[",
				      i ? "," : "", i, i % 250 + 1, i / 250 + 1);
		for (size_t j = 0; j < nbackends; j++)
			o += (size_t)snprintf(t + o, cap - o,
					      "%s{\"name\":\"b%zu\",\"addr\":\"198.19.%zu.%zu:%zu\"}",
					      j ? "," : "", j, i % 256, j % 250 + 1,
					      1 + j / 250 + 8 * (i / 256));
		o += (size_t)snprintf(t + o, cap - o, "]}");
	}
	snprintf(t + o, cap - o, "]}");
	return t;
}

static void limits_are_accepted_and_enforced(void **state)
{
	struct ts_err err = { .status = TS_OK };
	struct ts_doc doc;
	char *t;

	t = big_document(1, TS_MAX_SERVICE_BACKENDS);
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == 0, "1024 backends: %s", err.msg);
	ts_doc_free(&doc);
	free(t);
	t = big_document(1, TS_MAX_SERVICE_BACKENDS + 1);
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE &&
		    !strncmp(err.msg, "services[0].backends: ", 22),
		    "1025 backends: %s", err.msg);
	free(t);
	t = big_document(TS_MAX_BACKENDS / 16, 16);
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == 0, "262144 backends: %s", err.msg);
	ts_doc_free(&doc);
	free(t);
	t = big_document(TS_MAX_BACKENDS / 16 + 1, 16);
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE,
		    "262160 backends accepted");
	free(t);
	t = big_document(TS_MAX_SERVICES + 1, 0);
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE &&
		    !strncmp(err.msg, "services: ", 10),
		    "65537 services: %s", err.msg);
	free(t);
}

/* ---- the shape of a text, bounded before json-c parses it ------------------------- */

static void json_limits_count_the_text(void **state)
{
	static const struct ts_json_limits lim = { .depth = 2, .containers = 3, .values = 6 };
	static const struct {
		const char	*text;
		const char	*why;	/* NULL: within the limits */
	} cases[] = {
		{ "[[1,2],{\"a\":3}]", NULL },
		{ "[[[]]]", "line 1, column 3: nested deeper than 2 levels" },
		{ "[[],[],[]]", "line 1, column 8: more than 3 arrays and objects" },
		{ "[1,2,3,4,5,6]", "line 1, column 11: more than 6 values" },
		{ "[\n1,2,3,4,\n5,6]", "line 3, column 2: more than 6 values" },
		/* brackets and commas in strings are text, an escaped quote too */
		{ "[\"[[[[,,,,,,{{{{\",\"\\\"[[[[,,,,]\"]", NULL },
		{ "[\"\\\\\",[[1]]]", "line 1, column 8: nested deeper than 2 levels" },
		/* closing more than was opened counts nothing back */
		{ "]]]]][[[", "line 1, column 8: nested deeper than 2 levels" },
		{ "\"[[[[[[[", NULL },	/* an unterminated string: json-c refuses it */
	};
	char why[128];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = ts_json_check_limits(cases[i].text, strlen(cases[i].text), &lim, why,
					     sizeof(why));

		if (!cases[i].why)
			ASSERT_TRUE(r == 0, "'%s': within the limits, refused: %s", cases[i].text,
				    why);
		else
			ASSERT_TRUE(r == -E2BIG && !strcmp(why, cases[i].why),
				    "'%s': got %d '%s', want '%s'", cases[i].text, r,
				    r ? why : "", cases[i].why);
	}
}

/* The largest valid document, as `tcpshift export` prints it (health checks
 * on every service, every backend's weight, indented), parses; texts of the
 * same size or smaller with more arrays, objects or values are refused before
 * json-c allocates for them: peak memory grows by a few MiB, where json-c's
 * tree of 1.5 MiB of "{}," alone took 350 MiB. */
static void document_shape_is_bounded_before_parsing(void **state)
{
	const size_t nbe = TS_MAX_BACKENDS / TS_MAX_SERVICES;
	struct ts_err err = { .status = TS_OK };
	size_t cap = 1 << 27, o = 0;
	char *t = malloc(cap);
	struct ts_doc doc;
	long before;

	(void)state;
	ASSERT_TRUE(t, "memory");
	o += (size_t)snprintf(t + o, cap - o,
			      "{\n  \"tcpshift\": 1,\n  \"seed\": 1,\n  \"services\": [\n");
	for (size_t i = 0; i < TS_MAX_SERVICES; i++) {
		o += (size_t)snprintf(t + o, cap - o,
				      "    {\n      \"name\": \"service-%zu\",\n"
				      "      \"vip\": \"198.18.100.%zu:%zu\",\n"
				      "      \"table_size\": 65537,\n      \"health\": {\n"
				      "        \"check\": \"tcp\",\n        \"interval_ms\": 1000,\n"
				      "        \"timeout_ms\": 500,\n        \"rise\": 2,\n"
				      "        \"fall\": 3\n      },\n      \"backends\": [\n",
				      i, i % 250 + 1, i / 250 + 1);
		for (size_t j = 0; j < nbe; j++)
			o += (size_t)snprintf(t + o, cap - o,
					      "        {\n          \"name\": \"backend-%zu\",\n"
					      "          \"addr\": \"198.19.%zu.%zu:%zu\",\n"
					      "          \"weight\": 65535\n        }%s\n",
					      j, i % 256, j + 1, 1000 + i / 256, j + 1 < nbe ? "," : "");
		o += (size_t)snprintf(t + o, cap - o, "      ]\n    }%s\n",
				      i + 1 < TS_MAX_SERVICES ? "," : "");
	}
	snprintf(t + o, cap - o, "  ]\n}\n");
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == 0, "the largest document: %s",
		    err.msg);
	ASSERT_TRUE(doc.nservices == TS_MAX_SERVICES, "65536 services");
	ts_doc_free(&doc);
	free(t);

	before = peak_rss_kib();
	t = repeated("", "[", 100000, "");
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE &&
			    strstr(err.msg, "line 1, column 17: nested deeper than 16 levels"),
		    "100000 '[': %s", err.msg);
	free(t);
	t = repeated("{\"tcpshift\":1,\"seed\":1,\"services\":[", "{},", 1100000, "{}]}");
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE &&
			    strstr(err.msg, "more than 1048576 arrays and objects"),
		    "1100000 '{}': %s", err.msg);
	free(t);
	t = repeated("{\"tcpshift\":1,\"seed\":1,\"services\":[", "1,", 4400000, "1]}");
	ASSERT_TRUE(ts_doc_parse(t, strlen(t), &doc, &err) == -TS_ERR_USAGE &&
			    strstr(err.msg, "more than 4194304 values"),
		    "4400000 numbers: %s", err.msg);
	free(t);
	ASSERT_TRUE(peak_rss_kib() - before < 16 << 10,
		    "peak memory grew by %ld KiB parsing 1.5 MiB texts", peak_rss_kib() - before);
}

/* ---- bad documents --------------------------------------------------------------- */

#define DOC(services)	"{\"tcpshift\":1,\"seed\":1,\"services\":[" services "]}"
#define SVC(extra)	"{\"name\":\"web\",\"vip\":\"198.18.100.1:80\"" extra "}"
#define BE(extra)	SVC(",\"backends\":[{\"name\":\"v1\",\"addr\":\"198.18.2.11:80\"" extra "}]")

static const struct {
	const char	*in;
	size_t		len;	/* 0: strlen(in) */
	const char	*where;	/* the message starts with this */
} bad_docs[] = {
	/* not JSON, or not one object */
	{ "", 0, "the document is empty" },
	{ " \n\t ", 0, "the document is empty" },
	{ "{\"tcpshift\":1,", 0, "line 1, column 15: the document ends early" },
	{ "{\"tcpshift\":1,\n\"seed\":1,,}", 0, "line 2, column 10: not valid JSON" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[],}", 0, "line 1, column 38: not valid JSON" },
	{ DOC("") " {}", 0, "line 1, column 39: " },
	{ DOC("") "x", 0, "line 1, column 38: " },
	{ "{tcpshift:1}", 0, "line 1, column 2: not valid JSON" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[]}\0\0", 39, "line 1, column 38: " },
	{ "{\"tcpshift\":1,\"seed\":1,\"serv\0ices\":[]}", 38, "line 1, column " },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[{\"name\":\"\xff\"}]}", 0, "line 1, column " },
	{ "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	  0, "line 1, column " },
	{ "[]", 0, "the document is an array" },
	/* a VIP no client reaches; a backend at a VIP:port */
	{ DOC("{\"name\":\"web\",\"vip\":\"127.0.0.1:80\"}"), 0,
	  "services[0].vip: '127.0.0.1:80' cannot be a VIP" },
	{ DOC("{\"name\":\"web\",\"vip\":\"[::ffff:198.18.0.1]:80\"}"), 0,
	  "services[0].vip: '[::ffff:198.18.0.1]:80' cannot be a VIP" },
	{ DOC(SVC("") ",{\"name\":\"b\",\"vip\":\"198.18.100.2:80\",\"backends\":["
	      "{\"name\":\"x\",\"addr\":\"198.18.100.1:80\"}]}"), 0,
	  "services[1].backends[0].addr: 198.18.100.1:80 is the VIP of service 'web'" },
	/* a key twice in one object: json-c would keep the last */
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[" SVC("") "],\"services\":[]}", 0,
	  "line 1, column 76: key \"services\" is given twice" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[],\"servic\\u0065s\":[]}", 0,
	  "line 1, column 38: key \"services\" is given twice" },
	{ DOC("{\"name\":\"web\",\"vip\":\"198.18.100.1:80\",\"name\":\"x\"}"), 0,
	  "line 1, column 74: key \"name\" is given twice" },
	{ "{\"tcpshift\":1,\"seed\":1,\"seed\":2,\"services\":[]}", 0,
	  "line 1, column 24: key \"seed\" is given twice" },
	{ "\"tcpshift\"", 0, "the document is a string" },
	{ "7", 0, "the document is an integer" },
	{ "{}", 0, "\"tcpshift\": 1 is missing" },
	/* the root object */
	{ "{\"seed\":1,\"services\":[]}", 0, "\"tcpshift\": 1 is missing" },
	{ "{\"tcpshift\":2,\"seed\":1,\"services\":[]}", 0, "document version (\"tcpshift\") 2" },
	{ "{\"tcpshift\":\"1\",\"seed\":1,\"services\":[]}", 0, "document version" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":[],\"extra\":0}", 0,
	  "document: unknown key \"extra\"" },
	{ "{\"tcpshift\":1,\"services\":[]}", 0, "document: \"seed\" is missing" },
	{ "{\"tcpshift\":1,\"seed\":-1,\"services\":[]}", 0, "seed: -1 is out of range" },
	{ "{\"tcpshift\":1,\"seed\":4294967296,\"services\":[]}", 0, "seed: 4294967296 is out" },
	{ "{\"tcpshift\":1,\"seed\":99999999999999999999999,\"services\":[]}", 0, "seed: " },
	{ "{\"tcpshift\":1,\"seed\":1.5,\"services\":[]}", 0, "seed: is a number with" },
	{ "{\"tcpshift\":1,\"seed\":\"1\",\"services\":[]}", 0, "seed: is a string" },
	{ "{\"tcpshift\":1,\"seed\":1}", 0, "document: \"services\" is missing" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":{}}", 0, "services: is an object" },
	{ "{\"tcpshift\":1,\"seed\":1,\"services\":null}", 0, "services: is null" },
	/* a service */
	{ DOC("1"), 0, "services[0]: is an integer" },
	{ DOC("{}"), 0, "services[0]: \"name\" is missing" },
	{ DOC(SVC(",\"port\":80")), 0, "services[0]: unknown key \"port\"" },
	{ DOC("{\"vip\":\"198.18.100.1:80\"}"), 0, "services[0]: \"name\" is missing" },
	{ DOC("{\"name\":\"web\"}"), 0, "services[0]: \"vip\" is missing" },
	{ DOC("{\"name\":\"\",\"vip\":\"198.18.100.1:80\"}"), 0, "services[0].name: service name" },
	{ DOC("{\"name\":\"a b\",\"vip\":\"198.18.100.1:80\"}"), 0, "services[0].name: " },
	{ DOC("{\"name\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"vip\":\"198.18.100.1:80\"}"), 0,
	  "services[0].name: " },
	{ DOC("{\"name\":\"a\\u0000b\",\"vip\":\"198.18.100.1:80\"}"), 0,
	  "services[0].name: contains a NUL" },
	{ DOC("{\"name\":7,\"vip\":\"198.18.100.1:80\"}"), 0, "services[0].name: is an integer" },
	{ DOC("{\"name\":\"web\",\"vip\":\"198.18.100.1\"}"), 0, "services[0].vip: '198.18.100.1'" },
	{ DOC("{\"name\":\"web\",\"vip\":\"2001:2::1:80\"}"), 0, "services[0].vip: " },
	{ DOC("{\"name\":\"web\",\"vip\":\"198.18.100.1:0\"}"), 0, "services[0].vip: " },
	{ DOC("{\"name\":\"web\",\"vip\":[]}"), 0, "services[0].vip: is an array" },
	{ DOC(SVC(",\"table_size\":100")), 0, "services[0].table_size: 100 is not prime" },
	{ DOC(SVC(",\"table_size\":5")), 0, "services[0].table_size: 5 is out of range" },
	{ DOC(SVC(",\"table_size\":131101")), 0, "services[0].table_size: 131101 is out" },
	{ DOC(SVC(",\"table_size\":\"16381\"")), 0, "services[0].table_size: is a string" },
	{ DOC(SVC(",\"backends\":{}")), 0, "services[0].backends: is an object" },
	{ DOC(SVC("") ",{\"name\":\"web\",\"vip\":\"198.18.100.2:80\"}"), 0,
	  "services[1].name: service 'web' is also services[0]" },
	{ DOC(SVC("") ",{\"name\":\"web2\",\"vip\":\"198.18.100.1:80\"}"), 0,
	  "services[1].vip: 198.18.100.1:80 is also the VIP of services[0]" },
	/* a backend */
	{ DOC(SVC(",\"backends\":[7]")), 0, "services[0].backends[0]: is an integer" },
	{ DOC(SVC(",\"backends\":[{}]")), 0, "services[0].backends[0]: \"name\" is missing" },
	{ DOC(BE(",\"port\":1")), 0, "services[0].backends[0]: unknown key \"port\"" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v1\"}]")), 0,
	  "services[0].backends[0]: \"addr\" is missing" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v 1\",\"addr\":\"198.18.2.11:80\"}]")), 0,
	  "services[0].backends[0].name: backend name" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v1\",\"addr\":\"198.18.2.300:80\"}]")), 0,
	  "services[0].backends[0].addr: '198.18.2.300:80' is not ADDRESS:PORT" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v1\",\"addr\":\"[2001:2::11]:80\"}]")), 0,
	  "services[0].backends[0].addr: is an IPv6 address but the service's VIP is IPv4" },
	{ DOC(BE(",\"weight\":65536")), 0, "services[0].backends[0].weight: 65536 is out" },
	{ DOC(BE(",\"weight\":-1")), 0, "services[0].backends[0].weight: -1 is out of range" },
	{ DOC(BE(",\"weight\":1.0")), 0, "services[0].backends[0].weight: is a number with" },
	{ DOC(BE(",\"weight\":1e2")), 0, "services[0].backends[0].weight: is a number with" },
	{ DOC(BE(",\"weight\":\"5\"")), 0, "services[0].backends[0].weight: is a string" },
	{ DOC(BE(",\"weight\":true")), 0, "services[0].backends[0].weight: is a boolean" },
	{ DOC(BE(",\"weight\":null")), 0, "services[0].backends[0].weight: is null" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v1\",\"addr\":\"198.18.2.11:80\"},"
		  "{\"name\":\"v1\",\"addr\":\"198.18.2.12:80\"}]")), 0,
	  "services[0].backends[1].name: backend 'v1' is also services[0].backends[0]" },
	{ DOC(SVC(",\"backends\":[{\"name\":\"v1\",\"addr\":\"198.18.2.11:80\"},"
		  "{\"name\":\"v2\",\"addr\":\"198.18.2.11:80\"}]")), 0,
	  "services[0].backends[1].addr: 198.18.2.11:80 is also services[0].backends[0]" },
	{ DOC(BE("") ",{\"name\":\"b\",\"vip\":\"198.18.100.2:80\",\"backends\":[{\"name\":\"x\","
		       "\"addr\":\"198.18.2.11:80\"}]}"), 0,
	  "services[1].backends[0].addr: 198.18.2.11:80 is also services[0].backends[0] "
	  "(backend 'v1' of 'web')" },
};

static void bad_documents_are_refused_with_their_place(void **state)
{
	int wrong = 0;

	for (size_t i = 0; i < ARRAY_SIZE(bad_docs); i++) {
		struct ts_err err = { .status = TS_OK };
		size_t len = bad_docs[i].len ? bad_docs[i].len : strlen(bad_docs[i].in);
		struct ts_doc doc;
		int r;

		memset(&doc, 0xa5, sizeof(doc));
		r = ts_doc_parse(bad_docs[i].in, len, &doc, &err);
		if (r != -TS_ERR_USAGE || err.status != TS_ERR_USAGE)
			print_error("bad_docs[%zu] (%.60s): returned %d, status %d, want usage "
				    "error\n", i, bad_docs[i].in, r, err.status);
		else if (strncmp(err.msg, bad_docs[i].where, strlen(bad_docs[i].where)))
			print_error("bad_docs[%zu] (%.60s):\n  got  \"%s\"\n  want \"%s...\"\n", i,
				    bad_docs[i].in, err.msg, bad_docs[i].where);
		else if (strpbrk(err.msg, "\r\n") || strlen(err.msg) < strlen(bad_docs[i].where) + 5)
			print_error("bad_docs[%zu]: message not one line, or says no more than "
				    "where: \"%s\"\n", i, err.msg);
		else if (doc.nservices || doc.services)
			print_error("bad_docs[%zu]: document not left empty\n", i);
		else
			continue;
		wrong++;
	}
	ASSERT_TRUE(wrong == 0, "%d of %zu bad documents not refused as expected", wrong,
		    ARRAY_SIZE(bad_docs));
}

/* ---- the plan ----------------------------------------------------------------------- */

static void plan_lists_changes_in_order(void **state)
{
	static const char have_text[] = DOC(
		"{\"name\":\"web\",\"vip\":\"198.18.100.1:80\",\"backends\":["
		"{\"name\":\"v1\",\"addr\":\"198.18.2.11:80\",\"weight\":90},"
		"{\"name\":\"v2\",\"addr\":\"198.18.2.12:80\",\"weight\":10},"
		"{\"name\":\"v3\",\"addr\":\"198.18.2.13:80\",\"weight\":1},"
		"{\"name\":\"v4\",\"addr\":\"198.18.2.14:80\",\"weight\":1}]},"
		"{\"name\":\"gone\",\"vip\":\"198.18.100.2:80\"},"
		"{\"name\":\"moved\",\"vip\":\"198.18.100.3:80\",\"table_size\":7}");
	static const char want_text[] =
		"{\"tcpshift\":1,\"seed\":2,\"services\":["
		"{\"name\":\"web\",\"vip\":\"198.18.100.1:80\",\"backends\":["
		"{\"name\":\"v1\",\"addr\":\"198.18.2.11:80\",\"weight\":50},"
		"{\"name\":\"v2\",\"addr\":\"198.18.2.12:80\",\"weight\":10},"
		"{\"name\":\"v4\",\"addr\":\"198.18.2.24:80\",\"weight\":1},"
		"{\"name\":\"v5\",\"addr\":\"198.18.2.15:80\",\"weight\":3}]},"
		"{\"name\":\"moved\",\"vip\":\"198.18.100.3:80\",\"table_size\":11,"
		"\"backends\":[{\"name\":\"m\",\"addr\":\"198.18.2.16:80\"}]},"
		"{\"name\":\"new\",\"vip\":\"198.18.100.2:80\",\"health\":{\"check\":\"tcp\","
		"\"interval_ms\":1000,\"timeout_ms\":500,\"rise\":2,\"fall\":3}}]}";
	static const struct {
		enum ts_change_kind	kind;
		const char		*service, *backend, *from, *to;
	} want_plan[] = {
		{ TS_CHANGE_SERVICE_DEL, "gone", "", "198.18.100.2:80", "" },
		{ TS_CHANGE_SERVICE_REPLACE, "moved", "", "198.18.100.3:80 table_size 7",
		  "198.18.100.3:80 table_size 11" },
		{ TS_CHANGE_BACKEND_ADD, "moved", "m", "", "198.18.2.16:80 weight 1" },
		{ TS_CHANGE_SERVICE_ADD, "new", "", "", "198.18.100.2:80" },
		/* a new service's health checks are listed too */
		{ TS_CHANGE_HEALTH, "new", "", "none",
		  "tcp interval 1000ms timeout 500ms rise 2 fall 3" },
		{ TS_CHANGE_BACKEND_DEL, "web", "v3", "198.18.2.13:80 weight 1", "" },
		{ TS_CHANGE_WEIGHT, "web", "v1", "90", "50" },
		{ TS_CHANGE_BACKEND_REPLACE, "web", "v4", "198.18.2.14:80 weight 1",
		  "198.18.2.24:80 weight 1" },
		{ TS_CHANGE_BACKEND_ADD, "web", "v5", "", "198.18.2.15:80 weight 3" },
		{ TS_CHANGE_SEED, "", "", "1", "2" },
	};
	struct ts_err err = { .status = TS_OK };
	struct ts_doc have, want;
	struct ts_plan plan;

	parse(have_text, &have);
	parse(want_text, &want);
	ASSERT_TRUE(ts_doc_plan(&have, &want, &plan, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < plan.nchanges; i++)
		print_message("  %s %s %s '%s' -> '%s'\n", ts_change_name(plan.changes[i].kind),
			      plan.changes[i].service, plan.changes[i].backend,
			      plan.changes[i].from, plan.changes[i].to);
	ASSERT_EQ(plan.nchanges, ARRAY_SIZE(want_plan), "number of changes");
	for (size_t i = 0; i < plan.nchanges; i++) {
		const struct ts_change *c = &plan.changes[i];

		ASSERT_TRUE(c->kind == want_plan[i].kind &&
			    !strcmp(c->service, want_plan[i].service) &&
			    !strcmp(c->backend, want_plan[i].backend) &&
			    !strcmp(c->from, want_plan[i].from) && !strcmp(c->to, want_plan[i].to),
			    "change %zu: %s %s/%s '%s' -> '%s', want %s %s/%s '%s' -> '%s'", i,
			    ts_change_name(c->kind), c->service, c->backend, c->from, c->to,
			    ts_change_name(want_plan[i].kind), want_plan[i].service,
			    want_plan[i].backend, want_plan[i].from, want_plan[i].to);
	}
	ts_plan_free(&plan);
	/* a document against itself: nothing to do */
	ASSERT_TRUE(ts_doc_plan(&want, &want, &plan, &err) == 0, "%s", err.msg);
	ASSERT_EQ(plan.nchanges, 0, "changes from a document to itself");
	ts_plan_free(&plan);
	ts_doc_free(&have);
	ts_doc_free(&want);
}

int run_export_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(export_text_is_fixed),
		cmocka_unit_test(golden_round_trips),
		cmocka_unit_test(order_and_defaults_do_not_matter),
		cmocka_unit_test(reads_exactly_len_bytes),
		cmocka_unit_test(limits_are_accepted_and_enforced),
		cmocka_unit_test(json_limits_count_the_text),
		cmocka_unit_test(document_shape_is_bounded_before_parsing),
		cmocka_unit_test(bad_documents_are_refused_with_their_place),
		cmocka_unit_test(plan_lists_changes_in_order),
	};

	return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}
