// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Parsing and formatting of operator input: addresses, names, weights, durations. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libtcpshift.h"

int ts_fail(struct ts_err *err, int status, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->status = status;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		/* One line, whatever the operator typed into a quoted argument. */
		for (char *p = err->msg; *p; p++)
			if (iscntrl((unsigned char)*p))
				*p = '?';
	}
	return -status;
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static int parse_decimal(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		v = v * 10 + (unsigned long long)(*s - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

int ts_parse_u32(const char *s, const char *what, __u32 min, __u32 max, __u32 *out,
		 struct ts_err *err)
{
	unsigned long long v;
	int r = parse_decimal(s, max, &v);

	if (r == -EINVAL)
		return ts_fail(err, TS_ERR_USAGE, "%s '%s' is not a number: give an integer %u-%u",
			       what, s ? s : "", min, max);
	if (r == -ERANGE || v < min)
		return ts_fail(err, TS_ERR_USAGE, "%s %s is out of range: give an integer %u-%u",
			       what, s, min, max);
	*out = (__u32)v;
	return 0;
}

int ts_parse_weight(const char *s, __u32 *weight, struct ts_err *err)
{
	return ts_parse_u32(s, "weight", 0, TS_MAX_WEIGHT, weight, err);
}

bool ts_is_prime(__u32 n)
{
	if (n < 2)
		return false;
	for (__u32 d = 2; (__u64)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

int ts_parse_table_size(const char *s, __u32 *size, struct ts_err *err)
{
	int r = ts_parse_u32(s, "table size", TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE, size, err);

	if (r)
		return r;
	if (!ts_is_prime(*size))
		return ts_fail(err, TS_ERR_USAGE,
			       "table size %u is not prime: use a prime such as 16381 or 65537",
			       *size);
	return 0;
}

int ts_parse_name(const char *s, const char *what, struct ts_err *err)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len >= TS_NAME_LEN)
		return ts_fail(err, TS_ERR_USAGE, "%s name '%s' must be 1-%d characters", what,
			       s ? s : "", TS_NAME_LEN - 1);
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return ts_fail(err, TS_ERR_USAGE,
				       "%s name '%s' may only contain letters, digits, '.', '_' and '-'",
				       what, s);
	return 0;
}

/* "1.2.3.4" or "2001:2::1" (no brackets, no port). */
static int parse_ip(const char *s, struct ts_endpoint *ep)
{
	static const __u8 families[] = { TS_AF_INET, TS_AF_INET6 };

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		memset(ep->addr, 0, sizeof(ep->addr));
		if (inet_pton(ts_family_af(families[i]), s, ep->addr) == 1) {
			ep->family = families[i];
			return 0;
		}
	}
	return -EINVAL;
}

int ts_parse_address(const char *s, struct ts_endpoint *ep, struct ts_err *err)
{
	if (!s || parse_ip(s, ep))
		return ts_fail(err, TS_ERR_USAGE,
			       "'%s' is not an IP address: write 198.18.2.11 or 2001:2::11",
			       s ? s : "");
	ep->port = 0;
	return 0;
}

int ts_parse_endpoint(const char *s, struct ts_endpoint *ep, struct ts_err *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port;
	__u32 portnum;
	size_t hlen;

	if (!s)
		s = "";
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		port = close + 2;
		if (parse_ip(host, ep) || ep->family != TS_AF_INET6)
			goto bad;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			goto bad; /* no port, or an IPv6 address without brackets */
		hlen = (size_t)(colon - s);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		port = colon + 1;
		if (parse_ip(host, ep) || ep->family != TS_AF_INET)
			goto bad;
	}
	if (ts_parse_u32(port, "port", 1, 65535, &portnum, NULL))
		return ts_fail(err, TS_ERR_USAGE, "'%s' has an invalid port: give a port 1-65535",
			       s);
	ep->port = htons((__u16)portnum);
	return 0;
bad:
	return ts_fail(err, TS_ERR_USAGE,
		       "'%s' is not ADDRESS:PORT: write 198.18.100.1:8008 or [2001:2::1]:8008", s);
}

/* Why addr cannot be a VIP, or NULL: an address no client reaches through a
 * gateway (unspecified, loopback, multicast, broadcast, an IPv4-mapped IPv6
 * address that would shadow the IPv4 one). */
static const char *not_a_vip(const struct ts_endpoint *ep)
{
	const __u8 *b = (const __u8 *)ep->addr;
	static const __u8 zero[16];

	if (ep->family == TS_AF_INET) {
		if (b[0] == 0)
			return "an unspecified (0.0.0.0/8) address";
		if (b[0] == 127)
			return "a loopback (127.0.0.0/8) address";
		if (b[0] >= 224 && b[0] < 240)
			return "a multicast address";
		if (b[0] >= 240)
			return "a reserved or broadcast address";
		return NULL;
	}
	if (!memcmp(b, zero, 16))
		return "the unspecified address [::]";
	if (!memcmp(b, zero, 15) && b[15] == 1)
		return "the loopback address [::1]";
	if (b[0] == 0xff)
		return "a multicast address";
	if (!memcmp(b, zero, 10) && b[10] == 0xff && b[11] == 0xff)
		return "an IPv4-mapped address: give the IPv4 address itself";
	return NULL;
}

int ts_parse_vip(const char *s, struct ts_endpoint *ep, struct ts_err *err)
{
	const char *why;
	int r = ts_parse_endpoint(s, ep, err);

	if (r)
		return r;
	why = not_a_vip(ep);
	if (why)
		return ts_fail(err, TS_ERR_USAGE,
			       "'%s' cannot be a VIP: %s; give an address clients reach the gateway at",
			       s, why);
	return 0;
}

int ts_parse_assignment(const char *s, char name[TS_NAME_LEN], __u32 *weight,
			struct ts_err *err)
{
	const char *eq = s ? strchr(s, '=') : NULL;
	struct ts_err ignored;
	size_t len;
	int r;

	/* the example names the backend given, not another one */
	if (!eq && s && !ts_parse_name(s, "backend", &ignored))
		return ts_fail(err, TS_ERR_USAGE, "'%s' is not NAME=WEIGHT: write %s=W, as in "
			       "%s=10 (no space around '=')", s, s, s);
	if (!eq)
		return ts_fail(err, TS_ERR_USAGE, "'%s' is not NAME=WEIGHT: write v2=10",
			       s ? s : "");
	len = (size_t)(eq - s);
	if (len == 0 || len >= TS_NAME_LEN)
		return ts_fail(err, TS_ERR_USAGE, "'%s' is not NAME=WEIGHT: write v2=10", s);
	memcpy(name, s, len);
	name[len] = '\0';
	r = ts_parse_name(name, "backend", err);
	return r ? r : ts_parse_weight(eq + 1, weight, err);
}

/* "30s", "500ms", "5m", "1h", or plain seconds; up to 7 days. */
int ts_parse_duration(const char *s, __u64 *ns, struct ts_err *err)
{
	static const struct {
		const char *suffix;
		__u64 ns;
	} units[] = {
		{ "ms", 1000000ULL }, { "s", 1000000000ULL }, { "m", 60000000000ULL },
		{ "h", 3600000000000ULL }, { "", 1000000000ULL },
	};
	const unsigned long long max_ns = 7ULL * 24 * 3600 * 1000000000ULL;
	unsigned long long v;
	char num[32];
	size_t digits = 0;

	if (!s)
		s = "";
	while (isdigit((unsigned char)s[digits]))
		digits++;
	if (digits == 0 || digits >= sizeof(num))
		goto bad;
	memcpy(num, s, digits);
	num[digits] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + digits, units[i].suffix))
			continue;
		/* bounded before the multiplication: no overflow */
		if (parse_decimal(num, max_ns / units[i].ns, &v))
			goto bad;
		*ns = v * units[i].ns;
		return 0;
	}
bad:
	return ts_fail(err, TS_ERR_USAGE,
		       "'%s' is not a duration: write 30s, 500ms, 5m or 1h (at most 7 days)", s);
}

int ts_family_af(__u8 family)
{
	return family == TS_AF_INET ? AF_INET : AF_INET6;
}

void ts_format_address(const __be32 addr[4], __u8 family, char *buf, size_t len)
{
	if (!inet_ntop(ts_family_af(family), addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

void ts_format_endpoint(const __be32 addr[4], __be16 port, __u8 family, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	ts_format_address(addr, family, ip, sizeof(ip));
	if (family == TS_AF_INET)
		snprintf(buf, len, "%s:%u", ip, ntohs(port));
	else
		snprintf(buf, len, "[%s]:%u", ip, ntohs(port));
}

int ts_parse_seed(const char *s, __u32 *seed)
{
	bool hex = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'));
	const char *digits = hex ? s + 2 : s;
	unsigned long long v;
	char *end;

	/* strtoull would take a sign, spaces, and a leading 0 as octal */
	if (!*digits || !(hex ? isxdigit((unsigned char)*digits) : isdigit((unsigned char)*digits)))
		return -EINVAL;
	errno = 0;
	v = strtoull(digits, &end, hex ? 16 : 10);
	if (errno || *end || v > 0xffffffffULL)
		return -EINVAL;
	*seed = (__u32)v;
	return 0;
}

const char *ts_health_check_name(__u8 check)
{
	return check == TS_CHECK_TCP ? "tcp" : check == TS_CHECK_NONE ? "none" : "?";
}

int ts_health_check_valid(const struct ts_health_check *hc, struct ts_err *err)
{
	if (hc->check == TS_CHECK_NONE) {
		if (hc->interval_ms || hc->timeout_ms || hc->rise || hc->fall)
			return ts_fail(err, TS_ERR_USAGE,
				       "health check none takes no interval, timeout, rise or "
				       "fall");
		return 0;
	}
	if (hc->check != TS_CHECK_TCP)
		return ts_fail(err, TS_ERR_USAGE, "unknown health check %u: give tcp or none",
			       hc->check);
	if (hc->interval_ms < 100 || hc->interval_ms > 3600000)
		return ts_fail(err, TS_ERR_USAGE,
			       "health check interval %ums is out of range: give 100ms-1h",
			       hc->interval_ms);
	if (hc->timeout_ms < 10 || hc->timeout_ms > hc->interval_ms)
		return ts_fail(err, TS_ERR_USAGE,
			       "health check timeout %ums is out of range: give 10ms up to the "
			       "interval (%ums)",
			       hc->timeout_ms, hc->interval_ms);
	if (hc->rise < 1 || hc->rise > TS_HEALTH_MAX_COUNT || hc->fall < 1 ||
	    hc->fall > TS_HEALTH_MAX_COUNT)
		return ts_fail(err, TS_ERR_USAGE,
			       "health check rise %u and fall %u: give each 1-%d", hc->rise,
			       hc->fall, TS_HEALTH_MAX_COUNT);
	return 0;
}
