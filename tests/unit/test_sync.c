// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Sync messages (doc/DESIGN.md, "Flow sync"): only a message
 * signed with the shared key, from the sender it names, in its time window
 * and not seen before, is accepted; a rejected one leaves the replay state as
 * it was. The key file's checks.
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

#define NOW	(1800000000ULL * 1000000000ULL)	/* CLOCK_REALTIME of the tests */
#define EPOCH	(NOW - 3600ULL * 1000000000ULL)

static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
static const unsigned char other_key[] = "0123456789abcdef0123456789abcdeF";

static struct ts_endpoint sender(void)
{
	struct ts_endpoint ep = { .family = TS_AF_INET, .port = htons(7946) };

	ep.addr[0] = htonl(0xc6120201);	/* 198.18.2.1 */
	return ep;
}

/* A datagram of n records from sender(), signed with k; its length. */
static size_t message(unsigned char *buf, const unsigned char *k, __u64 epoch, __u64 seq,
		      __u64 sent, size_t n)
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
	ts_sync_hdr_init((struct ts_sync_hdr *)buf, TS_SYNC_MSG_EVENTS, (__u16)n, &ep, epoch, seq,
			 sent);
	assert_int_equal(ts_sync_sign(k, 32, buf, len), 0);
	return len + TS_SYNC_TAG_LEN;
}

static enum ts_sync_verdict check(const unsigned char *buf, size_t len, struct ts_sync_replay *r)
{
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender();

	return ts_sync_check(key, 32, buf, len, &ep, NOW, r, &h, &recs);
}

static void sync_accepts_signed(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender();
	size_t len = message(buf, key, EPOCH, 1, NOW, TS_SYNC_MAX_RECORDS);

	ASSERT_TRUE(len <= TS_SYNC_DATAGRAM, "a full datagram fits: %zu", len);
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, NOW, &r, &h, &recs), TS_SYNC_OK,
		  "a signed message");
	ASSERT_EQ(ntohs(h->count), TS_SYNC_MAX_RECORDS, "its records");
	ASSERT_EQ(ntohs(recs[2].client_port), 1002, "its third record");
	ASSERT_EQ(r.epoch, EPOCH, "the sender's epoch");
	ASSERT_EQ(r.max_seq, 1, "its highest sequence number");
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
			ASSERT_TRUE(v == TS_SYNC_BAD_TAG || v == TS_SYNC_BAD_FORMAT,
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
	/* a forged huge sequence number must not advance the window */
	len = message(buf, other_key, EPOCH + 1, 1000000, NOW, 0);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_BAD_TAG, "forged, far ahead");
	ASSERT_EQ(r.epoch, 0, "the replay state untouched");
	len = message(buf, key, EPOCH, 1, NOW, 3);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "the genuine one still goes");
}

/* Each (epoch, seq) once; up to 64 behind the highest may come late. */
static void sync_refuses_replayed(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM], old[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	size_t len, old_len;

	old_len = message(old, key, EPOCH, 5, NOW, 1);
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_OK, "seq 5");
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_REPLAYED, "seq 5 again");
	len = message(buf, key, EPOCH, 3, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "seq 3, late");
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_REPLAYED, "seq 3 again");
	len = message(buf, key, EPOCH, 69, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "seq 69");
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_STALE, "seq 5, 64 behind: out of the window");
	len = message(buf, key, EPOCH, 6, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "seq 6, 63 behind, never seen");
	len = message(buf, key, EPOCH, 0, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_STALE, "seq 0");
	len = message(buf, key, EPOCH - 1, 1000, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_STALE, "an older epoch");
	len = message(buf, key, EPOCH + 1, 1, NOW, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "a newer epoch: the sender restarted");
	ASSERT_EQ(check(old, old_len, &r), TS_SYNC_STALE, "the old epoch's message after it");
}

/* The time window: clocks within 30 s; an epoch never after its message. */
static void sync_refuses_stale(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const __u64 s = 1000000000ULL;
	size_t len;

	len = message(buf, key, EPOCH, 1, NOW - 31 * s, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_STALE, "31 s old");
	len = message(buf, key, EPOCH, 1, NOW + 31 * s, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_STALE, "31 s ahead");
	len = message(buf, key, NOW, 1, NOW - s, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_STALE, "an epoch after its message");
	ASSERT_EQ(r.epoch, 0, "nothing accepted");
	len = message(buf, key, EPOCH, 1, NOW - 29 * s, 1);
	ASSERT_EQ(check(buf, len, &r), TS_SYNC_OK, "29 s old");
}

/* A message names its sender: another peer's source is refused. */
static void sync_refuses_wrong_sender(void **state)
{
	unsigned char buf[TS_SYNC_DATAGRAM];
	struct ts_sync_replay r = {};
	const struct ts_sync_record *recs;
	const struct ts_sync_hdr *h;
	struct ts_endpoint ep = sender();
	size_t len = message(buf, key, EPOCH, 1, NOW, 1);

	ep.addr[0] = htonl(0xc6120202);
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, NOW, &r, &h, &recs), TS_SYNC_BAD_SENDER,
		  "from another address");
	ep = sender();
	ep.port = htons(7947);
	ASSERT_EQ(ts_sync_check(key, 32, buf, len, &ep, NOW, &r, &h, &recs), TS_SYNC_BAD_SENDER,
		  "from another port");
	ASSERT_EQ(r.epoch, 0, "nothing accepted");
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
	write_key(path, "c2VjcmV0LWtleS1vZi10aGUtZmxlZXQ=\n", 0604);
	ASSERT_EQ(ts_sync_key_read(path, k, &n, &err) ? err.status : 0, TS_ERR_USAGE, "world-readable");
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
		cmocka_unit_test(sync_refuses_forged),
		cmocka_unit_test(sync_refuses_replayed),
		cmocka_unit_test(sync_refuses_stale),
		cmocka_unit_test(sync_refuses_wrong_sender),
		cmocka_unit_test(sync_key_file),
	};

	return cmocka_run_group_tests_name("sync messages", tests, NULL, NULL);
}
