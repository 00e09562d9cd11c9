// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The live view's arithmetic and the agent's history (user/lib/live.c,
 * user/daemon/history.c): rates from two reads, counters going backwards,
 * a ring bounded to TS_HISTORY_SAMPLES that answers "the samples after N",
 * an id reused by another backend starting a history of its own; and
 * decimals in JSON written as the number they are.
 */
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "history.h"
#include "print.h"
#include "unit.h"

#define SEC 1000000000ULL

static void rates_are_per_second_and_never_negative(void **state)
{
	struct ts_backend_stats before = { .new_flows = 100, .refused = 5, .syn_retransmits = 2,
					   .bytes = 1000, .handshakes = 90 };
	struct ts_backend_stats now = { .new_flows = 300, .refused = 9, .syn_retransmits = 2,
					.bytes = 500, .handshakes = 290 };
	struct ts_live_rate r;

	ts_live_rate_of(&now, &before, 2.0, &r);
	ASSERT_EQ(r.new_flows, 100, "200 new flows in 2 s");
	ASSERT_EQ(r.handshakes, 100, "handshakes per second");
	ASSERT_EQ(r.refused, 2, "refused per second");
	ASSERT_EQ(r.timeouts, 0, "no new timeout");
	ASSERT_EQ(r.bytes, 0, "bytes went backwards (a reset): 0, not a huge number");
}

/* A sample where backend id has generation gen and new_flows n. */
static void add(struct ts_history *h, __u64 t, __u32 id, __u32 gen, __u64 n)
{
	static struct ts_backend all[TS_MAX_BACKENDS];
	static struct ts_backend_stats st[TS_MAX_BACKENDS];

	memset(all, 0, sizeof(all));
	all[id].state = TS_BACKEND_ACTIVE;
	all[id].generation = gen;
	st[id].new_flows = n;
	ts_history_add(h, t, all, st, TS_MAX_BACKENDS);
}

/* The JSON array ts_history_print writes for backend b after since. */
static json_object *history_of(struct ts_history *h, const struct ts_backend_cfg *b,
			       __u64 since)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_object *o, *a = NULL;

	print_start(f, true, 0);
	print_open_object(NULL);
	ts_history_print(h, b, since);
	print_close_object();
	print_end();
	fclose(f);
	o = json_tokener_parse(buf);
	free(buf);
	if (o && json_object_object_get_ex(o, "new_flows_per_s", &a))
		json_object_get(a);
	json_object_put(o);
	return a;
}

static void history_is_bounded_and_answers_after_since(void **state)
{
	struct ts_backend_cfg b = { .id = 7, .be = { .generation = 3 } };
	struct ts_history h;
	json_object *a;
	__u64 n = 0;

	ASSERT_EQ(ts_history_init(&h), 0, "init");
	/* sample k: 10 * k new flows in its second */
	for (__u64 k = 1; k <= TS_HISTORY_SAMPLES + 50; k++) {
		n += 10 * k;
		add(&h, k * SEC, 7, 3, n);
	}
	ASSERT_EQ(h.seq, TS_HISTORY_SAMPLES + 50, "samples taken");
	a = history_of(&h, &b, 0);
	ASSERT_TRUE(a, "a history");
	ASSERT_EQ(json_object_array_length(a), TS_HISTORY_SAMPLES, "the ring holds no more");
	ASSERT_EQ(json_object_get_double(json_object_array_get_idx(a, TS_HISTORY_SAMPLES - 1)),
		  10 * (TS_HISTORY_SAMPLES + 50), "the last sample last");
	ASSERT_EQ(json_object_get_double(json_object_array_get_idx(a, 0)), 10 * 51,
		  "the oldest the ring still holds first");
	json_object_put(a);
	a = history_of(&h, &b, h.seq - 2);
	ASSERT_EQ(json_object_array_length(a), 2, "only the samples after since");
	json_object_put(a);
	a = history_of(&h, &b, h.seq);
	ASSERT_EQ(json_object_array_length(a), 0, "nothing new");
	json_object_put(a);
	ts_history_free(&h);
}

static void reused_id_starts_its_own_history(void **state)
{
	struct ts_backend_cfg old = { .id = 9, .be = { .generation = 1 } };
	struct ts_backend_cfg reused = { .id = 9, .be = { .generation = 2 } };
	struct ts_live_backend lb = { .b = &reused };
	struct ts_live_service ls = { .s = NULL, .backends = &lb };
	struct ts_service_cfg sc = { .nbackends = 1 };
	struct ts_live live = { .nservices = 1, .services = &ls };
	struct ts_history h;
	json_object *a;

	ls.s = &sc;
	ASSERT_EQ(ts_history_init(&h), 0, "init");
	add(&h, 1 * SEC, 9, 1, 1000);
	add(&h, 2 * SEC, 9, 1, 1500);
	add(&h, 3 * SEC, 9, 2, 7);	/* deleted, its id given to another backend */
	a = history_of(&h, &old, 0);
	ASSERT_TRUE(!a, "the deleted backend has no history any more");
	a = history_of(&h, &reused, 0);
	ASSERT_EQ(json_object_array_length(a), 1, "the new one's history starts now");
	ASSERT_EQ(json_object_get_double(json_object_array_get_idx(a, 0)), 0,
		  "no rate from the old backend's counters");
	json_object_put(a);
	ts_history_rates(&h, &live);
	ASSERT_TRUE(!lb.has_rate, "no rate before its second sample");
	add(&h, 5 * SEC, 9, 2, 107);
	ts_history_rates(&h, &live);
	ASSERT_TRUE(lb.has_rate, "a rate after two samples");
	ASSERT_EQ(lb.rate.new_flows, 50, "100 new flows in 2 s");
	ts_history_free(&h);
}

/* A sample covers the ids in use (1 + the highest): a backend whose id falls
 * beyond it (the configuration shrank) has no history any more. */
static void ids_past_the_sampled_ones_are_gone(void **state)
{
	static struct ts_backend all[TS_MAX_BACKENDS];
	static struct ts_backend_stats st[TS_MAX_BACKENDS];
	struct ts_backend_cfg b = { .id = 40, .be = { .generation = 1 } };
	struct ts_history h;
	json_object *a;

	ASSERT_EQ(ts_history_init(&h), 0, "init");
	all[40].state = TS_BACKEND_ACTIVE;
	all[40].generation = 1;
	ts_history_add(&h, 1 * SEC, all, st, 41);
	a = history_of(&h, &b, 0);
	ASSERT_TRUE(a, "sampled while its id is in use");
	json_object_put(a);
	ts_history_add(&h, 2 * SEC, all, st, 10);
	a = history_of(&h, &b, 0);
	ASSERT_TRUE(!a, "no history once its id is past the ids sampled");
	json_object_put(a);
	ts_history_free(&h);
}

static void decimals_written_as_the_number(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	print_start(f, true, 0);
	print_open_array(NULL);
	print_decimal(PRINT_ANY, NULL, NULL, 12.3, 2);
	print_decimal(PRINT_ANY, NULL, NULL, (float)12.3, 1);
	print_decimal(PRINT_ANY, NULL, NULL, 5.0, 3);
	print_decimal(PRINT_ANY, NULL, NULL, 0.125, 2);
	print_close_array();
	print_end();
	fclose(f);
	ASSERT_TRUE(!strcmp(buf, "[12.3,12.3,5,0.12]\n") || !strcmp(buf, "[12.3,12.3,5,0.13]\n"),
		    "decimals: '%s'", buf);
	free(buf);
}

int run_live_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rates_are_per_second_and_never_negative),
		cmocka_unit_test(history_is_bounded_and_answers_after_since),
		cmocka_unit_test(reused_id_starts_its_own_history),
		cmocka_unit_test(ids_past_the_sampled_ones_are_gone),
		cmocka_unit_test(decimals_written_as_the_number),
	};

	return cmocka_run_group_tests_name("live", tests, NULL, NULL);
}
