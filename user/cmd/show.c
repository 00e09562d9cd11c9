// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What several one-shot commands show alike: TCP states, counters, drains, health. */
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

json_object *cli_counters(const struct cli_ctx *ctx, const __u64 counters[TS_CNT_MAX])
{
	json_object *o = json_object_new_object();

	if (!ctx->json)
		printf("counters\n");
	for (int i = 0; i < TS_CNT_MAX; i++) {
		json_object_object_add(o, ts_counter_name(i),
				       json_object_new_int64((int64_t)counters[i]));
		if (!ctx->json)
			printf("  %-24s %llu\n", ts_counter_name(i),
			       (unsigned long long)counters[i]);
	}
	return o;
}

json_object *cli_drain(const struct ts_backend *be, __u64 now, char *text, size_t len)
{
	__u64 left;

	text[0] = '\0';
	if (!be->drain_deadline_ns)
		return NULL;
	left = be->drain_deadline_ns > now ? (be->drain_deadline_ns - now + 999999999ULL) /
						     1000000000ULL
					   : 0;
	snprintf(text, len, left ? " (draining: flows closed in %llus)" :
				   " (drained: remaining flows are closed)",
		 (unsigned long long)left);
	return json_object_new_int64((int64_t)left);
}

void cli_health_text(const struct ts_backend *be, __u32 effective, char *text, size_t len)
{
	char since[32] = "";
	time_t t = (time_t)be->health_since_s;
	struct tm tm;

	text[0] = '\0';
	if (be->health_since_s && gmtime_r(&t, &tm))
		strftime(since, sizeof(since), " since %Y-%m-%d %H:%M:%S UTC", &tm);
	if (be->health == TS_HEALTH_DOWN)
		snprintf(text, len, " (down%s: effective weight %u%s)", since, effective,
			 effective ? ", every backend is down: fail open" : "");
	else
		snprintf(text, len, " (up%s)", since);
}
