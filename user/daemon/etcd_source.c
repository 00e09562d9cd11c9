// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift agent --config etcd://HOST:PORT/KEY: the instance's configuration
 * made equal to the document stored at KEY, whenever it changes
 * (doc/DESIGN.md, "Configuration from etcd").
 *
 * One thread, one loop: a range read of the key (its revisions, then its
 * value at etcd's revision R), the value applied, then a watch of the key from R + 1 over
 * etcd's JSON gateway (POST /v3/watch, one JSON message per line) until it
 * breaks; then the same again. Starting every round with a range read makes
 * every way a watch can end -- etcd restarted, the network cut, the watch's
 * start compacted away -- one case: nothing between R and the new range read
 * is missed, because the range read shows the latest value.
 *
 * A document goes through ts_doc_import, the one pipeline `tcpshift import`
 * uses: checked whole first (a bad one changes nothing and is logged with its
 * reason), then each service in one table switch. The last document applied
 * is kept in memory: when a valid document fails half-way (the maps refused
 * a write), the previous one is imported again, so the instance ends up equal
 * to a document it was given. etcd unreachable: the configuration in force
 * stays, the agent logs it and retries with backoff, on the next endpoint of
 * the URL. Whatever etcd or a host on the path sends is bounded in bytes,
 * shape and time before it is parsed (doc/DESIGN.md, "Bounded before it is
 * parsed").
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "daemon.h"
#include "etcd_source.h"

/* Backoff after a failure: 100 ms doubling to 2 s, each delay drawn in its
 * upper half so that a fleet does not retry in step. */
#define BACKOFF_FIRST_MS	100
#define BACKOFF_MAX_MS		2000
/* The same failure is logged again after this long (a changed one at once). */
#define LOG_REPEAT_MS		30000
/* A dead etcd host is noticed on an idle watch after about 3 + 3 x 1 s of
 * unanswered keepalive probes. */
#define KEEPALIVE_IDLE_S	3
#define KEEPALIVE_INTERVAL_S	1
#define KEEPALIVE_COUNT		3
#define CONNECT_TIMEOUT_MS	2000
#define REQUEST_TIMEOUT_MS	10000
/* A watch is idle for as long as the key does not change, and keepalive
 * probes watch over the connection meanwhile; but a watch must be set up, and
 * each of its messages arrive whole, within this long: a peer that trickles
 * bytes is dropped, whatever pace it keeps. */
#define WATCH_MESSAGE_TIMEOUT_MS	10000
/* A status key that could not be written is tried again after this long. */
#define STATUS_RETRY_MS		5000
/* Changes of one document logged one by one, the rest counted. */
#define LOG_CHANGES_MAX		20

struct body {
	char	*p;
	size_t	len, cap;
	bool	too_large;
};

struct etcd_source {
	struct ts_etcd_url	url;
	size_t			endpoint;	/* the one in use */
	char			key64[(TS_ETCD_KEY_MAX + 3) / 3 * 4 + 1];
	char			status_key[TS_ETCD_KEY_MAX + 1];	/* "": none */
	char			node[256];
	struct ts_maps		*m;
	pthread_t		thread;
	CURLM			*multi;		/* the range read and the watch */
	CURLM			*multi_put;	/* status reports, while a watch runs */
	atomic_bool		stop;

	/* failures in a row, and what was logged of them */
	unsigned int		failures;
	bool			range_failing;	/* the last range read failed */
	char			logged_error[512];
	__u64			logged_ms;

	/* the documents */
	bool			seen;		/* seen_revision is meaningful */
	__s64			seen_revision;
	bool			seen_found;
	bool			have_good;
	struct ts_doc		good;		/* the document in force */
	__s64			good_revision;

	/* the watch stream being read */
	struct body		stream;		/* the message arriving, up to its '\n' */
	__u64			watch_start_ms;
	__u64			message_start_ms;	/* its first byte */
	bool			created;
	bool			compacted;
	char			stream_error[512];
	bool			pending;	/* an event not yet applied */
	struct ts_etcd_kv	pending_kv;
	__s64			stream_revision;	/* the newest header revision */

	/* what the status key says, written when dirty */
	bool			status_dirty;
	bool			status_failing;	/* the last write failed (logged once) */
	__u64			status_retry_ms;	/* not before then */
	char			status_state[16];
	char			status_error[512];

	pthread_mutex_t		stat_lock;
	struct ts_source_metrics stat;
};

static __u64 now_ms(void)
{
	return ts_now_ns() / 1000000;
}

static void stat_update(struct etcd_source *s, void (*fn)(struct ts_source_metrics *, long),
			long arg)
{
	pthread_mutex_lock(&s->stat_lock);
	fn(&s->stat, arg);
	pthread_mutex_unlock(&s->stat_lock);
}

static void set_up(struct ts_source_metrics *st, long up)
{
	st->up = up;
}

static void count_error(struct ts_source_metrics *st, long unused)
{
	(void)unused;
	st->errors++;
	st->up = false;
}

static void count_rejected(struct ts_source_metrics *st, long unused)
{
	(void)unused;
	st->rejected++;
}

static void set_latest(struct ts_source_metrics *st, long revision)
{
	st->latest_revision = revision;
}

static void count_applied(struct ts_source_metrics *st, long revision)
{
	st->applied++;
	st->revision = revision;
	st->applied_time_s = (__u64)time(NULL);
}

/* ---- HTTP ---------------------------------------------------------------------- */

static size_t body_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t add = size * n;

	if (b->len + add > TS_ETCD_BODY_MAX) {
		b->too_large = true;
		return 0;
	}
	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + add + 1)
			cap *= 2;
		if (cap > TS_ETCD_BODY_MAX + 1)
			cap = TS_ETCD_BODY_MAX + 1;
		p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, ptr, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static void body_free(struct body *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Keepalive probes count as a watch's heartbeat: etcd's gateway sends none. */
static int sockopt_cb(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	int cnt = KEEPALIVE_COUNT;

	(void)ud;
	if (purpose == CURLSOCKTYPE_IPCXN)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	return CURL_SOCKOPT_OK;
}

static CURL *request_new(struct etcd_source *s, const char *path, const char *post,
			 struct curl_slist *hdrs, char *errbuf)
{
	CURL *h = curl_easy_init();
	char url[TS_ETCD_HOST_MAX + 64];

	if (!h)
		return NULL;
	snprintf(url, sizeof(url), "http://%s%s", s->url.endpoints[s->endpoint], path);
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, post);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	/* etcd directly: no proxy from the environment, no redirects */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)KEEPALIVE_IDLE_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)KEEPALIVE_INTERVAL_S);
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	return h;
}

/* Run h on multi until it ends or the source stops; idle (or NULL) after
 * every step. The transfer's result. */
static CURLcode request_run(struct etcd_source *s, CURLM *multi, CURL *h,
			    void (*idle)(struct etcd_source *))
{
	CURLcode res = CURLE_ABORTED_BY_CALLBACK;
	CURLMsg *msg;
	int running = 1, left;

	if (curl_multi_add_handle(multi, h))
		return CURLE_OUT_OF_MEMORY;
	while (!atomic_load(&s->stop)) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		if (idle)
			idle(s);
		if (!running)
			break;
		curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	while ((msg = curl_multi_info_read(multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
			res = msg->data.result;
	curl_multi_remove_handle(multi, h);
	return res;
}

/* "etcd at HOST:PORT: what went wrong" for a transfer that failed. */
static int transfer_error(struct etcd_source *s, CURL *h, CURLcode res, const char *errbuf,
			  const struct body *b, const char *what, struct ts_err *err)
{
	long code = 0;

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (b && b->too_large)
		return ts_fail(err, TS_ERR_RUNTIME, "etcd at %s: its answer to %s has more than %u "
			       "bytes: refused unread", s->url.endpoints[s->endpoint], what,
			       TS_ETCD_BODY_MAX);
	if (res != CURLE_OK)
		return ts_fail(err, TS_ERR_RUNTIME, "etcd at %s: %s failed: %s",
			       s->url.endpoints[s->endpoint], what,
			       errbuf[0] ? errbuf : curl_easy_strerror(res));
	return ts_fail(err, TS_ERR_RUNTIME, "etcd at %s: %s: HTTP status %ld%s%.200s",
		       s->url.endpoints[s->endpoint], what, code, b && b->len ? ": " : "",
		       b && b->p ? b->p : "");
}

static struct curl_slist *json_headers(void)
{
	return curl_slist_append(NULL, "Content-Type: application/json");
}

/* POST /v3/kv/range with post; 0 and the answer in b, or the failure (with
 * b->too_large for an answer past TS_ETCD_BODY_MAX, refused as it arrived). */
static int range_request(struct etcd_source *s, const char *post, struct body *b,
			 struct ts_err *err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hdrs = json_headers();
	CURL *h;
	CURLcode res;
	long code = 0;
	int r = 0;

	h = hdrs ? request_new(s, "/v3/kv/range", post, hdrs, errbuf) : NULL;
	if (!h) {
		curl_slist_free_all(hdrs);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)TS_ETCD_BODY_MAX);
	res = request_run(s, s->multi, h, NULL);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_FILESIZE_EXCEEDED)
		b->too_large = true;	/* said so by its Content-Length, before any byte */
	if (res != CURLE_OK || code != 200)
		r = atomic_load(&s->stop) ? -TS_ERR_RUNTIME
					  : transfer_error(s, h, res, errbuf, b, "a range read", err);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return r;
}

/* The key's state kv was handled already (a range read after a reconnect, say;
 * a missing key reads as revision 0, its deletion had one). */
static bool seen_already(const struct etcd_source *s, const struct ts_etcd_kv *kv)
{
	return s->seen && s->seen_found == kv->found &&
	       (s->seen_revision == kv->mod_revision || !kv->found);
}

/*
 * The key now: first its revisions alone (keys_only), then, unless it is gone
 * or handled already, its value at that revision. A value whose answer is too
 * large to read is known that way by the revision that wrote it, and refused
 * once, as any bad document; a value handled already is not read again.
 */
static int etcd_range(struct etcd_source *s, struct ts_etcd_range *out, struct ts_err *err)
{
	char post[sizeof(s->key64) + 64];
	struct ts_etcd_range meta;
	struct body b = {};
	int r;

	snprintf(post, sizeof(post), "{\"key\":\"%s\",\"keys_only\":true}", s->key64);
	r = range_request(s, post, &b, err);
	r = r ?: ts_etcd_range_parse(b.p ? b.p : "", b.len, s->key64, &meta, err);
	body_free(&b);
	if (r)
		return r;
	ts_etcd_kv_free(&meta.kv);	/* keys_only: no value */
	meta.kv.too_large = false;
	if (!meta.kv.found || seen_already(s, &meta.kv)) {
		*out = meta;
		return 0;
	}
	snprintf(post, sizeof(post), "{\"key\":\"%s\",\"revision\":\"%lld\"}", s->key64,
		 (long long)meta.revision);
	r = range_request(s, post, &b, err);
	if (r && b.too_large) {
		*out = meta;
		out->kv.too_large = true;
		r = 0;
	} else if (!r) {
		r = ts_etcd_range_parse(b.p ? b.p : "", b.len, s->key64, out, err);
	}
	body_free(&b);
	return r;
}

/* ---- status reports ---------------------------------------------------------------- */

static void status_set(struct etcd_source *s, const char *state, const char *error)
{
	snprintf(s->status_state, sizeof(s->status_state), "%s", state);
	snprintf(s->status_error, sizeof(s->status_error), "%s", error ? error : "");
	s->status_dirty = s->status_key[0] != '\0';
}

/* PUT the status key: {"node", "revision", "latest_revision", "state",
 * "error", "time"}. A failed write stays due, tried again STATUS_RETRY_MS
 * later (logged once). */
static void status_write(struct etcd_source *s)
{
	struct ts_source_metrics st;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE], *post = NULL, *v64 = NULL, k64[sizeof(s->key64)];
	const char *value;
	json_object *o;
	struct body b = {};
	CURL *h = NULL;
	CURLcode res;
	long code = 0;

	if (!s->status_dirty || atomic_load(&s->stop) || now_ms() < s->status_retry_ms)
		return;
	etcd_source_metrics(s, &st);
	o = json_object_new_object();
	json_object_object_add(o, "node", json_object_new_string(s->node));
	json_object_object_add(o, "revision", json_object_new_int64(st.revision));
	json_object_object_add(o, "latest_revision", json_object_new_int64(st.latest_revision));
	json_object_object_add(o, "state", json_object_new_string(s->status_state));
	if (s->status_error[0])
		json_object_object_add(o, "error", json_object_new_string(s->status_error));
	json_object_object_add(o, "time", json_object_new_int64((int64_t)time(NULL)));
	value = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	v64 = malloc(strlen(value) / 3 * 4 + 8);
	hdrs = json_headers();
	if (v64 && hdrs) {
		ts_base64_encode(value, strlen(value), v64);
		ts_base64_encode(s->status_key, strlen(s->status_key), k64);
		if (asprintf(&post, "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64) < 0)
			post = NULL;
	}
	json_object_put(o);
	h = post ? request_new(s, "/v3/kv/put", post, hdrs, errbuf) : NULL;
	if (h) {
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
		res = request_run(s, s->multi_put, h, NULL);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (res == CURLE_OK && code == 200) {
			s->status_dirty = false;
			if (s->status_failing)
				ts_log("agent", "status key %s written again", s->status_key);
			s->status_failing = false;
		} else if (!atomic_load(&s->stop)) {
			struct ts_err err;

			transfer_error(s, h, res, errbuf, &b, "writing the status key", &err);
			if (!s->status_failing)
				ts_log("agent", "%s: tried again every %d s", err.msg,
					  STATUS_RETRY_MS / 1000);
			s->status_failing = true;
			s->status_retry_ms = now_ms() + STATUS_RETRY_MS;
			stat_update(s, count_error, 0);
		}
		curl_easy_cleanup(h);
	}
	body_free(&b);
	curl_slist_free_all(hdrs);
	free(post);
	free(v64);
}

/* ---- documents ------------------------------------------------------------------- */

/* What stays in force when a document is refused or etcd is away. */
static const char *in_force(const struct etcd_source *s, char *buf, size_t len)
{
	if (!s->have_good)
		return "the configuration from before the agent";
	snprintf(buf, len, "revision %lld", (long long)s->good_revision);
	return buf;
}

static void reject(struct etcd_source *s, __s64 revision, const char *why)
{
	char buf[32];

	stat_update(s, count_rejected, 0);
	ts_log("agent", "configuration at %s revision %lld REJECTED: %s; %s stays in force", s->url.key,
		  (long long)revision, why, in_force(s, buf, sizeof(buf)));
}

/* A change to the key (or the key at a range read): applied once. */
static void consider(struct etcd_source *s, const struct ts_etcd_kv *kv)
{
	static const struct ts_json_limits doc_limits = {
		.depth = TS_ETCD_JSON_DEPTH,
		.containers = TS_ETCD_DOC_CONTAINERS,
		.values = TS_ETCD_DOC_VALUES,
	};
	struct ts_plan plan = {};
	struct ts_doc doc;
	struct ts_err err;
	__s64 rev = kv->mod_revision;
	int r;

	if (seen_already(s, kv))
		return;
	s->seen = true;
	s->seen_revision = rev;
	s->seen_found = kv->found;
	stat_update(s, set_latest, (long)rev);
	if (!kv->found) {
		ts_log("agent", "configuration key %s is not in etcd%s: the configuration in force stays; "
			  "waiting for a document there",
			  s->url.key, rev ? " (deleted)" : "");
		status_set(s, "missing", NULL);
		return;
	}
	if (kv->too_large) {
		snprintf(err.msg, sizeof(err.msg),
			 "the document has more than %u bytes (etcd's own limit of a request): "
			 "refused unread",
			 TS_ETCD_VALUE_MAX);
		reject(s, rev, err.msg);
		status_set(s, "rejected", err.msg);
		return;
	}
	if (ts_doc_parse_limited(kv->value, kv->len, &doc_limits, &doc, &err)) {
		reject(s, rev, err.msg);
		status_set(s, "rejected", err.msg);
		return;
	}
	r = ts_doc_import(s->m, &doc, false, &plan, &err);
	if (r) {
		char why[sizeof(err.msg)];

		snprintf(why, sizeof(why), "%s", err.msg);
		reject(s, rev, why);
		status_set(s, "failed", why);
		ts_doc_free(&doc);
		ts_plan_free(&plan);
		if (!s->have_good)
			return;
		r = ts_doc_import(s->m, &s->good, false, &plan, &err);
		if (r)
			ts_log("agent", "cannot import revision %lld again either: %s",
				  (long long)s->good_revision, err.msg);
		else
			ts_log("agent", "revision %lld imported again (%zu changes)",
				  (long long)s->good_revision, plan.nchanges);
		ts_plan_free(&plan);
		return;
	}
	for (size_t i = 0; i < plan.nchanges && i < LOG_CHANGES_MAX; i++) {
		char line[512];

		ts_change_text(&plan.changes[i], line, sizeof(line));
		ts_log("agent", "revision %lld: %s", (long long)rev, line);
	}
	if (plan.nchanges > LOG_CHANGES_MAX)
		ts_log("agent", "revision %lld: and %zu more changes", (long long)rev,
			  plan.nchanges - LOG_CHANGES_MAX);
	ts_log("agent", "configuration at %s revision %lld applied: %zu change%s", s->url.key,
		  (long long)rev, plan.nchanges, plan.nchanges == 1 ? "" : "s");
	ts_plan_free(&plan);
	if (s->have_good)
		ts_doc_free(&s->good);
	s->good = doc;
	s->good_revision = rev;
	s->have_good = true;
	stat_update(s, count_applied, (long)rev);
	status_set(s, "applied", NULL);
}

/* ---- the watch ---------------------------------------------------------------------- */

/* One message of the stream. false: end the watch (the reason is kept). */
static bool watch_message(struct etcd_source *s, const char *line, size_t len)
{
	struct ts_etcd_watch w;
	struct ts_err err;

	if (ts_etcd_watch_parse(line, len, s->key64, &w, &err)) {
		snprintf(s->stream_error, sizeof(s->stream_error), "%s", err.msg);
		return false;
	}
	if (w.revision > s->stream_revision)
		s->stream_revision = w.revision;
	if (w.canceled) {
		if (w.compact_revision) {
			s->compacted = true;
			snprintf(s->stream_error, sizeof(s->stream_error),
				 "etcd compacted its history up to revision %lld",
				 (long long)w.compact_revision);
		} else {
			snprintf(s->stream_error, sizeof(s->stream_error),
				 "etcd canceled the watch: %s", w.reason[0] ? w.reason : "no reason");
		}
		ts_etcd_kv_free(&w.kv);
		return false;
	}
	if (w.created && !s->created) {
		s->created = true;
		stat_update(s, set_up, 1);
	}
	if (w.event) {
		ts_etcd_kv_free(&s->pending_kv);
		s->pending_kv = w.kv;	/* the latest wins: only it is applied */
		s->pending = true;
	}
	return true;
}

/* The watch stream, split into messages at '\n'; a message is bounded while
 * it arrives, the stream is not (it lasts as long as the watch). */
static size_t watch_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct etcd_source *s = ud;
	struct body *b = &s->stream;
	size_t add = size * n;

	for (size_t at = 0; at < add;) {
		char *nl = memchr(ptr + at, '\n', add - at);
		size_t part = nl ? (size_t)(nl - (ptr + at)) : add - at;

		if (part && !b->len)
			s->message_start_ms = now_ms();
		if (part && body_write(ptr + at, 1, part, b) != part) {
			if (b->too_large)
				snprintf(s->stream_error, sizeof(s->stream_error),
					 "a watch message of more than %u bytes: refused unread",
					 TS_ETCD_BODY_MAX);
			else
				snprintf(s->stream_error, sizeof(s->stream_error),
					 "out of memory reading the watch");
			return 0;
		}
		if (!nl)
			break;
		at += part + 1;
		if (b->len && !watch_message(s, b->p, b->len))
			return 0;
		b->len = 0;
	}
	return add;
}

/* curl's progress callback, once a second at least: a watch not set up, or a
 * message not whole, WATCH_MESSAGE_TIMEOUT_MS after it began is dropped. */
static int watch_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			  curl_off_t ulnow)
{
	struct etcd_source *s = ud;
	__u64 now = now_ms();

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (!s->created && now - s->watch_start_ms > WATCH_MESSAGE_TIMEOUT_MS) {
		snprintf(s->stream_error, sizeof(s->stream_error),
			 "the watch was not set up within %d s: dropped",
			 WATCH_MESSAGE_TIMEOUT_MS / 1000);
		return 1;
	}
	if (s->stream.len && now - s->message_start_ms > WATCH_MESSAGE_TIMEOUT_MS) {
		snprintf(s->stream_error, sizeof(s->stream_error),
			 "a watch message was not whole %d s after it began (%zu bytes so far): "
			 "dropped",
			 WATCH_MESSAGE_TIMEOUT_MS / 1000, s->stream.len);
		return 1;
	}
	return 0;
}

static void watch_idle(struct etcd_source *s)
{
	if (s->pending) {
		s->pending = false;
		consider(s, &s->pending_kv);
		ts_etcd_kv_free(&s->pending_kv);
	}
	status_write(s);
}

/* Watch the key from revision start until the watch ends: 0 when etcd
 * compacted past start (read again at once), else the failure. */
static int etcd_watch(struct etcd_source *s, __s64 start, struct ts_err *err)
{
	char post[sizeof(s->key64) + 96], errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hdrs = json_headers();
	CURL *h;
	CURLcode res;
	long code = 0;
	int r;

	snprintf(post, sizeof(post),
		 "{\"create_request\":{\"key\":\"%s\",\"start_revision\":\"%lld\"}}", s->key64,
		 (long long)start);
	h = hdrs ? request_new(s, "/v3/watch", post, hdrs, errbuf) : NULL;
	if (!h) {
		curl_slist_free_all(hdrs);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	}
	body_free(&s->stream);
	s->created = s->compacted = false;
	s->stream_error[0] = '\0';
	s->stream_revision = 0;
	s->watch_start_ms = now_ms();
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	res = request_run(s, s->multi, h, watch_idle);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	watch_idle(s);	/* what came with the last bytes */
	if (s->compacted)
		r = 0;
	else if (s->stream_error[0])
		r = ts_fail(err, TS_ERR_RUNTIME, "etcd at %s: %s", s->url.endpoints[s->endpoint],
			    s->stream_error);
	else if (res == CURLE_OK && code == 200)
		r = ts_fail(err, TS_ERR_RUNTIME, "etcd at %s closed the watch",
			    s->url.endpoints[s->endpoint]);
	else
		r = transfer_error(s, h, res, errbuf, NULL, "the watch", err);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	body_free(&s->stream);
	ts_etcd_kv_free(&s->pending_kv);
	s->pending = false;
	return r;
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Wait ms, or less when the source stops. */
static void pause_ms(struct etcd_source *s, unsigned int ms)
{
	__u64 until = now_ms() + ms;

	while (!atomic_load(&s->stop) && now_ms() < until)
		curl_multi_poll(s->multi, NULL, 0, (int)(until - now_ms()), NULL);
}

static void failed(struct etcd_source *s, const char *why)
{
	unsigned int shift = s->failures < 6 ? s->failures : 6;
	unsigned int delay = BACKOFF_FIRST_MS << shift, n = (unsigned int)s->url.nendpoints;

	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	delay = delay / 2 + (unsigned int)random() % (delay / 2 + 1);
	s->failures++;
	stat_update(s, count_error, 0);
	if (strcmp(why, s->logged_error) || now_ms() - s->logged_ms >= LOG_REPEAT_MS) {
		char buf[32];

		ts_log("agent", "%s: %s stays in force; retrying in %u ms%s (failure %u in a row)", why,
			  in_force(s, buf, sizeof(buf)), delay,
			  n > 1 ? " at the next endpoint" : "", s->failures);
		snprintf(s->logged_error, sizeof(s->logged_error), "%s", why);
		s->logged_ms = now_ms();
	}
	s->endpoint = (s->endpoint + 1) % n;
	pause_ms(s, delay);
}

static void *source_main(void *arg)
{
	struct etcd_source *s = arg;

	while (!atomic_load(&s->stop)) {
		struct ts_etcd_range range;
		struct ts_err err;
		int r = etcd_range(s, &range, &err);

		if (atomic_load(&s->stop))
			break;
		if (r) {
			s->range_failing = true;
			failed(s, err.msg);
			continue;
		}
		if (s->range_failing) {
			ts_log("agent", "etcd at %s answers again after %u failure%s",
				  s->url.endpoints[s->endpoint], s->failures,
				  s->failures == 1 ? "" : "s");
			s->range_failing = false;
			s->failures = 0;
			s->logged_error[0] = '\0';
		}
		consider(s, &range.kv);
		ts_etcd_kv_free(&range.kv);
		status_write(s);
		/* Every change after the read, none before it. */
		r = etcd_watch(s, range.revision + 1, &err);
		if (atomic_load(&s->stop))
			break;
		if (!r) {
			ts_log("agent", "etcd compacted past the watch of %s: reading it again", s->url.key);
			continue;
		}
		/* A watch that worked until its connection ended is retried soon; one
		 * that etcd (or a host on the way) broke with what it sent is a
		 * failure in a row like any other: the backoff grows, and the same
		 * refusal is logged once (again after LOG_REPEAT_MS). */
		if (s->created && !s->stream_error[0])
			s->failures = 0;
		failed(s, err.msg);
	}
	return NULL;
}

int etcd_source_start(struct etcd_source **out, const struct ts_etcd_url *url,
		      const char *status_key, struct ts_maps *m, struct ts_err *err)
{
	struct etcd_source *s = calloc(1, sizeof(*s));

	if (!s)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	s->url = *url;
	ts_base64_encode(url->key, strlen(url->key), s->key64);
	snprintf(s->status_key, sizeof(s->status_key), "%s", status_key ? status_key : "");
	if (gethostname(s->node, sizeof(s->node) - 1))
		snprintf(s->node, sizeof(s->node), "unknown");
	s->m = m;
	atomic_init(&s->stop, false);
	pthread_mutex_init(&s->stat_lock, NULL);
	srandom((unsigned int)(ts_now_ns() ^ (__u64)getpid()));
	s->multi = curl_multi_init();
	s->multi_put = curl_multi_init();
	if (!s->multi || !s->multi_put ||
	    pthread_create(&s->thread, NULL, source_main, s)) {
		if (s->multi)
			curl_multi_cleanup(s->multi);
		if (s->multi_put)
			curl_multi_cleanup(s->multi_put);
		pthread_mutex_destroy(&s->stat_lock);
		free(s);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot start the etcd watcher");
	}
	ts_log("agent", "configuration from etcd: key %s at %s%s%s", url->key, url->endpoints[0],
		  url->nendpoints > 1 ? " and others" : "",
		  s->status_key[0] ? ", status reported there too" : "");
	*out = s;
	return 0;
}

void etcd_source_metrics(struct etcd_source *s, struct ts_source_metrics *out)
{
	pthread_mutex_lock(&s->stat_lock);
	*out = s->stat;
	pthread_mutex_unlock(&s->stat_lock);
}

void etcd_source_stop(struct etcd_source *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	curl_multi_wakeup(s->multi);
	curl_multi_wakeup(s->multi_put);
	pthread_join(s->thread, NULL);
	curl_multi_cleanup(s->multi);
	curl_multi_cleanup(s->multi_put);
	if (s->have_good)
		ts_doc_free(&s->good);
	pthread_mutex_destroy(&s->stat_lock);
	free(s);
}
