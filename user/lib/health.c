// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The health checks' state machine (rise/fall, as HAProxy's): pure, so the
 * unit tests drive it. The state itself lives in the backends map
 * (ts_backend.health); only the run of results against it is the agent's,
 * so a restarted agent resumes from the stored state and does not flap.
 */
#include "libtcpshift.h"

bool ts_health_step(struct ts_health_track *t, bool ok, __u8 rise, __u8 fall)
{
	bool against = t->health == TS_HEALTH_UP ? !ok : ok;

	if (!against) {
		t->count = 0;
		return false;
	}
	if (++t->count < (t->health == TS_HEALTH_UP ? fall : rise))
		return false;
	t->health = t->health == TS_HEALTH_UP ? TS_HEALTH_DOWN : TS_HEALTH_UP;
	t->count = 0;
	return true;
}
