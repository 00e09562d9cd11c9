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
#define TS_SYNC_VERSION		2		/* 2: a recipient, per-pair sequences */
#define TS_SYNC_TAG_LEN		32		/* HMAC-SHA256 */
#define TS_SYNC_KEY_MIN		16		/* bytes of key */
#define TS_SYNC_KEY_MAX		1024
#define TS_SYNC_DATAGRAM	1400		/* fits a 1500-byte MTU */
#define TS_SYNC_MAX_SKEW_NS	(30 * 1000000000ULL)	/* sent_ns and epoch vs our clock */
#define TS_SYNC_QUIET_NS	3500000000ULL	/* an incarnation silent this long is down */
/* nothing accepted from an incarnation for this long: whatever it sent
 * within the skew of our clock now was never accepted (two skews) */
#define TS_SYNC_FORGET_NS	(2 * TS_SYNC_MAX_SKEW_NS)
#define TS_SYNC_MAX_PEERS	32
#define TS_SYNC_WINDOW_WORDS	32		/* the replay bitmap: 2,048 bits */
/* a datagram may come late by up to 1,984 */
#define TS_SYNC_WINDOW		((TS_SYNC_WINDOW_WORDS - 1) * 64)
#define TS_SYNC_SEQ_JUMP	512		/* a sequence may skip at most this many */
#define TS_SYNC_EPOCHS		4		/* incarnations of a peer we remember */

enum ts_sync_msg_type {
	TS_SYNC_MSG_EVENTS	= 1,	/* records, as they happen */
	TS_SYNC_MSG_HELLO	= 2,	/* no records: "I am up", every second */
	TS_SYNC_MSG_BULK	= 3,	/* records of a bulk resync or a refresh */
	TS_SYNC_MSG_ACK		= 4,	/* no records, a struct ts_sync_ack: what we applied */
};

/* ts_sync_hdr.flags */
#define TS_SYNC_F_ACKS		0x01	/* the sender acknowledges what it applies (with
					 * TS_SYNC_MSG_ACK) and reads acknowledgments: pace
					 * bulks to it, and acknowledge its datagrams */

/* All multi-byte fields big-endian; addresses as in the maps. magic and
 * version stay where version 1 had them, so an old sender is recognised. */
struct ts_sync_hdr {
	__be32	magic;
	__u8	version;
	__u8	type;		/* enum ts_sync_msg_type */
	__be16	count;		/* records that follow */
	__be32	sender[4];	/* the sender's --listen address ... */
	__be16	sender_port;	/* ... and port: who it is */
	__u8	sender_family;	/* enum ts_family */
	__u8	recipient_family;
	__be32	recipient[4];	/* the --peer it is sent to: nobody else takes it */
	__be16	recipient_port;
	__u8	flags;		/* TS_SYNC_F_*; zero from a release before acknowledgments */
	__u8	pad;
	__be64	epoch;		/* the sender's incarnation: CLOCK_REALTIME ns at its start */
	__be64	seq;		/* per epoch and recipient, from 1, one per datagram */
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

/* The body of a TS_SYNC_MSG_ACK: the highest sequence number accepted (and
 * so applied) from the recipient's incarnation epoch. Sent only to a peer
 * whose datagrams carry TS_SYNC_F_ACKS: a release before them would refuse it
 * as malformed. */
struct ts_sync_ack {
	__be64	epoch;
	__be64	seq;
};

#define TS_SYNC_MAX_RECORDS \
	((TS_SYNC_DATAGRAM - sizeof(struct ts_sync_hdr) - TS_SYNC_TAG_LEN) / \
	 sizeof(struct ts_sync_record))

/* One incarnation (epoch) of a sender, at one recipient: the highest
 * sequence number accepted and which of those below it were (RFC 6479's
 * bitmap: bit seq % 2048, whole words cleared as the highest moves on). */
struct ts_sync_incarnation {
	__u64	epoch;		/* 0: a free slot */
	__u64	max_seq;
	__u64	heard_ns;	/* our CLOCK_MONOTONIC at its latest accepted datagram */
	__u64	seen[TS_SYNC_WINDOW_WORDS];
};

/* A sender's replay state at one recipient: its latest incarnations, so that
 * a forged newer epoch does not shut out the real one. */
struct ts_sync_replay {
	struct ts_sync_incarnation	inc[TS_SYNC_EPOCHS];
};

enum ts_sync_verdict {
	TS_SYNC_OK = 0,
	TS_SYNC_BAD_FORMAT,	/* too short, wrong magic, count mismatch, unknown type */
	TS_SYNC_BAD_VERSION,	/* another protocol version (an older tcpshift) */
	TS_SYNC_BAD_TAG,	/* authentication failed: forged, or another key */
	TS_SYNC_BAD_SENDER,	/* authenticated, but names another sender than its source */
	TS_SYNC_BAD_RECIPIENT,	/* authenticated, but sent to another gateway */
	TS_SYNC_CLOCK,		/* sent_ns more than 30 s from our clock */
	TS_SYNC_AHEAD,		/* an epoch after our clock, or a sequence too far ahead */
	TS_SYNC_STALE,		/* an older incarnation, or behind the replay window */
	TS_SYNC_REPLAYED,	/* this sequence number was accepted already */
	TS_SYNC_VERDICTS,
};

const char *ts_sync_verdict_name(enum ts_sync_verdict v);

/* Sign buf[0..len) into buf[len..len + TS_SYNC_TAG_LEN). 0 or -EIO. */
int ts_sync_sign(const unsigned char *key, size_t key_len, unsigned char *buf, size_t len);

/*
 * Check a received datagram buf[0..len): format and version, tag (constant
 * time), that it names sender (its source address) and self (our --listen),
 * its sending time and epoch against now_real (our CLOCK_REALTIME ns), and its
 * (epoch, seq) against *replay at now_mono (our CLOCK_MONOTONIC ns); *replay
 * changes only when the datagram is accepted. Once the tag checked, *hdr
 * points into buf, whatever the verdict; on TS_SYNC_OK, *recs too (the
 * struct ts_sync_ack of a TS_SYNC_MSG_ACK is there instead). *new_epoch:
 * the datagram started an incarnation we did not know (a restarted sender).
 */
enum ts_sync_verdict ts_sync_check(const unsigned char *key, size_t key_len,
				   const unsigned char *buf, size_t len,
				   const struct ts_endpoint *sender, const struct ts_endpoint *self,
				   __u64 now_real, __u64 now_mono, struct ts_sync_replay *replay,
				   const struct ts_sync_hdr **hdr,
				   const struct ts_sync_record **recs, bool *new_epoch);

/* Read a key file: at least TS_SYNC_KEY_MIN bytes, one trailing newline
 * dropped; refused unless it is owned by root or by us and nobody but its
 * owner may read or write it. */
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

/* The header of a datagram from us (sender: our --listen endpoint) to
 * recipient (that peer's). */
void ts_sync_hdr_init(struct ts_sync_hdr *h, enum ts_sync_msg_type type, __u16 count,
		      const struct ts_endpoint *sender, const struct ts_endpoint *recipient,
		      __u64 epoch, __u64 seq, __u64 sent_ns);

#endif /* TCPSHIFT_SYNC_USER_H */
