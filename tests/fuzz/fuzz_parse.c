// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for the parsers of operator input (user/lib/parse.c).
 *
 * Every input goes to every parser in targets[] below. A parser either
 * succeeds with a result in range (and, where there is a formatter, one that
 * formats and parses back to the same value), or fails as the CLI's contract
 * says: a usage error (TS_ERR_USAGE, returned as -TS_ERR_USAGE) with a
 * non-empty one-line message free of control characters. A broken invariant
 * aborts, which libFuzzer reports as a crash with the input saved.
 *
 * Another parser (a config file reader for `apply -f`, say) is one more
 * function and one more line in targets[]: each gets the raw bytes as well as
 * the NUL-terminated string.
 *
 *   make fuzz                 FUZZ_SECONDS=300 by default
 *   build/tests/fuzz_parse tests/fuzz/corpus/    (or a crash file to replay)
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "libtcpshift.h"
#include "etcd.h"

#define SEVEN_DAYS_NS	(7ULL * 24 * 3600 * 1000000000ULL)
#define FUZZ_MAX_INPUT	4096	/* longer inputs are cut: nothing of interest is that long */

/* ---- checks ---------------------------------------------------------------- */

static const char *cur_target;
static const char *cur_input;

__attribute__((noreturn, format(printf, 1, 2))) static void broken(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_parse: %s: ", cur_target);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  input (%zu bytes): \"", strlen(cur_input));
	for (const unsigned char *p = (const unsigned char *)cur_input; *p; p++)
		fprintf(stderr, isprint(*p) && *p != '"' && *p != '\\' ? "%c" : "\\x%02x", *p);
	fprintf(stderr, "\"\n");
	abort();
}

#define CHECK(cond, ...)                                                                          \
	do {                                                                                      \
		if (!(cond))                                                                      \
			broken(__VA_ARGS__);                                                      \
	} while (0)

/* A parser's result: 0 and an untouched error, or the CLI's usage error. */
static bool check_result(int r, const struct ts_err *err)
{
	size_t len;

	if (r == 0) {
		CHECK(err->status == -1 && err->msg[0] == '\x7f',
		      "returned 0 but wrote an error (status %d, \"%.80s\")", err->status,
		      err->msg);
		return true;
	}
	CHECK(r == -TS_ERR_USAGE, "returned %d, want 0 or %d", r, -TS_ERR_USAGE);
	CHECK(err->status == TS_ERR_USAGE, "failed with status %d, want %d (usage error)",
	      err->status, TS_ERR_USAGE);
	len = strnlen(err->msg, sizeof(err->msg));
	CHECK(len < sizeof(err->msg), "error message not NUL-terminated");
	CHECK(len > 0, "failed with an empty error message");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)err->msg[i];

		CHECK(c >= 0x20 && c != 0x7f,
		      "error message has control character 0x%02x at %zu: one line, printable", c,
		      i);
	}
	return false;
}

/* A fresh error, marked so that a success that writes it is seen. */
static struct ts_err *fresh_err(struct ts_err *err)
{
	err->status = -1;
	memset(err->msg, '\x7f', sizeof(err->msg));
	return err;
}

/* The string is only digits, and their value is v (leading zeros allowed). */
static bool is_decimal_of(const char *s, unsigned long long v)
{
	unsigned long long got = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		got = got * 10 + (unsigned)(*s - '0');
		if (got > 0xffffffffULL * 1000)
			return false;
	}
	return got == v;
}

static bool is_name(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len >= TS_NAME_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

static bool same_endpoint(const struct ts_endpoint *a, const struct ts_endpoint *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, sizeof(a->addr)) &&
	       a->port == b->port;
}

static void check_family(const struct ts_endpoint *ep)
{
	CHECK(ep->family == TS_AF_INET || ep->family == TS_AF_INET6, "family %u", ep->family);
	if (ep->family == TS_AF_INET)
		CHECK(!ep->addr[1] && !ep->addr[2] && !ep->addr[3],
		      "IPv4 address with non-zero words 1-3");
}

/* ---- one function per parser ----------------------------------------------- */

static void fuzz_endpoint(const uint8_t *data, size_t size, const char *s)
{
	struct ts_endpoint ep, back;
	struct ts_err err;
	char buf[TS_ADDRSTRLEN];

	memset(&ep, 0xa5, sizeof(ep));
	if (!check_result(ts_parse_endpoint(s, &ep, fresh_err(&err)), &err))
		return;
	check_family(&ep);
	CHECK(ep.port != 0, "port 0 accepted");
	ts_format_endpoint(ep.addr, ep.port, ep.family, buf, sizeof(buf));
	memset(&back, 0x5a, sizeof(back));
	CHECK(!ts_parse_endpoint(buf, &back, fresh_err(&err)),
	      "formatted endpoint \"%s\" does not parse back: %s", buf, err.msg);
	CHECK(same_endpoint(&ep, &back), "formatted endpoint \"%s\" parses to another value",
	      buf);
}

static void fuzz_address(const uint8_t *data, size_t size, const char *s)
{
	struct ts_endpoint ep, back;
	struct ts_err err;
	char buf[TS_ADDRSTRLEN];

	memset(&ep, 0xa5, sizeof(ep));
	if (!check_result(ts_parse_address(s, &ep, fresh_err(&err)), &err))
		return;
	check_family(&ep);
	CHECK(ep.port == 0, "address parsed with port %u", ntohs(ep.port));
	ts_format_address(ep.addr, ep.family, buf, sizeof(buf));
	memset(&back, 0x5a, sizeof(back));
	CHECK(!ts_parse_address(buf, &back, fresh_err(&err)),
	      "formatted address \"%s\" does not parse back: %s", buf, err.msg);
	CHECK(same_endpoint(&ep, &back), "formatted address \"%s\" parses to another value", buf);
}

static void fuzz_name(const uint8_t *data, size_t size, const char *s)
{
	struct ts_err err;

	if (!check_result(ts_parse_name(s, "backend", fresh_err(&err)), &err)) {
		CHECK(!is_name(s), "a valid name was rejected: %s", err.msg);
		return;
	}
	CHECK(is_name(s), "accepted a name that is not 1-%d letters, digits, '.', '_', '-'",
	      TS_NAME_LEN - 1);
}

static void fuzz_weight(const uint8_t *data, size_t size, const char *s)
{
	struct ts_err err;
	__u32 w = 0xdeadbeef;

	if (!check_result(ts_parse_weight(s, &w, fresh_err(&err)), &err))
		return;
	CHECK(w <= TS_MAX_WEIGHT, "weight %u > %d", w, TS_MAX_WEIGHT);
	CHECK(is_decimal_of(s, w), "weight %u is not what the digits say", w);
}

static void fuzz_assignment(const uint8_t *data, size_t size, const char *s)
{
	char name[TS_NAME_LEN];
	const char *eq = strchr(s, '=');
	struct ts_err err;
	__u32 w = 0xdeadbeef;

	memset(name, 0x7f, sizeof(name));
	if (!check_result(ts_parse_assignment(s, name, &w, fresh_err(&err)), &err))
		return;
	CHECK(memchr(name, '\0', sizeof(name)), "name not NUL-terminated");
	CHECK(is_name(name), "accepted an invalid backend name");
	CHECK(eq && (size_t)(eq - s) == strlen(name) && !strncmp(s, name, strlen(name)),
	      "name \"%s\" is not what stands before the first '='", name);
	CHECK(w <= TS_MAX_WEIGHT, "weight %u > %d", w, TS_MAX_WEIGHT);
	CHECK(is_decimal_of(eq + 1, w), "weight %u is not what the digits say", w);
}

static void fuzz_table_size(const uint8_t *data, size_t size, const char *s)
{
	struct ts_err err;
	__u32 m = 0xdeadbeef;

	if (!check_result(ts_parse_table_size(s, &m, fresh_err(&err)), &err))
		return;
	CHECK(m >= TS_MIN_TABLE_SIZE && m <= TS_MAX_TABLE_SIZE, "table size %u out of %d-%d", m,
	      TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE);
	for (__u32 d = 2; d * d <= m; d++)
		CHECK(m % d, "table size %u is not prime (divisible by %u)", m, d);
	CHECK(is_decimal_of(s, m), "table size %u is not what the digits say", m);
}

static void fuzz_duration(const uint8_t *data, size_t size, const char *s)
{
	struct ts_err err;
	__u64 ns = 0xdeadbeefdeadbeefULL;
	size_t digits = 0;
	const char *unit;

	if (!check_result(ts_parse_duration(s, &ns, fresh_err(&err)), &err))
		return;
	CHECK(ns <= SEVEN_DAYS_NS, "duration %llu ns is over 7 days", (unsigned long long)ns);
	while (isdigit((unsigned char)s[digits]))
		digits++;
	unit = s + digits;
	CHECK(digits > 0 && (!strcmp(unit, "") || !strcmp(unit, "ms") || !strcmp(unit, "s") ||
			     !strcmp(unit, "m") || !strcmp(unit, "h")),
	      "accepted a duration that is not DIGITS[ms|s|m|h]");
}

static void fuzz_u32(const uint8_t *data, size_t size, const char *s)
{
	static const struct {
		__u32 min, max;
	} ranges[] = {
		{ 0, UINT32_MAX }, { 1, 65535 }, { TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE }, { 5, 5 },
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		struct ts_err err;
		__u32 v = 0xdeadbeef;

		if (!check_result(ts_parse_u32(s, "value", ranges[i].min, ranges[i].max, &v,
					       fresh_err(&err)),
				  &err))
			continue;
		CHECK(v >= ranges[i].min && v <= ranges[i].max, "%u out of %u-%u", v,
		      ranges[i].min, ranges[i].max);
		CHECK(is_decimal_of(s, v), "%u is not what the digits say", v);
	}
}

/* The import document parser (user/lib/doc.c): raw bytes, not the string.
 * A document it accepts formats to text that parses to the same text. */
static void fuzz_doc(const uint8_t *data, size_t size, const char *s)
{
	struct ts_doc doc = {}, back = {};
	struct ts_err err;
	char *text, *again;

	if (!check_result(ts_doc_parse((const char *)data, size, &doc, fresh_err(&err)), &err))
		return;
	text = ts_doc_format(&doc);
	CHECK(text != NULL, "an accepted document does not format");
	CHECK(!ts_doc_parse(text, strlen(text), &back, fresh_err(&err)),
	      "a formatted document does not parse back: %s", err.msg);
	again = ts_doc_format(&back);
	CHECK(again && !strcmp(text, again), "a formatted document parses to another one");
	for (size_t i = 0; i < doc.nservices; i++) {
		CHECK(is_name(doc.services[i].name), "service name \"%s\"", doc.services[i].name);
		/* 0: the size follows the backends */
		CHECK(!doc.services[i].table_size || ts_is_prime(doc.services[i].table_size), "table size %u",
		      doc.services[i].table_size);
		for (size_t j = 0; j < doc.services[i].nbackends; j++)
			CHECK(doc.services[i].backends[j].weight <= TS_MAX_WEIGHT, "weight %u",
			      doc.services[i].backends[j].weight);
	}
	free(text);
	free(again);
	ts_doc_free(&doc);
	ts_doc_free(&back);
}

/* etcd's answers: what a hostile etcd sends is refused with one
 * line (a runtime error), or parsed into a value that is exactly its bytes. */
static void check_etcd_result(int r, const struct ts_err *err, const struct ts_etcd_kv *kv)
{
	size_t len;

	if (r == 0) {
		CHECK(!kv->value || kv->value[kv->len] == '\0', "a value not NUL-terminated");
		CHECK(!kv->value || kv->found || kv->mod_revision >= 0, "a negative revision");
		return;
	}
	CHECK(r == -TS_ERR_RUNTIME || r == -TS_ERR_USAGE, "returned %d", r);
	CHECK(!kv->value, "failed but kept a value");
	len = strnlen(err->msg, sizeof(err->msg));
	CHECK(len > 0 && len < sizeof(err->msg), "an empty or unterminated error");
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)err->msg[i] >= 0x20 && err->msg[i] != 0x7f,
		      "error message has a control character at %zu", i);
}

#define FUZZ_KEY64 "L3RzL3NpdGU="

static void fuzz_etcd_range(const uint8_t *data, size_t size, const char *s)
{
	struct ts_etcd_range r;
	struct ts_err err;
	int rc = ts_etcd_range_parse((const char *)data, size, FUZZ_KEY64, &r, fresh_err(&err));

	check_etcd_result(rc, &err, &r.kv);
	ts_etcd_kv_free(&r.kv);
}

static void fuzz_etcd_watch(const uint8_t *data, size_t size, const char *s)
{
	struct ts_etcd_watch w;
	struct ts_err err;
	int rc = ts_etcd_watch_parse((const char *)data, size, FUZZ_KEY64, &w, fresh_err(&err));

	check_etcd_result(rc, &err, &w.kv);
	CHECK(strnlen(w.reason, sizeof(w.reason)) < sizeof(w.reason), "reason unterminated");
	ts_etcd_kv_free(&w.kv);
}

static void fuzz_etcd_url(const uint8_t *data, size_t size, const char *s)
{
	struct ts_etcd_url u, back;
	struct ts_err err;
	char buf[TS_ETCD_MAX_ENDPOINTS * sizeof(u.endpoints[0]) + sizeof(u.key) + 16];
	size_t n = 0;

	if (!check_result(ts_etcd_url_parse(s, &u, fresh_err(&err)), &err))
		return;
	CHECK(u.nendpoints >= 1 && u.nendpoints <= TS_ETCD_MAX_ENDPOINTS, "%zu endpoints",
	      u.nendpoints);
	CHECK(u.key[0] == '/' && u.key[1] && strstr(s, u.key), "key '%s'", u.key);
	/* the endpoints and key, written out again, parse to the same */
	n += (size_t)snprintf(buf, sizeof(buf), "etcd://");
	for (size_t i = 0; i < u.nendpoints; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
				      u.endpoints[i]);
	snprintf(buf + n, sizeof(buf) - n, "%s", u.key);
	CHECK(!ts_etcd_url_parse(buf, &back, fresh_err(&err)), "\"%s\" does not parse back: %s",
	      buf, err.msg);
	CHECK(!memcmp(&u, &back, sizeof(u)), "\"%s\" parses to another URL", buf);
}

static void fuzz_base64(const uint8_t *data, size_t size, const char *s)
{
	char *out = malloc(size / 4 * 3 + 1), *again = malloc(size + 8);
	size_t n;

	if (out && again && !ts_base64_decode((const char *)data, size, out, &n)) {
		ts_base64_encode(out, n, again);
		CHECK(strlen(again) == size && !memcmp(again, data, size),
		      "base64 decodes but does not encode back to itself");
	}
	free(out);
	free(again);
}

/* Every parser; add new ones here. */
static const struct {
	const char *name;
	void (*fuzz)(const uint8_t *data, size_t size, const char *s);
} targets[] = {
	{ "ts_parse_endpoint", fuzz_endpoint },
	{ "ts_parse_address", fuzz_address },
	{ "ts_parse_name", fuzz_name },
	{ "ts_parse_weight", fuzz_weight },
	{ "ts_parse_assignment", fuzz_assignment },
	{ "ts_parse_table_size", fuzz_table_size },
	{ "ts_parse_duration", fuzz_duration },
	{ "ts_parse_u32", fuzz_u32 },
	{ "ts_doc_parse", fuzz_doc },
	{ "ts_etcd_url_parse", fuzz_etcd_url },
	{ "ts_etcd_range_parse", fuzz_etcd_range },
	{ "ts_etcd_watch_parse", fuzz_etcd_watch },
	{ "ts_base64_decode", fuzz_base64 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	/* An exact-size heap copy: AddressSanitizer sees a read past the end. */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	cur_input = s;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		cur_target = targets[i].name;
		targets[i].fuzz(data, size, s);
	}
	free(s);
	return 0;
}
