// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The packet builder and the checksum checker the other tests rely on,
 * checked against packets computed independently (known answers), so that a
 * wrong checker cannot pass a wrong rewrite.
 */
#include <linux/ipv6.h>

#include "ts_test.h"

/* Computed with a separate implementation (Python struct/socket): a SYN with
 * MSS and an odd-length payload, and an IPv6 PSH|ACK with a flow label. */
static const __u8 kat_v4[] = {
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
	0x08, 0x00, 0x45, 0x10, 0x00, 0x3b, 0x5e, 0xed, 0x40, 0x00, 0x40, 0x06,
	0xea, 0x8f, 0xc6, 0x12, 0x01, 0x0a, 0xc6, 0x12, 0x64, 0x01, 0x9c, 0x41,
	0x1f, 0x48, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02,
	0xfa, 0xf0, 0x2b, 0xf7, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x68, 0x65,
	0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x62, 0x61, 0x63, 0x6b, 0x65, 0x6e, 0x64,
	0x21,
};
static const __u8 kat_v6[] = {
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
	0x86, 0xdd, 0x60, 0x0b, 0xee, 0xf0, 0x00, 0x17, 0x06, 0x40, 0x20, 0x01,
	0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x10, 0x20, 0x01, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x42, 0x1f, 0x48, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x50, 0x18, 0xfa, 0xf0, 0xe4, 0xce,
	0x00, 0x00, 0x6f, 0x64, 0x64,
};

static const struct pkt_spec kat_v4_spec = {
	.src = "198.18.1.10", .dst = VIP4_ADDR, .sport = 40001, .dport = 8008,
	.flags = PKT_SYN, .seq = 1000, .mss = true, .payload = "hello, backend!",
};
static const struct pkt_spec kat_v6_spec = {
	.src = CLIENT6, .dst = VIP6_ADDR, .sport = 40002, .dport = 8008,
	.flags = PKT_PSH | PKT_ACK, .seq = 1, .ack = 2, .payload = "odd",
};

static void as_pkt(struct pkt *p, const __u8 *bytes, __u32 len)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->data, bytes, len);
	p->len = len;
}

static void test_builder_known_answers(void **state)
{
	struct pkt got, want;

	ASSERT_EQ(pkt_build(&got, &kat_v4_spec), 0, "pkt_build IPv4");
	as_pkt(&want, kat_v4, sizeof(kat_v4));
	ASSERT_PKT_EQ(&got, &want, "IPv4 SYN as computed independently");
	ASSERT_EQ(pkt_build(&got, &kat_v6_spec), 0, "pkt_build IPv6");
	as_pkt(&want, kat_v6, sizeof(kat_v6));
	ASSERT_PKT_EQ(&got, &want, "IPv6 PSH|ACK as computed independently");
}

/* A checker that accepts everything would let any rewrite pass. */
static void test_checker_rejects_bad_checksums(void **state)
{
	const struct {
		const char	*desc;
		const __u8	*bytes;
		__u32		len;
		__u32		flip;	/* offset of the byte changed */
		bool		ip_ok;
		bool		l4_ok;
	} cases[] = {
		{ "IPv4 as sent", kat_v4, sizeof(kat_v4), 0, true, true },
		{ "IPv4 last payload byte", kat_v4, sizeof(kat_v4), sizeof(kat_v4) - 1, true,
		  false },
		{ "IPv4 destination address", kat_v4, sizeof(kat_v4), 33, false, false },
		{ "IPv4 TTL", kat_v4, sizeof(kat_v4), 22, false, true },
		{ "IPv4 destination port", kat_v4, sizeof(kat_v4), 37, true, false },
		{ "IPv6 as sent", kat_v6, sizeof(kat_v6), 0, true, true },
		{ "IPv6 destination address", kat_v6, sizeof(kat_v6), 53, true, false },
		{ "IPv6 last payload byte", kat_v6, sizeof(kat_v6), sizeof(kat_v6) - 1, true,
		  false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pkt p;

		test_context("%s", cases[i].desc);
		as_pkt(&p, cases[i].bytes, cases[i].len);
		if (cases[i].flip)
			p.data[cases[i].flip] ^= 0x01;
		ASSERT_EQ(pkt_ip_csum_ok(&p), cases[i].ip_ok, "pkt_ip_csum_ok");
		ASSERT_EQ(pkt_l4_csum_ok(&p), cases[i].l4_ok, "pkt_l4_csum_ok");
	}
	test_context(NULL);
}

/* Extension headers as RFC 8200 and RFC 4302 lay them out: the reader finds
 * TCP where the builder put it, and the TCP checksum covers the segment only. */
static void test_builder_v6_extension_headers(void **state)
{
	const struct {
		enum pkt_v6_ext	ext;
		__u8		first;		/* next header of the IPv6 header */
		__u32		l4_off;
	} cases[] = {
		{ PKT_V6_HOPOPTS, 0, 14 + 40 + 8 },
		{ PKT_V6_AUTH, 51, 14 + 40 + 24 },
		{ PKT_V6_HOPOPTS_AUTH, 0, 14 + 40 + 16 + 24 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pkt_spec s = kat_v6_spec;
		struct pkt_view v;
		struct pkt p;

		test_context("extension header case %zu", i);
		s.v6_ext = cases[i].ext;
		ASSERT_EQ(pkt_build(&p, &s), 0, "pkt_build");
		ASSERT_EQ(pkt_ip6(&p)->nexthdr, cases[i].first, "IPv6 next header");
		ASSERT_TRUE(pkt_view(&p, &v), "pkt_view");
		ASSERT_EQ(v.proto, IPPROTO_TCP, "upper-layer protocol");
		ASSERT_EQ(v.l4_off, cases[i].l4_off, "offset of the TCP header");
		ASSERT_EQ(v.l4_len, 20 + 3, "TCP length");
		ASSERT_EQ(p.len, cases[i].l4_off + 20 + 3, "frame length");
		ASSERT_TRUE(pkt_l4_csum_ok(&p), "TCP checksum");
	}
	test_context(NULL);
}

int run_pkt_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builder_known_answers),
		cmocka_unit_test(test_checker_rejects_bad_checksums),
		cmocka_unit_test(test_builder_v6_extension_headers),
	};

	return cmocka_run_group_tests_name("pkt (the test's own packet builder)", tests, NULL,
					   NULL);
}
