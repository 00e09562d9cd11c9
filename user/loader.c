// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Program lifecycle: open the skeleton with its maps pinned under the pin
 * directory (libbpf reuses pins that are there: an upgrade keeps every flow),
 * load, attach to tc ingress (clsact, direct action); detach and unpin.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "tcpshift.skel.h"

/* Our filter's identity on every device: tc handle and priority. */
#define TS_TC_HANDLE	0x75
#define TS_TC_PRIORITY	0x75

static int pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	return snprintf(buf, len, "%s/%s", dir, name) >= (int)len ? -ENAMETOOLONG : 0;
}

/* The pin directory must be on bpffs; mount bpffs on /sys/fs/bpf if that is
 * where it goes and nothing is mounted there yet. */
static int prepare_pin_dir(const char *dir, struct ts_err *err)
{
	char parent[TS_PIN_DIR_MAX];
	struct stat st;
	int r;

	if (!stat(dir, &st))
		return ts_check_bpffs(dir, err);
	snprintf(parent, sizeof(parent), "%s", dir);
	dirname(parent);
	if (!strcmp(parent, "/sys/fs/bpf") && ts_check_bpffs(dir, NULL) &&
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot mount bpffs on /sys/fs/bpf: %s",
			       strerror(errno));
	r = ts_check_bpffs(dir, err);
	if (r)
		return r;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create %s: %s", dir, strerror(errno));
	return 0;
}

/* The kernel's description of pin_dir/name: 0, or -errno (-ENOENT: no pin). */
static int pinned_info(const char *pin_dir, const char *name, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);
	char path[TS_PIN_DIR_MAX];
	int fd, r = 0;

	memset(info, 0, sizeof(*info));
	if (pin_path(path, sizeof(path), pin_dir, name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, info, &len))
		r = -errno;
	close(fd);
	return r;
}

/* The pinned settings, when their layout is ours. */
static int pinned_settings(const char *pin_dir, struct ts_settings *s)
{
	struct bpf_map_info info;
	__u32 zero = 0;
	char path[TS_PIN_DIR_MAX];
	int fd, r;

	memset(s, 0, sizeof(*s));
	r = pinned_info(pin_dir, "settings", &info);
	if (r)
		return r;
	if (info.value_size != sizeof(*s))
		return -EPROTO;
	if (pin_path(path, sizeof(path), pin_dir, "settings"))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	r = bpf_map_lookup_elem(fd, &zero, s) ? -errno : 0;
	close(fd);
	return r;
}

/*
 * Maps pinned by another version with another layout are refused before
 * anything reads them (libbpf would refuse to reuse them too, with a less
 * helpful message); the ABI version in settings catches a change of meaning
 * that kept the sizes.
 */
static int check_pinned_layout(struct tcpshift_bpf *skel, const char *pin_dir,
			       struct ts_err *err)
{
	struct ts_settings s;
	struct bpf_map *map;

	bpf_object__for_each_map(map, skel->obj) {
		struct ts_map_layout l = {
			.type = bpf_map__type(map),
			.key_size = bpf_map__key_size(map),
			.value_size = bpf_map__value_size(map),
			.map_flags = bpf_map__map_flags(map),
		};
		struct bpf_map_info info;
		char path[TS_PIN_DIR_MAX];
		int fd, r;

		if (bpf_map__is_internal(map) || !bpf_map__pin_path(map))
			continue;
		if (pin_path(path, sizeof(path), pin_dir, bpf_map__name(map)))
			return ts_fail(err, TS_ERR_USAGE, "pin directory %s is too long", pin_dir);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		r = ts_map_check(fd, path, &l, err);
		close(fd);
		if (r)
			return r;
		if (pinned_info(pin_dir, bpf_map__name(map), &info) ||
		    info.max_entries == bpf_map__max_entries(map))
			continue;
		return ts_fail(err, TS_ERR_RUNTIME,
			       "pinned map %s/%s has another layout (%u entries; this tcpshift "
			       "expects %u): it was written by another version; 'tcpshift unload' "
			       "first (pinned flows are lost)",
			       pin_dir, bpf_map__name(map), info.max_entries,
			       bpf_map__max_entries(map));
	}
	if (!pinned_settings(pin_dir, &s) && s.abi_version && s.abi_version != TS_ABI_VERSION)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the maps in %s have layout version %u, this tcpshift has %u: "
			       "'tcpshift unload' first (pinned flows are lost)",
			       pin_dir, s.abi_version, TS_ABI_VERSION);
	return 0;
}

/*
 * Open and load the object. With m (a dry run for `pick`) on the maps already
 * opened and validated, pinning nothing; otherwise with its maps pinned under
 * pin_dir (reused when there). max_flows 0: keep the pinned size, or the
 * default.
 */
static struct tcpshift_bpf *open_load(const char *pin_dir, const struct ts_maps *m,
				      __u32 max_flows, int forward_fib, struct ts_err *err)
{
	struct ts_settings loaded;
	LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_dir);
	struct tcpshift_bpf *skel;
	struct bpf_map_info flows;
	struct bpf_map *map;
	int r;

	skel = tcpshift_bpf__open_opts(&open_opts);
	if (!skel) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot open the BPF object: %s", strerror(errno));
		return NULL;
	}
	if (m) {
		__u32 zero = 0;

		/* No command but load creates a pin (invariant 9): every map
		 * is one of the validated fds, or private to this process. */
		bpf_object__for_each_map(map, skel->obj) {
			const char *name = bpf_map__name(map);
			int fd = -1;

			if (bpf_map__is_internal(map))
				continue;
			bpf_map__set_pin_path(map, NULL);
			for (size_t i = 0; ts_pin_name(i); i++)
				if (!strcmp(ts_pin_name(i), name))
					fd = ts_maps_fd(m, i);
			if (fd >= 0 && (r = bpf_map__reuse_fd(map, fd))) {
				ts_fail(err, TS_ERR_RUNTIME, "cannot use the pinned map %s: %s",
					name, strerror(-r));
				goto fail;
			}
		}
		skel->rodata->dry_run = true;
		skel->rodata->forward_fib = !bpf_map_lookup_elem(m->settings, &zero, &loaded) &&
					    (loaded.flags & TS_SETTINGS_F_FORWARD_FIB);
		goto load;
	}
	/* An upgrade keeps the flow table's size. */
	if (!pinned_info(pin_dir, "flows", &flows)) {
		if (max_flows && max_flows != flows.max_entries) {
			ts_fail(err, TS_ERR_USAGE,
				"--max-flows %u differs from the loaded %u: the flow table cannot be "
				"resized in place; 'tcpshift unload' first",
				max_flows, flows.max_entries);
			goto fail;
		}
		max_flows = flows.max_entries;
	}
	if (!max_flows)
		max_flows = TS_DEFAULT_MAX_FLOWS;
	bpf_map__set_max_entries(skel->maps.flows, max_flows);
	bpf_map__set_max_entries(skel->maps.half_open, TS_HALF_OPEN_SIZE(max_flows));
	if (check_pinned_layout(skel, pin_dir, err))
		goto fail;
	if (forward_fib < 0)
		forward_fib = !pinned_settings(pin_dir, &loaded) &&
			      (loaded.flags & TS_SETTINGS_F_FORWARD_FIB);
	skel->rodata->forward_fib = forward_fib;
load:
	r = tcpshift_bpf__load(skel);
	if (r) {
		ts_fail(err, TS_ERR_RUNTIME,
			"cannot load the BPF program and maps under %s: %s (run with -v for "
			"libbpf's log)",
			pin_dir, strerror(-r));
		goto fail;
	}
	return skel;
fail:
	tcpshift_bpf__destroy(skel);
	return NULL;
}

struct tcpshift_bpf *ts_bpf_open_dry_run(const struct ts_maps *m, struct ts_err *err)
{
	return open_load(m->pin_dir, m, 0, -1, err);
}

struct tcpshift_bpf *ts_bpf_open_load(const struct ts_load_opts *o, struct ts_err *err)
{
	struct tcpshift_bpf *skel;
	struct ts_settings cur;
	__u32 zero = 0;

	if (ts_check_pin_dir(o->pin_dir, err))
		return NULL;
	skel = open_load(o->pin_dir, NULL, o->max_flows, o->forward_fib, err);
	if (!skel)
		return NULL;
	if (bpf_map__lookup_elem(skel->maps.settings, &zero, sizeof(zero), &cur, sizeof(cur), 0)) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot read settings: %s", strerror(errno));
		goto fail;
	}
	if (!cur.abi_version)
		cur.seed = TS_DEFAULT_SEED;
	if (o->seed_set)
		cur.seed = o->seed;
	cur.abi_version = TS_ABI_VERSION;
	cur.flags = skel->rodata->forward_fib ? cur.flags | TS_SETTINGS_F_FORWARD_FIB
					      : cur.flags & ~TS_SETTINGS_F_FORWARD_FIB;
	if (bpf_map__update_elem(skel->maps.settings, &zero, sizeof(zero), &cur, sizeof(cur), 0)) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot write settings: %s", strerror(errno));
		goto fail;
	}
	return skel;
fail:
	tcpshift_bpf__destroy(skel);
	return NULL;
}

void ts_bpf_destroy(struct tcpshift_bpf *skel)
{
	tcpshift_bpf__destroy(skel);
}

int ts_bpf_prog_fd(struct tcpshift_bpf *skel)
{
	return bpf_program__fd(skel->progs.tcpshift_tc);
}

static void tc_ids(int ifindex, struct bpf_tc_hook *hook, struct bpf_tc_opts *opts)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = BPF_TC_INGRESS;
	memset(opts, 0, sizeof(*opts));
	opts->sz = sizeof(*opts);
	opts->handle = TS_TC_HANDLE;
	opts->priority = TS_TC_PRIORITY;
}

__u32 ts_attached_prog(int ifindex)
{
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;

	tc_ids(ifindex, &hook, &opts);
	if (bpf_tc_query(&hook, &opts))
		return 0;
	return opts.prog_id;
}

/* Attach (or replace, on an upgrade) our filter; *own is set when this call
 * created the clsact qdisc. */
static int attach_dev(int prog_fd, int ifindex, bool *own, struct ts_err *err)
{
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;
	char name[IF_NAMESIZE] = "?";
	int r;

	if_indextoname((unsigned int)ifindex, name);
	tc_ids(ifindex, &hook, &opts);
	r = bpf_tc_hook_create(&hook);
	if (r && r != -EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot add a clsact qdisc to %s: %s", name,
			       strerror(-r));
	*own = r == 0;
	opts.prog_fd = prog_fd;
	opts.flags = BPF_TC_F_REPLACE;
	r = bpf_tc_attach(&hook, &opts);
	if (r) {
		if (*own) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
		return ts_fail(err, TS_ERR_RUNTIME, "cannot attach to tc ingress of %s: %s", name,
			       strerror(-r));
	}
	return 0;
}

static void detach_dev(int ifindex, bool own_clsact)
{
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;

	tc_ids(ifindex, &hook, &opts);
	bpf_tc_detach(&hook, &opts);
	if (own_clsact) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
}

static int find_ifindex(const struct ts_settings *s, __u32 ifindex)
{
	for (__u32 i = 0; i < s->ndevices && i < TS_MAX_DEVICES; i++)
		if (s->ifindex[i] == ifindex)
			return (int)i;
	return -1;
}

static void warn_forwarding(const char *path, const char *name)
{
	char c = '1';
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	if (fread(&c, 1, 1, f) == 1 && c == '0')
		fprintf(stderr,
			"tcpshift: warning: %s is 0: the gateway will not forward rewritten "
			"packets (sysctl -w %s=1)\n",
			name, name);
	fclose(f);
}

int ts_load(const struct ts_load_opts *o, struct ts_err *err)
{
	struct ts_settings old = {}, next = {};
	struct tcpshift_bpf *skel = NULL;
	__u32 zero = 0;
	int prog_fd, lock_fd = -1, r;

	r = ts_check_root(err);
	if (r)
		return r;
	if (!o->ndevs)
		return ts_fail(err, TS_ERR_USAGE, "load needs at least one --dev IFACE");
	if (o->ndevs > TS_MAX_DEVICES)
		return ts_fail(err, TS_ERR_USAGE, "at most %d devices", TS_MAX_DEVICES);
	for (size_t i = 0; i < o->ndevs; i++) {
		__u32 ifindex = if_nametoindex(o->devs[i]);

		if (!ifindex)
			return ts_fail(err, TS_ERR_USAGE,
				       "device '%s' does not exist in this network namespace: see "
				       "'ip link'",
				       o->devs[i]);
		if (find_ifindex(&next, ifindex) < 0)
			next.ifindex[next.ndevices++] = ifindex;
	}
	r = prepare_pin_dir(o->pin_dir, err);
	if (r)
		return r;
	lock_fd = open(o->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", o->pin_dir, strerror(errno));
		goto out;
	}
	skel = ts_bpf_open_load(o, err);
	if (!skel) {
		r = -err->status;
		goto out;
	}
	/* the devices attached before (ts_bpf_open_load keeps them) */
	if (bpf_map__lookup_elem(skel->maps.settings, &zero, sizeof(zero), &old, sizeof(old), 0)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read settings: %s", strerror(errno));
		goto out;
	}
	prog_fd = ts_bpf_prog_fd(skel);
	for (__u32 i = 0; i < next.ndevices; i++) {
		int was = find_ifindex(&old, next.ifindex[i]);
		bool own = false;

		r = attach_dev(prog_fd, (int)next.ifindex[i], &own, err);
		if (r) {
			/* Undo what this command attached; devices attached
			 * before keep their (old or new) program. */
			for (__u32 j = 0; j < i; j++)
				if (find_ifindex(&old, next.ifindex[j]) < 0)
					detach_dev((int)next.ifindex[j],
						   next.dev_flags[j] & TS_DEV_F_OWN_CLSACT);
			goto out;
		}
		next.dev_flags[i] = was >= 0 ? old.dev_flags[was] : own ? TS_DEV_F_OWN_CLSACT : 0;
	}
	/* `load` names the whole set: devices no longer named are detached. */
	for (__u32 i = 0; i < old.ndevices && i < TS_MAX_DEVICES; i++)
		if (find_ifindex(&next, old.ifindex[i]) < 0)
			detach_dev((int)old.ifindex[i], old.dev_flags[i] & TS_DEV_F_OWN_CLSACT);

	next.abi_version = old.abi_version;
	next.seed = old.seed;
	next.flags = old.flags;
	if (bpf_map__update_elem(skel->maps.settings, &zero, sizeof(zero), &next, sizeof(next),
				 0)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot write settings: %s", strerror(errno));
		goto out;
	}
	warn_forwarding("/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward");
	r = 0;
out:
	if (skel)
		ts_bpf_destroy(skel);
	if (lock_fd >= 0)
		close(lock_fd);
	return r;
}

/*
 * Detach and unpin, touching only what is provably this instance's
 * (invariant 9): every pin is validated against the object's layout before
 * anything is read or removed, a pin directory holding anything else is
 * refused whole, and the directory itself goes only when it is empty.
 */
int ts_unload(const char *pin_dir, struct ts_err *err)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	char path[TS_PIN_DIR_MAX];
	struct ts_settings s;
	struct ts_maps m;
	struct stat st;
	size_t n;
	__u32 zero = 0;
	int r;

	r = ts_check_root(err);
	if (r)
		return r;
	r = ts_check_pin_dir(pin_dir, err);
	if (r)
		return r;
	if (stat(pin_dir, &st))
		return ts_fail(err, TS_ERR_RUNTIME, "not loaded under %s: nothing to unload",
			       pin_dir);
	r = ts_check_bpffs(pin_dir, err);
	r = r ?: ts_map_layouts(layout, &n, err);
	/* a load that did not finish is unloaded too: pins may be missing */
	r = r ?: ts_maps_open_flags(&m, pin_dir, TS_OPEN_INCOMPLETE | TS_OPEN_MISSING_OK, err);
	if (r)
		return r;
	if (m.settings >= 0)
		r = ts_maps_lock(&m, err);
	else if ((m.lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		 ts_flock_wait(m.lock_fd, LOCK_EX, pin_dir))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", pin_dir, strerror(errno));
	if (r)
		goto out;
	/* Detach first, so no packet meets a program whose maps are gone. */
	if (m.settings >= 0 && !bpf_map_lookup_elem(m.settings, &zero, &s))
		for (__u32 i = 0; i < s.ndevices && i < TS_MAX_DEVICES; i++)
			detach_dev((int)s.ifindex[i], s.dev_flags[i] & TS_DEV_F_OWN_CLSACT);
	/* the pins ts_maps_open_flags validated: the layout's, where present */
	for (size_t i = 0; i < n; i++)
		if (!pin_path(path, sizeof(path), pin_dir, layout[i].name) && unlink(path) &&
		    errno != ENOENT) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot remove %s: %s", path,
				    strerror(errno));
			goto out;
		}
	if (rmdir(pin_dir))
		r = ts_fail(err, TS_ERR_RUNTIME,
			    "unloaded, but %s stays: %s (it holds something that is not "
			    "tcpshift's, left as it was)",
			    pin_dir, strerror(errno));
out:
	ts_maps_close(&m);
	return r;
}
