// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Parsers of operator input (user/lib/parse.c). The CLI's contract: a bad input
 * is a usage error (exit 2) with one line on stderr that says what was wrong
 * and what to write instead, so every rejection here checks the return value,
 * err.status == TS_ERR_USAGE, and a non-empty message without line breaks.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "libtcpshift.h"
#include "unit.h"

#define NAME31	"abcdefghijklmnopqrstuvwxyz01234"	/* TS_NAME_LEN - 1 characters */
#define NAME32	NAME31 "5"

#define NS_PER_S	1000000000ULL
#define SEVEN_DAYS_NS	(7ULL * 24 * 3600 * NS_PER_S)

/* A parser that takes a string and fills some output; adapters below. */
typedef int (*parse_fn)(const char *s, struct ts_err *err);

/* The input as C source, so that control characters show in a report. */
static const char *quote(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n' || c == '\r' || c == '\t')
			o += (size_t)snprintf(buf + o, len - o, "\\%c",
					      c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

/* Prints what is wrong and returns false unless the input was refused as a
 * usage error with a one-line message. */
static bool usage_error_ok(const char *fn, const char *in, int ret, const struct ts_err *err)
{
	char q[128];

	if (ret >= 0)
		print_error("%s(\"%s\") accepted a bad input (returned %d)\n", fn,
			    quote(in, q, sizeof(q)), ret);
	else if (err->status != TS_ERR_USAGE)
		print_error("%s(\"%s\"): err.status %d, want TS_ERR_USAGE\n", fn,
			    quote(in, q, sizeof(q)), err->status);
	else if (err->msg[0] == '\0')
		print_error("%s(\"%s\"): empty error message\n", fn, quote(in, q, sizeof(q)));
	else if (strpbrk(err->msg, "\r\n"))
		print_error("%s(\"%s\"): message is not one line\n", fn, quote(in, q, sizeof(q)));
	else
		return true;
	return false;
}

/* Every input must be refused; reports all that are not, then fails. */
static void expect_all_rejected(const char *fn, parse_fn parse, const char *const *in, size_t n)
{
	int wrong = 0;

	for (size_t i = 0; i < n; i++) {
		struct ts_err err = { .status = TS_OK };

		wrong += !usage_error_ok(fn, in[i], parse(in[i], &err), &err);
	}
	ASSERT_TRUE(wrong == 0, "%s: %d of %zu bad inputs not refused as usage errors", fn, wrong,
		    n);
}

static int parse_endpoint(const char *s, struct ts_err *err)
{
	struct ts_endpoint ep;

	return ts_parse_endpoint(s, &ep, err);
}

static int parse_address(const char *s, struct ts_err *err)
{
	struct ts_endpoint ep;

	return ts_parse_address(s, &ep, err);
}

static int parse_weight(const char *s, struct ts_err *err)
{
	__u32 w;

	return ts_parse_weight(s, &w, err);
}

static int parse_assignment(const char *s, struct ts_err *err)
{
	char name[TS_NAME_LEN];
	__u32 w;

	return ts_parse_assignment(s, name, &w, err);
}

static int parse_name(const char *s, struct ts_err *err)
{
	return ts_parse_name(s, "backend", err);
}

static int parse_table_size(const char *s, struct ts_err *err)
{
	__u32 m;

	return ts_parse_table_size(s, &m, err);
}

static int parse_duration(const char *s, struct ts_err *err)
{
	__u64 ns;

	return ts_parse_duration(s, &ns, err);
}

/* ---- endpoints ------------------------------------------------------------ */

static const struct {
	const char	*in;
	__u8		family;
	__u8		addr[16];	/* network order; IPv4 fills bytes 0-3 only */
	__u16		port;		/* host order */
} endpoint_good[] = {
	{ "198.18.100.1:8008", TS_AF_INET, { 198, 18, 100, 1 }, 8008 },
	{ "198.18.0.1:65535", TS_AF_INET, { 198, 18, 0, 1 }, 65535 },
	{ "198.18.0.1:1", TS_AF_INET, { 198, 18, 0, 1 }, 1 },
	{ "[2001:2::1]:8008", TS_AF_INET6,
	  { 0x20, 0x01, 0x00, 0x02, [15] = 0x01 }, 8008 },
	{ "[2001:2:100::1]:1", TS_AF_INET6,
	  { 0x20, 0x01, 0x00, 0x02, 0x01, 0x00, [15] = 0x01 }, 1 },
	{ "[2001:2:0:0:0:0:0:ff]:443", TS_AF_INET6,
	  { 0x20, 0x01, 0x00, 0x02, [15] = 0xff }, 443 },
};

static void endpoint_accepts_v4_and_bracketed_v6(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(endpoint_good); i++) {
		struct ts_err err = { .status = TS_OK };
		struct ts_endpoint ep;
		const __u8 *port = (const __u8 *)&ep.port;
		int r;

		/* Poison: words an IPv4 address does not use must come back zero. */
		memset(&ep, 0xa5, sizeof(ep));
		r = ts_parse_endpoint(endpoint_good[i].in, &ep, &err);
		ASSERT_TRUE(r == 0, "ts_parse_endpoint(\"%s\") = %d: %s", endpoint_good[i].in, r,
			    err.msg);
		ASSERT_TRUE(ep.family == endpoint_good[i].family, "\"%s\": family %u, want %u",
			    endpoint_good[i].in, ep.family, endpoint_good[i].family);
		ASSERT_TRUE(!memcmp(ep.addr, endpoint_good[i].addr, sizeof(ep.addr)),
			    "\"%s\": address bytes differ", endpoint_good[i].in);
		/* The port is stored in network order: high byte first in memory. */
		ASSERT_TRUE(port[0] == endpoint_good[i].port >> 8 &&
			    port[1] == (endpoint_good[i].port & 0xff),
			    "\"%s\": port bytes %02x %02x, want network order of %u",
			    endpoint_good[i].in, port[0], port[1], endpoint_good[i].port);
	}
}

static const char *const endpoint_bad[] = {
	"198.18.100.300:8008",		/* octet > 255 */
	"198.18.100.1",			/* no port */
	"198.18.100.1:",		/* empty port */
	"198.18.100.1:0",		/* port 0 */
	"198.18.100.1:65536",
	"198.18.100.1:70000",
	"198.18.100.1:80x",
	"198.18.100.1:-1",
	"198.18.100.1:+80",
	"198.18.100.1: 80",
	"198.18.100.1:80 ",
	"198.18.100.1:99999999999999999999",
	"2001:2::1:8008",		/* IPv6 without brackets */
	"[2001:2::1:8008",		/* no closing bracket */
	"[2001:2::1]",			/* no port */
	"[2001:2::1]:",
	"[2001:2::1]8008",
	"[2001:2::1]:0",
	"[]:80",
	"[198.18.100.1]:80",		/* IPv4 in brackets */
	"198.18.100:80",
	"host:80",			/* names are not resolved */
	"",
	" 198.18.100.1:80",		/* leading space */
	":80",
};

static void endpoint_rejects_bad_input(void **state)
{
	expect_all_rejected("ts_parse_endpoint", parse_endpoint, endpoint_bad,
			    ARRAY_SIZE(endpoint_bad));
}

/* Endpoints that parse but can be no VIP: no client reaches the gateway at
 * them. */
static const char *const vip_bad[] = {
	"0.0.0.0:80",		"0.1.2.3:80",		"127.0.0.1:80",
	"127.255.0.1:8008",	"224.0.0.1:80",		"239.255.255.250:1900",
	"255.255.255.255:80",	"240.0.0.1:80",		"[::]:80",
	"[::1]:80",		"[::ffff:198.18.0.1]:80", "[ff02::1]:80",
	"198.18.100.1",		"",
};

static int parse_vip(const char *s, struct ts_err *err)
{
	struct ts_endpoint ep;

	return ts_parse_vip(s, &ep, err);
}

static void vip_rejects_unreachable_addresses(void **state)
{
	static const char *const good[] = { "198.18.100.1:8008", "[2001:2:100::1]:8008",
					    "1.0.0.1:1", "223.255.255.254:80" };
	struct ts_endpoint ep;

	expect_all_rejected("ts_parse_vip", parse_vip, vip_bad, ARRAY_SIZE(vip_bad));
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ASSERT_TRUE(ts_parse_vip(good[i], &ep, NULL) == 0, "VIP %s refused", good[i]);
}

/* --seed: decimal or 0x hex, a leading 0 decimal, never octal. */
static void seed_is_decimal_or_hex(void **state)
{
	static const struct {
		const char *in;
		__u32 want;
	} good[] = {
		{ "010", 10 }, { "0", 0 }, { "08", 8 }, { "0x10", 16 }, { "0X7c5f5eed", 0x7c5f5eed },
		{ "4294967295", 0xffffffffU }, { "0xffffffff", 0xffffffffU },
	};
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "0x", "4294967296",
					   "0x100000000", "1e3", "abc", "0o10" };
	__u32 seed;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		seed = 12345;
		ASSERT_TRUE(ts_parse_seed(good[i].in, &seed) == 0, "seed '%s' refused", good[i].in);
		ASSERT_EQ(seed, good[i].want, good[i].in);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ASSERT_TRUE(ts_parse_seed(bad[i], &seed) != 0, "seed '%s' accepted", bad[i]);
}

/* Formatting what was parsed gives the operator's text back (canonical forms). */
static const char *const endpoint_canonical[] = {
	"198.18.100.1:8008",
	"198.18.0.1:65535",
	"0.0.0.0:1",
	"[2001:2::1]:8008",
	"[2001:2:100::1]:1",
	"[2001:2:0:1:2:3:4:5]:65535",
	"[::]:80",
	"[::ffff:198.18.0.1]:443",
	"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",	/* the longest */
};

static void format_endpoint_round_trips(void **state)
{
	struct rng rng = { 0x70a7 };

	for (size_t i = 0; i < ARRAY_SIZE(endpoint_canonical); i++) {
		struct ts_err err = { .status = TS_OK };
		char buf[TS_ADDRSTRLEN];
		struct ts_endpoint ep;
		int r = ts_parse_endpoint(endpoint_canonical[i], &ep, &err);

		ASSERT_TRUE(r == 0, "ts_parse_endpoint(\"%s\") = %d: %s", endpoint_canonical[i], r,
			    err.msg);
		ts_format_endpoint(ep.addr, ep.port, ep.family, buf, sizeof(buf));
		ASSERT_TRUE(!strcmp(buf, endpoint_canonical[i]), "format(parse(\"%s\")) = \"%s\"",
			    endpoint_canonical[i], buf);
	}

	/* And parse(format(ep)) == ep for random endpoints of both families. */
	for (int i = 0; i < 2000; i++) {
		struct ts_err err = { .status = TS_OK };
		struct ts_endpoint ep = { 0 }, back;
		char buf[TS_ADDRSTRLEN];
		int r;

		ep.family = i & 1 ? TS_AF_INET6 : TS_AF_INET;
		for (int w = 0; w < (ep.family == TS_AF_INET ? 1 : 4); w++)
			/* Sparse words too, so that "::" compression is exercised. */
			ep.addr[w] = rng_below(&rng, 3) ? (__be32)rng_next(&rng) : 0;
		ep.port = htons((__u16)(1 + rng_below(&rng, 65535)));
		ts_format_endpoint(ep.addr, ep.port, ep.family, buf, sizeof(buf));
		memset(&back, 0xa5, sizeof(back));
		r = ts_parse_endpoint(buf, &back, &err);
		ASSERT_TRUE(r == 0, "ts_parse_endpoint(\"%s\") = %d: %s", buf, r, err.msg);
		ASSERT_TRUE(back.family == ep.family && back.port == ep.port &&
			    !memcmp(back.addr, ep.addr, sizeof(ep.addr)),
			    "\"%s\" does not parse back to the endpoint it was formatted from",
			    buf);
	}
}

static void address_accepts_bare_ip_only(void **state)
{
	static const char *const bad[] = {
		"198.18.2.11:80", "[2001:2::11]", "[2001:2::11]:80", "198.18.2", "host", "",
		" 198.18.2.11",
	};
	struct ts_err err = { .status = TS_OK };
	struct ts_endpoint ep;

	ASSERT_TRUE(ts_parse_address("198.18.2.11", &ep, &err) == 0 && ep.family == TS_AF_INET,
		    "198.18.2.11: %s", err.msg);
	ASSERT_TRUE(ts_parse_address("2001:2::11", &ep, &err) == 0 && ep.family == TS_AF_INET6,
		    "2001:2::11: %s", err.msg);
	expect_all_rejected("ts_parse_address", parse_address, bad, ARRAY_SIZE(bad));
}

/* ---- numbers and names ---------------------------------------------------- */

static void weight_accepts_0_to_65535(void **state)
{
	static const struct {
		const char	*in;
		__u32		want;
	} good[] = {
		{ "0", 0 }, { "1", 1 }, { "10", 10 }, { "65535", TS_MAX_WEIGHT },
	};
	static const char *const bad[] = {
		"65536", "-1", "abc", "", "1.5", " 1", "1 ", "+1", "0x10", "1e3",
		"99999999999999999999", "4294967296",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct ts_err err = { .status = TS_OK };
		__u32 w = 0xdeadbeef;
		int r = ts_parse_weight(good[i].in, &w, &err);

		ASSERT_TRUE(r == 0, "ts_parse_weight(\"%s\") = %d: %s", good[i].in, r, err.msg);
		ASSERT_EQ(w, good[i].want, good[i].in);
	}
	expect_all_rejected("ts_parse_weight", parse_weight, bad, ARRAY_SIZE(bad));
}

static void assignment_is_name_equals_weight(void **state)
{
	static const struct {
		const char	*in;
		const char	*name;
		__u32		weight;
	} good[] = {
		{ "v2=10", "v2", 10 },
		{ "v1=0", "v1", 0 },
		{ "web-1.prod_a=65535", "web-1.prod_a", 65535 },
		{ NAME31 "=7", NAME31, 7 },
	};
	static const char *const bad[] = {
		"v2", "=10", "v2=", "v2=abc", "v2=65536", "v2=-1", "v2= 1", "v2=10=1",
		"bad name=1", "a/b=1", NAME32 "=1", "", "=",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct ts_err err = { .status = TS_OK };
		char name[TS_NAME_LEN];
		__u32 w = 0xdeadbeef;
		int r = ts_parse_assignment(good[i].in, name, &w, &err);

		ASSERT_TRUE(r == 0, "ts_parse_assignment(\"%s\") = %d: %s", good[i].in, r, err.msg);
		ASSERT_TRUE(!strcmp(name, good[i].name), "\"%s\": name \"%s\", want \"%s\"",
			    good[i].in, name, good[i].name);
		ASSERT_EQ(w, good[i].weight, good[i].in);
	}
	expect_all_rejected("ts_parse_assignment", parse_assignment, bad, ARRAY_SIZE(bad));
	/* `weight web v1 50`: the advice names v1, the backend given */
	{
		struct ts_err err = { .status = TS_OK };
		char name[TS_NAME_LEN];
		__u32 w;

		ASSERT_TRUE(ts_parse_assignment("v1", name, &w, &err) == -TS_ERR_USAGE,
			    "v1 refused");
		ASSERT_TRUE(strstr(err.msg, "write v1=W") && !strstr(err.msg, "v2"),
			    "the advice for 'v1' names v1: %s", err.msg);
	}
}

static void name_is_1_to_31_safe_characters(void **state)
{
	static const char *const good[] = {
		"v1", "V2", "0", "web-2.prod_a", "...", "-", "_", NAME31,
	};
	static const char *const bad[] = {
		NAME32, "", "a b", "a/b", "a:b", "a=b", "a\tb", "caf\xc3\xa9", "a*", "$x",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct ts_err err = { .status = TS_OK };
		int r = ts_parse_name(good[i], "backend", &err);

		ASSERT_TRUE(r == 0, "ts_parse_name(\"%s\") = %d: %s", good[i], r, err.msg);
	}
	expect_all_rejected("ts_parse_name", parse_name, bad, ARRAY_SIZE(bad));
}

static void table_size_is_prime_7_to_131071(void **state)
{
	static const struct {
		const char	*in;
		__u32		want;
	} good[] = {
		{ "7", 7 }, { "251", 251 }, { "16381", 16381 }, { "65537", 65537 },
		{ "131071", TS_MAX_TABLE_SIZE },
	};
	static const char *const bad[] = {
		"16380",	/* not prime */
		"8", "1", "0", "2", "5",	/* below the minimum, primes included */
		"131072", "131101",	/* above the maximum, 131101 is prime */
		"4294967311", "abc", "", "-7", " 7", "7.0",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct ts_err err = { .status = TS_OK };
		__u32 m = 0;
		int r = ts_parse_table_size(good[i].in, &m, &err);

		ASSERT_TRUE(r == 0, "ts_parse_table_size(\"%s\") = %d: %s", good[i].in, r,
			    err.msg);
		ASSERT_EQ(m, good[i].want, good[i].in);
	}
	expect_all_rejected("ts_parse_table_size", parse_table_size, bad, ARRAY_SIZE(bad));
}

static void is_prime_small_and_large(void **state)
{
	static const struct {
		__u32	n;
		bool	prime;
	} cases[] = {
		{ 0, false }, { 1, false }, { 2, true }, { 3, true }, { 4, false }, { 7, true },
		{ 9, false }, { 25, false }, { 49, false }, { 251, true }, { 16380, false },
		{ 16381, true }, { 65536, false }, { 65537, true }, { 131071, true },
		{ 131073, false },
		{ 4293001441U, false },	/* 65521^2: the loop must test d * d == n */
		{ 4294967291U, true },	/* largest 32-bit prime: d * d must not overflow */
		{ 4294967295U, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		ASSERT_TRUE(ts_is_prime(cases[i].n) == cases[i].prime, "ts_is_prime(%u) = %d",
			    cases[i].n, !cases[i].prime);
}

/* ---- durations ------------------------------------------------------------ */

static void duration_units_and_limit(void **state)
{
	static const struct {
		const char	*in;
		__u64		ns;
	} good[] = {
		{ "30s", 30 * NS_PER_S },
		{ "500ms", 500000000ULL },
		{ "5m", 300 * NS_PER_S },
		{ "1h", 3600 * NS_PER_S },
		{ "10", 10 * NS_PER_S },		/* plain seconds */
		{ "1ms", 1000000ULL },
		{ "168h", SEVEN_DAYS_NS },		/* the limit itself */
		{ "10080m", SEVEN_DAYS_NS },
		{ "604800", SEVEN_DAYS_NS },
		{ "604800000ms", SEVEN_DAYS_NS },
	};
	static const char *const bad[] = {
		"-1s", "1d", "8d", "s", "ms", "", "1.5s", "1 s", " 1s", "1s ", "1sec", "1x",
		"192h",			/* 8 days */
		"169h", "10081m", "604801", "604800001ms",
		"99999999999999999999s",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct ts_err err = { .status = TS_OK };
		__u64 ns = 0;
		int r = ts_parse_duration(good[i].in, &ns, &err);

		ASSERT_TRUE(r == 0, "ts_parse_duration(\"%s\") = %d: %s", good[i].in, r, err.msg);
		ASSERT_EQ(ns, good[i].ns, good[i].in);
	}
	expect_all_rejected("ts_parse_duration", parse_duration, bad, ARRAY_SIZE(bad));
}

/*
 * Numbers of minutes or hours that pass the digit-count check but whose
 * value in ns does not fit in 64 bits must be rejected, not wrapped around
 * into a short timeout (2^64 ns is about 584 years).
 */
static void duration_rejects_values_that_overflow_64_bits(void **state)
{
	static const char *const bad[] = {
		"5124096h",	/* * 3.6e12 ns wraps to 1526 s */
		"307445735m",	/* * 6e10 ns wraps to 26 s */
		"604800000h",	/* the largest digit string the parser lets through */
		"604800000m",
	};

	expect_all_rejected("ts_parse_duration", parse_duration, bad, ARRAY_SIZE(bad));
}

/*
 * Messages quote the operator's input; the CLI prints them as one line after
 * "tcpshift: ", so a line break inside the input must not split the message.
 */
static void messages_stay_one_line_for_control_characters(void **state)
{
	static const struct {
		const char	*fn;
		parse_fn	parse;
		const char	*in;
	} cases[] = {
		{ "ts_parse_name", parse_name, "a\nb" },
		{ "ts_parse_name", parse_name, "a\rb" },
		{ "ts_parse_assignment", parse_assignment, "v\n2=1" },
		{ "ts_parse_assignment", parse_assignment, "v2=1\n" },
		{ "ts_parse_endpoint", parse_endpoint, "198.18.100.1:\n80" },
		{ "ts_parse_endpoint", parse_endpoint, "198.18.100.1\n:80" },
		{ "ts_parse_weight", parse_weight, "1\n" },
		{ "ts_parse_table_size", parse_table_size, "7\n" },
		{ "ts_parse_duration", parse_duration, "1s\n" },
		{ "ts_parse_address", parse_address, "198.18.2.11\n" },
	};

	int wrong = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ts_err err = { .status = TS_OK };

		int r = cases[i].parse(cases[i].in, &err);

		wrong += !usage_error_ok(cases[i].fn, cases[i].in, r, &err);
	}
	ASSERT_TRUE(wrong == 0, "%d of %zu inputs with control characters not refused with a "
		    "one-line message", wrong, ARRAY_SIZE(cases));
}

int run_parse_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(endpoint_accepts_v4_and_bracketed_v6),
		cmocka_unit_test(endpoint_rejects_bad_input),
		cmocka_unit_test(vip_rejects_unreachable_addresses),
		cmocka_unit_test(seed_is_decimal_or_hex),
		cmocka_unit_test(format_endpoint_round_trips),
		cmocka_unit_test(address_accepts_bare_ip_only),
		cmocka_unit_test(weight_accepts_0_to_65535),
		cmocka_unit_test(assignment_is_name_equals_weight),
		cmocka_unit_test(name_is_1_to_31_safe_characters),
		cmocka_unit_test(table_size_is_prime_7_to_131071),
		cmocka_unit_test(is_prime_small_and_large),
		cmocka_unit_test(duration_units_and_limit),
		cmocka_unit_test(duration_rejects_values_that_overflow_64_bits),
		cmocka_unit_test(messages_stay_one_line_for_control_characters),
	};

	return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
