/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* etcd's v3 JSON gateway: URLs, keys and answers, without the I/O (etcd.c). */
#ifndef TCPSHIFT_ETCD_H
#define TCPSHIFT_ETCD_H

#include "libtcpshift.h"

/* ---- etcd.c: etcd's v3 JSON gateway without the I/O; pure ---------------- */

#define TS_ETCD_MAX_ENDPOINTS	8
#define TS_ETCD_HOST_MAX	253
#define TS_ETCD_KEY_MAX		512
/*
 * The largest document read from etcd: etcd's own limit of a request
 * (--max-request-bytes, 1.5 MiB by default), far above the largest valid
 * document (256 services, 4096 backends: about 400 KiB). A larger value is
 * refused with its revision, unread.
 */
#define TS_ETCD_VALUE_MAX	(1536U << 10)
/*
 * An answer of etcd (a range answer, one message of the watch stream) larger
 * than this is refused while it arrives, before anything parses it: a value of
 * TS_ETCD_VALUE_MAX in base64 and 64 KiB of envelope. Memory, not bandwidth,
 * is what this bounds: json-c's tree of an answer is bounded by its shape
 * (TS_ETCD_JSON_*), its strings by these bytes.
 */
#define TS_ETCD_BODY_MAX	(TS_ETCD_VALUE_MAX / 3 * 4 + 65536)
/* An answer's shape: a range answer has 4 arrays and objects, a watch message
 * 4 and 2 more an event; past these bounds (over 500 events in a message) it
 * is refused before json-c builds a tree of it. */
#define TS_ETCD_JSON_DEPTH	16
#define TS_ETCD_JSON_CONTAINERS	1024
#define TS_ETCD_JSON_VALUES	8192
/* A document from etcd (at most TS_ETCD_VALUE_MAX bytes): json-c spends about
 * a kilobyte on each array or object, so its shape is bounded to keep the
 * agent's tree of it near 16 MiB; about 3,000 services of 2 backends. */
#define TS_ETCD_DOC_CONTAINERS	16384
#define TS_ETCD_DOC_VALUES	65536

struct ts_etcd_url {
	size_t	nendpoints;	/* tried in turn */
	char	endpoints[TS_ETCD_MAX_ENDPOINTS][TS_ETCD_HOST_MAX + 9];	/* host:port */
	char	key[TS_ETCD_KEY_MAX + 1];	/* starts with '/' */
};

/*
 * etcd://HOST[:PORT][,HOST[:PORT]...]/KEY: the endpoints of one etcd cluster
 * (HOST a name, an IPv4 address or [IPv6]; PORT 2379 when left out) and the
 * key, "/" and the rest of the URL as it is (letters, digits, / - _ . : @ = +
 * , ~). -TS_ERR_USAGE with one line on a malformed URL.
 */
int ts_etcd_url_parse(const char *url, struct ts_etcd_url *u, struct ts_err *err);
/* A key tcpshift reads or writes: "/" and 1-511 of those characters. what
 * names it in the error ("--status-key"). */
int ts_etcd_key_check(const char *key, const char *what, struct ts_err *err);
/* out holds 4 * ((len + 2) / 3) + 1 bytes; returns the length written. */
size_t ts_base64_encode(const void *in, size_t len, char *out);
/* Strict RFC 4648: padding, and 0 in the bits it drops (one encoding per
 * byte string); out holds len / 4 * 3 bytes. 0 or -EINVAL. */
int ts_base64_decode(const char *in, size_t len, char *out, size_t *outlen);

struct ts_etcd_kv {
	bool	found;		/* the key exists (a DELETE event: false) */
	bool	too_large;	/* its value has more than TS_ETCD_VALUE_MAX bytes: not decoded */
	__s64	mod_revision;	/* the revision that wrote it (or deleted it) */
	char	*value;		/* decoded, NUL-terminated (malloc()ed), or NULL */
	size_t	len;		/* of value (too_large: about its size) */
};

struct ts_etcd_range {
	__s64			revision;	/* etcd's revision when it answered */
	struct ts_etcd_kv	kv;
};

struct ts_etcd_watch {
	__s64			revision;		/* header revision, 0 when absent */
	bool			created;		/* the watch is set up */
	bool			canceled;		/* etcd ended it */
	__s64			compact_revision;	/* canceled: compacted past start */
	char			reason[208];		/* canceled: etcd's reason */
	bool			event;			/* kv holds our key's last event */
	struct ts_etcd_kv	kv;
};

/* The answer of POST /v3/kv/range for the key whose base64 encoding is key64.
 * Free out->kv with ts_etcd_kv_free. -TS_ERR_RUNTIME on anything malformed. */
int ts_etcd_range_parse(const char *body, size_t len, const char *key64,
			struct ts_etcd_range *out, struct ts_err *err);
/* One message (one line) of the POST /v3/watch stream; events of other keys
 * are ignored. Free out->kv with ts_etcd_kv_free. */
int ts_etcd_watch_parse(const char *line, size_t len, const char *key64,
			struct ts_etcd_watch *out, struct ts_err *err);
void ts_etcd_kv_free(struct ts_etcd_kv *kv);

#endif /* TCPSHIFT_ETCD_H */
