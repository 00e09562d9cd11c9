// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What several one-shot commands show alike: TCP states, counters, drains, health. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

static const char *const tcp_states[] = {
	[TS_TCP_SYN_SEEN] = "syn",
	[TS_TCP_ESTABLISHED] = "established",
	[TS_TCP_CLOSING] = "closing",
	[TS_TCP_CLOSED] = "closed",
	[TS_TCP_MIDSTREAM] = "midstream",
};

const char *cli_tcp_state_name(__u8 state)
{
	if (state < sizeof(tcp_states) / sizeof(tcp_states[0]) && tcp_states[state])
		return tcp_states[state];
	return "unknown";
}

int cli_tcp_state_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(tcp_states) / sizeof(tcp_states[0]); i++)
		if (tcp_states[i] && !strcmp(tcp_states[i], name))
			return (int)i;
	return 0;
}

void print_counters(const __u64 counters[TS_CNT_MAX])
{
	print_text("counters\n");
	print_open_object("counters");
	for (int i = 0; i < TS_CNT_MAX; i++) {
		print_text("  %-24s ", ts_counter_name(i));
		print_u64(PRINT_ANY, ts_counter_name(i), "%llu\n", counters[i]);
	}
	print_close_object();
}

bool print_drain(const struct ts_backend *be, __u64 now)
{
	__u64 left;

	if (!be->drain_deadline_ns)
		return false;
	left = be->drain_deadline_ns > now ? (be->drain_deadline_ns - now + 999999999ULL) /
						     1000000000ULL
					   : 0;
	print_u64(PRINT_ANY, "drain_deadline_s",
		  left ? " (draining: flows closed in %llus)" :
			 " (drained: remaining flows are closed)",
		  left);
	return true;
}

void print_health(const struct ts_backend *be, __u32 effective, bool more)
{
	bool down = be->health == TS_HEALTH_DOWN;
	time_t t = (time_t)be->health_since_s;
	char since[32];
	struct tm tm;

	print_string(PRINT_ANY, "health", more ? "; %s" : " (%s", down ? "down" : "up");
	if (be->health_since_s) {
		print_u64(PRINT_JSON, "health_since", NULL, be->health_since_s);
		if (gmtime_r(&t, &tm) &&
		    strftime(since, sizeof(since), " since %Y-%m-%d %H:%M:%S UTC", &tm))
			print_text("%s", since);
	}
	/* as text only when it is not the weight: down */
	print_u64(down ? PRINT_ANY : PRINT_JSON, "effective_weight", ": effective weight %llu",
		  effective);
	if (down && effective)
		print_text(", every backend is down: fail open");
	print_text(")");
}

void print_change(const struct ts_change *c, const char *indent)
{
	char line[512];

	/* a line for people, the change's parts in JSON */
	ts_change_text(c, line, sizeof(line));
	print_text("%s", indent);
	print_string(PRINT_FP, NULL, "%s\n", line);
	print_open_object(NULL);
	print_string(PRINT_JSON, "action", NULL, ts_change_name(c->kind));
	if (c->service[0])
		print_string(PRINT_JSON, "service", NULL, c->service);
	if (c->backend[0])
		print_string(PRINT_JSON, "backend", NULL, c->backend);
	if (c->from[0])
		print_string(PRINT_JSON, "from", NULL, c->from);
	if (c->to[0])
		print_string(PRINT_JSON, "to", NULL, c->to);
	print_close_object();
}
