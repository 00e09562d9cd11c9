// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift rollout: a progressive shift gated on the data plane's canary signals */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "live.h"

static const char help[] =
	"Usage: tcpshift rollout SERVICE FROM TO [--steps LIST] [--interval DURATION]\n"
	"                        [--max-failures PCT] [--min-connections N]\n"
	"\n"
	"Move new connections from backend FROM to backend TO step by step. At each\n"
	"step TO gets that percentage of the weight FROM and TO had together (at least\n"
	"100, so a step is 1 %), in one atomic switch; other backends keep theirs.\n"
	"Each step, the last included, is held for --interval and then judged on what\n"
	"the data plane counted for TO during it: its failures (connections it refused\n"
	"with a RST, and connections it never answered: SYNs sent again for want of a\n"
	"SYN-ACK, or SYNs left without any answer for a second) against its connections\n"
	"with an outcome (those and the handshakes completed). SYNs that cannot reach\n"
	"TO (spoofed with a TTL of 1, a bad checksum) count nothing. More than\n"
	"--max-failures percent, or TO down by its health checks\n"
	"('tcpshift health'), fails the gate; with fewer than --min-connections\n"
	"connections the step is held for another interval, ten at most, then the gate\n"
	"fails (too little traffic to judge).\n"
	"A failed gate switches back to the weights the rollout started from, in one\n"
	"switch, and exits 3. Established connections are never touched: only new\n"
	"ones follow the weights.\n"
	"\n"
	"Interrupted (Ctrl-C, SIGTERM, killed), it leaves the weights of the step in\n"
	"force, exits 1, and 'tcpshift status' says so ('tcpshift history' lists the\n"
	"steps; 'tcpshift undo N' goes back). A second rollout of a service whose\n"
	"rollout runs is refused. Output: a progress line on a terminal, a line per\n"
	"step and gate otherwise, one JSON object per event with -j.\n"
	"\n"
	"  --steps LIST          TO's percentages, increasing, 1-100 (default 10,25,50,100)\n"
	"  --interval DURATION   how long each step is held (default 60s)\n"
	"  --max-failures PCT    failures allowed, percent of TO's connections (default 5)\n"
	"  --min-connections N   connections needed to judge a step (default 10)\n"
	"\n"
	"A TO down by its health checks, or drained past its deadline, is refused at\n"
	"once (exit 2), before any weight changes.\n"
	"\n"
	"Exit status: 0 done, 1 runtime error or interrupted, 2 usage error or a TO\n"
	"that cannot take connections, 3 rolled back.\n"
	"\n"
	"Examples:\n"
	"  tcpshift rollout tcp-echo v1 v2\n"
	"  tcpshift rollout tcp-echo v1 v2 --steps 10,50,100 --interval 5m --max-failures 1\n";

#define ROLLED_BACK	3
#define MAX_EXTENSIONS	10

struct rollout {
	struct cli_ctx		*ctx;
	struct ts_maps		*m;
	struct ts_loop		*loop;	/* signals; the progress line's timer */
	const char		*service, *from, *to;
	struct ts_rollout	r;
	__u64			interval_ns;
	__u32			max_failures, min_conns;
	bool			tty;
};

/* "10,25,50,100": increasing percentages 1-100. */
static int parse_steps(const char *s, struct ts_rollout *r)
{
	char buf[128], *save = NULL, *tok;
	__u32 prev = 0, v;
	struct ts_err err;

	if (strlen(s) >= sizeof(buf) || strstr(s, ",,") || s[0] == ',')
		return -1;
	strcpy(buf, s);
	r->nsteps = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (r->nsteps == TS_ROLLOUT_MAX_STEPS ||
		    ts_parse_u32(tok, "step", 1, 100, &v, &err) || v <= prev)
			return -1;
		r->percent[r->nsteps++] = (__u8)v;
		prev = v;
	}
	return r->nsteps && s[strlen(s) - 1] != ',' ? 0 : -1;
}

/* The id the service's rollout record is kept under, read under the lock:
 * the id of its table, which a change of the table's size moves (and the
 * record with it). */
static int record_id(struct rollout *ro, __u32 *id, struct ts_err *err)
{
	struct ts_config cfg;
	int r = ts_config_read_service(ro->m, ro->service, &cfg, err);

	if (r)
		return r;
	if (!cfg.nservices)
		return ts_fail(err, TS_ERR_RUNTIME, "service %s was deleted during its rollout",
			       ro->service);
	*id = cfg.services[0].svc.id;
	ts_config_free(&cfg);
	return 0;
}

/* Under the lock. */
static int record(struct rollout *ro, bool clear, struct ts_err *err)
{
	struct ts_rollout none = {};
	__u32 id;
	int r = record_id(ro, &id, err);

	if (r)
		return r;
	if (bpf_map_update_elem(ro->m->rollouts, &id, clear ? &none : &ro->r, BPF_ANY))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot record the rollout of %s: %s",
			       ro->service, strerror(errno));
	return 0;
}

/* FROM's and TO's weights at TO's share pct of the pair's weight. */
static void step_weights(const struct ts_rollout *r, __u32 pct, __u32 *wf, __u32 *wt)
{
	__u32 total = r->from_weight + r->to_weight;

	if (total < 100)
		total = 100;
	*wt = (__u32)(((__u64)total * pct + 50) / 100);
	*wf = total - *wt;
}

/* One weight change through the change pipeline, and the rollout's record
 * (cleared when done), under the lock, which is let go at once: a rollout
 * runs for minutes, other commands must not wait for it. */
static int set_weights(struct rollout *ro, __u32 wf, __u32 wt, bool done, struct ts_err *err)
{
	char names[2][TS_NAME_LEN];
	__u32 w[2] = { wf, wt };
	int r;

	snprintf(names[0], sizeof(names[0]), "%s", ro->from);
	snprintf(names[1], sizeof(names[1]), "%s", ro->to);
	r = ts_weights_set(ro->m, ro->service, names, w, 2, err) ?: record(ro, done, err);
	ts_maps_unlock(ro->m);
	return r;
}

/* An event: a JSON object (-j), a line, or the progress line on a terminal. */
static void event(struct rollout *ro, json_object *o, const char *line, bool progress)
{
	if (ro->ctx->json) {
		cli_print_json(o);
		fflush(stdout);
		return;
	}
	json_object_put(o);
	if (progress && !ro->tty)
		return;
	printf(ro->tty ? "\r\033[K%s%s" : "%s%s", line, progress ? "" : "\n");
	fflush(stdout);
}

static json_object *jevent(const char *name, __u32 step, __u32 pct, __u32 wf, __u32 wt)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(name));
	json_object_object_add(o, "step", json_object_new_int64(step + 1));
	json_object_object_add(o, "percent", json_object_new_int64(pct));
	json_object_object_add(o, "from_weight", json_object_new_int64(wf));
	json_object_object_add(o, "to_weight", json_object_new_int64(wt));
	return o;
}

#define SETTLE_NS	1000000000ULL	/* an attempt unanswered this long has failed */

/* What hold() shows on a terminal, once a second. */
struct progress {
	struct rollout				*ro;
	__u32					step, wf, wt;
	const struct ts_backend_stats		*base, *settled;
	__u64					until;
};

static void show_progress(struct ts_loop *l, void *data)
{
	struct progress *p = data;
	struct rollout *ro = p->ro;
	struct ts_backend_stats st;
	struct ts_err err;
	__u64 now = ts_now_ns(), att, fail;
	char line[256];

	if (ts_backend_stats_read(ro->m, ro->r.to_id, &st, &err))
		return;
	ts_gate_outcomes(p->base, p->settled, &st, &att, &fail);
	snprintf(line, sizeof(line),
		 "step %u/%u  %s=%u %s=%u  connections %llu  failures %llu  %llus left",
		 p->step + 1, ro->r.nsteps, ro->from, p->wf, ro->to, p->wt,
		 (unsigned long long)att, (unsigned long long)fail,
		 (unsigned long long)(p->until > now ? (p->until - now + 999999999ULL) /
							1000000000ULL : 0));
	event(ro, NULL, line, true);
}

/* Wait for the end of a gate interval on the loop; false when a signal
 * stopped us. settled: TO's counters as read SETTLE_NS before the end (base
 * when the interval is shorter), for ts_gate_outcomes. */
static bool hold(struct rollout *ro, __u32 step, __u32 wf, __u32 wt,
		 const struct ts_backend_stats *base, __u64 until, struct ts_backend_stats *settled)
{
	struct progress p = { .ro = ro, .step = step, .wf = wf, .wt = wt, .base = base,
			      .settled = settled, .until = until };
	struct ts_timer *t = NULL;
	struct ts_err err;
	bool done = true;

	*settled = *base;
	if (ro->tty && !ts_loop_timer(ro->loop, show_progress, &p, &t, &err))
		ts_timer_arm(t, 0, 1000000000ULL);
	/* TO's counters SETTLE_NS before the end: an attempt pinned by then and
	 * unanswered at the end has failed */
	if (until >= ts_now_ns() + SETTLE_NS) {
		done = ts_loop_run_until(ro->loop, until - SETTLE_NS);
		if (done)
			ts_backend_stats_read(ro->m, ro->r.to_id, settled, &err);
	}
	done = done && ts_loop_run_until(ro->loop, until);
	ts_timer_free(t);
	return done;
}

static int roll_back(struct rollout *ro, const char *why, struct ts_err *err)
{
	json_object *o = jevent("rollback", ro->r.step, 0, ro->r.from_weight, ro->r.to_weight);
	char line[512];

	json_object_object_add(o, "reason", json_object_new_string(why));
	if (set_weights(ro, ro->r.from_weight, ro->r.to_weight, true, err))
		return -err->status;
	snprintf(line, sizeof(line), "rolled back to %s=%u %s=%u: %s", ro->from,
		 ro->r.from_weight, ro->to, ro->r.to_weight, why);
	event(ro, o, line, false);
	return ROLLED_BACK;
}

/* When a step ending at until (CLOCK_MONOTONIC) is judged, as the record
 * keeps it: whole seconds after the rollout's start, rounded up. */
static __u32 judged_at(const struct rollout *ro, __u64 until)
{
	return (__u32)((until - ro->r.started_ns + 999999999ULL) / 1000000000ULL);
}

static int run(struct rollout *ro, struct ts_err *err)
{
	for (ro->r.step = 0; ro->r.step < ro->r.nsteps; ro->r.step++) {
		__u32 pct = ro->r.percent[ro->r.step], wf, wt;
		struct ts_backend_stats base, settled, st;
		__u64 att = 0, fail = 0, until;
		char line[320];
		int ext;

		step_weights(&ro->r, pct, &wf, &wt);
		until = ts_now_ns() + ro->interval_ns;
		ro->r.judged_s = judged_at(ro, until);
		if (ts_backend_stats_read(ro->m, ro->r.to_id, &base, err) ||
		    set_weights(ro, wf, wt, false, err))
			return -err->status;
		snprintf(line, sizeof(line), "step %u/%u: %s=%u %s=%u (%u %% to %s)",
			 ro->r.step + 1, ro->r.nsteps, ro->from, wf, ro->to, wt, pct, ro->to);
		event(ro, jevent("step", ro->r.step, pct, wf, wt), line, false);
		for (ext = 0; ext < MAX_EXTENSIONS; ext++) {
			/* an extension: the judgement moves, and status and the
			 * status page say when */
			if (ext) {
				until = ts_now_ns() + ro->interval_ns;
				ro->r.judged_s = judged_at(ro, until);
				if (ts_maps_lock(ro->m, err) || record(ro, false, err)) {
					ts_maps_unlock(ro->m);
					return -err->status;
				}
				ts_maps_unlock(ro->m);
			}
			if (!hold(ro, ro->r.step, wf, wt, &base, until, &settled))
				return -1;
			if (ts_backend_stats_read(ro->m, ro->r.to_id, &st, err))
				return -err->status;
			ts_gate_outcomes(&base, &settled, &st, &att, &fail);
			if (att >= ro->min_conns)
				break;
		}
		{
			struct ts_backend be = {};
			bool down = !bpf_map_lookup_elem(ro->m->backends, &ro->r.to_id, &be) &&
				    be.health == TS_HEALTH_DOWN;
			bool ok = !down && att >= ro->min_conns &&
				  fail * 100 <= (__u64)ro->max_failures * att;
			json_object *o = jevent("gate", ro->r.step, pct, wf, wt);

			json_object_object_add(o, "connections", json_object_new_int64((int64_t)att));
			json_object_object_add(o, "failures", json_object_new_int64((int64_t)fail));
			json_object_object_add(o, "refused",
					       json_object_new_int64((int64_t)(st.refused - base.refused)));
			json_object_object_add(o, "timeouts",
					       json_object_new_int64((int64_t)(st.syn_retransmits -
						       base.syn_retransmits)));
			json_object_object_add(o, "health",
					       json_object_new_string(down ? "down" : "up"));
			json_object_object_add(o, "ok", json_object_new_boolean(ok));
			snprintf(line, sizeof(line),
				 "gate %u/%u: %s had %llu connections, %llu failures (%.1f %%, at "
				 "most %u %%): %s",
				 ro->r.step + 1, ro->r.nsteps, ro->to, (unsigned long long)att,
				 (unsigned long long)fail, att ? 100.0 * fail / att : 0.0,
				 ro->max_failures, ok ? "passed" : "FAILED");
			event(ro, o, line, false);
			if (ok)
				continue;
			if (down)
				snprintf(line, sizeof(line), "%s is down by its health checks", ro->to);
			else if (att < ro->min_conns)
				snprintf(line, sizeof(line),
					 "%s had %llu connections in %d intervals, fewer than "
					 "--min-connections %u: too little traffic to judge",
					 ro->to, (unsigned long long)att, MAX_EXTENSIONS, ro->min_conns);
			else
				snprintf(line, sizeof(line),
					 "%s failed %llu of %llu connections (%.1f %%, more than "
					 "--max-failures %u %%)",
					 ro->to, (unsigned long long)fail, (unsigned long long)att,
					 100.0 * fail / att, ro->max_failures);
			return roll_back(ro, line, err);
		}
	}
	ro->r.step = ro->r.nsteps - 1;
	if (ts_maps_lock(ro->m, err))
		return -err->status;
	record(ro, true, err);
	ts_maps_unlock(ro->m);
	{
		__u32 wf, wt;
		char line[160];

		step_weights(&ro->r, ro->r.percent[ro->r.nsteps - 1], &wf, &wt);
		snprintf(line, sizeof(line), "done: %s=%u %s=%u", ro->from, wf, ro->to, wt);
		event(ro, jevent("done", ro->r.step, ro->r.percent[ro->r.nsteps - 1], wf, wt),
		      line, false);
	}
	return 0;
}

/* A TO that cannot take new connections now is refused before anything
 * changes: down by its health checks (the first gate would fail on it after a
 * whole interval of weight sent nowhere), or drained past its deadline (its
 * connections were closed: it was retired). A removed backend is no member of
 * the service: "no backend". */
static int to_refused(const struct rollout *ro, const struct ts_backend_cfg *bt,
		      struct ts_err *err)
{
	if (bt->be.health == TS_HEALTH_DOWN)
		return ts_fail(err, TS_ERR_USAGE,
			       "backend %s of %s is down by its health checks: roll out to it "
			       "once it is up ('tcpshift service list' shows its health)",
			       ro->to, ro->service);
	if (!bt->weight && bt->be.drain_deadline_ns && ts_now_ns() > bt->be.drain_deadline_ns)
		return ts_fail(err, TS_ERR_USAGE,
			       "backend %s of %s was drained and its deadline has passed: give it "
			       "a weight first ('tcpshift weight %s %s=1') to roll out to it",
			       ro->to, ro->service, ro->service, ro->to);
	return 0;
}

int cmd_rollout(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *steps = "10,25,50,100";
	__u64 interval_ns = 60ULL * 1000000000ULL;
	__u32 max_failures = 5, min_conns = 10;
	const struct cli_opt opts[] = {
		{ "steps", 0, CLI_STRING, &steps, .metavar = "LIST" },
		{ "interval", 0, CLI_DURATION, &interval_ns },
		{ "max-failures", 0, CLI_U32, &max_failures, .metavar = "PCT", .min = 0,
		  .max = 100 },
		{ "min-connections", 0, CLI_U32, &min_conns, .metavar = "N", .min = 1,
		  .max = 1000000 },
		CLI_OPT_HELP,
		{},
	};
	struct rollout ro = { .ctx = ctx };
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	struct ts_backend_cfg *bf, *bt;
	struct ts_rollout cur = {};
	__u32 id;
	struct ts_maps m;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs != 3)
		return cli_usage(argv[0], "rollout takes SERVICE FROM TO");
	if (parse_steps(steps, &ro.r))
		return cli_usage(argv[0],
				 "bad --steps '%s': increasing percentages from 1 to 100, at most %d, "
				 "e.g. 10,25,50,100",
				 steps, TS_ROLLOUT_MAX_STEPS);
	if (!interval_ns)
		return cli_usage(argv[0], "--interval must be more than 0");
	if (!strcmp(argv[2], argv[3]))
		return cli_usage(argv[0], "FROM and TO are the same backend '%s'", argv[2]);
	ro.service = argv[1];
	ro.from = argv[2];
	ro.to = argv[3];
	ro.interval_ns = interval_ns;
	ro.max_failures = max_failures;
	ro.min_conns = min_conns;
	ro.tty = isatty(STDOUT_FILENO) && !ctx->json;
	if (ts_loop_new(&ro.loop, "rollout", &err))
		return cli_report(&err);
	r = cli_open_maps(ctx, &m);
	if (r) {
		ts_loop_free(ro.loop);
		return r;
	}
	ro.m = &m;
	if (ts_config_read_service(&m, ro.service, &cfg, &err))
		goto report;
	s = cfg.nservices ? &cfg.services[0] : NULL;
	if (!s) {
		ts_fail(&err, TS_ERR_USAGE, "unknown service '%s': see 'tcpshift service list'",
			ro.service);
		goto report;
	}
	bf = ts_service_backend(s, ro.from);
	bt = ts_service_backend(s, ro.to);
	if (!bf || !bt) {
		ts_fail(&err, TS_ERR_USAGE, "service %s has no backend '%s': see 'tcpshift "
			"service list'", ro.service, bf ? ro.to : ro.from);
		goto report;
	}
	if (to_refused(&ro, bt, &err))
		goto report;
	ro.r.from_id = bf->id;
	ro.r.to_id = bt->id;
	ro.r.from_weight = bf->weight;
	ro.r.to_weight = bt->weight;
	ro.r.pid = (__u32)getpid();
	ro.r.started_ns = ts_now_ns();
	/* one at a time per service: the check and the record under the lock */
	if (ts_maps_lock(&m, &err))
		goto report;
	if (record_id(&ro, &id, &err)) {
		ts_maps_unlock(&m);
		goto report;
	}
	if (!bpf_map_lookup_elem(m.rollouts, &id, &cur) && ts_rollout_running(&cur)) {
		ts_maps_unlock(&m);
		ts_fail(&err, TS_ERR_RUNTIME,
			"a rollout of %s is running (pid %u): wait for it, or stop it first",
			ro.service, cur.pid);
		goto report;
	}
	r = record(&ro, false, &err);
	ts_maps_unlock(&m);
	if (r)
		goto report;
	r = run(&ro, &err);
	if (r == -1 && ts_loop_signal(ro.loop)) {
		fprintf(stderr, "%stcpshift: rollout of %s interrupted (%s) at step %u of %u: the "
			"weights of that step stay; 'tcpshift status' shows it\n",
			ro.tty ? "\n" : "", ro.service, strsignal(ts_loop_signal(ro.loop)),
			ro.r.step + 1, ro.r.nsteps);
		r = 1;
	} else if (r < 0) {
		goto report;
	}
	ts_config_free(&cfg);
	ts_maps_close(&m);
	ts_loop_free(ro.loop);
	return r;
report:
	ts_config_free(&cfg);
	ts_maps_close(&m);
	ts_loop_free(ro.loop);
	return cli_report(&err);
}
