// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Configuration documents: the whole configuration as JSON (`tcpshift
 * export`), and the plan that makes a gateway's configuration equal to one
 * (`tcpshift import`; config.c applies it), so that gateways behind ECMP can
 * be kept identical (invariant 6) by whatever distributes files. Pure: no
 * maps, no I/O, no global state (the fuzz target links this file alone).
 *
 *   {"tcpshift": 1, "seed": 2086625005,
 *    "services": [{"name": "web", "vip": "198.18.100.1:8008", "table_size": 16381,
 *                  (table_size only when given: else it follows the backends)
 *                  "backends": [{"name": "v1", "addr": "198.18.2.11:8008",
 *                                "weight": 90}]}]}
 *
 * The parser is a pure function (text in; document or error out) that
 * validates everything a change would, so that an import either starts with a
 * document known to be good or changes nothing. An error names the place in
 * the document ("services[1].backends[0].weight: ...").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "libtcpshift.h"

/* Nesting of a valid document is 5 (root, services, a service, backends, a
 * backend); deeper input is refused before json-c sees it, and by json-c's
 * tokenizer too, whose stack it bounds. */
#define DOC_MAX_DEPTH	16
/*
 * The most a valid document holds is 65,536 services and 262,144 backends:
 * 458,754 arrays and objects (the root, services, and each service's object,
 * health and backends, each backend's object) and 1,769,476 values in all (4
 * at the root, 11 a service, 4 a backend). Past these bounds, about twice
 * that, a text is refused before json-c allocates a tree for it.
 */
#define DOC_MAX_CONTAINERS	(1 << 20)
#define DOC_MAX_VALUES		(1 << 22)

static int cmp_doc_backend(const void *a, const void *b)
{
	return strcmp(((const struct ts_doc_backend *)a)->name,
		      ((const struct ts_doc_backend *)b)->name);
}

static int cmp_doc_service(const void *a, const void *b)
{
	return strcmp(((const struct ts_doc_service *)a)->name,
		      ((const struct ts_doc_service *)b)->name);
}

void ts_doc_free(struct ts_doc *doc)
{
	for (size_t i = 0; i < doc->nservices; i++)
		free(doc->services[i].backends);
	free(doc->services);
	memset(doc, 0, sizeof(*doc));
}

static bool same_endpoint(const struct ts_endpoint *a, const struct ts_endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* ---- parsing ----------------------------------------------------------------- */

/* "PATH: what is wrong: how to fix it", a usage error. */
static int fail_at(struct ts_err *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_at(struct ts_err *err, const char *path, const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ts_fail(err, TS_ERR_USAGE, "%s: %s", path, msg);
}

static const char *type_name(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction or exponent";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}

/* Every key of o must be one of keys[]. */
static int check_keys(json_object *o, const char *path, const char *const *keys, size_t n,
		      const char *what, struct ts_err *err)
{
	json_object_object_foreach(o, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; i < n && !known; i++)
			known = !strcmp(key, keys[i]);
		if (!known)
			return fail_at(err, path, "unknown key \"%.64s\": %s", key, what);
	}
	return 0;
}

/* o[key], which must be there. (A JSON null is there, as a NULL *val.) */
static int get_key(json_object *o, const char *path, const char *key, const char *hint,
		   json_object **val, struct ts_err *err)
{
	if (!json_object_object_get_ex(o, key, val))
		return fail_at(err, path, "\"%s\" is missing: %s", key, hint);
	return 0;
}

static int get_u32(json_object *v, const char *path, __u32 min, __u32 max, __u32 *out,
		   struct ts_err *err)
{
	int64_t x;

	if (!json_object_is_type(v, json_type_int))
		return fail_at(err, path, "is %s: give an integer %u-%u", type_name(v), min, max);
	x = json_object_get_int64(v);
	if (x < (int64_t)min || x > (int64_t)max)
		return fail_at(err, path, "%s is out of range: give an integer %u-%u",
			       json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), min,
			       max);
	*out = (__u32)x;
	return 0;
}

static int get_string(json_object *v, const char *path, const char *example, const char **out,
		      struct ts_err *err)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return fail_at(err, path, "is %s: give a string such as \"%s\"", type_name(v),
			       example);
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return fail_at(err, path, "contains a NUL character: give a string such as \"%s\"",
			       example);
	*out = s;
	return 0;
}

/* A name (service or backend), checked like the command line's. */
static int get_name(json_object *v, const char *path, const char *what, const char *example,
		    char out[TS_NAME_LEN], struct ts_err *err)
{
	struct ts_err e;
	const char *s;
	int r = get_string(v, path, example, &s, err);

	if (r)
		return r;
	if (ts_parse_name(s, what, &e))
		return fail_at(err, path, "%s", e.msg);
	snprintf(out, TS_NAME_LEN, "%s", s);
	return 0;
}

static int get_endpoint(json_object *v, const char *path, const char *example, bool vip,
			struct ts_endpoint *ep, struct ts_err *err)
{
	struct ts_err e;
	const char *s;
	int r = get_string(v, path, example, &s, err);

	if (r)
		return r;
	if (vip ? ts_parse_vip(s, ep, &e) : ts_parse_endpoint(s, ep, &e))
		return fail_at(err, path, "%s", e.msg);
	return 0;
}

/* Where backend addresses were seen so far, to refuse one used twice. */
struct seen_backend {
	const struct ts_doc_backend	*b;
	size_t				service, backend;	/* indexes in the document */
};

/*
 * What was seen so far, found in constant time: an open-addressing table of
 * indexes + 1 (0: empty) into the document's services (by name, by VIP) or
 * into seen (by address), so that a document of 65,536 services and 262,144
 * backends is checked in time that grows with its size, not its square.
 */
struct seen_set {
	size_t	*slot;
	size_t	mask;		/* size - 1, a power of two at least twice the most held */
};

struct parse_state {
	struct ts_doc		*doc;
	struct seen_backend	*seen;
	size_t			nseen;
	struct seen_set		names, vips, addrs;
};

static __u64 hash_bytes(const void *p, size_t n)
{
	const unsigned char *c = p;
	__u64 h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

static __u64 hash_endpoint(const struct ts_endpoint *e)
{
	__u64 h = hash_bytes(e->addr, sizeof(e->addr));

	return hash_bytes(&e->port, sizeof(e->port)) ^ (h * 31) ^ e->family;
}

static int seen_init(struct seen_set *set, size_t most)
{
	size_t size = 16;

	while (size < 2 * most)
		size *= 2;
	set->mask = size - 1;
	set->slot = calloc(size, sizeof(*set->slot));
	return set->slot ? 0 : -ENOMEM;
}

/* The index held under hash h for which same(ctx, index) holds, else idx is
 * added and SIZE_MAX returned. */
static size_t seen_add(struct seen_set *set, __u64 h, size_t idx,
		       bool (*same)(const struct parse_state *, size_t, size_t),
		       const struct parse_state *ps)
{
	for (size_t i = h & set->mask;; i = (i + 1) & set->mask) {
		if (!set->slot[i]) {
			set->slot[i] = idx + 1;
			return SIZE_MAX;
		}
		if (same(ps, set->slot[i] - 1, idx))
			return set->slot[i] - 1;
	}
}

static bool same_name(const struct parse_state *ps, size_t a, size_t b)
{
	return !strcmp(ps->doc->services[a].name, ps->doc->services[b].name);
}

static bool same_endpoint(const struct ts_endpoint *a, const struct ts_endpoint *b);

static bool same_vip(const struct parse_state *ps, size_t a, size_t b)
{
	return same_endpoint(&ps->doc->services[a].vip, &ps->doc->services[b].vip);
}

static bool same_addr(const struct parse_state *ps, size_t a, size_t b)
{
	return same_endpoint(&ps->seen[a].b->addr, &ps->seen[b].b->addr);
}

static int parse_backend(struct parse_state *ps, json_object *o, size_t si, size_t bi,
			 struct ts_err *err)
{
	static const char *const keys[] = { "name", "addr", "weight" };
	struct ts_doc_service *s = &ps->doc->services[si];
	struct ts_doc_backend *b = &s->backends[bi];
	char path[96], sub[128];
	json_object *v;
	size_t j;
	int r;

	snprintf(path, sizeof(path), "services[%zu].backends[%zu]", si, bi);
	if (!json_object_is_type(o, json_type_object))
		return fail_at(err, path, "is %s: give an object {\"name\", \"addr\", \"weight\"}",
			       type_name(o));
	r = check_keys(o, path, keys, 3, "a backend has name, addr and weight", err);
	if (r)
		return r;

	r = get_key(o, path, "name", "give the backend's name, e.g. \"v1\"", &v, err);
	snprintf(sub, sizeof(sub), "%s.name", path);
	r = r ?: get_name(v, sub, "backend", "v1", b->name, err);
	if (r)
		return r;
	for (size_t j = 0; j < bi; j++)
		if (!strcmp(s->backends[j].name, b->name))
			return fail_at(err, sub,
				       "backend '%s' is also services[%zu].backends[%zu]: give each "
				       "backend of a service a different name",
				       b->name, si, j);

	r = get_key(o, path, "addr", "give the backend's ADDRESS:PORT, e.g. "
		    "\"198.18.2.11:8008\"", &v, err);
	snprintf(sub, sizeof(sub), "%s.addr", path);
	r = r ?: get_endpoint(v, sub, "198.18.2.11:8008", false, &b->addr, err);
	if (r)
		return r;
	if (b->addr.family != s->vip.family)
		return fail_at(err, sub, "is an IPv%u address but the service's VIP is IPv%u: use "
			       "an address of the VIP's family",
			       b->addr.family, s->vip.family);
	/* One service per backend address:port: its replies name one VIP. */
	ps->seen[ps->nseen] = (struct seen_backend){ b, si, bi };
	j = seen_add(&ps->addrs, hash_endpoint(&b->addr), ps->nseen, same_addr, ps);
	if (j != SIZE_MAX) {
		const struct seen_backend *x = &ps->seen[j];
		char ep[TS_ADDRSTRLEN];

		ts_format_endpoint(b->addr.addr, b->addr.port, b->addr.family, ep, sizeof(ep));
		return fail_at(err, sub,
			       "%s is also services[%zu].backends[%zu] (backend '%s' of '%s'): a "
			       "backend address:port serves one service, once",
			       ep, x->service, x->backend, x->b->name,
			       ps->doc->services[x->service].name);
	}

	b->weight = 1;	/* as `backend add` */
	snprintf(sub, sizeof(sub), "%s.weight", path);
	if (json_object_object_get_ex(o, "weight", &v)) {
		r = get_u32(v, sub, 0, TS_MAX_WEIGHT, &b->weight, err);
		if (r)
			return r;
	}
	ps->seen[ps->nseen++] = (struct seen_backend){ b, si, bi };
	return 0;
}

/* {"check": "tcp", "interval_ms", "timeout_ms", "rise", "fall"}; absent keys
 * take the defaults of `tcpshift health`. */
static int parse_health(json_object *o, const char *path, struct ts_health_check *hc,
			struct ts_err *err)
{
	static const char *const keys[] = { "check", "interval_ms", "timeout_ms", "rise",
					    "fall" };
	const char *hint = "health has check (\"tcp\" or \"none\"), interval_ms, timeout_ms, "
			   "rise and fall";
	__u32 rise = TS_HEALTH_DEFAULT_RISE, fall = TS_HEALTH_DEFAULT_FALL;
	char sub[96];
	const char *check;
	json_object *v;
	struct ts_err e;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return fail_at(err, path, "is %s: %s", type_name(o), hint);
	r = check_keys(o, path, keys, 5, hint, err);
	r = r ?: get_key(o, path, "check", "give \"tcp\" or \"none\"", &v, err);
	snprintf(sub, sizeof(sub), "%s.check", path);
	r = r ?: get_string(v, sub, "tcp", &check, err);
	if (r)
		return r;
	memset(hc, 0, sizeof(*hc));
	if (!strcmp(check, "none"))
		return json_object_object_length(o) == 1
			       ? 0
			       : fail_at(err, path, "check \"none\" takes no other key");
	if (strcmp(check, "tcp"))
		return fail_at(err, sub, "\"%.32s\" is no health check: give \"tcp\" or \"none\"",
			       check);
	hc->check = TS_CHECK_TCP;
	hc->interval_ms = TS_HEALTH_DEFAULT_INTERVAL_MS;
	hc->timeout_ms = TS_HEALTH_DEFAULT_TIMEOUT_MS;
	if (json_object_object_get_ex(o, "interval_ms", &v)) {
		snprintf(sub, sizeof(sub), "%s.interval_ms", path);
		r = get_u32(v, sub, 100, 3600000, &hc->interval_ms, err);
	}
	if (!r && json_object_object_get_ex(o, "timeout_ms", &v)) {
		snprintf(sub, sizeof(sub), "%s.timeout_ms", path);
		r = get_u32(v, sub, 10, 3600000, &hc->timeout_ms, err);
	}
	if (!r && json_object_object_get_ex(o, "rise", &v)) {
		snprintf(sub, sizeof(sub), "%s.rise", path);
		r = get_u32(v, sub, 1, TS_HEALTH_MAX_COUNT, &rise, err);
	}
	if (!r && json_object_object_get_ex(o, "fall", &v)) {
		snprintf(sub, sizeof(sub), "%s.fall", path);
		r = get_u32(v, sub, 1, TS_HEALTH_MAX_COUNT, &fall, err);
	}
	if (r)
		return r;
	hc->rise = (__u8)rise;
	hc->fall = (__u8)fall;
	if (ts_health_check_valid(hc, &e))
		return fail_at(err, path, "%s", e.msg);
	return 0;
}

static int parse_service(struct parse_state *ps, json_object *o, size_t si, struct ts_err *err)
{
	static const char *const keys[] = { "name", "vip", "table_size", "health", "backends" };
	struct ts_doc_service *s = &ps->doc->services[si];
	char path[32], sub[64];
	json_object *v;
	size_t n, j;
	int r;

	snprintf(path, sizeof(path), "services[%zu]", si);
	if (!json_object_is_type(o, json_type_object))
		return fail_at(err, path,
			       "is %s: give an object {\"name\", \"vip\", \"table_size\", "
			       "\"backends\"}",
			       type_name(o));
	r = check_keys(o, path, keys, 5,
		       "a service has name, vip, table_size, health and backends", err);
	if (r)
		return r;

	r = get_key(o, path, "name", "give the service's name, e.g. \"web\"", &v, err);
	snprintf(sub, sizeof(sub), "%s.name", path);
	r = r ?: get_name(v, sub, "service", "web", s->name, err);
	if (r)
		return r;
	j = seen_add(&ps->names, hash_bytes(s->name, strlen(s->name)), si, same_name, ps);
	if (j != SIZE_MAX)
		return fail_at(err, sub, "service '%s' is also services[%zu]: give each service once",
			       s->name, j);

	r = get_key(o, path, "vip", "give the service's VIP:PORT, e.g. "
		    "\"198.18.100.1:8008\"", &v, err);
	snprintf(sub, sizeof(sub), "%s.vip", path);
	r = r ?: get_endpoint(v, sub, "198.18.100.1:8008", true, &s->vip, err);
	if (r)
		return r;
	j = seen_add(&ps->vips, hash_endpoint(&s->vip), si, same_vip, ps);
	if (j != SIZE_MAX) {
		char ep[TS_ADDRSTRLEN];

		ts_format_endpoint(s->vip.addr, s->vip.port, s->vip.family, ep, sizeof(ep));
		return fail_at(err, sub,
			       "%s is also the VIP of services[%zu] ('%s'): a VIP:port belongs to "
			       "one service",
			       ep, j, ps->doc->services[j].name);
	}

	s->table_size = 0;	/* follows the backends, as with `service add` */
	snprintf(sub, sizeof(sub), "%s.table_size", path);
	if (json_object_object_get_ex(o, "table_size", &v)) {
		r = get_u32(v, sub, TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE, &s->table_size, err);
		if (!r && !ts_is_prime(s->table_size))
			r = fail_at(err, sub,
				    "%u is not prime: use a prime such as 16381 or 65537",
				    s->table_size);
		if (r)
			return r;
	}

	if (json_object_object_get_ex(o, "health", &v)) {
		snprintf(sub, sizeof(sub), "%s.health", path);
		r = parse_health(v, sub, &s->health, err);
		if (r)
			return r;
	}

	if (!json_object_object_get_ex(o, "backends", &v))
		return 0;	/* no backends: a service that drops every new flow */
	snprintf(sub, sizeof(sub), "%s.backends", path);
	if (!json_object_is_type(v, json_type_array))
		return fail_at(err, sub, "is %s: give an array of backends, maybe empty",
			       type_name(v));
	n = json_object_array_length(v);
	if (n > TS_MAX_SERVICE_BACKENDS)
		return fail_at(err, sub, "has %zu backends: a service has at most %d", n,
			       TS_MAX_SERVICE_BACKENDS);
	if (ps->nseen + n > TS_MAX_BACKENDS)
		return fail_at(err, sub, "brings the document to %zu backends: at most %d in all",
			       ps->nseen + n, TS_MAX_BACKENDS);
	s->backends = calloc(n ? n : 1, sizeof(*s->backends));
	if (!s->backends)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (size_t bi = 0; bi < n; bi++) {
		r = parse_backend(ps, json_object_array_get_idx(v, bi), si, bi, err);
		if (r)
			return r;
		s->nbackends++;
	}
	return 0;
}

static int parse_root(struct parse_state *ps, json_object *root, struct ts_err *err)
{
	static const char *const keys[] = { "tcpshift", "seed", "services" };
	struct ts_doc *doc = ps->doc;
	json_object *v;
	size_t n;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return ts_fail(err, TS_ERR_USAGE,
			       "the document is %s, not an object {\"tcpshift\": 1, \"seed\", "
			       "\"services\"}: give what 'tcpshift export' prints",
			       type_name(root));
	/* The version first: a newer document is told so, not picked apart. */
	if (!json_object_object_get_ex(root, "tcpshift", &v))
		return ts_fail(err, TS_ERR_USAGE,
			       "\"tcpshift\": 1 is missing: not a tcpshift document; give what "
			       "'tcpshift export' prints");
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != TS_DOC_VERSION)
		return ts_fail(err, TS_ERR_USAGE,
			       "document version (\"tcpshift\") %s is not supported: this tcpshift reads "
			       "version %d; export it again with this tcpshift's version",
			       json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			       TS_DOC_VERSION);
	r = check_keys(root, "document", keys, 3,
		       "a document has tcpshift, seed and services", err);
	if (r)
		return r;

	r = get_key(root, "document", "seed",
		    "give the flow hash seed (gateways behind one ECMP group need the same)", &v,
		    err);
	r = r ?: get_u32(v, "seed", 0, 0xffffffffU, &doc->seed, err);
	if (r)
		return r;

	r = get_key(root, "document", "services",
		    "give \"services\": [] (an empty list removes every service)", &v, err);
	if (r)
		return r;
	if (!json_object_is_type(v, json_type_array))
		return fail_at(err, "services", "is %s: give an array of services, maybe empty",
			       type_name(v));
	n = json_object_array_length(v);
	if (n > TS_MAX_SERVICES)
		return fail_at(err, "services", "has %zu services: at most %d", n,
			       TS_MAX_SERVICES);
	doc->services = calloc(n ? n : 1, sizeof(*doc->services));
	ps->seen = calloc(TS_MAX_BACKENDS, sizeof(*ps->seen));
	if (!doc->services || !ps->seen || seen_init(&ps->names, n) || seen_init(&ps->vips, n) ||
	    seen_init(&ps->addrs, TS_MAX_BACKENDS))
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (size_t si = 0; si < n; si++) {
		/* counted first: ts_doc_free frees what a failed service holds */
		doc->nservices++;
		r = parse_service(ps, json_object_array_get_idx(v, si), si, err);
		if (r)
			return r;
	}
	return 0;
}

/* "line L, column C" of byte offset off (1-based, columns in bytes). */
static void text_position(const char *text, size_t len, size_t off, char *buf, size_t buflen)
{
	size_t line = 1, col = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(buf, buflen, "line %zu, column %zu", line, col);
}

int ts_json_check_limits(const char *text, size_t len, const struct ts_json_limits *lim,
			 char *why, size_t whylen)
{
	size_t containers = 0, values = 1;
	unsigned int depth = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char where[64];

		if (in_string) {
			/* an escape's next byte is never the end: \" stays in */
			if (text[i] == '\\')
				i++;
			else if (text[i] == '"')
				in_string = false;
			continue;
		}
		switch (text[i]) {
		case '"':
			in_string = true;
			continue;
		case '{':
		case '[':
			if (++depth > lim->depth) {
				text_position(text, len, i, where, sizeof(where));
				snprintf(why, whylen, "%s: nested deeper than %u levels", where,
					 lim->depth);
				return -E2BIG;
			}
			if (++containers > lim->containers) {
				text_position(text, len, i, where, sizeof(where));
				snprintf(why, whylen, "%s: more than %zu arrays and objects", where,
					 lim->containers);
				return -E2BIG;
			}
			break;
		case '}':
		case ']':
			depth -= depth > 0;
			continue;
		case ',':
			break;
		default:
			continue;
		}
		/* each value but the first follows a '{', a '[' or a ',' */
		if (++values > lim->values) {
			text_position(text, len, i, where, sizeof(where));
			snprintf(why, whylen, "%s: more than %zu values", where, lim->values);
			return -E2BIG;
		}
	}
	return 0;
}

/* A backend at a VIP:port would loop its packets back into the gateway. */
static int check_backend_vips(const struct parse_state *ps, struct ts_err *err)
{
	const struct ts_doc *doc = ps->doc;
	char path[64], ep[TS_ADDRSTRLEN];

	for (size_t i = 0; i < doc->nservices; i++)
		for (size_t j = 0; j < doc->services[i].nbackends; j++) {
			const struct ts_endpoint *a = &doc->services[i].backends[j].addr;
			const struct seen_set *set = &ps->vips;

			for (size_t h = hash_endpoint(a) & set->mask, k; set->slot[h];
			     h = (h + 1) & set->mask) {
				k = set->slot[h] - 1;
				if (!same_endpoint(a, &doc->services[k].vip))
					continue;
				snprintf(path, sizeof(path), "services[%zu].backends[%zu].addr", i, j);
				ts_format_endpoint(a->addr, a->port, a->family, ep, sizeof(ep));
				return fail_at(err, path,
					       "%s is the VIP of service '%s': a backend cannot be "
					       "a VIP:port",
					       ep, doc->services[k].name);
			}
		}
	return 0;
}

/* One JSON string at t[*i] (the opening quote), decoded into out (at most
 * cap bytes, truncated beyond: keys longer than that compare by their start
 * and length). The text is valid JSON: json-c has parsed it. */
static size_t json_string(const char *t, size_t len, size_t *i, char *out, size_t cap)
{
	size_t n = 0;

	for ((*i)++; *i < len && t[*i] != '"'; (*i)++) {
		unsigned int c = (unsigned char)t[*i];

		if (c == '\\' && *i + 1 < len) {
			c = (unsigned char)t[++*i];
			if (c == 'u' && *i + 4 < len) {
				c = (unsigned int)strtoul((char[5]){ t[*i + 1], t[*i + 2], t[*i + 3],
								   t[*i + 4], 0 },
							  NULL, 16);
				*i += 4;
				/* a surrogate pair is one code point */
				if (c >= 0xd800 && c < 0xdc00 && *i + 6 < len && t[*i + 1] == '\\' &&
				    t[*i + 2] == 'u') {
					unsigned int lo = (unsigned int)strtoul(
						(char[5]){ t[*i + 3], t[*i + 4], t[*i + 5], t[*i + 6], 0 },
						NULL, 16);

					if (lo >= 0xdc00 && lo < 0xe000) {
						c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
						*i += 6;
					}
				}
				/* UTF-8, as the same character written plainly */
				char u[4];
				size_t k = 0;

				if (c < 0x80) {
					u[k++] = (char)c;
				} else if (c < 0x800) {
					u[k++] = (char)(0xc0 | c >> 6);
					u[k++] = (char)(0x80 | (c & 0x3f));
				} else if (c < 0x10000) {
					u[k++] = (char)(0xe0 | c >> 12);
					u[k++] = (char)(0x80 | ((c >> 6) & 0x3f));
					u[k++] = (char)(0x80 | (c & 0x3f));
				} else {
					u[k++] = (char)(0xf0 | c >> 18);
					u[k++] = (char)(0x80 | ((c >> 12) & 0x3f));
					u[k++] = (char)(0x80 | ((c >> 6) & 0x3f));
					u[k++] = (char)(0x80 | (c & 0x3f));
				}
				for (size_t j = 0; j < k; j++, n++)
					if (n < cap)
						out[n] = u[j];
				continue;
			}
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' :
			    c == 'f' ? '\f' : c;
		}
		if (n < cap)
			out[n] = (char)c;
		n++;
	}
	return n;
}

/*
 * json-c keeps the last of two equal keys of one object, so that
 * {"services":[...],"services":[]} would delete everything: refuse any key
 * given twice in one object, wherever it is in the document.
 */
static int check_duplicate_keys(const char *t, size_t len, struct ts_err *err)
{
	enum { KEY_CAP = 64, MAX_KEYS = 16 };
	struct frame {
		bool	object, expect_key;
		size_t	nkeys;
		size_t	klen[MAX_KEYS];
		char	key[MAX_KEYS][KEY_CAP];
	} *stack = calloc(DOC_MAX_DEPTH + 1, sizeof(*stack));
	int depth = -1, r = 0;
	char where[64];

	if (!stack)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (size_t i = 0; i < len && !r; i++) {
		struct frame *f = depth >= 0 ? &stack[depth] : NULL;
		char key[KEY_CAP];
		size_t at = i, n;

		switch (t[i]) {
		case '{':
		case '[':
			if (depth == DOC_MAX_DEPTH)
				break; /* json-c refused it already */
			f = &stack[++depth];
			f->object = t[i] == '{';
			f->expect_key = f->object;
			f->nkeys = 0;
			break;
		case '}':
		case ']':
			depth -= depth >= 0;
			break;
		case ',':
			if (f && f->object)
				f->expect_key = true;
			break;
		case ':':
			if (f)
				f->expect_key = false;
			break;
		case '"':
			n = json_string(t, len, &i, key, sizeof(key));
			if (!f || !f->object || !f->expect_key)
				break;
			for (size_t k = 0; k < f->nkeys && !r; k++)
				if (f->klen[k] == n && !memcmp(f->key[k], key, n < KEY_CAP ? n : KEY_CAP)) {
					text_position(t, len, at, where, sizeof(where));
					r = ts_fail(err, TS_ERR_USAGE,
						    "%s: key \"%.*s\" is given twice in one object: give "
						    "each key once",
						    where, (int)(n < KEY_CAP ? n : KEY_CAP), key);
				}
			/* objects of the document have a handful of keys; past
			 * MAX_KEYS the unknown-key check refuses them anyway */
			if (f->nkeys < MAX_KEYS) {
				memcpy(f->key[f->nkeys], key, n < KEY_CAP ? n : KEY_CAP);
				f->klen[f->nkeys++] = n;
			}
			break;
		}
	}
	free(stack);
	return r;
}

int ts_doc_parse(const char *text, size_t len, struct ts_doc *doc, struct ts_err *err)
{
	static const struct ts_json_limits doc_limits = {
		.depth = DOC_MAX_DEPTH,
		.containers = DOC_MAX_CONTAINERS,
		.values = DOC_MAX_VALUES,
	};

	return ts_doc_parse_limited(text, len, &doc_limits, doc, err);
}

int ts_doc_parse_limited(const char *text, size_t len, const struct ts_json_limits *limits,
			 struct ts_doc *doc, struct ts_err *err)
{
	struct parse_state ps = { .doc = doc };
	char why[sizeof(err->msg) - 64];
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *root;
	char where[64];
	size_t end;
	int r;

	memset(doc, 0, sizeof(*doc));
	if (len > TS_DOC_MAX_SIZE)
		return ts_fail(err, TS_ERR_USAGE, "the document has %zu bytes, more than %u", len,
			       TS_DOC_MAX_SIZE);
	end = 0;
	while (end < len && text[end] && strchr(" \t\r\n", text[end]))
		end++;
	if (end == len)
		return ts_fail(err, TS_ERR_USAGE,
			       "the document is empty: give what 'tcpshift export' prints");
	if (ts_json_check_limits(text, len, limits, why, sizeof(why)))
		return limits->containers < DOC_MAX_CONTAINERS
			       ? ts_fail(err, TS_ERR_USAGE,
					 "%s: a document read from here has at most %zu arrays and "
					 "objects (import a larger one with 'tcpshift import')",
					 why, limits->containers)
			       : ts_fail(err, TS_ERR_USAGE,
					 "%s: a document has at most %d services and %d backends",
					 why, TS_MAX_SERVICES, TS_MAX_BACKENDS);
	tok = json_tokener_new_ex(DOC_MAX_DEPTH);
	if (!tok)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!root && jerr == json_tokener_continue) {
		/* A number at the very end may go on: a space ends it. */
		root = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (!root) {
		text_position(text, len, end, where, sizeof(where));
		if (jerr == json_tokener_continue || jerr == json_tokener_success)
			return ts_fail(err, TS_ERR_USAGE,
				       "%s: the document ends early: is it complete?", where);
		return ts_fail(err, TS_ERR_USAGE, "%s: not valid JSON (%s): fix the document",
			       where, json_tokener_error_desc(jerr));
	}
	for (; end < len; end++)
		if (!text[end] || !strchr(" \t\r\n", text[end])) {
			json_object_put(root);
			text_position(text, len, end, where, sizeof(where));
			return ts_fail(err, TS_ERR_USAGE,
				       "%s: text after the document's end: give one JSON object",
				       where);
		}
	r = check_duplicate_keys(text, len, err);
	r = r ?: parse_root(&ps, root, err);
	r = r ?: check_backend_vips(&ps, err);
	json_object_put(root);
	free(ps.seen);
	free(ps.names.slot);
	free(ps.vips.slot);
	free(ps.addrs.slot);
	if (r) {
		ts_doc_free(doc);
		return r;
	}
	for (size_t i = 0; i < doc->nservices; i++)
		if (doc->services[i].nbackends > 1)
			qsort(doc->services[i].backends, doc->services[i].nbackends,
			      sizeof(struct ts_doc_backend), cmp_doc_backend);
	if (doc->nservices > 1)
		qsort(doc->services, doc->nservices, sizeof(*doc->services), cmp_doc_service);
	return 0;
}

/* ---- from a configuration, and back to text ------------------------------------ */

int ts_doc_from_config(const struct ts_config *cfg, __u32 seed, struct ts_doc *doc,
		       struct ts_err *err)
{
	memset(doc, 0, sizeof(*doc));
	doc->seed = seed;
	doc->services = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*doc->services));
	if (!doc->services)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct ts_service_cfg *c = &cfg->services[i];
		struct ts_doc_service *s = &doc->services[i];

		doc->nservices++;
		snprintf(s->name, sizeof(s->name), "%s", c->svc.name);
		s->vip.family = c->key.family;
		s->vip.port = c->key.port;
		memcpy(s->vip.addr, c->key.addr, sizeof(s->vip.addr));
		s->table_size = ts_service_fixed_size(&c->svc);
		s->health = c->svc.health;
		s->backends = calloc(c->nbackends ? c->nbackends : 1, sizeof(*s->backends));
		if (!s->backends) {
			ts_doc_free(doc);
			return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		}
		for (size_t j = 0; j < c->nbackends; j++) {
			const struct ts_backend_cfg *cb = &c->backends[j];
			struct ts_doc_backend *b = &s->backends[j];

			snprintf(b->name, sizeof(b->name), "%s", cb->be.name);
			b->addr.family = cb->be.family;
			b->addr.port = cb->be.port;
			memcpy(b->addr.addr, cb->be.addr, sizeof(b->addr.addr));
			b->weight = cb->weight;
		}
		s->nbackends = c->nbackends;
		qsort(s->backends, s->nbackends, sizeof(*s->backends), cmp_doc_backend);
	}
	qsort(doc->services, doc->nservices, sizeof(*doc->services), cmp_doc_service);
	return 0;
}

json_object *ts_health_json(const struct ts_health_check *hc)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "check", json_object_new_string(ts_health_check_name(hc->check)));
	if (hc->check == TS_CHECK_NONE)
		return o;
	json_object_object_add(o, "interval_ms", json_object_new_int64(hc->interval_ms));
	json_object_object_add(o, "timeout_ms", json_object_new_int64(hc->timeout_ms));
	json_object_object_add(o, "rise", json_object_new_int(hc->rise));
	json_object_object_add(o, "fall", json_object_new_int(hc->fall));
	return o;
}

void ts_health_text(const struct ts_health_check *hc, char *buf, size_t len)
{
	if (hc->check == TS_CHECK_NONE)
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%s interval %ums timeout %ums rise %u fall %u",
			 ts_health_check_name(hc->check), hc->interval_ms, hc->timeout_ms,
			 hc->rise, hc->fall);
}

static json_object *endpoint_json(const struct ts_endpoint *ep)
{
	char buf[TS_ADDRSTRLEN];

	ts_format_endpoint(ep->addr, ep->port, ep->family, buf, sizeof(buf));
	return json_object_new_string(buf);
}

/* A service as a document holds it; json-c keeps the keys in insertion order:
 * the same service always prints the same bytes. */
static json_object *service_json(const struct ts_doc_service *s)
{
	json_object *o = json_object_new_object(), *bs = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "vip", endpoint_json(&s->vip));
	/* only a size that was given: others follow the backends */
	if (s->table_size)
		json_object_object_add(o, "table_size", json_object_new_int64(s->table_size));
	/* only where there are checks: documents without stay as they were */
	if (s->health.check != TS_CHECK_NONE)
		json_object_object_add(o, "health", ts_health_json(&s->health));
	for (size_t j = 0; j < s->nbackends; j++) {
		const struct ts_doc_backend *b = &s->backends[j];
		json_object *bo = json_object_new_object();

		json_object_object_add(bo, "name", json_object_new_string(b->name));
		json_object_object_add(bo, "addr", endpoint_json(&b->addr));
		json_object_object_add(bo, "weight", json_object_new_int64(b->weight));
		json_object_array_add(bs, bo);
	}
	json_object_object_add(o, "backends", bs);
	return o;
}

char *ts_doc_format(const struct ts_doc *doc)
{
	json_object *root = json_object_new_object(), *services = json_object_new_array();
	const char *text;
	char *out = NULL;

	json_object_object_add(root, "tcpshift", json_object_new_int(TS_DOC_VERSION));
	json_object_object_add(root, "seed", json_object_new_int64(doc->seed));
	for (size_t i = 0; i < doc->nservices; i++)
		json_object_array_add(services, service_json(&doc->services[i]));
	json_object_object_add(root, "services", services);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_SPACED |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text && asprintf(&out, "%s\n", text) < 0)
		out = NULL;
	json_object_put(root);
	return out;
}

int ts_doc_service_print(FILE *f, const struct ts_doc_service *s)
{
	json_object *o = service_json(s);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = text && fputs(text, f) >= 0 ? 0 : -EIO;

	json_object_put(o);
	return r;
}

/* ---- the plan ------------------------------------------------------------------- */

static const char *const change_names[] = {
	[TS_CHANGE_SEED] = "seed",
	[TS_CHANGE_SERVICE_DEL] = "service-del",
	[TS_CHANGE_SERVICE_ADD] = "service-add",
	[TS_CHANGE_SERVICE_REPLACE] = "service-replace",
	[TS_CHANGE_BACKEND_DEL] = "backend-del",
	[TS_CHANGE_BACKEND_ADD] = "backend-add",
	[TS_CHANGE_BACKEND_REPLACE] = "backend-replace",
	[TS_CHANGE_WEIGHT] = "weight",
	[TS_CHANGE_HEALTH] = "health",
};

const char *ts_change_name(enum ts_change_kind kind)
{
	return (size_t)kind < sizeof(change_names) / sizeof(change_names[0]) ? change_names[kind]
									      : "?";
}

void ts_plan_free(struct ts_plan *plan)
{
	free(plan->changes);
	memset(plan, 0, sizeof(*plan));
}

/* Documents hold their services sorted by name. */
const struct ts_doc_service *ts_doc_service_find(const struct ts_doc *doc, const char *name)
{
	struct ts_doc_service key;

	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, doc->services, doc->nservices, sizeof(*doc->services),
		       cmp_doc_service);
}

static const struct ts_doc_backend *doc_backend(const struct ts_doc_service *s, const char *name)
{
	for (size_t i = 0; i < s->nbackends; i++)
		if (!strcmp(s->backends[i].name, name))
			return &s->backends[i];
	return NULL;
}

/* Must a service be deleted and added again to become want? */
static bool must_replace(const struct ts_doc_service *have, const struct ts_doc_service *want)
{
	return !same_endpoint(&have->vip, &want->vip) || have->table_size != want->table_size;
}

static struct ts_change *plan_add(struct ts_plan *plan, size_t *cap, enum ts_change_kind kind,
				  const char *service, const char *backend)
{
	struct ts_change *c;

	if (plan->nchanges == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		void *p = realloc(plan->changes, ncap * sizeof(*plan->changes));

		if (!p)
			return NULL;
		plan->changes = p;
		*cap = ncap;
	}
	c = &plan->changes[plan->nchanges++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	snprintf(c->service, sizeof(c->service), "%s", service);
	snprintf(c->backend, sizeof(c->backend), "%s", backend ? backend : "");
	return c;
}

static void service_text(const struct ts_doc_service *s, char *buf, size_t len)
{
	char ep[TS_ADDRSTRLEN];

	ts_format_endpoint(s->vip.addr, s->vip.port, s->vip.family, ep, sizeof(ep));
	if (s->table_size)
		snprintf(buf, len, "%s table_size %u", ep, s->table_size);
	else	/* follows the backends */
		snprintf(buf, len, "%s", ep);
}

static void backend_text(const struct ts_doc_backend *b, bool weight, char *buf, size_t len)
{
	char ep[TS_ADDRSTRLEN];

	ts_format_endpoint(b->addr.addr, b->addr.port, b->addr.family, ep, sizeof(ep));
	if (weight)
		snprintf(buf, len, "%s weight %u", ep, b->weight);
	else
		snprintf(buf, len, "%s", ep);
}

int ts_doc_plan(const struct ts_doc *have, const struct ts_doc *want, struct ts_plan *plan,
		struct ts_err *err)
{
	struct ts_change *c;
	size_t cap = 0;

	memset(plan, 0, sizeof(*plan));
	/* First the services that go, or that must be deleted to change (their
	 * VIPs may be taken by others). */
	for (size_t i = 0; i < have->nservices; i++) {
		const struct ts_doc_service *h = &have->services[i];
		const struct ts_doc_service *w = ts_doc_service_find(want, h->name);

		if (w && !must_replace(h, w))
			continue;
		c = plan_add(plan, &cap, w ? TS_CHANGE_SERVICE_REPLACE : TS_CHANGE_SERVICE_DEL,
			     h->name, NULL);
		if (!c)
			goto oom;
		service_text(h, c->from, sizeof(c->from));
		if (w)
			service_text(w, c->to, sizeof(c->to));
	}
	/* Then each service of the document, in name order. */
	for (size_t i = 0; i < want->nservices; i++) {
		const struct ts_doc_service *w = &want->services[i];
		const struct ts_doc_service *h = ts_doc_service_find(have, w->name);

		if (!h) {
			c = plan_add(plan, &cap, TS_CHANGE_SERVICE_ADD, w->name, NULL);
			if (!c)
				goto oom;
			service_text(w, c->to, sizeof(c->to));
		}
		if (!h || must_replace(h, w)) {
			/* a service added (again) with checks: they are a change too */
			if (w->health.check != TS_CHECK_NONE) {
				c = plan_add(plan, &cap, TS_CHANGE_HEALTH, w->name, NULL);
				if (!c)
					goto oom;
				snprintf(c->from, sizeof(c->from), "none");
				ts_health_text(&w->health, c->to, sizeof(c->to));
			}
			for (size_t j = 0; j < w->nbackends; j++) {
				c = plan_add(plan, &cap, TS_CHANGE_BACKEND_ADD, w->name,
					     w->backends[j].name);
				if (!c)
					goto oom;
				backend_text(&w->backends[j], true, c->to, sizeof(c->to));
			}
			continue;
		}
		if (memcmp(&h->health, &w->health, sizeof(w->health))) {
			c = plan_add(plan, &cap, TS_CHANGE_HEALTH, w->name, NULL);
			if (!c)
				goto oom;
			ts_health_text(&h->health, c->from, sizeof(c->from));
			ts_health_text(&w->health, c->to, sizeof(c->to));
		}
		for (size_t j = 0; j < h->nbackends; j++)
			if (!doc_backend(w, h->backends[j].name)) {
				c = plan_add(plan, &cap, TS_CHANGE_BACKEND_DEL, w->name,
					     h->backends[j].name);
				if (!c)
					goto oom;
				backend_text(&h->backends[j], true, c->from, sizeof(c->from));
			}
		for (size_t j = 0; j < w->nbackends; j++) {
			const struct ts_doc_backend *wb = &w->backends[j];
			const struct ts_doc_backend *hb = doc_backend(h, wb->name);
			enum ts_change_kind kind;

			if (!hb)
				kind = TS_CHANGE_BACKEND_ADD;
			else if (!same_endpoint(&hb->addr, &wb->addr))
				kind = TS_CHANGE_BACKEND_REPLACE;
			else if (hb->weight != wb->weight)
				kind = TS_CHANGE_WEIGHT;
			else
				continue;
			c = plan_add(plan, &cap, kind, w->name, wb->name);
			if (!c)
				goto oom;
			if (kind == TS_CHANGE_WEIGHT) {
				snprintf(c->from, sizeof(c->from), "%u", hb->weight);
				snprintf(c->to, sizeof(c->to), "%u", wb->weight);
			} else {
				if (hb)
					backend_text(hb, true, c->from, sizeof(c->from));
				backend_text(wb, true, c->to, sizeof(c->to));
			}
		}
	}
	if (have->seed != want->seed) {
		c = plan_add(plan, &cap, TS_CHANGE_SEED, "", NULL);
		if (!c)
			goto oom;
		snprintf(c->from, sizeof(c->from), "%u", have->seed);
		snprintf(c->to, sizeof(c->to), "%u", want->seed);
	}
	return 0;
oom:
	ts_plan_free(plan);
	return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
}

void ts_change_text(const struct ts_change *c, char *buf, size_t len)
{
	switch (c->kind) {
	case TS_CHANGE_SEED:
		snprintf(buf, len, "seed: %s -> %s (new flows hash with the new seed; pinned "
			 "flows stay)", c->from, c->to);
		break;
	case TS_CHANGE_SERVICE_DEL:
		snprintf(buf, len, "service %s: delete, was %s (connections through it break)",
			 c->service, c->from);
		break;
	case TS_CHANGE_SERVICE_ADD:
		snprintf(buf, len, "service %s: add %s", c->service, c->to);
		break;
	case TS_CHANGE_SERVICE_REPLACE:
		snprintf(buf, len, "service %s: delete and add again, %s -> %s (not atomic: its "
			 "connections break)", c->service, c->from, c->to);
		break;
	case TS_CHANGE_BACKEND_DEL:
		snprintf(buf, len, "service %s: backend %s: remove, was %s (its pinned "
			 "connections are reset)", c->service, c->backend, c->from);
		break;
	case TS_CHANGE_BACKEND_ADD:
		snprintf(buf, len, "service %s: backend %s: add %s", c->service, c->backend,
			 c->to);
		break;
	case TS_CHANGE_BACKEND_REPLACE:
		snprintf(buf, len, "service %s: backend %s: %s -> %s (a new backend: its pinned "
			 "connections are reset)", c->service, c->backend, c->from, c->to);
		break;
	case TS_CHANGE_WEIGHT:
		snprintf(buf, len, "service %s: backend %s: weight %s -> %s", c->service,
			 c->backend, c->from, c->to);
		break;
	case TS_CHANGE_HEALTH:
		snprintf(buf, len, "service %s: health checks %s -> %s", c->service, c->from,
			 c->to);
		break;
	}
}
