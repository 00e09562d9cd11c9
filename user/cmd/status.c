// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift status */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "cmd.h"
#include "live.h"

static const char help[] =
	"Usage: tcpshift status\n"
	"\n"
	"Show the pin directory, the version of this tcpshift and of the running object\n"
	"(the build that loaded it) with the map layout, the flow hash seed, the\n"
	"forwarding mode, the mode (tc or xdp) and in xdp mode where handshakes are\n"
	"handled (tc, or xdp: see load), whether 'tcpshift sync' takes the\n"
	"pin events, the devices tcpshift is attached to with their program ids (and XDP\n"
	"program ids in xdp mode, and whether each takes XDP-redirected frames), the\n"
	"cgroup whose clients are balanced at connect() (see load) with its programs'\n"
	"ids, rollouts running or interrupted, how full each map is, and the global\n"
	"counters.\n"
	"\n"
	"Example:\n"
	"  tcpshift status\n";

/* Rollouts in progress, and those whose process is gone (interrupted: the
 * weights of their last step stay). */
static void print_rollouts(const struct ts_maps *m)
{
	struct ts_config cfg = {};
	struct ts_err err;

	print_open_array("rollouts");
	if (ts_config_read(m, &cfg, &err)) {
		print_close_array();
		return;
	}
	for (size_t i = 0; i < cfg.nservices; i++) {
		struct ts_service_cfg *s = &cfg.services[i];
		struct ts_backend from = {}, to = {};
		struct ts_rollout r = {};
		bool alive;

		if (bpf_map_lookup_elem(m->rollouts, &s->svc.id, &r) || !r.pid ||
		    r.nsteps > TS_ROLLOUT_MAX_STEPS || r.step >= r.nsteps)
			continue;
		alive = ts_rollout_running(&r);
		bpf_map_lookup_elem(m->backends, &r.from_id, &from);
		bpf_map_lookup_elem(m->backends, &r.to_id, &to);
		print_open_object(NULL);
		print_string(PRINT_ANY, "service", "rollout   %s: ", s->svc.name);
		print_string(PRINT_ANY, "from", "%s -> ", from.name);
		print_string(PRINT_ANY, "to", "%s, ", to.name);
		print_u64(PRINT_ANY, "step", "step %llu", r.step + 1);
		print_u64(PRINT_ANY, "steps", " of %llu", r.nsteps);
		print_u64(PRINT_ANY, "percent", " (%llu %% to ", r.percent[r.step]);
		print_string(PRINT_FP, NULL, "%s) ", to.name);
		print_u64(PRINT_JSON, "pid", NULL, r.pid);
		print_string(PRINT_JSON, "state", NULL, alive ? "running" : "interrupted");
		print_text("%s\n", alive ? "running"
					 : "INTERRUPTED: its weights stay; run it again, or set "
					   "the weights");
		print_close_object();
	}
	print_close_array();
	ts_config_free(&cfg);
}

/* The cgroup of load --cgroup: null when there is none. */
static void print_local(const struct ts_maps *m)
{
	struct ts_local_status ls;
	bool attached;

	ts_local_status(m->pin_dir, &m->owner, &ls);
	if (!ls.nlinks) {
		print_null("cgroup");
		return;
	}
	attached = ls.nlinks == ls.nexpected;
	print_open_object("cgroup");
	print_string(PRINT_ANY, "path", "cgroup    %s", ls.cgroup);
	print_u64(PRINT_ANY, "cgroup_id", " (id %llu)", ls.cgroup_id);
	print_bool(PRINT_JSON, "attached", NULL, attached);
	print_text("%s\n", attached ? "" : " PARTLY ATTACHED (run 'tcpshift load --cgroup' again)");
	print_open_object("programs");
	for (size_t i = 0; ts_local_hook_name(i); i++) {
		/* as text only those attached */
		if (ls.prog_ids[i])
			print_text("  %-16s", ts_local_hook_name(i));
		print_u64(ls.prog_ids[i] ? PRINT_ANY : PRINT_JSON, ts_local_hook_name(i),
			  " prog %llu\n", ls.prog_ids[i]);
	}
	print_close_object();
	print_close_object();
}

/* A device tcpshift was loaded on: its tc slot, and its XDP program (the
 * mode's, or in tc mode one left there). */
static void print_device(const struct ts_settings *s, __u32 ifindex, const struct ts_owner *owner)
{
	static const char *const state_names[] = {
		[TS_SLOT_FREE] = "not attached",
		[TS_SLOT_OURS] = "attached",
		[TS_SLOT_FOREIGN] = "foreign filter",
		[TS_SLOT_PARTIAL] = "partly attached",
	};
	char name[IF_NAMESIZE] = "?";
	__u32 prog;
	enum ts_slot st = ts_attached_prog((int)ifindex, owner, &prog);
	bool generic;
	__u32 xdp_id = ts_xdp_attached((int)ifindex, &generic);
	bool xdp_ours = xdp_id && ts_prog_is_ours(xdp_id, owner);
	/* whether it takes redirected frames now: a veth's peer may have
	 * lost GRO since load (doc/DESIGN.md, "XDP") */
	bool target = !xdp_ours || generic || ts_xdp_redirect_target((int)ifindex);

	if_indextoname(ifindex, name);
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "  %-16s", name);
	print_u64(PRINT_ANY, "ifindex", " ifindex %-4llu", ifindex);
	print_u64(st == TS_SLOT_OURS ? PRINT_ANY : PRINT_JSON, "prog_id", " prog %llu", prog);
	print_string(PRINT_JSON, "state", NULL, state_names[st]);
	print_u64(PRINT_JSON, "xdp_prog_id", NULL, xdp_ours ? xdp_id : 0);
	print_string(PRINT_JSON, "xdp_mode", NULL,
		     !xdp_ours ? "none" : generic ? "generic" : "native");
	if (xdp_ours)
		print_bool(PRINT_JSON, "xdp_redirect_target", NULL, target);
	if (st == TS_SLOT_OURS && xdp_ours)
		print_text(", xdp%s prog %u%s", generic ? " (generic)" : "", xdp_id,
			   target ? ""
				  : ", TAKES NO XDP REDIRECTS (turn GRO on at its peer, then "
				    "run 'tcpshift load')");
	else if (st == TS_SLOT_OURS && (s->flags & TS_SETTINGS_F_XDP))
		print_text(", XDP NOT ATTACHED%s",
			   xdp_id ? " (another program is there)" : " (run 'tcpshift load')");
	else if (st == TS_SLOT_FOREIGN)
		print_text(" NOT ATTACHED: another program holds tcpshift's tc slot");
	else if (st == TS_SLOT_PARTIAL)
		print_text(" PARTLY ATTACHED: ingress or egress is missing (run 'tcpshift load')");
	else if (st != TS_SLOT_OURS)
		print_text(" NOT ATTACHED (run 'tcpshift load')");
	print_text("\n");
	print_close_object();
}

/* The fill of every hash map the object pins (arrays are always full), from
 * the object's own list: a map added later is shown too. They were
 * validated by ts_maps_open_flags. */
static void print_maps(const char *pin_dir)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	size_t nmaps;

	print_text("maps\n");
	print_open_object("maps");
	if (ts_map_layouts(layout, &nmaps, NULL))
		nmaps = 0;
	for (size_t i = 0; i < nmaps; i++) {
		char path[TS_PIN_DIR_MAX + 16];
		struct bpf_map_info info = {};
		__u32 len = sizeof(info), n;
		int fd;

		if (layout[i].type != BPF_MAP_TYPE_HASH && layout[i].type != BPF_MAP_TYPE_LRU_HASH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layout[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		ts_count_entries(fd, layout[i].key_size, &n);
		print_text("  %-16s ", layout[i].name);
		print_open_object(layout[i].name);
		print_u64(PRINT_ANY, "entries", "%llu", n);
		print_u64(PRINT_ANY, "max_entries", " / %llu\n",
			  bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.max_entries);
		print_close_object();
		close(fd);
	}
	print_close_object();
}

/* This tcpshift's version, the running object's (the build that loaded it)
 * and the instance's map layout. */
static void print_version(const struct ts_settings *s, const struct ts_owner *own, bool gone)
{
	char object[64];
	int r = gone ? -ENOENT : ts_object_version(s, own, object, sizeof(object));

	print_string(PRINT_ANY, "version", "version   %s (this tcpshift)\n", ts_version());
	if (r) {
		print_null("object_version");
		print_text("object    %s\n", r == -ENODATA ? "loaded by a release before 0.3.0 "
							       "(it tells no version)"
					 : "none attached");
	} else {
		print_string(PRINT_ANY, "object_version", "object    %s (loaded it)\n", object);
	}
	print_u64(PRINT_ANY, "layout", "layout    %llu\n", s->abi_version);
}

int cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	int gone = 0;
	const char *mode;
	__u64 counters[TS_CNT_MAX];
	struct ts_settings s;
	struct ts_maps m;
	struct ts_err err;
	bool finished, sync;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	/* a load that did not finish is shown as such */
	if (ts_maps_open_flags(&m, ctx->pin_dir, TS_OPEN_INCOMPLETE, &err) ||
	    ts_maps_lock_shared(&m, &err)) {
		ts_maps_close(&m);
		return cli_report(&err);
	}
	/* from another namespace, the ifindexes would name other devices */
	if (ts_settings_read(&m, &s, &err) ||
	    (s.ndevices && (gone = ts_settings_check_netns(&s, &err)) < 0) ||
	    ts_counters_read(&m, counters, &err)) {
		ts_maps_close(&m);
		return cli_report(&err);
	}
	mode = ts_settings_mode(&s);
	finished = s.abi_version && !(s.flags & TS_SETTINGS_F_LOADING);
	sync = s.flags & TS_SETTINGS_F_SYNC;

	print_start(stdout, ctx->json, 0);
	print_open_object(NULL);
	print_string(PRINT_ANY, "pin_dir", "pin dir   %s\n", ctx->pin_dir);
	print_version(&s, &m.owner, gone == TS_NETNS_GONE);
	print_u64(PRINT_ANY, "seed", "seed      0x%08llx\n", s.seed);
	print_string(PRINT_ANY, "forward", "forward   %s\n",
		     s.flags & TS_SETTINGS_F_FORWARD_FIB ? "fib" : "stack");
	print_string(PRINT_ANY, "mode", "mode      %s\n", mode);
	print_string(PRINT_JSON, "handshakes", NULL, ts_settings_handshakes(&s));
	if (s.flags & TS_SETTINGS_F_XDP)
		print_text("handshakes %s\n", !strcmp(ts_settings_handshakes(&s), "xdp")
						      ? "xdp: whole connections at XDP"
						      : "tc: netfilter judges new connections");
	print_bool(PRINT_JSON, "sync", NULL, sync);
	print_text("sync      %s\n", sync ? "on: pin events go to 'tcpshift sync' (sync_lost "
					      "counts those it did not take)"
					    : "off");
	print_bool(PRINT_JSON, "load_finished", NULL, finished);
	if (!finished)
		print_text("load      DID NOT FINISH: run 'tcpshift load' again, or "
			   "'tcpshift unload'\n");
	print_bool(PRINT_JSON, "netns_gone", NULL, gone == TS_NETNS_GONE);
	print_text("devices\n");
	if (gone == TS_NETNS_GONE)
		print_text("  the network namespace load ran in no longer exists: its devices and "
			   "filters went with it ('tcpshift load' here, or 'tcpshift unload')\n");
	print_open_array("devices");
	for (__u32 i = 0; gone != TS_NETNS_GONE && i < s.ndevices && i < TS_MAX_DEVICES; i++)
		print_device(&s, s.ifindex[i], &m.owner);
	print_close_array();
	print_local(&m);
	print_maps(ctx->pin_dir);
	print_rollouts(&m);
	print_counters(counters);
	print_close_object();
	r = print_end();
	ts_maps_close(&m);
	return r;
}
