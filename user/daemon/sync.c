// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift sync: share flow pins with the other gateways of a fleet
 * (doc/DESIGN.md, "Flow sync"). It reads the data plane's pin events from
 * the sync_events ring buffer and sends them, authenticated, to every peer;
 * it writes the peers' pins into our flows map under the rules of
 * ts_sync_apply(). A (re)joining peer gets a bulk resync of every pin we
 * hold, and every --refresh our own pins again, which repairs lost
 * datagrams. The data plane never waits for it: killed, it costs a counter.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "prom.h"
#include "sync_proto.h"

static const char help[] =
	"Usage: tcpshift sync --listen ADDR:PORT --peer ADDR:PORT [--peer ADDR:PORT...]\n"
	"                     --key FILE [--refresh DURATION] [--metrics ADDR:PORT]\n"
	"\n"
	"Run in the foreground until SIGTERM or SIGINT, sharing flow pins with the\n"
	"other gateways of a fleet over UDP: every flow this gateway's data plane\n"
	"confirms or ends is sent to each peer, and the peers' pins are written into\n"
	"this gateway's flow table, so that a connection goes on to its own backend\n"
	"through any gateway, whatever weights changed since it was pinned. A peer's\n"
	"pin never moves a live pin of this gateway, and names its backend by address\n"
	"(the backend must exist here, in the service of that VIP).\n"
	"\n"
	"Messages carry an HMAC-SHA256 tag made with the shared key, the peer they are\n"
	"for, a sequence number per peer and a time: forged ones, ones sent to another\n"
	"gateway, replayed ones and ones more than 30 s from this host's clock are\n"
	"dropped and counted. A peer that comes up gets every pin this gateway holds,\n"
	"paced to what it reports it applied; every --refresh, each peer gets this\n"
	"gateway's own pins again. Killing sync changes no flow; the data plane counts\n"
	"the events it could not hand over (sync_lost). Run one sync per instance (the\n"
	"systemd unit tcpshift-sync.service).\n"
	"Exit 0 on SIGTERM or SIGINT, 1 when the instance is unloaded under it, 2 for\n"
	"bad options or a bad key file, 4 when the listen or metrics address is in\n"
	"use (retry later: the systemd unit does).\n"
	"\n"
	"  --listen ADDR:PORT    our UDP address, as the peers list it in their --peer\n"
	"  --peer ADDR:PORT      another gateway's --listen (repeat for each, up to 32)\n"
	"  --key FILE            the shared key, at least 16 bytes; owned by root (or\n"
	"                        the user sync runs as), mode 0600 or stricter\n"
	"  --refresh DURATION    resend our own pins this often (default 30s)\n"
	"  --metrics ADDR:PORT   Prometheus metrics at http://ADDR:PORT/metrics\n"
	"\n"
	"Examples:\n"
	"  head -c 32 /dev/urandom | base64 > /etc/tcpshift/sync.key; chmod 600 /etc/tcpshift/sync.key\n"
	"  tcpshift sync --listen 198.18.2.1:7946 --peer 198.18.2.2:7946 \\\n"
	"      --peer 198.18.2.3:7946 --key /etc/tcpshift/sync.key --metrics 127.0.0.1:9471\n";

#define HELLO_NS	1000000000ULL	/* every peer hears from us this often */
#define PEER_DOWN_NS	TS_SYNC_QUIET_NS	/* nothing heard for this long: down */
#define LOG_EVERY_NS	10000000000ULL	/* one complaint per peer and kind */
#define LAG_SAMPLES	4096		/* the lag quantiles: the latest samples */
#define LAG_SAMPLES_TEXT "4096"
#define RCVBUF_BYTES	(32 << 20)	/* events of a busy data plane arrive at once */
/* A peer that acknowledges (TS_SYNC_F_ACKS) is sent a bulk at most this many
 * datagrams (2,304 records) ahead of the latest it acknowledged: its receive
 * buffer then holds well under a second of its applying, never 30 s of
 * datagrams it would refuse as too old, and never so many that the kernel
 * drops a run of them (a jump it would refuse) */
#define PACE_WINDOW	128
#define ACK_EVERY	32		/* a peer's datagrams we acknowledge at once */
#define PACE_POLL_MS	100		/* waiting for a peer's acknowledgment */

#define logf_(...) ts_log("sync", __VA_ARGS__)

struct peer {
	struct ts_endpoint	ep;
	struct sockaddr_storage	sa;
	socklen_t		salen;
	char			name[TS_ADDRSTRLEN];
	struct ts_sync_replay	replay;
	__u64			heard_ns;	/* CLOCK_MONOTONIC of its last good message */
	__u64			tx_seq;		/* of our latest datagram to it */
	bool			up;
	bool			bulk_due;	/* came up: a bulk resync is owed */
	/* pacing: what it applied of ours, what we applied of its */
	bool			acks;		/* its latest datagram had TS_SYNC_F_ACKS */
	__u64			acked_seq;	/* our highest tx_seq it acknowledged */
	__u64			pace_from;	/* tx_seq when our bulk to it began */
	__u64			rx_epoch, rx_seq;	/* its incarnation, highest seq accepted */
	__u64			ack_sent_seq;	/* rx_seq in our latest ack to it */
	__u64			bulk_ns;	/* CLOCK_MONOTONIC of its latest bulk datagram */
	__u64			logged_ns[TS_SYNC_VERDICTS + 1];	/* + send errors */
	/* metrics */
	__u64			rx_msgs, rx_records, tx_msgs, tx_records, tx_errors;
	__u64			rejected[TS_SYNC_VERDICTS];
	__u64			bulks;
};

struct sync {
	struct ts_maps		m;
	unsigned char		key[TS_SYNC_KEY_MAX + 1];
	size_t			key_len;
	struct ts_endpoint	self;
	char			self_name[TS_ADDRSTRLEN];
	struct peer		peers[TS_SYNC_MAX_PEERS];
	size_t			npeers;
	int			sock;
	struct ring_buffer	*rb;
	__u64			epoch;
	__u64			real_minus_mono;	/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	/* backend id -> its entry, read from the map when a pin names the id
	 * first in a step (a wake-up or a bulk); both TS_MAX_BACKENDS long,
	 * calloc()ed untouched: memory follows the ids in use, not the limit */
	struct ts_backend	*backends;
	__u64			*backend_step;		/* the step each id was read in */
	__u64			step;			/* from 1: no id is read at 0 */
	struct ts_sync_cache	cache;			/* emptied every loop */
	/* events waiting for the next datagram */
	unsigned char		out[TS_SYNC_DATAGRAM];
	size_t			nout;
	bool			failed;			/* the instance went away */
	struct ts_loop		*loop;
	struct ts_timer		*hello_timer, *refresh_timer;
	__u64			hello_ns;		/* our last hellos */
	const char		*key_file;		/* read again on SIGHUP */
	/* metrics, read by the HTTP thread */
	pthread_mutex_t		lock;
	__u64			events, events_sent, events_unsendable;
	__u64			applied[TS_SYNC_OUTCOMES];
	__u64			unknown_peer;
	__u64			lag_ns[LAG_SAMPLES];
	size_t			nlag, lag_pos;
	__u64			lag_count, lag_sum_ns;
};

static __u64 now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* ---- sending ------------------------------------------------------------------- */

static void send_to(struct sync *s, struct peer *p, unsigned char *buf, size_t len)
{
	if (sendto(s->sock, buf, len, 0, (struct sockaddr *)&p->sa, p->salen) < 0) {
		__u64 now = ts_now_ns();

		p->tx_errors++;
		if (now - p->logged_ns[TS_SYNC_VERDICTS] >= LOG_EVERY_NS) {
			p->logged_ns[TS_SYNC_VERDICTS] = now;
			logf_("cannot send to peer %s: %s", p->name, strerror(errno));
		}
		return;
	}
	p->tx_msgs++;
}

/* A datagram of n records (already at buf + header) to peer p, or to every
 * peer when p is NULL. Each copy names its peer and has the next of that
 * peer's sequence numbers: a copy replayed to another peer is refused there. */
static void send_records(struct sync *s, struct peer *p, enum ts_sync_msg_type type,
			 unsigned char *buf, size_t n)
{
	size_t len = sizeof(struct ts_sync_hdr) + n * sizeof(struct ts_sync_record);

	for (size_t i = 0; i < s->npeers; i++) {
		struct peer *q = &s->peers[i];

		if (p && q != p)
			continue;
		ts_sync_hdr_init((struct ts_sync_hdr *)buf, type, (__u16)n, &s->self, &q->ep,
				 s->epoch, ++q->tx_seq, now_real());
		if (ts_sync_sign(s->key, s->key_len, buf, len))
			continue;
		send_to(s, q, buf, len + TS_SYNC_TAG_LEN);
		q->tx_records += n;
	}
}

static void flush_events(struct sync *s)
{
	if (!s->nout)
		return;
	send_records(s, NULL, TS_SYNC_MSG_EVENTS, s->out, s->nout);
	pthread_mutex_lock(&s->lock);
	s->events_sent += s->nout;
	pthread_mutex_unlock(&s->lock);
	s->nout = 0;
}

/* The record of an event or a flow. Its backend is read once a step: a
 * backend removed, or its id given again, since an earlier step is seen. */
static bool record_of(struct sync *s, __u8 type, const struct ts_flow_key *key, __u32 id,
		      __u32 gen, __u32 client_end, __u64 real_ns, struct ts_sync_record *rec)
{
	if (id >= TS_MAX_BACKENDS)
		return false;
	if (s->backend_step[id] != s->step) {
		/* a failed read: as a free id, no record */
		if (bpf_map_lookup_elem(s->m.backends, &id, &s->backends[id]))
			memset(&s->backends[id], 0, sizeof(s->backends[id]));
		s->backend_step[id] = s->step;
	}
	return ts_sync_record_of(s->backends, type, key, id, gen, client_end, real_ns, rec);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct sync *s = ctx;
	const struct ts_sync_event *e = data;
	struct ts_sync_record *rec;

	if (size < sizeof(*e))
		return 0;
	rec = (struct ts_sync_record *)(s->out + sizeof(struct ts_sync_hdr)) + s->nout;
	pthread_mutex_lock(&s->lock);
	s->events++;
	pthread_mutex_unlock(&s->lock);
	if (!record_of(s, e->type, &e->key, e->backend_id, e->generation, e->client_end,
		       e->time_ns + s->real_minus_mono, rec)) {
		pthread_mutex_lock(&s->lock);
		s->events_unsendable++;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (++s->nout == TS_SYNC_MAX_RECORDS)
		flush_events(s);
	return 0;
}

/* A bulk resync (to peer p: every live pin we hold) or a refresh (p NULL:
 * our own live pins, to every peer that is up). */
struct bulk {
	struct sync	*s;
	struct peer	*p;
	size_t		datagrams;
	__u8		type;		/* TS_SYNC_PIN: flows; TS_SYNC_PIN_HALF_OPEN: half_open */
	unsigned char	buf[TS_SYNC_DATAGRAM];
	size_t		n;
	__u64		flows;
	bool		stopped;	/* its peer was taken for down */
};

/* Tell p the highest of its sequence numbers we accepted (and applied). */
static void send_ack(struct sync *s, struct peer *p)
{
	unsigned char buf[sizeof(struct ts_sync_hdr) + sizeof(struct ts_sync_ack) +
			  TS_SYNC_TAG_LEN];
	struct ts_sync_ack *a = (struct ts_sync_ack *)(buf + sizeof(struct ts_sync_hdr));
	size_t len = sizeof(struct ts_sync_hdr) + sizeof(*a);

	ts_sync_hdr_init((struct ts_sync_hdr *)buf, TS_SYNC_MSG_ACK, 0, &s->self, &p->ep,
			 s->epoch, ++p->tx_seq, now_real());
	a->epoch = htobe64(p->rx_epoch);
	a->seq = htobe64(p->rx_seq);
	if (ts_sync_sign(s->key, s->key_len, buf, len))
		return;
	send_to(s, p, buf, len + TS_SYNC_TAG_LEN);
	p->ack_sent_seq = p->rx_seq;
}

/* Hellos to every peer; to a peer whose bulk we are applying (or were, in
 * the last PEER_DOWN_NS), what we applied of it since our latest
 * acknowledgment: a bulk's last datagrams, fewer than ACK_EVERY, and, when
 * some of it was lost, the hellos it sends while it waits for room. */
static void send_hellos(struct sync *s)
{
	unsigned char buf[sizeof(struct ts_sync_hdr) + TS_SYNC_TAG_LEN];
	__u64 now = ts_now_ns();

	send_records(s, NULL, TS_SYNC_MSG_HELLO, buf, 0);
	for (size_t i = 0; i < s->npeers; i++) {
		struct peer *p = &s->peers[i];

		if (p->acks && p->rx_seq != p->ack_sent_seq && now - p->bulk_ns < PEER_DOWN_NS)
			send_ack(s, p);
	}
	s->hello_ns = now;
}

/*
 * Hellos go out every second also while the loop is held up by a bulk we
 * send or a flood of messages we apply (1 M pins take seconds to tens of
 * seconds): a peer that hears nothing from us for 3.5 s takes us for down,
 * and for back when we speak again, and then sends us every pin it holds,
 * and we it: at 1 M pins that became a bulk after bulk, without end.
 */
static void hellos_if_due(struct sync *s)
{
	if (ts_now_ns() - s->hello_ns >= HELLO_NS)
		send_hellos(s);
}

static void receive_all(struct sync *s);

/* Events and peers' messages go on during a long bulk: a refresh of many
 * pins must not delay new ones (the lag). Only bulks wait their turn. */
static void bulk_interleave(struct sync *s)
{
	hellos_if_due(s);
	ring_buffer__consume(s->rb);
	flush_events(s);
	receive_all(s);
}

/*
 * Room for one more bulk datagram to q: a peer that acknowledges gets at most
 * PACE_WINDOW datagrams ahead of what it applied (what we sent it before the
 * bulk began is not waited for); one that does not (a release before
 * acknowledgments) gets the bulk at once, as it always did. Meanwhile the
 * loop goes on (bulk_interleave: hellos, events, the peers' messages, their
 * acknowledgments among them). false: q acknowledged nothing more for
 * PEER_DOWN_NS; it is taken for down, and sent a bulk again when it is back.
 */
static bool pace_wait(struct sync *s, struct peer *q)
{
	__u64 acked = q->acked_seq, since = ts_now_ns();

	for (;;) {
		struct pollfd fds[2] = { { .fd = s->sock, .events = POLLIN },
					 { .fd = ring_buffer__epoll_fd(s->rb), .events = POLLIN } };
		__u64 now = ts_now_ns(), from;

		if (q->acked_seq != acked) {
			acked = q->acked_seq;
			since = now;
		}
		from = acked > q->pace_from ? acked : q->pace_from;
		if (!q->acks || q->tx_seq - from < PACE_WINDOW)
			return true;
		if (now - since >= PEER_DOWN_NS) {
			q->up = false;
			logf_("peer %s is down: it acknowledged none of our last %d datagrams for "
			      "%.1f s", q->name, PACE_WINDOW, (double)(now - since) / 1e9);
			return false;
		}
		poll(fds, 2, PACE_POLL_MS);
		bulk_interleave(s);
	}
}

static void bulk_flush(struct bulk *b)
{
	if (!b->n)
		return;
	for (size_t i = 0; i < b->s->npeers; i++) {
		struct peer *q = &b->s->peers[i];

		if ((b->p && q != b->p) || (!b->p && !q->up))
			continue;
		if (!pace_wait(b->s, q)) {
			b->stopped = b->p != NULL;	/* a refresh goes on to the others */
			continue;
		}
		send_records(b->s, q, TS_SYNC_MSG_BULK, b->buf, b->n);
	}
	b->n = 0;
	if (++b->datagrams % 32 == 0)
		bulk_interleave(b->s);
}

static void bulk_flow(const struct ts_flow_key *key, const struct ts_flow *f, void *ctx)
{
	struct bulk *b = ctx;
	struct ts_sync_record *rec = (struct ts_sync_record *)(b->buf +
							       sizeof(struct ts_sync_hdr)) + b->n;

	/* confirmed pins that did not end; half-open ones the client's ACK
	 * established (the others are no connection yet) */
	if (b->stopped ||
	    (b->type == TS_SYNC_PIN ? f->tcp_state == TS_TCP_CLOSED
				    : f->tcp_state != TS_TCP_ESTABLISHED) ||
	    (!b->p && (f->flags & TS_FLOW_F_SYNCED)))
		return;
	if (!record_of(b->s, b->type, key, f->backend_id, f->generation, f->client_end,
		       f->created_ns + b->s->real_minus_mono, rec))
		return;
	b->flows++;
	if (++b->n == TS_SYNC_MAX_RECORDS)
		bulk_flush(b);
}

static void send_bulk(struct sync *s, struct peer *p)
{
	struct bulk *b = calloc(1, sizeof(*b));
	__u64 t0 = ts_now_ns();
	int r;

	if (!b)
		return;
	b->s = s;
	b->p = p;
	for (size_t i = 0; i < s->npeers; i++)
		s->peers[i].pace_from = s->peers[i].tx_seq;
	s->step++;	/* the backends as they are now */
	b->type = TS_SYNC_PIN;
	r = ts_flow_map_foreach(s->m.flows, bulk_flow, b);
	b->type = TS_SYNC_PIN_HALF_OPEN;
	r = r ?: ts_flow_map_foreach(s->m.half_open, bulk_flow, b);
	bulk_flush(b);
	if (r)
		logf_("cannot read the flow table: %s", strerror(-r));
	if (p) {
		p->bulks++;
		logf_("bulk resync to peer %s: %llu pins in %.3f s%s", p->name,
		      (unsigned long long)b->flows, (double)(ts_now_ns() - t0) / 1e9,
		      b->stopped ? ", stopped: the peer is down" : p->acks ? ", paced" : "");
	}
	free(b);
}

/* ---- receiving ------------------------------------------------------------------ */

static struct peer *peer_of(struct sync *s, const struct ts_endpoint *ep)
{
	for (size_t i = 0; i < s->npeers; i++) {
		struct peer *p = &s->peers[i];

		if (p->ep.family == ep->family && p->ep.port == ep->port &&
		    !memcmp(p->ep.addr, ep->addr, sizeof(ep->addr)))
			return p;
	}
	return NULL;
}

static void lag_sample(struct sync *s, __u64 lag)
{
	s->lag_ns[s->lag_pos] = lag;
	s->lag_pos = (s->lag_pos + 1) % LAG_SAMPLES;
	if (s->nlag < LAG_SAMPLES)
		s->nlag++;
	s->lag_count++;
	s->lag_sum_ns += lag;
}

/* Whether epoch is one of the incarnations of p we remember. */
static bool known_epoch(const struct peer *p, __u64 epoch)
{
	for (int i = 0; i < TS_SYNC_EPOCHS; i++)
		if (p->replay.inc[i].epoch == epoch)
			return true;
	return false;
}

/* What was wrong with a datagram from p, in words: h is its authenticated
 * header, or NULL before the tag checked. */
static void why_rejected(const struct peer *p, enum ts_sync_verdict v, const struct ts_sync_hdr *h,
			 __u64 now, char *why, size_t size)
{
	__u64 epoch = h ? be64toh(h->epoch) : 0, sent = h ? be64toh(h->sent_ns) : 0;
	double ahead = ((double)sent - (double)now) / 1e9;

	switch (v) {
	case TS_SYNC_BAD_FORMAT:
		snprintf(why, size, "is malformed");
		break;
	case TS_SYNC_BAD_VERSION:
		snprintf(why, size, "speaks another sync protocol version than our %d (upgrade "
			 "tcpshift on every gateway)", TS_SYNC_VERSION);
		break;
	case TS_SYNC_BAD_TAG:
		snprintf(why, size, "fails authentication (is its --key the same as ours?)");
		break;
	case TS_SYNC_BAD_SENDER:
		snprintf(why, size, "names another sender than its source address (a --listen "
			 "that differs from our --peer for it?)");
		break;
	case TS_SYNC_BAD_RECIPIENT:
		snprintf(why, size, "is addressed to another gateway (replayed to us, or its "
			 "--peer for us differs from our --listen)");
		break;
	case TS_SYNC_CLOCK:
		snprintf(why, size, "was sent %.1f s %s our clock (more than %llu s: one of the "
			 "two clocks is wrong, or it is an old message replayed)",
			 ahead < 0 ? -ahead : ahead, ahead < 0 ? "before" : "after",
			 TS_SYNC_MAX_SKEW_NS / 1000000000ULL);
		break;
	case TS_SYNC_AHEAD:
		if (epoch > now + TS_SYNC_MAX_SKEW_NS)
			snprintf(why, size, "names a start %.1f s after our clock (forged by a "
				 "holder of the key?)", ((double)epoch - (double)now) / 1e9);
		else
			snprintf(why, size, "skips more than %d sequence numbers without a pause "
				 "(forged by a holder of the key?)", TS_SYNC_SEQ_JUMP);
		break;
	case TS_SYNC_STALE:
		if (!known_epoch(p, epoch))
			snprintf(why, size, "is from an earlier start of it than the latest we "
				 "heard (replayed, or it restarted after its clock stepped back: "
				 "taken once its latest start is quiet for %.1f s)",
				 (double)TS_SYNC_QUIET_NS / 1e9);
		else
			snprintf(why, size, "is more than %d datagrams late (replayed?)",
				 TS_SYNC_WINDOW);
		break;
	case TS_SYNC_REPLAYED:
		snprintf(why, size, "was received before (replayed)");
		break;
	default:
		snprintf(why, size, "is refused");
	}
}

static void reject(struct sync *s, struct peer *p, enum ts_sync_verdict v,
		   const struct ts_sync_hdr *h, __u64 real)
{
	__u64 now = ts_now_ns();
	char why[256];

	pthread_mutex_lock(&s->lock);
	p->rejected[v]++;
	pthread_mutex_unlock(&s->lock);
	if (now - p->logged_ns[v] >= LOG_EVERY_NS || !p->logged_ns[v]) {
		p->logged_ns[v] = now;
		why_rejected(p, v, h, real, why, sizeof(why));
		logf_("message from peer %s %s: dropped", p->name, why);
	}
}

/* Pacing, of an accepted datagram h from p: whether it acknowledges, what
 * it acknowledged of ours, what we will acknowledge of its. */
static void note_received(struct sync *s, struct peer *p, const struct ts_sync_hdr *h,
			  __u64 now)
{
	__u64 epoch = be64toh(h->epoch), seq = be64toh(h->seq);

	p->acks = h->flags & TS_SYNC_F_ACKS;
	if (epoch != p->rx_epoch) {
		p->rx_epoch = epoch;
		p->rx_seq = 0;
		p->ack_sent_seq = 0;
	}
	if (seq > p->rx_seq)
		p->rx_seq = seq;
	if (h->type == TS_SYNC_MSG_BULK)
		p->bulk_ns = now;
	if (h->type == TS_SYNC_MSG_ACK) {
		const struct ts_sync_ack *a = (const void *)(h + 1);
		__u64 acked = be64toh(a->seq);

		/* of this incarnation of ours, and nothing we did not send */
		if (be64toh(a->epoch) == s->epoch && acked <= p->tx_seq && acked > p->acked_seq)
			p->acked_seq = acked;
	}
}

static void receive(struct sync *s, const unsigned char *buf, size_t len,
		    const struct sockaddr_storage *from)
{
	static __u64 logged_unknown;
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h = NULL;
	struct ts_endpoint ep;
	enum ts_sync_verdict v;
	struct peer *p;
	__u64 now, real;
	bool new_epoch;
	size_t n;

	if (!ts_endpoint_of(from, &ep) || !(p = peer_of(s, &ep))) {
		char name[TS_ADDRSTRLEN] = "?";

		pthread_mutex_lock(&s->lock);
		s->unknown_peer++;
		pthread_mutex_unlock(&s->lock);
		now = ts_now_ns();
		if (now - logged_unknown >= LOG_EVERY_NS || !logged_unknown) {
			logged_unknown = now;
			if (ep.family)
				ts_format_endpoint(ep.addr, ep.port, ep.family, name, sizeof(name));
			logf_("message from %s, which is no --peer: dropped (add it with --peer "
			      "on every gateway)", name);
		}
		return;
	}
	real = now_real();
	now = ts_now_ns();
	v = ts_sync_check(s->key, s->key_len, buf, len, &p->ep, &s->self, real, now, &p->replay,
			  &h, &recs, &new_epoch);
	if (v != TS_SYNC_OK) {
		reject(s, p, v, h, real);
		return;
	}
	p->heard_ns = now;
	note_received(s, p, h, now);
	n = ntohs(h->count);
	pthread_mutex_lock(&s->lock);
	p->rx_msgs++;
	p->rx_records += n;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		enum ts_sync_outcome o = ts_sync_apply(&s->m, &s->cache, &recs[i], now);

		pthread_mutex_lock(&s->lock);
		s->applied[o]++;
		if (h->type == TS_SYNC_MSG_EVENTS && recs[i].type != TS_SYNC_END) {
			__u64 ev = be64toh(recs[i].event_ns), t = now_real();

			lag_sample(s, t > ev ? t - ev : 0);
		}
		pthread_mutex_unlock(&s->lock);
	}
	if (p->acks && p->rx_seq - p->ack_sent_seq >= ACK_EVERY)
		send_ack(s, p);
	/* up, or back with a new epoch (restarted: its maps may be empty) */
	if (!p->up || new_epoch) {
		logf_("peer %s is up%s: sending it every pin we hold", p->name,
		      p->up ? " again (restarted)" : "");
		p->up = true;
		p->bulk_due = true;
	}
}

static void receive_all(struct sync *s)
{
	static unsigned char buf[65536];

	for (int i = 0; i < 4096; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->sock, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);

		if (n < 0)
			return;
		receive(s, buf, (size_t)n, &from);
		hellos_if_due(s);
	}
}

static void peers_check(struct sync *s, __u64 now)
{
	for (size_t i = 0; i < s->npeers; i++) {
		struct peer *p = &s->peers[i];

		if (p->up && now - p->heard_ns > PEER_DOWN_NS) {
			p->up = false;
			logf_("peer %s is down: nothing heard for %.1f s", p->name,
			      (double)(now - p->heard_ns) / 1e9);
		}
	}
}

/* ---- metrics -------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* One counter per peer: its # HELP, # TYPE and a sample for each peer. */
static void per_peer(struct prom *p, const struct sync *s, const char *name, const char *help,
		     size_t field)
{
	prom_family(p, name, "counter", help);
	for (size_t i = 0; i < s->npeers; i++) {
		struct prom_label l = { "peer", s->peers[i].name };

		prom_sample(p, name, &l, 1, "%llu",
			    *(const unsigned long long *)((const char *)&s->peers[i] + field));
	}
}

/* sync has no per-service series: the query changes nothing. */
static char *metrics_collect(void *cls, const struct ts_metrics_query *q, unsigned int *code,
			     size_t *len)
{
	struct sync *s = cls;
	__u64 counters[TS_CNT_MAX] = {}, *lags, lag_sum, lag_count;
	struct prom p;
	size_t nl;
	struct ts_err err;

	(void)q;
	(void)code;
	lags = malloc(sizeof(s->lag_ns));
	if (!lags || prom_begin(&p)) {
		free(lags);
		return NULL;
	}
	ts_counters_read(&s->m, counters, &err);
	pthread_mutex_lock(&s->lock);
	nl = s->nlag;
	memcpy(lags, s->lag_ns, nl * sizeof(*lags));
	lag_sum = s->lag_sum_ns;
	lag_count = s->lag_count;
	prom_family(&p, "tcpshift_sync_events_total", "counter",
		    "Pin events read from the data plane.");
	prom_sample(&p, "tcpshift_sync_events_total", NULL, 0, "%llu",
		    (unsigned long long)s->events);
	prom_family(&p, "tcpshift_sync_events_unsendable_total", "counter",
		    "Events whose backend was gone before they were sent.");
	prom_sample(&p, "tcpshift_sync_events_unsendable_total", NULL, 0, "%llu",
		    (unsigned long long)s->events_unsendable);
	prom_family(&p, "tcpshift_sync_events_lost_total", "counter",
		    "Events the data plane dropped: its ring buffer was full (sync down or "
		    "behind).");
	prom_sample(&p, "tcpshift_sync_events_lost_total", NULL, 0, "%llu",
		    (unsigned long long)counters[TS_CNT_SYNC_LOST]);
	prom_family(&p, "tcpshift_sync_records_applied_total", "counter",
		    "Peers' records, by what they did here.");
	for (int o = 0; o < TS_SYNC_OUTCOMES; o++) {
		struct prom_label l = { "outcome", ts_sync_outcome_name(o) };

		prom_sample(&p, "tcpshift_sync_records_applied_total", &l, 1, "%llu",
			    (unsigned long long)s->applied[o]);
	}
	prom_family(&p, "tcpshift_sync_unknown_peer_total", "counter",
		    "Datagrams from an address that is no --peer.");
	prom_sample(&p, "tcpshift_sync_unknown_peer_total", NULL, 0, "%llu",
		    (unsigned long long)s->unknown_peer);
	prom_family(&p, "tcpshift_sync_peer_up", "gauge",
		    "1 when a valid message came from the peer in the last 3.5 s.");
	for (size_t i = 0; i < s->npeers; i++) {
		struct prom_label l = { "peer", s->peers[i].name };

		prom_sample(&p, "tcpshift_sync_peer_up", &l, 1, "%d", s->peers[i].up);
	}
	per_peer(&p, s, "tcpshift_sync_sent_messages_total", "Datagrams sent to the peer.",
		 offsetof(struct peer, tx_msgs));
	per_peer(&p, s, "tcpshift_sync_sent_records_total", "Pins and ends sent to the peer.",
		 offsetof(struct peer, tx_records));
	per_peer(&p, s, "tcpshift_sync_send_errors_total", "Datagrams the kernel refused to send.",
		 offsetof(struct peer, tx_errors));
	per_peer(&p, s, "tcpshift_sync_received_messages_total", "Valid datagrams from the peer.",
		 offsetof(struct peer, rx_msgs));
	per_peer(&p, s, "tcpshift_sync_received_records_total", "Records in them.",
		 offsetof(struct peer, rx_records));
	per_peer(&p, s, "tcpshift_sync_bulk_resyncs_total", "Bulk resyncs sent to the peer.",
		 offsetof(struct peer, bulks));
	prom_family(&p, "tcpshift_sync_rejected_total", "counter",
		    "Datagrams from a peer dropped, by reason.");
	for (size_t i = 0; i < s->npeers; i++)
		for (int v = 1; v < TS_SYNC_VERDICTS; v++) {
			struct prom_label l[2] = { { "peer", s->peers[i].name },
						   { "reason", ts_sync_verdict_name(v) } };

			prom_sample(&p, "tcpshift_sync_rejected_total", l, 2, "%llu",
				    (unsigned long long)s->peers[i].rejected[v]);
		}
	pthread_mutex_unlock(&s->lock);
	prom_family(&p, "tcpshift_sync_lag_seconds", "summary",
		    "From a peer's data plane pinning a flow to its pin written here (the latest "
		    LAG_SAMPLES_TEXT ").");
	qsort(lags, nl, sizeof(*lags), cmp_u64);
	for (int q = 0; q < 3; q++) {
		static const double qs[] = { 0.5, 0.99, 1.0 };
		size_t at = nl ? (size_t)(qs[q] * (double)(nl - 1) + 0.5) : 0;
		char quantile[16];
		struct prom_label l = { "quantile", quantile };

		snprintf(quantile, sizeof(quantile), "%g", qs[q]);
		prom_sample(&p, "tcpshift_sync_lag_seconds", &l, 1, "%.6f",
			    nl ? (double)lags[at] / 1e9 : 0.0);
	}
	prom_sample(&p, "tcpshift_sync_lag_seconds_sum", NULL, 0, "%.6f", (double)lag_sum / 1e9);
	prom_sample(&p, "tcpshift_sync_lag_seconds_count", NULL, 0, "%llu",
		    (unsigned long long)lag_count);
	free(lags);
	return prom_end(&p, len);
}

/* ---- setup ---------------------------------------------------------------------- */

/* Tell the data plane to stream events (on) or stop (off), under the pin
 * directory's lock: `load` rewrites settings under it too. */
static int set_sync_flag(struct sync *s, bool on, struct ts_err *err)
{
	struct ts_settings st;
	__u32 zero = 0;
	int r = ts_maps_lock(&s->m, err);

	if (r)
		return r;
	r = ts_settings_read(&s->m, &st, err);
	if (!r) {
		st.flags = on ? st.flags | TS_SETTINGS_F_SYNC : st.flags & ~TS_SETTINGS_F_SYNC;
		if (bpf_map_update_elem(s->m.settings, &zero, &st, 0))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write settings: %s",
				    strerror(errno));
	}
	ts_maps_unlock(&s->m);
	return r;
}

static bool unspecified(const struct ts_endpoint *ep)
{
	return !ep->addr[0] && !ep->addr[1] && !ep->addr[2] && !ep->addr[3];
}

static int parse_peers(struct sync *s, const char *listen_spec, const char **specs, size_t n)
{
	struct ts_err err;

	if (ts_parse_endpoint(listen_spec, &s->self, &err))
		return cli_usage("sync", "--listen %s: %s", listen_spec, err.msg);
	if (unspecified(&s->self))
		return cli_usage("sync",
				 "--listen %s: give the address the peers send to (their --peer "
				 "for us), not a wildcard",
				 listen_spec);
	ts_format_endpoint(s->self.addr, s->self.port, s->self.family, s->self_name,
			   sizeof(s->self_name));
	for (size_t i = 0; i < n; i++) {
		struct peer *p = &s->peers[i];

		if (ts_parse_endpoint(specs[i], &p->ep, &err))
			return cli_usage("sync", "--peer %s: %s", specs[i], err.msg);
		if (unspecified(&p->ep))
			return cli_usage("sync", "--peer %s: a wildcard address is no peer",
					 specs[i]);
		if (p->ep.family != s->self.family)
			return cli_usage("sync",
					 "--peer %s: not of the family of --listen %s (peers and "
					 "listen address must all be IPv4 or all IPv6)",
					 specs[i], listen_spec);
		if (peer_of(s, &p->ep))
			return cli_usage("sync", "--peer %s given twice", specs[i]);
		if (!memcmp(p->ep.addr, s->self.addr, sizeof(p->ep.addr)) &&
		    p->ep.port == s->self.port)
			return cli_usage("sync", "--peer %s is our own --listen", specs[i]);
		ts_format_endpoint(p->ep.addr, p->ep.port, p->ep.family, p->name,
				   sizeof(p->name));
		p->salen = ts_sockaddr_of(p->ep.family, p->ep.addr, p->ep.port, &p->sa);
		s->npeers++;
	}
	return 0;
}

static int open_socket(struct sync *s, const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t sl = ts_sockaddr_of(s->self.family, s->self.addr, s->self.port, &ss);
	/* TCPSHIFT_SYNC_TEST_RCVBUF: a smaller buffer, for the tests only (a
	 * receiver slower than its buffer holds, tests/e2e/test_sync_bulk.sh) */
	const char *test_rcvbuf = getenv("TCPSHIFT_SYNC_TEST_RCVBUF");
	int rcvbuf = test_rcvbuf ? atoi(test_rcvbuf) : RCVBUF_BYTES, buf = RCVBUF_BYTES;

	s->sock = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->sock < 0) {
		fprintf(stderr, "tcpshift: cannot open the sync socket: %s\n", strerror(errno));
		return 1;
	}
	if (bind(s->sock, (struct sockaddr *)&ss, sl)) {
		int e = errno;

		fprintf(stderr, "tcpshift: cannot listen on %s: %s%s\n", spec, strerror(e),
			e == EADDRINUSE ? ": another process uses it; pick another --listen"
			: e == EADDRNOTAVAIL ? ": no such local address here" : "");
		/* a port in use may be free soon (the unit retries); an address
		 * that is not here is a mistake in the options */
		return e == EADDRINUSE ? TS_ERR_BUSY : e == EADDRNOTAVAIL ? TS_ERR_USAGE
									  : TS_ERR_RUNTIME;
	}
	/* root may exceed net.core.rmem_max: a busy data plane's events (or a
	 * bulk from a peer of a release that does not pace) come in one go */
	if (setsockopt(s->sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(s->sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(s->sock, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
		setsockopt(s->sock, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	return 0;
}

/* ---- the event loop ------------------------------------------------------------------ */

/* What any wake-up does: the data plane's events out, the peers' messages in,
 * the bulk resyncs owed to peers that came up. */
static void step(struct sync *s)
{
	s->real_minus_mono = now_real() - ts_now_ns();
	s->step++;
	s->cache = (struct ts_sync_cache){};
	ring_buffer__consume(s->rb);
	flush_events(s);
	receive_all(s);
	for (size_t i = 0; i < s->npeers; i++) {
		if (s->peers[i].bulk_due) {
			s->peers[i].bulk_due = false;
			send_bulk(s, &s->peers[i]);
		}
	}
}

static void on_readable(struct ts_loop *l, int fd, __u32 events, void *data)
{
	step(data);
}

/* Every second: hellos, peers heard from, and the instance still there. */
static void on_hello(struct ts_loop *l, void *data)
{
	struct sync *s = data;
	struct ts_err err;

	send_hellos(s);
	step(s);
	peers_check(s, ts_now_ns());
	if (ts_maps_check_instance(&s->m, &err)) {
		logf_("%s", err.msg);
		s->failed = true;
		ts_loop_stop(l, TS_ERR_RUNTIME);
	}
}

static void on_refresh(struct ts_loop *l, void *data)
{
	send_bulk(data, NULL);
}

/* SIGHUP: the key file again (a new key, the same on every gateway); a key
 * that cannot be read leaves the one in use. */
static void reload(struct ts_loop *l, void *data)
{
	struct sync *s = data;
	unsigned char key[TS_SYNC_KEY_MAX + 1];
	size_t len;
	struct ts_err err;

	if (ts_sync_key_read(s->key_file, key, &len, &err)) {
		logf_("SIGHUP: %s: the key in use stays", err.msg);
		return;
	}
	memcpy(s->key, key, sizeof(key));
	s->key_len = len;
	logf_("SIGHUP: key read again from %s", s->key_file);
}

static int run(struct sync *s, __u64 refresh_ns, struct ts_err *err)
{
	char status[96];
	int r;

	r = ts_loop_watch(s->loop, ring_buffer__epoll_fd(s->rb), EPOLLIN, on_readable, s, err);
	r = r ?: ts_loop_watch(s->loop, s->sock, EPOLLIN, on_readable, s, err);
	r = r ?: ts_loop_timer(s->loop, on_hello, s, &s->hello_timer, err);
	r = r ?: ts_loop_timer(s->loop, on_refresh, s, &s->refresh_timer, err);
	if (r)
		return r;
	ts_timer_arm(s->hello_timer, 0, HELLO_NS);
	ts_timer_arm(s->refresh_timer, refresh_ns, refresh_ns);
	ts_loop_on_reload(s->loop, reload, s);
	snprintf(status, sizeof(status), "syncing with %zu peers on %s", s->npeers, s->self_name);
	ts_loop_ready(s->loop, status);
	return ts_loop_run(s->loop);
}

int cmd_sync(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *listen_spec = NULL, *key_file = NULL, *metrics = NULL;
	const char *peer_specs[TS_SYNC_MAX_PEERS];
	size_t npeers = 0;
	__u64 refresh_ns = 30 * 1000000000ULL;
	const struct cli_opt opts[] = {
		{ "listen", 0, CLI_STRING, &listen_spec, .metavar = "ADDR:PORT" },
		{ "peer", 0, CLI_STRINGS, peer_specs, .metavar = "ADDR:PORT", .count = &npeers,
		  .max_count = TS_SYNC_MAX_PEERS },
		{ "key", 0, CLI_STRING, &key_file, .metavar = "FILE" },
		{ "refresh", 0, CLI_DURATION, &refresh_ns, .metavar = "DURATION" },
		{ "metrics", 0, CLI_STRING, &metrics, .metavar = "ADDR:PORT" },
		CLI_OPT_HELP,
		{},
	};
	struct ts_metrics_server httpd = { .collect = metrics_collect };
	struct ts_err err;
	struct sync *s;
	bool opened = false;
	int r, lfd = -1;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	if (!listen_spec)
		return cli_usage("sync", "--listen ADDR:PORT is required");
	if (!npeers)
		return cli_usage("sync", "at least one --peer ADDR:PORT is required");
	if (!key_file)
		return cli_usage("sync", "--key FILE is required");
	if (refresh_ns < 1000000000ULL)
		return cli_usage("sync", "--refresh must be at least 1s");
	s = calloc(1, sizeof(*s));
	if (!s || !(s->backends = calloc(TS_MAX_BACKENDS, sizeof(*s->backends))) ||
	    !(s->backend_step = calloc(TS_MAX_BACKENDS, sizeof(*s->backend_step)))) {
		if (s)
			free(s->backends);
		free(s);
		fprintf(stderr, "tcpshift: out of memory\n");
		return 1;
	}
	s->sock = -1;
	s->step = 1;
	s->key_file = key_file;
	pthread_mutex_init(&s->lock, NULL);
	/* the loop first: the metrics thread inherits its signal mask */
	if (ts_loop_new(&s->loop, "sync", &err)) {
		free(s->backends);
		free(s->backend_step);
		free(s);
		return cli_report(&err);
	}
	r = parse_peers(s, listen_spec, peer_specs, npeers);
	if (!r && ts_sync_key_read(key_file, s->key, &s->key_len, &err))
		r = cli_report(&err);
	if (!r && metrics && (lfd = ts_metrics_listen(metrics, &err)) < 0)
		r = cli_report(&err);
	if (!r) {
		r = cli_open_maps(ctx, &s->m);
		opened = !r;
	}
	r = r ?: open_socket(s, listen_spec);
	if (!r && s->m.sync_events < 0) {
		fprintf(stderr, "tcpshift: the instance under %s has no sync_events map: load it "
				"again with this tcpshift ('tcpshift load' upgrades in place)\n",
			s->m.pin_dir);
		r = 1;
	}
	if (!r && !(s->rb = ring_buffer__new(s->m.sync_events, on_event, s, NULL))) {
		fprintf(stderr, "tcpshift: cannot read the sync_events ring buffer: %s\n",
			strerror(errno));
		r = 1;
	}
	if (!r && lfd >= 0) {
		httpd.cls = s;
		if (ts_metrics_serve(&httpd, lfd)) {
			fprintf(stderr, "tcpshift: cannot start the metrics server on %s\n", metrics);
			r = 1;
		}
		lfd = -1;
	}
	if (!r && set_sync_flag(s, true, &err))
		r = cli_report(&err);
	if (!r) {
		s->epoch = now_real();
		logf_("started on %s with %zu peers (pin directory %s, epoch %llu)%s%s",
		      s->self_name, s->npeers, s->m.pin_dir, (unsigned long long)s->epoch,
		      metrics ? "; metrics at http://" : "", metrics ? metrics : "");
		int status = run(s, refresh_ns, &err);

		if (status < 0)	/* the loop could not be set up */
			logf_("%s", err.msg);
		/* the data plane stops streaming: a stopped sync costs it nothing */
		if (!s->failed && set_sync_flag(s, false, &err))
			logf_("%s", err.msg);
		logf_(s->failed ? "stopped: the instance is gone" : "stopped");
		r = s->failed || status ? 1 : 0;
	}
	ts_metrics_stop(&httpd);
	if (lfd >= 0)
		close(lfd);
	ring_buffer__free(s->rb);
	if (s->sock >= 0)
		close(s->sock);
	if (opened)
		ts_maps_close(&s->m);
	ts_timer_free(s->hello_timer);
	ts_timer_free(s->refresh_timer);
	ts_loop_free(s->loop);
	pthread_mutex_destroy(&s->lock);
	free(s->backends);
	free(s->backend_step);
	free(s);
	return r;
}
