// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift status */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift status\n"
	"\n"
	"Show the pin directory, the flow hash seed, the forwarding mode, the mode (tc or\n"
	"xdp) and whether 'tcpshift sync' takes the pin events, the devices tcpshift is\n"
	"attached to with their program ids (and XDP program ids in xdp mode), the\n"
	"cgroup whose clients are balanced at connect() (see load) with its programs'\n"
	"ids, rollouts running or interrupted, how full each map is, and the global\n"
	"counters.\n"
	"\n"
	"Example:\n"
	"  tcpshift status\n";

/* Rollouts in progress, and those whose process is gone (interrupted: the
 * weights of their last step stay). */
static json_object *rollouts(const struct cli_ctx *ctx, const struct ts_maps *m)
{
	json_object *arr = json_object_new_array();
	struct ts_config cfg = {};
	struct ts_err err;

	if (ts_config_read(m, &cfg, &err))
		return arr;
	for (size_t i = 0; i < cfg.nservices; i++) {
		struct ts_service_cfg *s = &cfg.services[i];
		struct ts_backend from = {}, to = {};
		struct ts_rollout r = {};
		bool alive;
		json_object *o;
		__u32 pct;

		if (bpf_map_lookup_elem(m->rollouts, &s->svc.id, &r) || !r.pid ||
		    r.nsteps > TS_ROLLOUT_MAX_STEPS || r.step >= r.nsteps)
			continue;
		alive = kill((pid_t)r.pid, 0) == 0 || errno == EPERM;
		bpf_map_lookup_elem(m->backends, &r.from_id, &from);
		bpf_map_lookup_elem(m->backends, &r.to_id, &to);
		pct = r.percent[r.step];
		o = json_object_new_object();
		json_object_object_add(o, "service", json_object_new_string(s->svc.name));
		json_object_object_add(o, "from", json_object_new_string(from.name));
		json_object_object_add(o, "to", json_object_new_string(to.name));
		json_object_object_add(o, "step", json_object_new_int64(r.step + 1));
		json_object_object_add(o, "steps", json_object_new_int64(r.nsteps));
		json_object_object_add(o, "percent", json_object_new_int64(pct));
		json_object_object_add(o, "pid", json_object_new_int64(r.pid));
		json_object_object_add(o, "state",
				       json_object_new_string(alive ? "running" : "interrupted"));
		json_object_array_add(arr, o);
		if (!ctx->json)
			printf("rollout   %s: %s -> %s, step %u of %u (%u %% to %s) %s\n",
			       s->svc.name, from.name, to.name, r.step + 1, r.nsteps, pct, to.name,
			       alive ? "running" : "INTERRUPTED: its weights stay; run it again, or "
						   "set the weights");
	}
	ts_config_free(&cfg);
	return arr;
}

static json_object *map_fill(int fd, size_t key_size, __u32 *entries, __u32 *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	json_object *o = json_object_new_object();

	ts_count_entries(fd, key_size, entries);
	*max = bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.max_entries;
	json_object_object_add(o, "entries", json_object_new_int64(*entries));
	json_object_object_add(o, "max_entries", json_object_new_int64(*max));
	return o;
}

/* The cgroup of load --cgroup: null when there is none. */
static json_object *local_status(const struct cli_ctx *ctx, const struct ts_maps *m)
{
	struct ts_local_status ls;
	json_object *o, *progs;

	ts_local_status(m->pin_dir, &m->owner, &ls);
	if (!ls.nlinks)
		return NULL;
	o = json_object_new_object();
	progs = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(ls.cgroup));
	json_object_object_add(o, "cgroup_id", json_object_new_int64((int64_t)ls.cgroup_id));
	json_object_object_add(o, "attached",
			       json_object_new_boolean(ls.nlinks == ls.nexpected));
	json_object_object_add(o, "programs", progs);
	if (!ctx->json)
		printf("cgroup    %s (id %llu)%s\n", ls.cgroup, (unsigned long long)ls.cgroup_id,
		       ls.nlinks == ls.nexpected
			       ? ""
			       : " PARTLY ATTACHED (run 'tcpshift load --cgroup' again)");
	for (size_t i = 0; ts_local_hook_name(i); i++) {
		json_object_object_add(progs, ts_local_hook_name(i),
				       json_object_new_int64(ls.prog_ids[i]));
		if (!ctx->json && ls.prog_ids[i])
			printf("  %-16s prog %u\n", ts_local_hook_name(i), ls.prog_ids[i]);
	}
	return o;
}

int cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	size_t nmaps;
	int gone = 0;
	json_object *root, *devs, *mo;
	const char *mode;
	__u64 counters[TS_CNT_MAX];
	struct ts_settings s;
	struct ts_maps m;
	struct ts_err err;
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
	mode = !(s.flags & TS_SETTINGS_F_XDP)		 ? "tc"
	       : s.flags & TS_SETTINGS_F_XDP_GENERIC ? "xdp-generic"
						     : "xdp";
	root = json_object_new_object();
	devs = json_object_new_array();
	mo = json_object_new_object();
	json_object_object_add(root, "pin_dir", json_object_new_string(ctx->pin_dir));
	json_object_object_add(root, "seed", json_object_new_int64(s.seed));
	json_object_object_add(root, "forward", json_object_new_string(
		s.flags & TS_SETTINGS_F_FORWARD_FIB ? "fib" : "stack"));
	json_object_object_add(root, "mode", json_object_new_string(mode));
	json_object_object_add(root, "load_finished",
			       json_object_new_boolean(s.abi_version &&
						       !(s.flags & TS_SETTINGS_F_LOADING)));
	json_object_object_add(root, "netns_gone", json_object_new_boolean(gone == TS_NETNS_GONE));
	json_object_object_add(root, "sync",
			       json_object_new_boolean(s.flags & TS_SETTINGS_F_SYNC));
	json_object_object_add(root, "devices", devs);
	json_object_object_add(root, "maps", mo);
	if (!ctx->json)
		printf("pin dir   %s\nseed      0x%08x\nforward   %s\nmode      %s\nsync      %s\n"
		       "%sdevices\n",
		       ctx->pin_dir, s.seed, s.flags & TS_SETTINGS_F_FORWARD_FIB ? "fib" : "stack",
		       mode,
		       s.flags & TS_SETTINGS_F_SYNC
			       ? "on: pin events go to 'tcpshift sync' (sync_lost counts those "
				 "it did not take)"
			       : "off",
		       !s.abi_version || (s.flags & TS_SETTINGS_F_LOADING)
			       ? "load      DID NOT FINISH: run 'tcpshift load' again, or "
				 "'tcpshift unload'\n"
			       : "");
	if (gone == TS_NETNS_GONE && !ctx->json)
		printf("  the network namespace load ran in no longer exists: its devices and "
		       "filters went with it ('tcpshift load' here, or 'tcpshift unload')\n");
	for (__u32 i = 0; gone != TS_NETNS_GONE && i < s.ndevices && i < TS_MAX_DEVICES; i++) {
		static const char *const state_names[] = {
			[TS_SLOT_FREE] = "not attached",
			[TS_SLOT_OURS] = "attached",
			[TS_SLOT_FOREIGN] = "foreign filter",
			[TS_SLOT_PARTIAL] = "partly attached",
		};
		char name[IF_NAMESIZE] = "?", xdp_state[64] = "";
		__u32 prog;
		enum ts_slot st = ts_attached_prog((int)s.ifindex[i], &m.owner, &prog);
		json_object *d = json_object_new_object();
		bool generic;
		__u32 xdp_id = ts_xdp_attached((int)s.ifindex[i], &generic);
		bool xdp_ours = xdp_id && ts_prog_is_ours(xdp_id, &m.owner);

		if_indextoname(s.ifindex[i], name);
		json_object_object_add(d, "name", json_object_new_string(name));
		json_object_object_add(d, "ifindex", json_object_new_int64(s.ifindex[i]));
		json_object_object_add(d, "prog_id", json_object_new_int64(prog));
		json_object_object_add(d, "state", json_object_new_string(state_names[st]));
		/* XDP: the mode's program, or in tc mode a program left there */
		if (xdp_ours)
			snprintf(xdp_state, sizeof(xdp_state), ", xdp%s prog %u",
				 generic ? " (generic)" : "", xdp_id);
		else if (s.flags & TS_SETTINGS_F_XDP)
			snprintf(xdp_state, sizeof(xdp_state), ", XDP NOT ATTACHED%s",
				 xdp_id ? " (another program is there)" : " (run 'tcpshift load')");
		json_object_object_add(d, "xdp_prog_id", json_object_new_int64(xdp_ours ? xdp_id : 0));
		json_object_object_add(d, "xdp_mode", json_object_new_string(
			!xdp_ours ? "none" : generic ? "generic" : "native"));
		json_object_array_add(devs, d);
		if (!ctx->json) {
			if (st == TS_SLOT_OURS)
				printf("  %-16s ifindex %-4u prog %u%s\n", name, s.ifindex[i], prog,
				       xdp_state);
			else if (st == TS_SLOT_FOREIGN)
				printf("  %-16s ifindex %-4u NOT ATTACHED: another program holds "
				       "tcpshift's tc slot\n",
				       name, s.ifindex[i]);
			else if (st == TS_SLOT_PARTIAL)
				printf("  %-16s ifindex %-4u PARTLY ATTACHED: ingress or egress is "
				       "missing (run 'tcpshift load')\n",
				       name, s.ifindex[i]);
			else
				printf("  %-16s ifindex %-4u NOT ATTACHED (run 'tcpshift load')\n",
				       name, s.ifindex[i]);
		}
	}
	json_object_object_add(root, "cgroup", local_status(ctx, &m));
	if (!ctx->json)
		printf("maps\n");
	/* The fill of every hash map the object pins (arrays are always full),
	 * from the object's own list: a map added later is shown too. They
	 * were validated by ts_maps_open_flags. */
	if (ts_map_layouts(layout, &nmaps, NULL))
		nmaps = 0;
	for (size_t i = 0; i < nmaps; i++) {
		char path[TS_PIN_DIR_MAX + 16];
		__u32 n, max;
		int fd;

		if (layout[i].type != BPF_MAP_TYPE_HASH && layout[i].type != BPF_MAP_TYPE_LRU_HASH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", ctx->pin_dir, layout[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		json_object_object_add(mo, layout[i].name,
				       map_fill(fd, layout[i].key_size, &n, &max));
		close(fd);
		if (!ctx->json)
			printf("  %-16s %u / %u\n", layout[i].name, n, max);
	}
	json_object_object_add(root, "rollouts", rollouts(ctx, &m));
	json_object_object_add(root, "counters", cli_counters(ctx, counters));
	if (ctx->json)
		cli_print_json(root);
	else
		json_object_put(root);
	ts_maps_close(&m);
	return 0;
}
