// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Health checks: the rise/fall state machine and the effective weights a
 * table is built with (doc/DESIGN.md, "Health checks").
 */
#include <string.h>

#include "libtcpshift.h"
#include "unit.h"

/* Feed results ("+" ok, "-" failed) and record where the state changed. */
static void run(struct ts_health_track *t, const char *results, __u8 rise, __u8 fall,
		char *changes)
{
	for (size_t i = 0; results[i]; i++)
		changes[i] = ts_health_step(t, results[i] == '+', rise, fall) ? '!' : '.';
	changes[strlen(results)] = '\0';
}

static void health_rise_fall(void **state)
{
	static const struct {
		const char	*what;
		__u8		start, rise, fall;
		const char	*results, *changes;
		__u8		end;
	} cases[] = {
		{ "up stays up on success", TS_HEALTH_UP, 2, 3, "++++", "....", TS_HEALTH_UP },
		{ "fall 3: down at the third failure in a row", TS_HEALTH_UP, 2, 3, "---",
		  "..!", TS_HEALTH_DOWN },
		{ "a success resets the run of failures", TS_HEALTH_UP, 2, 3, "--+--+--",
		  "........", TS_HEALTH_UP },
		{ "rise 2: up at the second success in a row", TS_HEALTH_DOWN, 2, 3, "-++",
		  "..!", TS_HEALTH_UP },
		{ "a failure resets the run of successes", TS_HEALTH_DOWN, 2, 3, "+-+-+-",
		  "......", TS_HEALTH_DOWN },
		{ "down, up, down again", TS_HEALTH_UP, 2, 3, "---++---", "..!.!..!",
		  TS_HEALTH_DOWN },
		{ "rise 1, fall 1: every change counts", TS_HEALTH_UP, 1, 1, "-+-+", "!!!!",
		  TS_HEALTH_UP },
		/* a restarted agent resumes from the stored state: a backend
		 * stored down stays down on its first successes */
		{ "resume down: one success is not enough", TS_HEALTH_DOWN, 2, 3, "+",
		  ".", TS_HEALTH_DOWN },
	};
	char changes[32];

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		struct ts_health_track t = { .health = cases[c].start };

		run(&t, cases[c].results, cases[c].rise, cases[c].fall, changes);
		ASSERT_TRUE(!strcmp(changes, cases[c].changes), "%s: changes %s, want %s",
			    cases[c].what, changes, cases[c].changes);
		ASSERT_TRUE(t.health == cases[c].end, "%s: ends %u, want %u", cases[c].what,
			    t.health, cases[c].end);
	}
}

static void health_effective_weights(void **state)
{
	static const struct {
		const char	*what;
		size_t		n;
		__u32		weight[3];
		__u8		down[3];
		__u32		want[3];
	} cases[] = {
		{ "all up: the operator's weights", 3, { 90, 10, 0 }, { 0, 0, 0 }, { 90, 10, 0 } },
		{ "a backend down: 0", 2, { 90, 10 }, { 0, 1 }, { 90, 0 } },
		{ "down and draining: 0", 3, { 50, 50, 0 }, { 1, 0, 1 }, { 0, 50, 0 } },
		{ "every backend with weight down: fail open", 2, { 90, 10 }, { 1, 1 },
		  { 90, 10 } },
		{ "the only weighted backend up is drained: fail open", 3, { 0, 10, 5 },
		  { 0, 1, 1 }, { 0, 10, 5 } },
		{ "all weights 0: all 0", 2, { 0, 0 }, { 1, 0 }, { 0, 0 } },
		{ "no backend", 0, {}, {}, {} },
	};

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		struct ts_backend_cfg b[3] = {};
		__u32 out[3] = { 7, 7, 7 };

		for (size_t i = 0; i < cases[c].n; i++) {
			b[i].weight = cases[c].weight[i];
			b[i].be.health = cases[c].down[i] ? TS_HEALTH_DOWN : TS_HEALTH_UP;
		}
		ts_effective_weights(b, cases[c].n, out);
		for (size_t i = 0; i < cases[c].n; i++)
			ASSERT_TRUE(out[i] == cases[c].want[i], "%s: backend %zu: %u, want %u",
				    cases[c].what, i, out[i], cases[c].want[i]);
	}
}

int run_health_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(health_rise_fall),
		cmocka_unit_test(health_effective_weights),
	};

	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
