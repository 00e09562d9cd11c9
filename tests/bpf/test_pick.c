// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift pick: the picker runs the data plane's own code, so its
 * answer is the backend a real SYN from that client is sent to, and it
 * writes no map (no pin, no counter).
 */
#include <stdio.h>
#include <string.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };

static void test_pick_matches_the_forward_path(void **state)
{
	struct ts_env *e = env_of(state);
	const struct ts_backend_cfg *b;
	struct ts_picker *picker;
	struct ts_endpoint client;
	struct ts_err err;
	char ep[64];
	int both[2] = { 0, 0 };

	config_web4(e, 3, 1);
	ASSERT_EQ(ts_picker_open(&picker, &e->maps, "web4", &err), 0, err.msg);
	for (__u16 port = 20000; port < 21000; port++) {
		struct pkt_spec syn = { .src = CLIENT4, .dst = VIP4_ADDR, .sport = port,
					.dport = 8008, .flags = PKT_SYN };
		int got;

		snprintf(ep, sizeof(ep), "%s:%u", CLIENT4, port);
		ASSERT_EQ(ts_parse_endpoint(ep, &client, &err), 0, err.msg);
		ASSERT_EQ(ts_picker_pick(picker, &client, &b, &err), 0, err.msg);
		ASSERT_TRUE(b != NULL, "a backend is picked");
		/* (the LRU may evict early: look for this flow, not at a count) */
		ASSERT_EQ(env_flow_table(e, &syn), 0, "pick pinned nothing");
		ASSERT_EQ(env_counter(e, TS_CNT_NEW_FLOWS), (__u64)(port - 20000),
			  "pick counted nothing");
		test_context("client %s picked %s", ep, b->be.name);
		got = expect_forward(e, &syn, web4_to, 2, "the real SYN");
		ASSERT_EQ(got, strcmp(b->be.name, "v1") ? 1 : 0, "the SYN went where pick said");
		both[got]++;
	}
	test_context(NULL);
	ASSERT_GT(both[0], 0, "v1 picked");
	ASSERT_GT(both[1], 0, "v2 picked");
	ts_picker_close(picker);
}

/* All weights 0: no backend; pick says so and counts nothing. */
static void test_pick_without_backend(void **state)
{
	struct ts_env *e = env_of(state);
	const struct ts_backend_cfg *b = (void *)1;
	struct ts_picker *picker;
	struct ts_endpoint client;
	struct ts_err err;

	config_web4(e, 0, 0);
	ASSERT_EQ(ts_picker_open(&picker, &e->maps, "web4", &err), 0, err.msg);
	ASSERT_EQ(ts_parse_endpoint(CLIENT4 ":1234", &client, &err), 0, err.msg);
	ASSERT_EQ(ts_picker_pick(picker, &client, &b, &err), 0, err.msg);
	ASSERT_TRUE(b == NULL, "no backend");
	ASSERT_EQ(env_counter(e, TS_CNT_NO_BACKEND), 0, "pick counted nothing");
	ts_picker_close(picker);
}

int run_pick_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_pick_matches_the_forward_path),
		TEST(test_pick_without_backend),
	};

	return cmocka_run_group_tests_name("pick", tests, NULL, NULL);
}
