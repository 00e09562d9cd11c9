// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift sync's protocol: messages, their HMAC-SHA256 tags (OpenSSL's
 * libcrypto), the replay window, and the rules a peer's pin obeys when it is
 * written here (doc/DESIGN.md, "Flow sync").
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sync_proto.h"

_Static_assert(sizeof(struct ts_sync_hdr) == 72, "sync header size");
_Static_assert(sizeof(struct ts_sync_record) == 72, "sync record size");
_Static_assert(sizeof(struct ts_sync_ack) == 16, "sync acknowledgment size");

static const char *const verdict_names[TS_SYNC_VERDICTS] = {
	[TS_SYNC_OK] = "ok",
	[TS_SYNC_BAD_FORMAT] = "malformed",
	[TS_SYNC_BAD_VERSION] = "version",
	[TS_SYNC_BAD_TAG] = "bad_tag",
	[TS_SYNC_BAD_SENDER] = "wrong_sender",
	[TS_SYNC_BAD_RECIPIENT] = "wrong_recipient",
	[TS_SYNC_CLOCK] = "clock_skew",
	[TS_SYNC_AHEAD] = "ahead",
	[TS_SYNC_STALE] = "stale",
	[TS_SYNC_REPLAYED] = "replayed",
};

static const char *const outcome_names[TS_SYNC_OUTCOMES] = {
	[TS_SYNC_PINNED] = "pinned",
	[TS_SYNC_ENDED] = "ended",
	[TS_SYNC_SAME] = "already_pinned",
	[TS_SYNC_KEPT_LOCAL] = "kept_local_pin",
	[TS_SYNC_NO_SERVICE] = "no_service",
	[TS_SYNC_NO_BACKEND] = "no_backend",
	[TS_SYNC_NOTHING] = "nothing_to_end",
	[TS_SYNC_INVALID] = "invalid_record",
	[TS_SYNC_FAILED] = "write_failed",
};

const char *ts_sync_verdict_name(enum ts_sync_verdict v)
{
	return v < TS_SYNC_VERDICTS ? verdict_names[v] : "?";
}

const char *ts_sync_outcome_name(enum ts_sync_outcome o)
{
	return o < TS_SYNC_OUTCOMES ? outcome_names[o] : "?";
}

static int hmac(const unsigned char *key, size_t key_len, const unsigned char *buf, size_t len,
		unsigned char tag[TS_SYNC_TAG_LEN])
{
	unsigned int n = TS_SYNC_TAG_LEN;

	if (!HMAC(EVP_sha256(), key, (int)key_len, buf, len, tag, &n) || n != TS_SYNC_TAG_LEN)
		return -EIO;
	return 0;
}

int ts_sync_sign(const unsigned char *key, size_t key_len, unsigned char *buf, size_t len)
{
	return hmac(key, key_len, buf, len, buf + len);
}

void ts_sync_hdr_init(struct ts_sync_hdr *h, enum ts_sync_msg_type type, __u16 count,
		      const struct ts_endpoint *sender, const struct ts_endpoint *recipient,
		      __u64 epoch, __u64 seq, __u64 sent_ns)
{
	memset(h, 0, sizeof(*h));
	h->magic = htonl(TS_SYNC_MAGIC);
	h->version = TS_SYNC_VERSION;
	h->type = type;
	h->count = htons(count);
	memcpy(h->sender, sender->addr, sizeof(h->sender));
	h->sender_port = sender->port;
	h->sender_family = sender->family;
	memcpy(h->recipient, recipient->addr, sizeof(h->recipient));
	h->recipient_port = recipient->port;
	h->recipient_family = recipient->family;
	h->flags = TS_SYNC_F_ACKS;
	h->epoch = htobe64(epoch);
	h->seq = htobe64(seq);
	h->sent_ns = htobe64(sent_ns);
}

static bool same_endpoint(const __be32 addr[4], __be16 port, __u8 family,
			  const struct ts_endpoint *ep)
{
	return family == ep->family && port == ep->port &&
	       !memcmp(addr, ep->addr, sizeof(ep->addr));
}

static bool seen_bit(const struct ts_sync_incarnation *c, __u64 seq)
{
	return c->seen[seq / 64 % TS_SYNC_WINDOW_WORDS] & (1ULL << (seq % 64));
}

static void set_bit_of(struct ts_sync_incarnation *c, __u64 seq)
{
	c->seen[seq / 64 % TS_SYNC_WINDOW_WORDS] |= 1ULL << (seq % 64);
}

/* A fresh window whose highest is seq. */
static void window_start(struct ts_sync_incarnation *c, __u64 epoch, __u64 seq, __u64 now)
{
	memset(c, 0, sizeof(*c));
	c->epoch = epoch;
	c->max_seq = seq;
	c->heard_ns = now;
	set_bit_of(c, seq);
}

/*
 * seq of incarnation c, once. Ahead of the highest: by at most
 * TS_SYNC_SEQ_JUMP, so that one forged datagram cannot push the window past
 * the real sender's next sequence numbers (a jump of JUMP leaves them
 * WINDOW - JUMP inside it), unless the incarnation has been quiet for
 * TS_SYNC_QUIET_NS (its datagrams were lost: a partition, a full buffer).
 * Behind: within TS_SYNC_WINDOW, each once. An incarnation from which nothing
 * was accepted for TS_SYNC_FORGET_NS starts afresh: every datagram accepted
 * from it was sent before now - FORGET + SKEW, and the caller checked that
 * this one was sent after now - SKEW, so it was never accepted.
 */
static enum ts_sync_verdict window_check(struct ts_sync_incarnation *c, __u64 seq, __u64 now)
{
	__u64 back, from, to;

	if (now - c->heard_ns >= TS_SYNC_FORGET_NS) {
		window_start(c, c->epoch, seq, now);
		return TS_SYNC_OK;
	}
	if (seq > c->max_seq) {
		if (seq - c->max_seq > TS_SYNC_SEQ_JUMP && now - c->heard_ns < TS_SYNC_QUIET_NS)
			return TS_SYNC_AHEAD;
		from = c->max_seq / 64 + 1;
		to = seq / 64;
		if (to - from + 1 >= TS_SYNC_WINDOW_WORDS)
			memset(c->seen, 0, sizeof(c->seen));
		else
			for (__u64 w = from; w <= to; w++)
				c->seen[w % TS_SYNC_WINDOW_WORDS] = 0;
		c->max_seq = seq;
		set_bit_of(c, seq);
		c->heard_ns = now;
		return TS_SYNC_OK;
	}
	back = c->max_seq - seq;
	if (back >= TS_SYNC_WINDOW)
		return TS_SYNC_STALE;
	if (seen_bit(c, seq))
		return TS_SYNC_REPLAYED;
	set_bit_of(c, seq);
	c->heard_ns = now;
	return TS_SYNC_OK;
}

/*
 * (epoch, seq) once. A known incarnation: its window. An unknown one is a
 * restarted sender: a newer epoch than all we know is taken at once; an older
 * one (its clock stepped back before it restarted) once every newer
 * incarnation has been quiet for TS_SYNC_QUIET_NS, so that a forged newer
 * epoch silences no one for longer. It takes a free slot or the one heard
 * from longest ago: a forged epoch evicts a quiet incarnation, not the one
 * that is talking.
 */
static enum ts_sync_verdict replay_check(struct ts_sync_replay *r, __u64 epoch, __u64 seq,
					 __u64 now, bool *new_epoch)
{
	struct ts_sync_incarnation *victim = NULL;

	if (!seq || !epoch)
		return TS_SYNC_STALE;
	for (int i = 0; i < TS_SYNC_EPOCHS; i++)
		if (r->inc[i].epoch == epoch)
			return window_check(&r->inc[i], seq, now);
	for (int i = 0; i < TS_SYNC_EPOCHS; i++) {
		struct ts_sync_incarnation *c = &r->inc[i];

		if (c->epoch > epoch && now - c->heard_ns < TS_SYNC_QUIET_NS)
			return TS_SYNC_STALE;
		/* a free slot first, else the one heard from longest ago */
		if (!victim || (victim->epoch && (!c->epoch || c->heard_ns < victim->heard_ns)))
			victim = c;
	}
	window_start(victim, epoch, seq, now);
	*new_epoch = true;
	return TS_SYNC_OK;
}

enum ts_sync_verdict ts_sync_check(const unsigned char *key, size_t key_len,
				   const unsigned char *buf, size_t len,
				   const struct ts_endpoint *sender, const struct ts_endpoint *self,
				   __u64 now_real, __u64 now_mono, struct ts_sync_replay *replay,
				   const struct ts_sync_hdr **hdr,
				   const struct ts_sync_record **recs, bool *new_epoch)
{
	unsigned char tag[TS_SYNC_TAG_LEN];
	const struct ts_sync_hdr *h = (const void *)buf;
	__u64 sent, epoch;
	size_t count, body;

	*new_epoch = false;
	/* magic and version are where every version has them */
	if (len < 8 || ntohl(h->magic) != TS_SYNC_MAGIC)
		return TS_SYNC_BAD_FORMAT;
	if (h->version != TS_SYNC_VERSION)
		return TS_SYNC_BAD_VERSION;
	if (len < sizeof(*h) + TS_SYNC_TAG_LEN)
		return TS_SYNC_BAD_FORMAT;
	count = ntohs(h->count);
	body = h->type == TS_SYNC_MSG_ACK ? sizeof(struct ts_sync_ack)
					  : count * sizeof(struct ts_sync_record);
	if (len != sizeof(*h) + body + TS_SYNC_TAG_LEN)
		return TS_SYNC_BAD_FORMAT;
	/* nothing of the content is believed before the tag is checked */
	if (hmac(key, key_len, buf, len - TS_SYNC_TAG_LEN, tag) ||
	    CRYPTO_memcmp(tag, buf + len - TS_SYNC_TAG_LEN, TS_SYNC_TAG_LEN))
		return TS_SYNC_BAD_TAG;
	*hdr = h;
	if (!same_endpoint(h->sender, h->sender_port, h->sender_family, sender))
		return TS_SYNC_BAD_SENDER;
	if (!same_endpoint(h->recipient, h->recipient_port, h->recipient_family, self))
		return TS_SYNC_BAD_RECIPIENT;
	if (h->type < TS_SYNC_MSG_EVENTS || h->type > TS_SYNC_MSG_ACK ||
	    ((h->type == TS_SYNC_MSG_HELLO || h->type == TS_SYNC_MSG_ACK) && count))
		return TS_SYNC_BAD_FORMAT;
	sent = be64toh(h->sent_ns);
	epoch = be64toh(h->epoch);
	if (sent + TS_SYNC_MAX_SKEW_NS < now_real || sent > now_real + TS_SYNC_MAX_SKEW_NS)
		return TS_SYNC_CLOCK;
	/* the sender's start is never after our clock (but for the skew); its
	 * own clock may have stepped back since, so sent_ns may be before it */
	if (epoch > now_real + TS_SYNC_MAX_SKEW_NS)
		return TS_SYNC_AHEAD;
	{
		enum ts_sync_verdict v = replay_check(replay, epoch, be64toh(h->seq), now_mono,
						      new_epoch);

		if (v != TS_SYNC_OK)
			return v;
	}
	*recs = (const void *)(buf + sizeof(*h));
	return TS_SYNC_OK;
}

int ts_sync_key_read(const char *path, unsigned char *key, size_t *key_len, struct ts_err *err)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ts_fail(err, errno == ENOENT ? TS_ERR_USAGE : TS_ERR_RUNTIME,
			       "cannot read key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return ts_fail(err, TS_ERR_USAGE, "key file %s is not a regular file", path);
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		close(fd);
		return ts_fail(err, TS_ERR_USAGE,
			       "key file %s is owned by uid %u, neither root nor us (uid %u): "
			       "chown root %s",
			       path, (unsigned int)st.st_uid, (unsigned int)geteuid(), path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return ts_fail(err, TS_ERR_USAGE,
			       "key file %s may be read or written by others (mode %04o): "
			       "chmod 600 %s",
			       path, (unsigned int)(st.st_mode & 07777), path);
	}
	n = read(fd, key, TS_SYNC_KEY_MAX + 1);
	close(fd);
	if (n < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read key file %s: %s", path,
			       strerror(errno));
	if (n > 0 && key[n - 1] == '\n')
		n--;
	if (n > TS_SYNC_KEY_MAX)
		return ts_fail(err, TS_ERR_USAGE, "key file %s holds more than %d bytes", path,
			       TS_SYNC_KEY_MAX);
	if (n < TS_SYNC_KEY_MIN)
		return ts_fail(err, TS_ERR_USAGE,
			       "key file %s holds %zd bytes, want at least %d: make one with "
			       "'head -c 32 /dev/urandom | base64 > %s'",
			       path, n, TS_SYNC_KEY_MIN, path);
	*key_len = (size_t)n;
	return 0;
}

bool ts_sync_record_of(const struct ts_backend *backends, __u8 type,
		       const struct ts_flow_key *key, __u32 backend_id, __u32 generation,
		       __u32 client_end, __u64 event_real_ns, struct ts_sync_record *rec)
{
	const struct ts_backend *be;

	if (backend_id >= TS_MAX_BACKENDS)
		return false;
	be = &backends[backend_id];
	if (be->state == TS_BACKEND_FREE || be->generation != generation ||
	    be->family != key->family)
		return false;
	memset(rec, 0, sizeof(*rec));
	memcpy(rec->client, key->saddr, sizeof(rec->client));
	memcpy(rec->vip, key->daddr, sizeof(rec->vip));
	memcpy(rec->backend, be->addr, sizeof(rec->backend));
	rec->client_port = key->sport;
	rec->vip_port = key->dport;
	rec->backend_port = be->port;
	rec->family = key->family;
	rec->type = type;
	rec->client_end = htonl(client_end);
	rec->event_ns = htobe64(event_real_ns);
	return true;
}

/* An IPv4 address uses word 0 only (tcpshift.h). */
static bool addr_ok(const __be32 a[4], __u8 family)
{
	return family == TS_AF_INET6 || (!a[1] && !a[2] && !a[3]);
}

/*
 * A peer's half-open pin f (its handshake's SYN-ACK took another path) goes
 * to half_open, as at its origin: what a sender with the client's address
 * can make there, it can make here, and no more. The confirmed pin on the
 * 4-tuple (have) is closed or a peer's older one (ts_sync_apply kept ours):
 * it goes, as the origin's SYN removed its own.
 */
static enum ts_sync_outcome apply_half_open(const struct ts_maps *m,
					    const struct ts_flow_key *key, bool have,
					    const struct ts_flow *f)
{
	struct ts_flow cur;
	bool half = !bpf_map_lookup_elem(m->half_open, key, &cur);

	if (half && cur.tcp_state != TS_TCP_CLOSED) {
		if (cur.backend_id == f->backend_id && cur.generation == f->generation)
			return TS_SYNC_SAME;
		if (!(cur.flags & TS_FLOW_F_SYNCED))
			return TS_SYNC_KEPT_LOCAL;
	}
	if (have)
		bpf_map_delete_elem(m->flows, key);
	if (!bpf_map_update_elem(m->half_open, key, f, half ? BPF_EXIST : BPF_NOEXIST))
		return TS_SYNC_PINNED;
	return errno == EEXIST ? TS_SYNC_KEPT_LOCAL : TS_SYNC_FAILED;
}

/* The service at vip, through the cache. */
static int service_of(const struct ts_maps *m, struct ts_sync_cache *c,
		      const struct ts_endpoint_key *vip, struct ts_service *svc)
{
	if (c && c->svc_ok && !memcmp(&c->vip, vip, sizeof(*vip))) {
		*svc = c->svc;
		return 0;
	}
	if (bpf_map_lookup_elem(m->services, vip, svc))
		return -1;
	if (c) {
		c->vip = *vip;
		c->svc = *svc;
		c->svc_ok = true;
	}
	return 0;
}

/* The backend at endpoint bep, when it belongs to the service of rec's VIP:
 * ids differ between gateways whose configurations were built in another
 * order, addresses do not. Through the cache. */
static int backend_of(const struct ts_maps *m, struct ts_sync_cache *c,
		      const struct ts_endpoint_key *bep, const struct ts_sync_record *rec,
		      struct ts_reply *idx, struct ts_backend *be)
{
	if (c && c->be_ok && !memcmp(&c->bep, bep, sizeof(*bep))) {
		*idx = c->idx;
		*be = c->be;
	} else if (bpf_map_lookup_elem(m->backend_addrs, bep, idx) ||
		   bpf_map_lookup_elem(m->backends, &idx->backend_id, be)) {
		return -1;
	} else if (c) {
		c->bep = *bep;
		c->idx = *idx;
		c->be = *be;
		c->be_ok = true;
	}
	return memcmp(idx->vip, rec->vip, sizeof(idx->vip)) || idx->vport != rec->vip_port ? -1
											    : 0;
}

enum ts_sync_outcome ts_sync_apply(const struct ts_maps *m, struct ts_sync_cache *cache,
				   const struct ts_sync_record *rec, __u64 now)
{
	struct ts_endpoint_key vip = { .port = rec->vip_port, .proto = IPPROTO_TCP,
				       .family = rec->family };
	struct ts_endpoint_key bep = { .port = rec->backend_port, .proto = IPPROTO_TCP,
				       .family = rec->family };
	struct ts_flow_key key = { .sport = rec->client_port, .dport = rec->vip_port,
				   .proto = IPPROTO_TCP, .family = rec->family };
	struct ts_flow_entry cur, e = {};
	struct ts_flow *f = &e.flow;
	struct ts_service svc;
	struct ts_backend be;
	struct ts_reply idx;
	bool have;

	if ((rec->family != TS_AF_INET && rec->family != TS_AF_INET6) ||
	    rec->type < TS_SYNC_PIN || rec->type > TS_SYNC_PIN_HALF_OPEN ||
	    !addr_ok(rec->client, rec->family) || !addr_ok(rec->vip, rec->family) ||
	    !addr_ok(rec->backend, rec->family))
		return TS_SYNC_INVALID;
	memcpy(vip.addr, rec->vip, sizeof(vip.addr));
	memcpy(bep.addr, rec->backend, sizeof(bep.addr));
	memcpy(key.saddr, rec->client, sizeof(key.saddr));
	memcpy(key.daddr, rec->vip, sizeof(key.daddr));
	if (service_of(m, cache, &vip, &svc))
		return TS_SYNC_NO_SERVICE;
	if (backend_of(m, cache, &bep, rec, &idx, &be))
		return TS_SYNC_NO_BACKEND;

	if (rec->type == TS_SYNC_END) {
		/* a peer ends only what a peer pinned here; our own pins end by
		 * what our data plane sees */
		if (bpf_map_lookup_elem(m->flows, &key, &cur) ||
		    !(cur.flow.flags & TS_FLOW_F_SYNCED) || cur.flow.backend_id != idx.backend_id ||
		    cur.flow.tcp_state == TS_TCP_CLOSED)
			return TS_SYNC_NOTHING;
		cur.flow.tcp_state = TS_TCP_CLOSED;
		return bpf_map_update_elem(m->flows, &key, &cur, BPF_EXIST) ? TS_SYNC_FAILED
									   : TS_SYNC_ENDED;
	}
	/* a flow is pinned only to a backend of the live table: else the data
	 * plane would close it at its next packet */
	if (be.state != TS_BACKEND_ACTIVE || !(be.table_halves & (1U << (svc.table_half & 1))))
		return TS_SYNC_NO_BACKEND;
	*f = (struct ts_flow){
		.backend_id = idx.backend_id,
		.generation = be.generation,
		.service_id = svc.id,
		.tcp_state = TS_TCP_ESTABLISHED,
		.flags = TS_FLOW_F_SYNCED,
		.created_ns = now,
		.last_seen_ns = now,
		.client_end = ntohl(rec->client_end),
	};
	/* its backend's address, which the data plane compares with the
	 * backend's entry before it lets the copy stand for it (tcpshift.h) */
	memcpy(e.backend_addr, bep.addr, sizeof(e.backend_addr));
	e.backend_port = bep.port;
	/* most pins are new here: one write */
	if (rec->type == TS_SYNC_PIN && !bpf_map_update_elem(m->flows, &key, &e, BPF_NOEXIST))
		return TS_SYNC_PINNED;
	have = !bpf_map_lookup_elem(m->flows, &key, &cur);
	if (have && cur.flow.backend_id == idx.backend_id &&
	    cur.flow.generation == be.generation && cur.flow.tcp_state != TS_TCP_CLOSED)
		return TS_SYNC_SAME;
	/* never move a live pin of ours (invariant 2) */
	if (have && !(cur.flow.flags & TS_FLOW_F_SYNCED) && cur.flow.tcp_state != TS_TCP_CLOSED)
		return TS_SYNC_KEPT_LOCAL;
	if (rec->type == TS_SYNC_PIN_HALF_OPEN)
		return apply_half_open(m, &key, have, f);
	if (!bpf_map_update_elem(m->flows, &key, &e, have ? BPF_EXIST : BPF_NOEXIST))
		return TS_SYNC_PINNED;
	/* our data plane pinned it meanwhile: its pin stands */
	return errno == EEXIST ? TS_SYNC_KEPT_LOCAL : TS_SYNC_FAILED;
}
