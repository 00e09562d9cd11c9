// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Sync messages (doc/DESIGN.md, "Flow sync"): only a message signed with the
 * shared key, of this protocol version, from the sender it names, to the
 * recipient it names, in the time window and not seen before, is accepted; a
 * rejected one leaves the replay state as it was. What a holder of the key
 * posing as a peer can no longer do: shut the real peer out with one
 * datagram of a maximal sequence number or of a future epoch. A sender whose
 * clock stepped back is still heard. The key file's checks.
 *
 * The clocks are injected: NOW (our CLOCK_REALTIME) and mono (our
 * CLOCK_MONOTONIC), which a test moves on.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync_proto.h"
#include "unit.h"

#define S	1000000000ULL
#define NOW	(1800000000ULL * S)	/* CLOCK_REALTIME of the tests */
#define EPOCH	(NOW - 3600ULL * S)

static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
static const unsigned char other_key[] = "0123456789abcdef0123456789abcdeF";
static __u64 mono = 1000 * S;	/* our CLOCK_MONOTONIC */

static struct ts_endpoint endpoint(__u32 addr)
{
	struct ts_endpoint ep = { .family = TS_AF_INET, .port = htons(7946) };

	ep.addr[0] = htonl(addr);
	return ep;
}

/* B sends, we are C; A is a third gateway of the fleet. */
static struct ts_endpoint sender(void)
{
	return endpoint(0xc6120202);	/* 198.18.2.2 */
}

static struct ts_endpoint us(void)
{
	return endpoint(0xc6120203);	/* 198.18.2.3 */
}

static struct ts_endpoint third(void)
{
	return endpoint(0xc6120201);	/* 198.18.2.1 */
}

/* A datagram of n records from sender() to `to`, signed with k; its length. */
static size_t message_to(unsigned char *buf, const unsigned char *k, struct ts_endpoint to,
			 __u64 epoch, __u64 seq, __u64 sent, size_t n)
{
	struct ts_endpoint ep = sender();
	struct ts_sync_record *rec = (void *)(buf + sizeof(struct ts_sync_hdr));
	size_t len = sizeof(struct ts_sync_hdr) + n * sizeof(*rec);

	for (size_t i = 0; i < n; i++) {
		memset(&rec[i], 0, sizeof(rec[i]));
		rec[i].family = TS_AF_INET;
		rec[i].type = TS_SYNC_PIN;
		rec[i].client_port = htons((__u16)(1000 + i));
	}
	ts_sync_hdr_init((struct ts_sync_hdr *)buf, TS_SYNC_MSG_EVENTS, (__u16)n, &ep, &to, epoch,
			 seq, sent);
	assert_int_equal(ts_sync_sign(k, 32, buf, len), 0);
	return len + TS_SYNC_TAG_LEN;
}

static size_t message(unsigned char *buf, const unsigned char *k, __u64 epoch, __u64 seq,
		      __u64 sent, size_t n)
{
	return message_to(buf, k, us(), epoch, seq, sent, n);
}

/* Our verdict on buf (we are `self`); *new_epoch when given. */
static enum ts_sync_verdict check_at(const unsigned char *buf, size_t len,
				     struct ts_sync_replay *r, struct ts_endpoint self,
				     bool *new_epoch)
{
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender();
	bool ne;

	return ts_sync_check(key, 32, buf, len, &ep, &self, NOW, mono, r, &h, &recs,
			     new_epoch ? new_epoch : &ne);
}

static enum ts_sync_verdict check(const unsigned char *buf, size_t len, struct ts_sync_replay *r)
{
	return check_at(buf, len, r, us(), NULL);
}

/* A genuine message of the sender's, checked here. */
static enum ts_sync_verdict send_check(struct ts_sync_replay *r, __u64 epoch, __u64 seq, __u64 sent)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	size_t len = message(buf, key, epoch, seq, sent, 1);

	return check(buf, len, r);
}

static void sync_accepts_signed(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender(), self = us();
	size_t len = message(buf, key, EPOCH, 1, NOW, TS_SYNC_MAX_RECORDS);
	bool ne = false;

	ASSERT_TRUE(len <= TS_SYNC_DATAGRAM, "a full datagram fits: %zu", len);
	ASSERT_EQ(TS_SYNC_MAX_RECORDS, 18, "records in a datagram, as in version 1");
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, &self, NOW, mono, &r, &h, &recs, &ne),
		  TS_SYNC_OK, "a signed message");
	ASSERT_EQ(ntohs(h->count), TS_SYNC_MAX_RECORDS, "its records");
	ASSERT_EQ(ntohs(recs[2].client_port), 1002, "its third record");
	ASSERT_EQ(r.inc[0].epoch, EPOCH, "the sender's epoch");
	ASSERT_EQ(r.inc[0].max_seq, 1, "its highest sequence number");
	ASSERT_TRUE(ne, "the first message of an epoch starts an incarnation");
}

/* An acknowledgment of what we applied from the recipient's incarnation:
 * its fixed body and no records, through the same tag, clock and replay
 * checks as any datagram; every datagram says that its sender acknowledges. */
static size_t ack_message(unsigned char *buf, __u64 seq, __u64 sent, __u16 count, size_t body)
{
	struct ts_endpoint ep = sender(), to = us();
	struct ts_sync_ack *a = (void *)(buf + sizeof(struct ts_sync_hdr));

	memset(buf, 0, TS_SYNC_DATAGRAM);
	ts_sync_hdr_init((struct ts_sync_hdr *)buf, TS_SYNC_MSG_ACK, count, &ep, &to, EPOCH, seq,
			 sent);
	a->epoch = htobe64(EPOCH - 5 * S);
	a->seq = htobe64(4242);
	assert_int_equal(ts_sync_sign(key, 32, buf, sizeof(struct ts_sync_hdr) + body), 0);
	return sizeof(struct ts_sync_hdr) + body + TS_SYNC_TAG_LEN;
}

static void sync_acknowledgment(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	const struct ts_sync_ack *a;
	struct ts_endpoint ep = sender(), self = us();
	size_t len = ack_message(buf, 1, NOW, 0, sizeof(struct ts_sync_ack));
	bool ne;

	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, &self, NOW, mono, &r, &h, &recs, &ne),
		  TS_SYNC_OK, "an acknowledgment");
	ASSERT_EQ(h->type, TS_SYNC_MSG_ACK, "its type");
	ASSERT_TRUE(h->flags & TS_SYNC_F_ACKS, "its sender acknowledges");
	a = (const void *)(h + 1);
	ASSERT_EQ(be64toh(a->epoch), EPOCH - 5 * S, "the incarnation it acknowledges");
	ASSERT_EQ(be64toh(a->seq), 4242, "the highest sequence number applied");
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_REPLAYED, "the same acknowledgment again");
	len = ack_message(buf, 2, NOW - TS_SYNC_MAX_SKEW_NS - S, 0, sizeof(struct ts_sync_ack));
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_CLOCK, "an acknowledgment sent 31 s ago");
	len = ack_message(buf, 3, NOW, 1, sizeof(struct ts_sync_ack));
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_FORMAT, "an acknowledgment counting a record");
	len = ack_message(buf, 4, NOW, 1, sizeof(struct ts_sync_record));
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_FORMAT, "an acknowledgment with a record");
	len = ack_message(buf, 5, NOW, 0, 0);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_FORMAT, "an acknowledgment without its body");
	len = message(buf, key, EPOCH, 6, NOW, 1);
	ASSERT_TRUE(((const struct ts_sync_hdr *)buf)->flags & TS_SYNC_F_ACKS,
		    "records: their sender acknowledges too");
	ASSERT_EQ(r.inc[0].max_seq, 1, "nothing refused moved the window");
}

/* Every bit of a message is covered: one flipped anywhere is refused. */
static void sync_refuses_forged(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {}, before;
	size_t len = message(buf, key, EPOCH, 1, NOW, 3);

	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			enum ts_sync_verdict v;

			buf[i] ^= (unsigned char)(1 << bit);
			before = r;
			v = check(buf, len, &r);
			ASSERT_TRUE(v == TS_SYNC_BAD_TAG || v == TS_SYNC_BAD_FORMAT ||
					    v == TS_SYNC_BAD_VERSION,
				    "byte %zu bit %d flipped: verdict %s", i, bit,
				    ts_sync_verdict_name(v));
			ASSERT_TRUE(!memcmp(&r, &before, sizeof(r)),
				    "byte %zu bit %d flipped: the replay state changed", i, bit);
			buf[i] ^= (unsigned char)(1 << bit);
		}
	}
	len = message(buf, other_key, EPOCH, 1, NOW, 3);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_TAG, "signed with another key");
	len = message(buf, key, EPOCH, 1, NOW, 3);
	ASSERT_EQ(check(buf, len - 1, &r), TS_SYNC_BAD_FORMAT, "truncated");
	ASSERT_EQ(check(buf, 10, &r), TS_SYNC_BAD_FORMAT, "a stub");
	ASSERT_EQ(check(buf, 3, &r), TS_SYNC_BAD_FORMAT, "shorter than magic and version");
	/* a forged huge sequence number must not advance the window */
	len = message(buf, other_key, EPOCH + 1, 1000000, NOW, 0);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_TAG, "forged, far ahead");
	ASSERT_EQ(r.inc[0].epoch, 0, "the replay state untouched");
	len = message(buf, key, EPOCH, 1, NOW, 3);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "the genuine one still goes");
}

/* Each (epoch, seq) once; up to TS_SYNC_WINDOW behind the highest may come
 * late; a restarted sender's older incarnation stays remembered. */
static void sync_refuses_replayed(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM], old[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	size_t len, old_len;
	__u64 seq;

	old_len = message(old, key, EPOCH, 5, NOW, 1);
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_OK, "seq 5");
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_REPLAYED, "seq 5 again");
	len = message(buf, key, EPOCH, 3, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "seq 3, late");
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_REPLAYED, "seq 3 again");
	/* the window moves on in steps the sequence may take */
	for (seq = 5; seq < 5 + TS_SYNC_WINDOW;) {
		seq = seq + TS_SYNC_SEQ_JUMP < 5 + TS_SYNC_WINDOW ? seq + TS_SYNC_SEQ_JUMP
								  : 5 + TS_SYNC_WINDOW;
		ASSERT_TRUE(send_check(&r, EPOCH, seq, NOW) == TS_SYNC_OK, "seq %llu",
			    (unsigned long long)seq);
	}
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_STALE, "seq 5, a window behind: out of it");
	ASSERT_EQ(send_check(&r, EPOCH, 6, NOW), TS_SYNC_OK, "seq 6, just inside, never seen");
	ASSERT_EQ(send_check(&r, EPOCH, 6, NOW), TS_SYNC_REPLAYED, "seq 6 again");
	ASSERT_EQ(send_check(&r, EPOCH, 0, NOW), TS_SYNC_STALE, "seq 0");
	ASSERT_EQ(send_check(&r, EPOCH - 1, 1000, NOW), TS_SYNC_STALE,
		  "an older epoch while the latest talks");
	len = message(old, key, EPOCH, 5 + TS_SYNC_WINDOW + 1, NOW, 1);
	ASSERT_EQ(check(old, len, &r), TS_SYNC_OK, "the latest of the first epoch");
	ASSERT_EQ(send_check(&r, EPOCH + 1, 1, NOW), TS_SYNC_OK,
		  "a newer epoch: the sender restarted");
	ASSERT_EQ(check(old, len, &r), TS_SYNC_REPLAYED,
		  "the first epoch's message after the restart: still known");
}

/* The time window: clocks within 30 s; the verdict names the clock. */
static void sync_refuses_clock_skew(void **state)
{
	struct ts_sync_replay r = {};

	ASSERT_EQ(send_check(&r, EPOCH, 1, NOW - 31 * S), TS_SYNC_CLOCK, "31 s old");
	ASSERT_EQ(send_check(&r, EPOCH, 1, NOW + 31 * S), TS_SYNC_CLOCK, "31 s ahead");
	ASSERT_EQ(r.inc[0].epoch, 0, "nothing accepted");
	ASSERT_EQ(send_check(&r, EPOCH, 1, NOW - 29 * S), TS_SYNC_OK, "29 s old");
}

/* A message names its sender: another peer's source is refused. */
static void sync_refuses_wrong_sender(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender(), self = us();
	size_t len = message(buf, key, EPOCH, 1, NOW, 1);
	bool ne;

	ep.addr[0] = htonl(0xc6120209);
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, &self, NOW, mono, &r, &h, &recs, &ne),
		  TS_SYNC_BAD_SENDER, "from another address");
	ep = sender();
	ep.port = htons(7947);
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, &self, NOW, mono, &r, &h, &recs, &ne),
		  TS_SYNC_BAD_SENDER, "from another port");
	ASSERT_EQ(r.inc[0].epoch, 0, "nothing accepted");
}

/* A message names its recipient: what B sent to A, replayed to C from B's
 * own address, is refused at C, before and after C heard B; each recipient
 * keeps its own replay state of B. */
static void sync_refuses_other_recipient(void **state)
{
	unsigned char to_a[TS_SYNC_DATAGRAM], to_c[TS_SYNC_DATAGRAM];
	struct ts_sync_replay at_c = {}, at_a = {}, before;
	size_t la = message_to(to_a, key, third(), EPOCH, 7, NOW, 1);
	size_t lc = message_to(to_c, key, us(), EPOCH, 7, NOW, 1);
	struct ts_endpoint other_port = us();

	ASSERT_EQ(check_at(to_a, la, &at_c, us(), NULL), TS_SYNC_BAD_RECIPIENT,
		  "B's message to A, replayed to C");
	ASSERT_EQ(at_c.inc[0].epoch, 0, "C's state of B untouched");
	ASSERT_EQ(check_at(to_a, la, &at_a, third(), NULL), TS_SYNC_OK, "at A, its recipient");
	ASSERT_EQ(check_at(to_c, lc, &at_c, us(), NULL), TS_SYNC_OK,
		  "B's own message to C, same epoch and sequence number");
	before = at_c;
	ASSERT_EQ(check_at(to_a, la, &at_c, us(), NULL), TS_SYNC_BAD_RECIPIENT,
		  "B's message to A, replayed to C after C heard B");
	ASSERT_TRUE(!memcmp(&before, &at_c, sizeof(at_c)), "C's state of B untouched");
	other_port.port = htons(7947);
	ASSERT_EQ(check_at(to_c, lc, &at_c, other_port, NULL), TS_SYNC_BAD_RECIPIENT,
		  "to C's address but another port");
}

/* A holder of the key posing as B sends the largest sequence number in B's
 * epoch: refused, and B goes on. A jump a sequence may take is accepted, and
 * B's next datagrams are still inside the window. After a quiet spell (B's
 * datagrams lost) a larger jump is taken. */
static void sync_max_sequence_does_not_silence(void **state)
{
	struct ts_sync_replay r = {}, before;

	for (__u64 seq = 1; seq <= 3; seq++)
		ASSERT_EQ(send_check(&r, EPOCH, seq, NOW), TS_SYNC_OK, "B's genuine datagrams");
	before = r;
	ASSERT_EQ(send_check(&r, EPOCH, UINT64_MAX, NOW), TS_SYNC_AHEAD,
		  "the largest sequence number, forged");
	ASSERT_TRUE(!memcmp(&before, &r, sizeof(r)), "the replay state untouched");
	ASSERT_EQ(send_check(&r, EPOCH, 3 + TS_SYNC_SEQ_JUMP + 1, NOW), TS_SYNC_AHEAD,
		  "one more than the largest jump");
	ASSERT_EQ(send_check(&r, EPOCH, 4, NOW), TS_SYNC_OK, "B's next: heard");
	ASSERT_EQ(send_check(&r, EPOCH, 4 + TS_SYNC_SEQ_JUMP, NOW), TS_SYNC_OK,
		  "the largest jump (a holder of the key may)");
	for (__u64 seq = 5; seq <= 8; seq++)
		ASSERT_EQ(send_check(&r, EPOCH, seq, NOW), TS_SYNC_OK, "B's next ones: heard");
	/* B's datagrams lost for TS_SYNC_QUIET_NS: a longer jump is its own */
	mono += TS_SYNC_QUIET_NS;
	ASSERT_EQ(send_check(&r, EPOCH, 100000, NOW), TS_SYNC_OK,
		  "after a quiet spell, far ahead");
	ASSERT_EQ(send_check(&r, EPOCH, 100001, NOW), TS_SYNC_OK, "and on from there");
	ASSERT_EQ(send_check(&r, EPOCH, 8, NOW), TS_SYNC_STALE, "behind the window");
	/* nothing heard for TS_SYNC_FORGET_NS: what comes, in the time window,
	 * was never accepted, whatever its number */
	mono += TS_SYNC_FORGET_NS;
	ASSERT_EQ(send_check(&r, EPOCH, 9, NOW), TS_SYNC_OK, "a minute later, anew");
	ASSERT_EQ(send_check(&r, EPOCH, 9, NOW), TS_SYNC_REPLAYED, "and once");
}

/* A holder of the key posing as B sends an epoch ahead of B's: B is still
 * heard; an epoch after our clock (plus the skew) is refused; B restarting
 * with an epoch below the forged one is heard once the forged one is quiet. */
static void sync_future_epoch_does_not_silence(void **state)
{
	struct ts_sync_replay r = {}, before;
	bool ne = false;

	ASSERT_EQ(send_check(&r, EPOCH, 1, NOW), TS_SYNC_OK, "B's genuine datagram");
	before = r;
	ASSERT_EQ(send_check(&r, NOW + TS_SYNC_MAX_SKEW_NS + S, 1, NOW), TS_SYNC_AHEAD,
		  "an epoch 31 s after our clock, forged");
	ASSERT_EQ(send_check(&r, UINT64_MAX, 1, NOW), TS_SYNC_AHEAD, "the largest epoch, forged");
	ASSERT_TRUE(!memcmp(&before, &r, sizeof(r)), "the replay state untouched");
	ASSERT_EQ(send_check(&r, NOW + 29 * S, 1, NOW), TS_SYNC_OK,
		  "an epoch 29 s ahead (a holder of the key may)");
	ASSERT_EQ(send_check(&r, EPOCH, 2, NOW), TS_SYNC_OK, "B's next: heard");
	ASSERT_EQ(send_check(&r, EPOCH, 3, NOW), TS_SYNC_OK, "and the one after");
	ASSERT_EQ(send_check(&r, EPOCH, 2, NOW), TS_SYNC_REPLAYED, "B's own window holds");
	/* B restarts (an epoch below the forged one): heard once that is quiet */
	ASSERT_EQ(send_check(&r, NOW - S, 1, NOW), TS_SYNC_STALE,
		  "B restarted, the forged epoch heard just now");
	mono += TS_SYNC_QUIET_NS;
	{
		unsigned char buf[TS_SYNC_DATAGRAM];
		size_t len = message(buf, key, NOW - S, 1, NOW, 1);

		ASSERT_EQ(check_at(buf, len, &r, us(), &ne), TS_SYNC_OK,
			  "B restarted, the forged epoch quiet for 3.5 s");
		ASSERT_TRUE(ne, "a new incarnation");
	}
}

/* B's wall clock steps back 10 s: its datagrams now say they were sent
 * before its epoch. Still heard; and when it restarts with an epoch below
 * its last one, heard once that last one is quiet. */
static void sync_clock_stepped_back(void **state)
{
	struct ts_sync_replay r = {};
	const __u64 start = NOW - 5 * S;	/* B started 5 s ago */
	bool ne = false;

	ASSERT_EQ(send_check(&r, start, 1, NOW), TS_SYNC_OK, "before the step");
	ASSERT_EQ(send_check(&r, start, 2, NOW - 10 * S), TS_SYNC_OK,
		  "B's clock stepped back 10 s: sent before its epoch");
	ASSERT_EQ(send_check(&r, start, 3, NOW - 10 * S + S / 2), TS_SYNC_OK, "and on");
	/* restarted 2 s later, its clock still 10 s back: an earlier epoch */
	mono += 2 * S;
	ASSERT_EQ(send_check(&r, NOW - 8 * S, 1, NOW - 8 * S), TS_SYNC_STALE,
		  "restarted, its last start heard 2 s ago");
	mono += TS_SYNC_QUIET_NS - 2 * S;
	{
		unsigned char buf[TS_SYNC_DATAGRAM];
		size_t len = message(buf, key, NOW - 8 * S, 1, NOW - 8 * S + S, 1);

		ASSERT_EQ(check_at(buf, len, &r, us(), &ne), TS_SYNC_OK,
			  "restarted, its last start quiet for 3.5 s");
		ASSERT_TRUE(ne, "a new incarnation");
	}
}

/* A datagram of protocol version 1 (a 56-byte header) is refused as such;
 * so is a version from the future; nothing changes. */
static void sync_refuses_old_version(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM] = {};
	struct ts_sync_replay r = {};
	size_t len;

	/* version 1: magic, version, type, count, then 48 more header bytes */
	*(__be32 *)buf = htonl(TS_SYNC_MAGIC);
	buf[4] = 1;
	buf[5] = TS_SYNC_MSG_EVENTS;
	*(__be16 *)(buf + 6) = htons(1);
	len = 56 + sizeof(struct ts_sync_record);
	assert_int_equal(ts_sync_sign(key, 32, buf, len), 0);
	ASSERT_EQ(check(buf, len + TS_SYNC_TAG_LEN, &r), TS_SYNC_BAD_VERSION, "version 1");
	ASSERT_EQ(check(buf, 8, &r), TS_SYNC_BAD_VERSION, "version 1, its first 8 bytes");
	len = message(buf, key, EPOCH, 1, NOW, 1);
	buf[4] = TS_SYNC_VERSION + 1;
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_VERSION, "a later version");
	ASSERT_EQ(r.inc[0].epoch, 0, "nothing accepted");
	assert_string_equal(ts_sync_verdict_name(TS_SYNC_BAD_VERSION), "version");
}

static void write_key(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void sync_key_file(void **state)
{
	char dir[] = "/tmp/ts-unit-key.XXXXXX", path[64];
	unsigned char k[TS_SYNC_KEY_MAX + 1];
	struct ts_err err;
	size_t n = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0600);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err), 0, "a 0600 key file");
	ASSERT_EQ(n, 32, "its length, the newline dropped");
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0640);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE, "group-readable");
	ASSERT_TRUE(strstr(err.msg, "chmod 600"), "the fix is named: %s", err.msg);
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0620);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE,
		  "group-writable");
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0604);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE, "world-readable");
	/* another user's file, however strict its mode (root may give it away) */
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0600);
	if (geteuid() == 0 && !chown(path, 65534, 65534)) {
		ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE,
			  "owned by another user");
		ASSERT_TRUE(strstr(err.msg, "chown root") && strstr(err.msg, "65534"),
			    "the owner and the fix are named: %s", err.msg);
		assert_int_equal(chown(path, 0, 0), 0);
		ASSERT_EQ(ts_sync_key_read(path, k, &n, &err), 0, "root's again");
	} else {
		print_message("(not root: the owner check is not tested)\n");
	}
	write_key(path, "short\n", 0600);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE, "5 bytes");
	unlink(path);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE, "no file");
	rmdir(dir);
}

int run_sync_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sync_accepts_signed),
		cmocka_unit_test(sync_acknowledgment),
		cmocka_unit_test(sync_refuses_forged),
		cmocka_unit_test(sync_refuses_replayed),
		cmocka_unit_test(sync_refuses_clock_skew),
		cmocka_unit_test(sync_refuses_wrong_sender),
		cmocka_unit_test(sync_refuses_other_recipient),
		cmocka_unit_test(sync_max_sequence_does_not_silence),
		cmocka_unit_test(sync_future_epoch_does_not_silence),
		cmocka_unit_test(sync_clock_stepped_back),
		cmocka_unit_test(sync_refuses_old_version),
		cmocka_unit_test(sync_key_file),
	};

	return cmocka_run_group_tests_name("sync messages", tests, NULL, NULL);
}
