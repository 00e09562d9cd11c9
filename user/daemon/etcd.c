// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd's v3 API through its JSON gateway, the parts without I/O: the
 * etcd://HOST:PORT/KEY address, base64 (keys and values travel base64
 * encoded), and the answers of /v3/kv/range and of the /v3/watch stream.
 * Pure: the agent (user/daemon/etcd_source.c) does the HTTP, the unit tests and the
 * fuzzer feed these functions hostile text directly.
 *
 * What etcd sends is not trusted more than a document: an answer's bytes and
 * shape (nesting, arrays and objects, values) are bounded before json-c
 * parses it, every field is type-checked, revisions are parsed strictly, keys
 * other than ours are ignored, and a value is decoded into a fresh buffer of
 * bounded size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "etcd.h"

/* ---- etcd://HOST[:PORT][,HOST[:PORT]...]/KEY ------------------------------------ */

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

/* Key bytes taken as they are: printable ASCII with no meaning in a URL. */
static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("/-_.:@=+,~", c);
}

/* One HOST[:PORT] of s[0..n) into u's next endpoint. */
static int parse_endpoint(const char *s, size_t n, struct ts_etcd_url *u, struct ts_err *err)
{
	const char *host = s, *port = NULL;
	size_t hlen = n;
	char hostbuf[TS_ETCD_HOST_MAX + 1];
	unsigned long p = 2379;
	char *end;

	if (!n)
		return ts_fail(err, TS_ERR_USAGE,
			       "etcd URL: a host is missing: give etcd://HOST:PORT/KEY, e.g. "
			       "etcd://127.0.0.1:2379/tcpshift/site");
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return ts_fail(err, TS_ERR_USAGE,
				       "etcd URL: '[' without ']': give an IPv6 address as "
				       "[2001:db8::1]:2379");
		host = s + 1;
		hlen = (size_t)(close - s) - 1;
		if (close + 1 < s + n) {
			if (close[1] != ':')
				return ts_fail(err, TS_ERR_USAGE,
					       "etcd URL: '%.*s': give [ADDRESS]:PORT", (int)n, s);
			port = close + 2;
		}
		for (size_t i = 0; i < hlen; i++)
			if (!strchr("0123456789abcdefABCDEF:.", host[i]))
				return ts_fail(err, TS_ERR_USAGE,
					       "etcd URL: '%.*s' is not an IPv6 address", (int)hlen,
					       host);
	} else {
		const char *colon = memchr(s, ':', n);

		if (colon) {
			hlen = (size_t)(colon - s);
			port = colon + 1;
		}
		for (size_t i = 0; i < hlen; i++)
			if (!host_char(host[i]))
				return ts_fail(err, TS_ERR_USAGE,
					       "etcd URL: host '%.*s' has a '%c': give a name or an "
					       "address",
					       (int)(hlen > 64 ? 64 : hlen), host, host[i]);
	}
	if (!hlen || hlen > TS_ETCD_HOST_MAX)
		return ts_fail(err, TS_ERR_USAGE, "etcd URL: a host of 1-%d characters is needed",
			       TS_ETCD_HOST_MAX);
	if (port) {
		size_t plen = (size_t)(s + n - port);
		char pbuf[8];

		if (!plen || plen > 5)
			return ts_fail(err, TS_ERR_USAGE,
				       "etcd URL: port '%.*s' is not a number in 1-65535", (int)plen,
				       port);
		memcpy(pbuf, port, plen);
		pbuf[plen] = '\0';
		errno = 0;
		p = strtoul(pbuf, &end, 10);
		if (*end || pbuf[0] < '0' || pbuf[0] > '9' || !p || p > 65535)
			return ts_fail(err, TS_ERR_USAGE,
				       "etcd URL: port '%s' is not a number in 1-65535", pbuf);
	}
	if (u->nendpoints == TS_ETCD_MAX_ENDPOINTS)
		return ts_fail(err, TS_ERR_USAGE, "etcd URL: more than %d endpoints",
			       TS_ETCD_MAX_ENDPOINTS);
	memcpy(hostbuf, host, hlen);
	hostbuf[hlen] = '\0';
	snprintf(u->endpoints[u->nendpoints++], sizeof(u->endpoints[0]),
		 s[0] == '[' ? "[%s]:%lu" : "%s:%lu", hostbuf, p);
	return 0;
}

int ts_etcd_key_check(const char *key, const char *what, struct ts_err *err)
{
	size_t klen = strlen(key);

	if (key[0] != '/' || klen < 2)
		return ts_fail(err, TS_ERR_USAGE, "%s '%.64s' must start with / and name a key",
			       what, key);
	if (klen > TS_ETCD_KEY_MAX)
		return ts_fail(err, TS_ERR_USAGE, "%s has %zu bytes, at most %d", what, klen,
			       TS_ETCD_KEY_MAX);
	for (size_t i = 0; i < klen; i++)
		if (!key_char(key[i])) {
			unsigned char c = (unsigned char)key[i];

			return ts_fail(err, TS_ERR_USAGE,
				       c > 0x20 && c < 0x7f
					       ? "%s has a '%c' at byte %zu: use letters, digits "
						 "and / - _ . : @ = + , ~"
					       : "%s has byte 0x%02x at %zu: use letters, digits "
						 "and / - _ . : @ = + , ~",
				       what, c, i);
		}
	return 0;
}

int ts_etcd_url_parse(const char *url, struct ts_etcd_url *u, struct ts_err *err)
{
	static const char scheme[] = "etcd://";
	const char *hosts, *slash, *p;
	int r;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, scheme, sizeof(scheme) - 1))
		return ts_fail(err, TS_ERR_USAGE,
			       "'%.64s' is not an etcd URL: give etcd://HOST:PORT/KEY, e.g. "
			       "etcd://127.0.0.1:2379/tcpshift/site",
			       url);
	hosts = url + sizeof(scheme) - 1;
	slash = strchr(hosts, '/');
	if (!slash || !slash[1])
		return ts_fail(err, TS_ERR_USAGE,
			       "etcd URL: the key is missing: give etcd://HOST:PORT/KEY, e.g. "
			       "etcd://127.0.0.1:2379/tcpshift/site");
	for (p = hosts; p <= slash; p++) {
		const char *q = p;

		while (q < slash && *q != ',')
			q++;
		r = parse_endpoint(p, (size_t)(q - p), u, err);
		if (r)
			return r;
		p = q;
	}
	r = ts_etcd_key_check(slash, "etcd URL: the key", err);
	if (r)
		return r;
	memcpy(u->key, slash, strlen(slash) + 1);
	return 0;
}

/* ---- base64 (RFC 4648, with padding) -------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ts_base64_encode(const void *in, size_t len, char *out)
{
	const unsigned char *s = in;
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		__u32 v = (__u32)s[i] << 16 | (i + 1 < len ? (__u32)s[i + 1] << 8 : 0) |
			  (i + 2 < len ? s[i + 2] : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

int ts_base64_decode(const char *in, size_t len, char *out, size_t *outlen)
{
	size_t o = 0;

	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad || (v[k] = b64_value(in[i + k])) < 0)
				return -EINVAL;
		}
		/* the bits padding drops must be 0: one encoding per byte string */
		if ((pad == 2 && (v[1] & 15)) || (pad == 1 && (v[2] & 3)))
			return -EINVAL;
		out[o++] = (char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	*outlen = o;
	return 0;
}

/* ---- answers --------------------------------------------------------------------- */

void ts_etcd_kv_free(struct ts_etcd_kv *kv)
{
	free(kv->value);
	kv->value = NULL;
	kv->len = 0;
}

/* An int64 the gateway writes as a string ("12"), or a plain number; absent is 0
 * (proto3 leaves zeros out). */
static int get_revision(json_object *o, const char *name, __s64 *out)
{
	json_object *v;
	const char *s;
	char *end;
	long long n;

	*out = 0;
	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		errno = 0;
		n = strtoll(s, &end, 10);
		if (!*s || *end || errno || *s == '-' || *s == '+')
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (n < 0)
		return -EINVAL;
	*out = n;
	return 0;
}

/* The string field name of o into *s (NULL when absent); -EINVAL when it is not
 * a string. */
static int get_string(json_object *o, const char *name, const char **s, size_t *len)
{
	json_object *v;

	*s = NULL;
	*len = 0;
	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return 0;
}

/* A kv object: is it key's (base64 key compared as text: one encoding per
 * byte string)? Then its value decoded and its mod revision. */
static int parse_kv(json_object *kvo, const char *key64, struct ts_etcd_kv *kv, bool *ours,
		    struct ts_err *err)
{
	const char *k, *v;
	size_t klen, vlen, cap;

	*ours = false;
	if (!json_object_is_type(kvo, json_type_object) || get_string(kvo, "key", &k, &klen) ||
	    get_string(kvo, "value", &v, &vlen) ||
	    get_revision(kvo, "mod_revision", &kv->mod_revision))
		return ts_fail(err, TS_ERR_RUNTIME, "etcd answered with a malformed key-value");
	if (!k || strcmp(k, key64))
		return 0;
	*ours = true;
	if (vlen / 4 * 3 > (size_t)TS_ETCD_VALUE_MAX + 3) {
		/* not decoded: the caller refuses it, knowing its revision */
		kv->too_large = true;
		kv->len = vlen / 4 * 3;
		return 0;
	}
	cap = vlen / 4 * 3 + 1;
	kv->value = malloc(cap);
	if (!kv->value)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (ts_base64_decode(v ? v : "", vlen, kv->value, &kv->len)) {
		ts_etcd_kv_free(kv);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "etcd answered with a value that is not base64 (revision %lld)",
			       (long long)kv->mod_revision);
	}
	kv->value[kv->len] = '\0';
	return 0;
}

/* The gateway's error: {"error": "...", "message": "..."} for a request,
 * {"error": {"message": "...", ...}} in a stream. */
static bool gateway_error(json_object *root, char *buf, size_t len)
{
	json_object *e, *m = NULL;

	if (!json_object_object_get_ex(root, "error", &e))
		return false;
	if (json_object_is_type(e, json_type_object))
		json_object_object_get_ex(e, "message", &m);
	else if (!json_object_object_get_ex(root, "message", &m))
		m = e;
	snprintf(buf, len, "%.200s",
		 m && json_object_is_type(m, json_type_string) ? json_object_get_string(m)
							       : "an error without a message");
	/* one log line: no control characters from a remote */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return true;
}

static json_object *parse_json(const char *text, size_t len, char *why, size_t whylen)
{
	static const struct ts_json_limits limits = {
		.depth = TS_ETCD_JSON_DEPTH,
		.containers = TS_ETCD_JSON_CONTAINERS,
		.values = TS_ETCD_JSON_VALUES,
	};
	struct json_tokener *tok;
	json_object *root;

	why[0] = '\0';
	if (len > TS_ETCD_BODY_MAX) {
		snprintf(why, whylen, "it has more than %u bytes", TS_ETCD_BODY_MAX);
		return NULL;
	}
	if (ts_json_check_limits(text, len, &limits, why, whylen))
		return NULL;
	tok = json_tokener_new_ex(TS_ETCD_JSON_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (root && json_tokener_get_parse_end(tok) != len) {
		/* trailing space is fine, anything else is not */
		for (size_t i = json_tokener_get_parse_end(tok); i < len && root; i++)
			if (!strchr(" \t\r\n", text[i])) {
				json_object_put(root);
				root = NULL;
			}
	}
	json_tokener_free(tok);
	return root;
}

/* An answer's JSON, unless it is none or etcd's error (then NULL and err). */
static json_object *answer_root(const char *text, size_t len, const char *what,
				struct ts_err *err)
{
	char msg[256], why[128];
	json_object *root = parse_json(text, len, why, sizeof(why));

	if (!root) {
		if (why[0])
			ts_fail(err, TS_ERR_RUNTIME, "etcd's answer to %s is refused unparsed: %s",
				what, why);
		else
			ts_fail(err, TS_ERR_RUNTIME, "etcd's answer to %s is not JSON", what);
		return NULL;
	}
	if (gateway_error(root, msg, sizeof(msg))) {
		json_object_put(root);
		ts_fail(err, TS_ERR_RUNTIME, "etcd refused %s: %s", what, msg);
		return NULL;
	}
	return root;
}

int ts_etcd_range_parse(const char *body, size_t len, const char *key64,
			struct ts_etcd_range *out, struct ts_err *err)
{
	json_object *root, *hdr, *kvs;
	int r = 0;

	memset(out, 0, sizeof(*out));
	root = answer_root(body, len, "the range request", err);
	if (!root)
		return -TS_ERR_RUNTIME;
	if (!json_object_object_get_ex(root, "header", &hdr) ||
	    !json_object_is_type(hdr, json_type_object) ||
	    get_revision(hdr, "revision", &out->revision) || !out->revision) {
		json_object_put(root);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "etcd answered the range request without a revision");
	}
	if (json_object_object_get_ex(root, "kvs", &kvs)) {
		if (!json_object_is_type(kvs, json_type_array))
			r = ts_fail(err, TS_ERR_RUNTIME, "etcd answered with malformed kvs");
		for (size_t i = 0; !r && i < json_object_array_length(kvs); i++) {
			bool ours;

			r = parse_kv(json_object_array_get_idx(kvs, i), key64, &out->kv, &ours,
				     err);
			if (!r && ours) {
				out->kv.found = true;
				break;
			}
		}
	}
	json_object_put(root);
	if (r)
		ts_etcd_kv_free(&out->kv);
	return r;
}

int ts_etcd_watch_parse(const char *line, size_t len, const char *key64,
			struct ts_etcd_watch *out, struct ts_err *err)
{
	json_object *root, *res, *hdr, *events, *v;
	int r = 0;

	memset(out, 0, sizeof(*out));
	root = answer_root(line, len, "the watch", err);
	if (!root)
		return -TS_ERR_RUNTIME;
	if (!json_object_object_get_ex(root, "result", &res) ||
	    !json_object_is_type(res, json_type_object)) {
		json_object_put(root);
		return ts_fail(err, TS_ERR_RUNTIME, "etcd's watch stream sent a message with no result");
	}
	if (json_object_object_get_ex(res, "header", &hdr) &&
	    (!json_object_is_type(hdr, json_type_object) ||
	     get_revision(hdr, "revision", &out->revision)))
		r = ts_fail(err, TS_ERR_RUNTIME, "etcd's watch stream sent a malformed header");
	if (!r && get_revision(res, "compact_revision", &out->compact_revision))
		r = ts_fail(err, TS_ERR_RUNTIME, "etcd's watch stream sent a malformed revision");
	if (!r && json_object_object_get_ex(res, "created", &v) && json_object_get_boolean(v))
		out->created = true;
	if (!r && json_object_object_get_ex(res, "canceled", &v) && json_object_get_boolean(v)) {
		const char *why;
		size_t wlen;

		out->canceled = true;
		if (!get_string(res, "cancel_reason", &why, &wlen) && why)
			snprintf(out->reason, sizeof(out->reason), "%.200s", why);
		for (char *p = out->reason; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	if (!r && json_object_object_get_ex(res, "events", &events)) {
		if (!json_object_is_type(events, json_type_array))
			r = ts_fail(err, TS_ERR_RUNTIME, "etcd's watch stream sent malformed events");
		/* the last event of our key is the state after this message */
		for (size_t i = 0; !r && i < json_object_array_length(events); i++) {
			json_object *ev = json_object_array_get_idx(events, i), *kvo, *type;
			struct ts_etcd_kv kv = {};
			bool ours, del = false;

			if (!json_object_is_type(ev, json_type_object) ||
			    !json_object_object_get_ex(ev, "kv", &kvo)) {
				r = ts_fail(err, TS_ERR_RUNTIME,
					    "etcd's watch stream sent an event without a key-value");
				break;
			}
			if (json_object_object_get_ex(ev, "type", &type)) {
				const char *t = json_object_get_string(type);

				if (!json_object_is_type(type, json_type_string) ||
				    (strcmp(t, "PUT") && strcmp(t, "DELETE"))) {
					r = ts_fail(err, TS_ERR_RUNTIME,
						    "etcd's watch stream sent an event of an unknown "
						    "type");
					break;
				}
				del = !strcmp(t, "DELETE");
			}
			r = parse_kv(kvo, key64, &kv, &ours, err);
			if (r || !ours) {
				ts_etcd_kv_free(&kv);
				continue;
			}
			ts_etcd_kv_free(&out->kv);
			out->kv = kv;
			out->kv.found = !del;
			out->event = true;
		}
	}
	json_object_put(root);
	if (r)
		ts_etcd_kv_free(&out->kv);
	return r;
}
