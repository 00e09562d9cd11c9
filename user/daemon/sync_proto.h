/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tcpshift sync: the wire format of flow-pin messages between the gateways of
 * a fleet, their authentication and replay check, and what a peer's pin may
 * write into our maps (doc/DESIGN.md, "Flow sync"). Pure but for
 * ts_sync_apply and ts_sync_record_of, which read and write the maps; the
 * daemon itself is user/daemon/sync.c.
 */
#ifndef TCPSHIFT_SYNC_USER_H
#define TCPSHIFT_SYNC_USER_H

#include "libtcpshift.h"

#define TS_SYNC_MAGIC		0x5453594eU	/* "TSYN" */
#define TS_SYNC_VERSION		1
#define TS_SYNC_TAG_LEN		32		/* HMAC-SHA256 */
#define TS_SYNC_KEY_MIN		16		/* bytes of key */
#define TS_SYNC_KEY_MAX		1024
#define TS_SYNC_DATAGRAM	1400		/* fits a 1500-byte MTU */
#define TS_SYNC_MAX_AGE_NS	(30 * 1000000000ULL)	/* sent_ns window: clock skew */
#define TS_SYNC_MAX_PEERS	32

enum ts_sync_msg_type {
	TS_SYNC_MSG_EVENTS	= 1,	/* records, as they happen */
	TS_SYNC_MSG_HELLO	= 2,	/* no records: "I am up", every second */
	TS_SYNC_MSG_BULK	= 3,	/* records of a bulk resync or a refresh */
};

/* All multi-byte fields big-endian; addresses as in the maps. */
struct ts_sync_hdr {
	__be32	magic;
	__u8	version;
	__u8	type;		/* enum ts_sync_msg_type */
	__be16	count;		/* records that follow */
	__be32	sender[4];	/* the sender's --listen address ... */
	__be16	sender_port;	/* ... and port: who it is */
	__u8	sender_family;	/* enum ts_family */
	__u8	pad[5];
	__be64	epoch;		/* the sender's incarnation: CLOCK_REALTIME ns at its start */
	__be64	seq;		/* per epoch, from 1, one per datagram */
	__be64	sent_ns;	/* CLOCK_REALTIME at sending */
};

struct ts_sync_record {
	__be32	client[4];
	__be32	vip[4];
	__be32	backend[4];	/* matched by address here, never by id */
	__be16	client_port;
	__be16	vip_port;
	__be16	backend_port;
	__u8	family;
	__u8	type;		/* enum ts_sync_event_type */
	__be32	client_end;	/* the client's sequence window when sent */
	__be32	pad;
	__be64	event_ns;	/* CLOCK_REALTIME of the data plane's event */
};

#define TS_SYNC_MAX_RECORDS \
	((TS_SYNC_DATAGRAM - sizeof(struct ts_sync_hdr) - TS_SYNC_TAG_LEN) / \
	 sizeof(struct ts_sync_record))

/* The sender's replay state at a receiver: the highest sequence number of
 * its latest epoch, and which of the 64 below it were seen (RFC 4303's
 * sliding window, for datagrams that overtake each other). */
struct ts_sync_replay {
	__u64	epoch;
	__u64	max_seq;
	__u64	seen;		/* bit i: max_seq - i was accepted */
};

enum ts_sync_verdict {
	TS_SYNC_OK = 0,
	TS_SYNC_BAD_FORMAT,	/* too short, wrong magic or version, count mismatch */
	TS_SYNC_BAD_TAG,	/* authentication failed: forged, or another key */
	TS_SYNC_BAD_SENDER,	/* authenticated, but names another sender than its source */
	TS_SYNC_STALE,		/* sent_ns out of the window, or an older epoch */
	TS_SYNC_REPLAYED,	/* this sequence number was accepted already */
	TS_SYNC_VERDICTS,
};

const char *ts_sync_verdict_name(enum ts_sync_verdict v);

/* Sign buf[0..len) into buf[len..len + TS_SYNC_TAG_LEN). 0 or -EIO. */
int ts_sync_sign(const unsigned char *key, size_t key_len, unsigned char *buf, size_t len);

/*
 * Check a received datagram buf[0..len): format, tag (constant time), that
 * it names sender (its source address), its time against now_real (CLOCK_REALTIME
 * ns), and its (epoch, seq) against *replay, which is updated only when the
 * datagram is accepted. On TS_SYNC_OK, *hdr and *recs point into buf.
 */
enum ts_sync_verdict ts_sync_check(const unsigned char *key, size_t key_len,
				   const unsigned char *buf, size_t len,
				   const struct ts_endpoint *sender, __u64 now_real,
				   struct ts_sync_replay *replay, const struct ts_sync_hdr **hdr,
				   const struct ts_sync_record **recs);

/* Read a key file: at least TS_SYNC_KEY_MIN bytes, one trailing newline
 * dropped; refused when others than its owner may read or write it. */
int ts_sync_key_read(const char *path, unsigned char *key, size_t *key_len, struct ts_err *err);

/* What a peer's record did here. */
enum ts_sync_outcome {
	TS_SYNC_PINNED = 0,	/* a new pin written (or a synced/closed one replaced) */
	TS_SYNC_ENDED,		/* a synced pin marked CLOSED */
	TS_SYNC_SAME,		/* already pinned here to that backend: nothing to do */
	TS_SYNC_KEPT_LOCAL,	/* a live pin of our own on the 4-tuple: kept */
	TS_SYNC_NO_SERVICE,	/* no service at that VIP here */
	TS_SYNC_NO_BACKEND,	/* no live backend at that address in that service here */
	TS_SYNC_NOTHING,	/* an end of a pin we do not hold from a peer */
	TS_SYNC_INVALID,	/* a malformed record (family, type) */
	TS_SYNC_FAILED,		/* a map write failed */
	TS_SYNC_OUTCOMES,
};

const char *ts_sync_outcome_name(enum ts_sync_outcome o);

/* The lookups of the latest service and backend, for a run of records about
 * the same ones (a bulk resync): the caller empties it ({}) whenever the
 * configuration may have changed, at least every loop. */
struct ts_sync_cache {
	bool			svc_ok, be_ok;
	struct ts_endpoint_key	vip, bep;
	struct ts_service	svc;
	struct ts_reply		idx;
	struct ts_backend	be;
};

/* Apply one authenticated record to our maps (flows or half_open: the data
 * plane builds a flow's reverse entry from its first reply). now:
 * CLOCK_MONOTONIC. cache may be NULL. */
enum ts_sync_outcome ts_sync_apply(const struct ts_maps *m, struct ts_sync_cache *cache,
				   const struct ts_sync_record *rec, __u64 now);

/* The record of a data-plane event: its backend's address from backends[]
 * (all TS_MAX_BACKENDS entries). false when that backend is gone or its id
 * was reused (the generation differs). */
bool ts_sync_record_of(const struct ts_backend *backends, __u8 type,
		       const struct ts_flow_key *key, __u32 backend_id, __u32 generation,
		       __u32 client_end, __u64 event_real_ns, struct ts_sync_record *rec);

/* The header of a datagram from us (sender: our --listen endpoint). */
void ts_sync_hdr_init(struct ts_sync_hdr *h, enum ts_sync_msg_type type, __u16 count,
		      const struct ts_endpoint *sender, __u64 epoch, __u64 seq, __u64 sent_ns);

#endif /* TCPSHIFT_SYNC_USER_H */
