// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Program lifecycle. Open the skeleton with the instance's maps pinned under
 * the pin directory (pins already there are reused once their layout is
 * checked: an upgrade keeps every flow), or, for `pick`, on the maps already
 * opened and validated, pinning nothing. Load; attach to every device at tc
 * ingress and egress (clsact, direct action), in xdp mode also the XDP
 * program, and with --cgroup the cgroup programs (local.c): all or nothing
 * (ts_load). Detach and unpin (ts_unload), touching only what is provably
 * this instance's.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/sockios.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
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
static int check_pinned_layout(struct tcpshift_bpf *skel, const char *pin_dir, bool migrating,
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
	/* an older layout being migrated: its settings are made anew */
	if (!migrating && !pinned_settings(pin_dir, &s) && s.abi_version &&
	    s.abi_version != TS_ABI_VERSION)
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
static int skel_map_fd(void *ctx, const char *name);

static struct tcpshift_bpf *open_load(const char *pin_dir, const struct ts_maps *m,
				      __u32 max_flows, int forward_fib, int xdp_handshakes,
				      bool local, const struct ts_migration *mg,
				      struct ts_err *err)
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
	ts_local_autoload(skel, local);
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
	bpf_map__set_max_entries(skel->maps.replies, max_flows);
	bpf_map__set_max_entries(skel->maps.direct, TS_HALF_OPEN_SIZE(max_flows));
	bpf_map__set_max_entries(skel->maps.direct_pending, TS_HALF_OPEN_SIZE(max_flows));
	bpf_map__set_max_entries(skel->maps.local_flows, max_flows);
	/* an older layout's changed maps: made anew here, pinned at the end of
	 * the migration (migrate.c) */
	bpf_object__for_each_map(map, skel->obj)
		if (mg && !bpf_map__is_internal(map) &&
		    ts_migration_remakes(mg, bpf_map__name(map)))
			bpf_map__set_pin_path(map, NULL);
	if (check_pinned_layout(skel, pin_dir, mg && mg->from, err))
		goto fail;
	if (forward_fib < 0 && mg && mg->from)
		forward_fib = !!(mg->settings.flags & TS_SETTINGS_F_FORWARD_FIB);
	else if (forward_fib < 0)
		forward_fib = !pinned_settings(pin_dir, &loaded) &&
			      (loaded.flags & TS_SETTINGS_F_FORWARD_FIB);
	skel->rodata->forward_fib = forward_fib;
	/* as given with --mode, or as loaded (layout 5 had no such flag) */
	if (xdp_handshakes < 0)
		xdp_handshakes = !(mg && mg->from) && !pinned_settings(pin_dir, &loaded) &&
				 (loaded.flags & TS_SETTINGS_F_XDP_HANDSHAKES);
	skel->rodata->xdp_handshakes = xdp_handshakes;
load:
	/* read back by status and the agent (version.c) */
	strncpy((char *)skel->rodata->tcpshift_version, ts_version(),
		sizeof(skel->rodata->tcpshift_version) - 1);
	r = tcpshift_bpf__load(skel);
	if (r) {
		ts_fail(err, TS_ERR_RUNTIME,
			"cannot load the BPF program and maps under %s: %s (run with -v for "
			"libbpf's log)",
			pin_dir, strerror(-r));
		goto fail;
	}
	if (mg && mg->from && bpf_map__update_elem(skel->maps.settings, &(__u32){ 0 }, sizeof(__u32),
						   &mg->settings, sizeof(mg->settings), 0)) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot write the migrated settings: %s",
			strerror(errno));
		goto fail;
	}
	/* the maps an older layout had otherwise: filled before any device
	 * runs these programs */
	if (mg && mg->from && ts_migration_fill(mg, pin_dir, skel_map_fd, skel, err))
		goto fail;
	return skel;
fail:
	tcpshift_bpf__destroy(skel);
	return NULL;
}

struct tcpshift_bpf *ts_bpf_open_dry_run(const struct ts_maps *m, struct ts_err *err)
{
	return open_load(m->pin_dir, m, 0, -1, 0, false, NULL, err);
}

struct tcpshift_bpf *ts_bpf_open_load(const struct ts_load_opts *o, struct ts_err *err)
{
	struct tcpshift_bpf *skel;
	struct ts_settings cur;
	__u32 zero = 0;

	if (ts_check_pin_dir(o->pin_dir, err))
		return NULL;
	skel = open_load(o->pin_dir, NULL, o->max_flows, o->forward_fib,
			 o->mode < 0 ? -1 : o->mode == TS_MODE_XDP && o->handshakes == TS_HANDSHAKES_XDP,
			 o->cgroup != NULL, o->migration, err);
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
	/* the mode: as given, or as loaded (a first load: tc) */
	if (o->mode >= 0) {
		cur.flags &= ~(TS_SETTINGS_F_XDP | TS_SETTINGS_F_XDP_GENERIC |
			       TS_SETTINGS_F_XDP_HANDSHAKES);
		if (o->mode == TS_MODE_XDP)
			cur.flags |= TS_SETTINGS_F_XDP |
				     (o->xdp_generic ? TS_SETTINGS_F_XDP_GENERIC : 0);
	}
	/* what the object was built for (open_load): given, or as loaded */
	cur.flags = skel->rodata->xdp_handshakes ? cur.flags | TS_SETTINGS_F_XDP_HANDSHAKES
						 : cur.flags & ~TS_SETTINGS_F_XDP_HANDSHAKES;
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

int ts_bpf_egress_prog_fd(struct tcpshift_bpf *skel)
{
	return bpf_program__fd(skel->progs.tcpshift_tc_egress);
}

int ts_bpf_xdp_prog_fd(struct tcpshift_bpf *skel)
{
	return bpf_program__fd(skel->progs.tcpshift_xdp);
}

/*
 * What tcpshift attaches on every device: (program, tc direction) pairs, all
 * at our handle and priority. Attach, detach, ownership checks and status
 * loop over this table: a program for another direction is one line.
 */
static const struct attach_point {
	const char			*prog;	/* program name in the object */
	enum bpf_tc_attach_point	dir;
	const char			*dir_name;
} attach_points[] = {
	{ "tcpshift_tc", BPF_TC_INGRESS, "ingress" },
	/* the gateway's own ICMP errors (path MTU discovery through the VIP) */
	{ "tcpshift_tc_egress", BPF_TC_EGRESS, "egress" },
};

#define NATTACH (sizeof(attach_points) / sizeof(attach_points[0]))

static void tc_ids(int ifindex, const struct attach_point *ap, struct bpf_tc_hook *hook,
		   struct bpf_tc_opts *opts)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = ap->dir;
	memset(opts, 0, sizeof(*opts));
	opts->sz = sizeof(*opts);
	opts->handle = TS_TC_HANDLE;
	opts->priority = TS_TC_PRIORITY;
}

static __u32 map_id_of(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* Does program prog_id use one of the instance's maps? Then it is that
 * instance's: the proof of ownership of a tc filter. */
bool ts_prog_is_ours(__u32 prog_id, const struct ts_owner *own)
{
	struct bpf_prog_info info = {};
	__u32 ids[64], len = sizeof(info);
	bool found = false;
	int fd;

	if (!prog_id || !own->n)
		return false;
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return false;
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		for (__u32 i = 0; i < info.nr_map_ids && i < sizeof(ids) / sizeof(ids[0]); i++)
			for (size_t j = 0; j < own->n; j++)
				found |= ids[i] == own->map_id[j];
	close(fd);
	return found;
}

/* ---- XDP (load --mode xdp; doc/DESIGN.md, "XDP") ------------------------------ */

__u32 ts_xdp_attached(int ifindex, bool *generic)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	*generic = false;
	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;
	*generic = !q.drv_prog_id && !q.hw_prog_id && q.skb_prog_id;
	return q.drv_prog_id ?: q.hw_prog_id ?: q.skb_prog_id;
}

static int refuse_foreign_xdp(int ifindex, __u32 prog_id, struct ts_err *err)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char name[IF_NAMESIZE] = "?";
	int fd = bpf_prog_get_fd_by_id(prog_id);

	if (fd >= 0) {
		bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
	}
	if_indextoname((unsigned int)ifindex, name);
	return ts_fail(err, TS_ERR_RUNTIME,
		       "%s already has an XDP program (%u '%s') that is not this instance's: %s; "
		       "nothing was changed",
		       name, prog_id, info.name,
		       !strncmp(info.name, "tcpshift", 8)
			       ? "another tcpshift instance runs there (unload it with its own "
				 "--pin-dir first)"
			       : "another tool's (remove it first, or use --mode tc)");
}

/* Detach the XDP program of ifindex when it is provably ours. */
static void detach_xdp(int ifindex, const struct ts_owner *own)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
	bool generic;
	__u32 id = ts_xdp_attached(ifindex, &generic);

	if (!id || !ts_prog_is_ours(id, own))
		return;
	opts.old_prog_fd = bpf_prog_get_fd_by_id(id);
	if (opts.old_prog_fd < 0)
		return;
	bpf_xdp_detach(ifindex, (generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE) |
					XDP_FLAGS_REPLACE, &opts);
	close(opts.old_prog_fd);
}

/*
 * The generic netlink family "netdev" (linux/netdev.h, Linux 6.3; not in every
 * distribution's UAPI headers yet): a device's xdp-features.
 */
#define TS_NETDEV_CMD_DEV_GET		1
#define TS_NETDEV_A_DEV_IFINDEX		1
#define TS_NETDEV_A_DEV_XDP_FEATURES	3
#define TS_NETDEV_XDP_ACT_NDO_XMIT	4	/* it takes frames other devices redirect */

/* Send one generic netlink request of family, cmd with a u32 or string
 * attribute, and copy the attribute want of the answer into out (len bytes).
 * 0, or -errno (the kernel's answer or ours). */
static int genl_ask(int fd, __u16 family, __u8 cmd, __u16 type, const void *val, __u16 vlen,
		    __u16 want, void *out, size_t len)
{
	struct {
		struct nlmsghdr		n;
		struct genlmsghdr	g;
		char			attrs[64];
	} req = {
		.n = { .nlmsg_type = family, .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
		.g = { .cmd = cmd, .version = 1 },
	};
	char buf[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlattr *a = (struct nlattr *)req.attrs;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	ssize_t n;
	int rest;

	if (vlen > sizeof(req.attrs) - NLA_HDRLEN)
		return -EINVAL;
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + vlen;
	memcpy((char *)a + NLA_HDRLEN, val, vlen);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(a->nla_len);
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	if (!NLMSG_OK(h, (size_t)n))
		return -EPROTO;
	if (h->nlmsg_type == NLMSG_ERROR)
		return ((struct nlmsgerr *)NLMSG_DATA(h))->error ?: -EPROTO;
	rest = (int)h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	a = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	/* bounded by the message's length */
	while (rest >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= rest) {
		if ((a->nla_type & NLA_TYPE_MASK) == want) {
			if ((size_t)(a->nla_len - NLA_HDRLEN) < len)
				return -EPROTO;
			memcpy(out, (char *)a + NLA_HDRLEN, len);
			return 0;
		}
		rest -= NLA_ALIGN(a->nla_len);
		a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
	}
	return -ENOENT;
}

/* The xdp-features of ifindex (enum netdev_xdp_act): 0, or -errno (-ENOENT:
 * a kernel without the netdev family). */
static int xdp_features(int ifindex, __u64 *features)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), r;
	__u32 idx = (__u32)ifindex;
	__u16 family;

	if (fd < 0)
		return -errno;
	r = genl_ask(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, "netdev",
		     sizeof("netdev"), CTRL_ATTR_FAMILY_ID, &family, sizeof(family));
	if (!r)
		r = genl_ask(fd, family, TS_NETDEV_CMD_DEV_GET, TS_NETDEV_A_DEV_IFINDEX, &idx,
			     sizeof(idx), TS_NETDEV_A_DEV_XDP_FEATURES, features,
			     sizeof(*features));
	close(fd);
	return r;
}

bool ts_xdp_redirect_target(int ifindex)
{
	__u64 features;

	/* a kernel that cannot say (before 6.3) is taken at its word as before */
	if (xdp_features(ifindex, &features))
		return true;
	return features & TS_NETDEV_XDP_ACT_NDO_XMIT;
}

/*
 * Can frames reach the XDP program of ifindex with a partial TCP checksum
 * (doc/DESIGN.md, "XDP", "Checksums")? In generic mode any skb can; in native
 * mode those of veth and tun can, whose frames come from a sender on this
 * host, and of devices on no bus (bond, team, ...), which may pass on theirs.
 * A NIC's frames come from a wire, with their checksums complete.
 */
static bool xdp_partial_csum(int ifindex, bool generic)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { .ifr_data = (void *)&info };
	int fd, r = -1;

	if (generic)
		return true;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && if_indextoname((unsigned int)ifindex, ifr.ifr_name))
		r = ioctl(fd, SIOCETHTOOL, &ifr);
	if (fd >= 0)
		close(fd);
	/* unknown: checked, which is only slower */
	if (r)
		return true;
	return !info.bus_info[0] || !strcmp(info.driver, "veth") || !strcmp(info.driver, "tun");
}

int ts_bpf_xdp_dev_set(struct tcpshift_bpf *skel, const struct ts_xdp_dev *dev)
{
	__u32 key = dev->ifindex, slot = dev->ifindex % TS_XDP_DEV_SLOTS;
	struct ts_xdp_dev held;

	if (bpf_map__update_elem(skel->maps.xdp_devs, &key, sizeof(key), dev, sizeof(*dev), 0))
		return -errno;
	/* the slot, unless another device holds it (that one stays) */
	if (bpf_map__lookup_elem(skel->maps.xdp_dev_slots, &slot, sizeof(slot), &held, sizeof(held),
				 0))
		return -errno;
	if (held.ifindex && held.ifindex != key)
		return 0;
	if (bpf_map__update_elem(skel->maps.xdp_dev_slots, &slot, sizeof(slot), dev, sizeof(*dev),
				 0))
		return -errno;
	return 0;
}

int ts_bpf_xdp_dev_add(struct tcpshift_bpf *skel, int ifindex, bool generic, bool *target,
		       struct ts_err *err)
{
	struct ts_xdp_dev dev = {};
	char name[IF_NAMESIZE] = "?";
	struct ifreq ifr = {};
	__u32 key = (__u32)ifindex;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	if (fd >= 0 && if_indextoname(key, ifr.ifr_name)) {
		r = ioctl(fd, SIOCGIFHWADDR, &ifr);
		memcpy(dev.mac, ifr.ifr_hwaddr.sa_data, sizeof(dev.mac));
	}
	if (fd >= 0)
		close(fd);
	if_indextoname(key, name);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read the MAC address of %s: %s", name,
			       strerror(errno));
	if (xdp_partial_csum(ifindex, generic))
		dev.flags |= TS_XDP_DEV_F_PARTIAL_CSUM;
	/* Redirected there, a frame would be dropped: packets routed to it
	 * go on through tc instead (ts_fib_lookup). In generic mode a
	 * redirect is an skb's, which every device takes. */
	*target = generic || ts_xdp_redirect_target(ifindex);
	dev.ifindex = key;
	if ((*target &&
	     bpf_map__update_elem(skel->maps.xdp_tx, &key, sizeof(key), &key, sizeof(key), 0)) ||
	    ts_bpf_xdp_dev_set(skel, &dev))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot add %s to the XDP device maps: %s",
			       name, strerror(errno));
	return 0;
}

/* Attach the XDP program to ifindex (replacing our own), native unless
 * generic. Never replaces a program that is not ours. */
static int attach_xdp(struct tcpshift_bpf *skel, const struct ts_owner *own, int ifindex,
		      bool generic, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
	__u32 mode = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE, flags;
	char name[IF_NAMESIZE] = "?";
	bool cur_generic;
	__u32 id = ts_xdp_attached(ifindex, &cur_generic);
	int r;

	if_indextoname((unsigned int)ifindex, name);
	if (id && !ts_prog_is_ours(id, own))
		return refuse_foreign_xdp(ifindex, id, err);
	if (id && cur_generic != generic) {
		/* native <-> generic: ours goes first */
		detach_xdp(ifindex, own);
		id = 0;
	}
	flags = mode | XDP_FLAGS_UPDATE_IF_NOEXIST;
	if (id) {
		opts.old_prog_fd = bpf_prog_get_fd_by_id(id);
		flags = mode | XDP_FLAGS_REPLACE;
	}
	r = bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.tcpshift_xdp), flags, &opts);
	if (id && opts.old_prog_fd >= 0)
		close(opts.old_prog_fd);
	if (r == -EOPNOTSUPP && !generic)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "%s has no native XDP (its driver does not support it): use --mode tc "
			       "there, or --xdp-generic (XDP in the stack: slower than tc); nothing "
			       "was changed on %s",
			       name, name);
	if (r == -EBUSY || r == -EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "%s got another XDP program meanwhile: nothing was changed on %s", name,
			       name);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot attach XDP to %s: %s%s", name,
			       strerror(-r),
			       r == -ERANGE || r == -EINVAL
				       ? " (native XDP on veth needs an MTU that fits a page, and "
					 "no LRO/GSO on the device)"
				       : "");
	return 0;
}

/* Who holds our tc slot (handle, priority) of attach point ap on ifindex. */
static enum ts_slot slot_owner(int ifindex, const struct attach_point *ap, const struct ts_owner *own,
			       __u32 *prog_id)
{
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;

	*prog_id = 0;
	tc_ids(ifindex, ap, &hook, &opts);
	if (bpf_tc_query(&hook, &opts))
		return TS_SLOT_FREE;
	*prog_id = opts.prog_id;
	return ts_prog_is_ours(opts.prog_id, own) ? TS_SLOT_OURS : TS_SLOT_FOREIGN;
}

enum ts_slot ts_attached_prog(int ifindex, const struct ts_owner *own, __u32 *prog_id)
{
	size_t ours = 0, free = 0;

	*prog_id = 0;
	for (size_t i = 0; i < NATTACH; i++) {
		__u32 id;
		enum ts_slot st = slot_owner(ifindex, &attach_points[i], own, &id);

		if (i == 0)
			*prog_id = st == TS_SLOT_OURS ? id : 0;
		if (st == TS_SLOT_FOREIGN)
			return TS_SLOT_FOREIGN;
		ours += st == TS_SLOT_OURS;
		free += st == TS_SLOT_FREE;
	}
	return !ours ? TS_SLOT_FREE : free ? TS_SLOT_PARTIAL : TS_SLOT_OURS;
}

static int refuse_foreign(int ifindex, const struct attach_point *ap, __u32 prog_id,
			  struct ts_err *err)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char name[IF_NAMESIZE] = "?", what[64] = "not an eBPF program";
	int fd = prog_id ? bpf_prog_get_fd_by_id(prog_id) : -1;

	if (fd >= 0) {
		bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
	}
	if (prog_id)
		snprintf(what, sizeof(what), "program %u '%s'", prog_id, info.name);
	if_indextoname((unsigned int)ifindex, name);
	return ts_fail(err, TS_ERR_RUNTIME,
		       "%s already has a tc %s filter at handle 0x%x priority 0x%x (%s) that is "
		       "not this instance's: %s; nothing was changed",
		       name, ap->dir_name, TS_TC_HANDLE, TS_TC_PRIORITY, what,
		       !strncmp(info.name, "tcpshift", 8)
			       ? "another tcpshift instance runs there (unload it with its own "
				 "--pin-dir first)"
			       : "another tool's filter (remove it first)");
}

/* Refuse before anything changes when a device's slot holds a filter that is
 * not ours. */
static int check_slots(const struct ts_settings *next, const struct ts_owner *own, bool xdp,
		       struct ts_err *err)
{
	for (__u32 i = 0; i < next->ndevices; i++) {
		bool generic;
		__u32 id = xdp ? ts_xdp_attached((int)next->ifindex[i], &generic) : 0;

		if (id && !ts_prog_is_ours(id, own))
			return refuse_foreign_xdp((int)next->ifindex[i], id, err);
		for (size_t j = 0; j < NATTACH; j++) {
			__u32 id;

			if (slot_owner((int)next->ifindex[i], &attach_points[j], own,
				       &id) == TS_SLOT_FOREIGN)
				return refuse_foreign((int)next->ifindex[i], &attach_points[j], id,
						      err);
		}
	}
	return 0;
}

/* Attach (or replace our own, on an upgrade) at every attach point of
 * ifindex; *made_clsact is set when this call created the clsact qdisc. Never
 * replaces a filter that is not ours. */
static int attach_dev(struct tcpshift_bpf *skel, const struct ts_owner *own, int ifindex,
		      bool *made_clsact, struct ts_err *err)
{
	char name[IF_NAMESIZE] = "?";
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;
	size_t i;
	int r;

	if_indextoname((unsigned int)ifindex, name);
	*made_clsact = false;
	for (i = 0; i < NATTACH; i++) {
		const struct attach_point *ap = &attach_points[i];
		struct bpf_program *prog = bpf_object__find_program_by_name(skel->obj, ap->prog);
		enum ts_slot st;
		__u32 id;

		tc_ids(ifindex, ap, &hook, &opts);
		r = bpf_tc_hook_create(&hook);
		if (r && r != -EEXIST) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot add a clsact qdisc to %s: %s",
				    name, strerror(-r));
			goto undo;
		}
		*made_clsact |= r == 0;
		st = slot_owner(ifindex, ap, own, &id);
		if (st == TS_SLOT_FOREIGN) {
			r = refuse_foreign(ifindex, ap, id, err);
			goto undo;
		}
		opts.prog_fd = bpf_program__fd(prog);
		opts.flags = st == TS_SLOT_OURS ? BPF_TC_F_REPLACE : 0;
		r = prog ? bpf_tc_attach(&hook, &opts) : -ENOENT;
		if (r == -EEXIST) {
			/* a filter there that is no BPF program with an id
			 * (classic BPF, another classifier) */
			r = refuse_foreign(ifindex, ap, 0, err);
			goto undo;
		}
		if (r) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot attach %s to tc %s of %s: %s",
				    ap->prog, ap->dir_name, name, strerror(-r));
			goto undo;
		}
	}
	return 0;
undo:
	/* the points attached by this call, when the device was not ours before */
	while (i--) {
		tc_ids(ifindex, &attach_points[i], &hook, &opts);
		bpf_tc_detach(&hook, &opts);
	}
	if (*made_clsact) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
	return r;
}

/* libbpf's bpf_tc_query asks for one handle and priority: a dump sees them all */
int ts_tc_filters(int ifindex, __u32 parent, void (*each)(__u32 prog_id, void *arg), void *arg)
{
	struct {
		struct nlmsghdr	n;
		struct tcmsg	t;
	} req = {
		.n = {
			.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg)),
			.nlmsg_type = RTM_GETTFILTER,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = 1,
		},
		.t = { .tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_parent = parent },
	};
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), err = 0;
	bool done = false;

	if (fd < 0)
		return -errno;
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0) {
		err = -errno;
		goto out;
	}
	/* bounded: a dump ends with NLMSG_DONE; a hook holds few filters */
	for (int rounds = 0; !done && rounds < 1024; rounds++) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (len <= 0) {
			err = len ? -errno : -ENODATA;
			goto out;
		}
		for (; !done && NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			struct rtattr *a = (struct rtattr *)((char *)NLMSG_DATA(h) +
							     NLMSG_ALIGN(sizeof(struct tcmsg)));
			int alen = (int)h->nlmsg_len - NLMSG_LENGTH(sizeof(struct tcmsg));
			bool bpf = false;
			__u32 id = 0;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				err = ((struct nlmsgerr *)NLMSG_DATA(h))->error ?: -EPROTO;
				goto out;
			}
			if (h->nlmsg_type != RTM_NEWTFILTER)
				continue;
			/* TCA_KIND "bpf", then TCA_OPTIONS { TCA_BPF_ID } (the
			 * filter chain's own line has no id) */
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				struct rtattr *o = RTA_DATA(a);
				int olen = (int)RTA_PAYLOAD(a);

				if (a->rta_type == TCA_KIND)
					bpf = !strcmp(RTA_DATA(a), "bpf");
				if ((a->rta_type & NLA_TYPE_MASK) != TCA_OPTIONS || !bpf)
					continue;
				for (; RTA_OK(o, olen); o = RTA_NEXT(o, olen))
					if (o->rta_type == TCA_BPF_ID)
						id = *(__u32 *)RTA_DATA(o);
			}
			each(id, arg);
		}
	}
	if (!done)
		err = -EOVERFLOW;
out:
	close(fd);
	return err;
}

static void count_filter(__u32 prog_id, void *arg)
{
	(void)prog_id;
	++*(int *)arg;
}

/* Does the clsact hook (ifindex, parent) hold any filter? Errors count as
 * "yes": a qdisc that may hold someone's filters is kept. */
static bool tc_has_filters(int ifindex, __u32 parent)
{
	int n = 0;

	return ts_tc_filters(ifindex, parent, count_filter, &n) || n;
}

/* Detach our filters from ifindex, only those provably ours. */
static void detach_dev(int ifindex, bool own_clsact, const struct ts_owner *own)
{
	struct bpf_tc_hook hook;
	struct bpf_tc_opts opts;

	/* XDP first: what it passes on finds tc there */
	detach_xdp(ifindex, own);
	for (size_t i = 0; i < NATTACH; i++) {
		__u32 id;

		if (slot_owner(ifindex, &attach_points[i], own, &id) != TS_SLOT_OURS)
			continue;
		tc_ids(ifindex, &attach_points[i], &hook, &opts);
		bpf_tc_detach(&hook, &opts);
	}
	/* The qdisc load created goes too, unless another tool has put
	 * filters on it since (invariant 9). */
	if (own_clsact && !tc_has_filters(ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)) &&
	    !tc_has_filters(ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS))) {
		tc_ids(ifindex, &attach_points[0], &hook, &opts);
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

/* XDP cannot send frames into ifindex (ts_xdp_redirect_target): say so and
 * what to do; they go through tc, correct but slower. */
static void warn_no_redirect(int ifindex)
{
	char name[IF_NAMESIZE] = "?";

	if_indextoname((unsigned int)ifindex, name);
	fprintf(stderr,
		"tcpshift: warning: %s takes no XDP-redirected frames (on veth: its peer has "
		"neither GRO nor an XDP program): packets to it go through tc; for XDP there, "
		"turn GRO on at its peer (ethtool -K PEER gro on) and load again\n",
		name);
}

static void unpin_all(const char *pin_dir)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	char path[TS_PIN_DIR_MAX];
	size_t n;

	if (ts_map_layouts(layout, &n, NULL))
		return;
	for (size_t i = 0; i < n; i++)
		if (!pin_path(path, sizeof(path), pin_dir, layout[i].name))
			unlink(path);
}

static int settings_write(struct tcpshift_bpf *skel, const struct ts_settings *s,
			  struct ts_err *err)
{
	__u32 zero = 0;

	if (bpf_map__update_elem(skel->maps.settings, &zero, sizeof(zero), s, sizeof(*s), 0))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write settings: %s", strerror(errno));
	return 0;
}

/* tcpshift parses Ethernet frames: a device of another link type (a tun,
 * wireguard or ip6tnl device carries bare IP) would be misread. */
static bool is_ethernet(const char *dev)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return true; /* cannot tell: the attach decides */
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	ok = ioctl(fd, SIOCGIFHWADDR, &ifr) || ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
	close(fd);
	return ok;
}

/* This network namespace's cookie (the data plane's name for it), 0 when the
 * kernel has none to tell (before 5.14). */
static __u64 netns_cookie(void)
{
	__u64 cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
			cookie = 0;
		close(fd);
	}
	return cookie;
}

static int skel_map_fd(void *ctx, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(((struct tcpshift_bpf *)ctx)->obj, name);

	return map ? bpf_map__fd(map) : -1;
}

/* An instance pinned by a newer tcpshift: its maps cannot be read here. */
static int refuse_newer(const char *pin_dir, __u32 abi, struct ts_err *err)
{
	return ts_fail(err, TS_ERR_RUNTIME,
		       "the instance under %s has map layout %u, newer than this tcpshift's "
		       "(%u): loading this build would lose every pinned flow (established "
		       "connections re-picked, half-open ones reset), the counters and any "
		       "rollout in progress; nothing was changed (use the tcpshift that loaded "
		       "it; to replace it anyway: 'export' and 'unload' with that tcpshift, "
		       "then 'load' and 'import' with this one)",
		       pin_dir, abi, TS_ABI_VERSION);
}

/*
 * All or nothing (invariant 3 for load): a first load that fails removes
 * what it pinned and attached; one that is killed leaves settings naming
 * every device it may have attached to (flag TS_SETTINGS_F_LOADING), so
 * that status shows it and the next load or unload completes it, detaching
 * only filters that are provably this instance's. An upgrade that fails
 * keeps the devices attached before.
 */
int ts_load(const struct ts_load_opts *o, struct ts_err *err)
{
	struct ts_settings old = {}, next = {}, intent;
	struct tcpshift_bpf *skel = NULL;
	char path[TS_PIN_DIR_MAX];
	bool fresh, made_dir, forget_devices = false, xdp, xdp_generic, generic;
	bool xdp_had[TS_MAX_DEVICES] = {}, xdp_target[TS_MAX_DEVICES] = {};
	__u32 prev_flags = 0;
	struct stat st;
	struct ts_owner owner = {};
	struct ts_migration mg = {};
	struct ts_load_opts lo = *o;
	struct bpf_map *map;
	__u32 zero = 0, pinned_abi = 0;
	__u64 ns_dev, ns_ino;
	struct ts_journal_change *journal_before = NULL;
	int lock_fd = -1, r;

	r = ts_check_root(err);
	r = r ?: ts_check_pin_dir(o->pin_dir, err);
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
		if (!is_ethernet(o->devs[i]))
			return ts_fail(err, TS_ERR_USAGE,
				       "device '%s' is not an Ethernet device: tcpshift balances "
				       "Ethernet frames (veth, physical NICs, bridges, bonds)",
				       o->devs[i]);
		if (find_ifindex(&next, ifindex) < 0)
			next.ifindex[next.ndevices++] = ifindex;
	}
	if (ts_netns_self(&ns_dev, &ns_ino))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read /proc/self/ns/net: %s",
			       strerror(errno));
	if (o->cgroup && (r = ts_local_check(o->cgroup, err)))
		return r;
	made_dir = stat(o->pin_dir, &st) != 0;
	r = prepare_pin_dir(o->pin_dir, err);
	if (r)
		return r;
	lock_fd = open(o->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0 || (r = ts_flock_wait(lock_fd, LOCK_EX, o->pin_dir))) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", o->pin_dir,
			    strerror(lock_fd < 0 ? errno : -r));
		goto out;
	}
	/* fresh: no pin of ours at all; a first load that fails removes them */
	fresh = !ts_any_pin(o->pin_dir);
	pin_path(path, sizeof(path), o->pin_dir, "settings");
	r = fresh ? 0 : ts_pinned_layout(o->pin_dir, &pinned_abi, err);
	if (!r && pinned_abi > TS_ABI_VERSION) {
		r = refuse_newer(o->pin_dir, pinned_abi, err);
		goto out;
	}
	/* an older layout: its changed maps are made anew (migrate.c) */
	r = r ?: fresh ? 0 : ts_migration_prepare(&mg, o->pin_dir, err);
	if (r)
		goto out;
	lo.migration = &mg;
	if (mg.from) {
		old = mg.settings;
		prev_flags = old.flags;
		if (old.ndevices) {
			r = ts_settings_check_netns(&old, err);
			if (r < 0)
				goto out;
			forget_devices = r == TS_NETNS_GONE;
		}
	} else if (!fresh) {
		struct ts_maps m;

		/* whatever is pinned is ours (validated) and of this namespace */
		r = ts_maps_open_flags(&m, o->pin_dir, TS_OPEN_INCOMPLETE | TS_OPEN_MISSING_OK,
				       err);
		if (r)
			goto out;
		r = m.settings >= 0 && bpf_map_lookup_elem(m.settings, &zero, &old) ? -errno : 0;
		/* --seed changes the configuration: journaled as any change */
		journal_before = r ? NULL : ts_journal_before(&m);
		ts_maps_close(&m);
		prev_flags = old.flags;
		if (r) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s: %s", path, strerror(-r));
			goto out;
		}
		if (old.ndevices) {
			r = ts_settings_check_netns(&old, err);
			if (r < 0)
				goto out;
			/* namespace gone: so are its devices; start afresh here */
			forget_devices = r == TS_NETNS_GONE;
		}
	}
	skel = ts_bpf_open_load(&lo, err);
	if (!skel) {
		r = -err->status;
		goto fail;
	}
	if (mg.from)
		ts_migration_step("loaded");
	/* the instance's maps: what a filter of ours uses */
	bpf_object__for_each_map(map, skel->obj)
		if (!bpf_map__is_internal(map) && bpf_map__pin_path(map) &&
		    owner.n < TS_MAX_PINNED_MAPS)
			owner.map_id[owner.n++] = map_id_of(bpf_map__fd(map));
	/* ts_bpf_open_load wrote seed, flags and ABI version; the devices are
	 * still those attached before */
	if (bpf_map__lookup_elem(skel->maps.settings, &zero, sizeof(zero), &old, sizeof(old), 0)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read settings: %s", strerror(errno));
		goto fail;
	}
	if (forget_devices)
		old.ndevices = 0;
	/* The intent, before anything is attached: every device this command
	 * may leave a filter on, so that a kill leaves nothing unaccounted. */
	intent = old;
	intent.netns_dev = ns_dev;
	intent.netns_ino = ns_ino;
	intent.netns_cookie = netns_cookie();
	intent.flags |= TS_SETTINGS_F_LOADING;
	for (__u32 i = 0; i < next.ndevices; i++)
		if (find_ifindex(&intent, next.ifindex[i]) < 0 && intent.ndevices < TS_MAX_DEVICES) {
			intent.dev_flags[intent.ndevices] = 0;
			intent.ifindex[intent.ndevices++] = next.ifindex[i];
		}
	/* Devices new to the instance first: a refusal there (a foreign
	 * filter that check_slots cannot see) comes before any replacement. */
	for (__u32 i = 0, k = 0; i < next.ndevices; i++)
		if (find_ifindex(&old, next.ifindex[i]) < 0) {
			__u32 t = next.ifindex[k];

			next.ifindex[k++] = next.ifindex[i];
			next.ifindex[i] = t;
		}
	xdp = old.flags & TS_SETTINGS_F_XDP;
	xdp_generic = old.flags & TS_SETTINGS_F_XDP_GENERIC;
	r = check_slots(&next, &owner, xdp, err);
	if (o->cgroup)
		r = r ?: ts_local_check_owner(o->cgroup, &owner, err);
	r = r ?: settings_write(skel, &intent, err);
	if (r)
		goto fail;
	for (__u32 i = 0; i < next.ndevices; i++) {
		int was = find_ifindex(&old, next.ifindex[i]);
		bool made_clsact = false;

		r = attach_dev(skel, &owner, (int)next.ifindex[i], &made_clsact, err);
		if (r) {
			/* Undo what this command attached (xdp-tools style);
			 * devices attached before keep their (old or new)
			 * program. */
			for (__u32 j = 0; j < i; j++)
				if (find_ifindex(&old, next.ifindex[j]) < 0)
					detach_dev((int)next.ifindex[j],
						   next.dev_flags[j] & TS_DEV_F_OWN_CLSACT,
						   &owner);
			goto fail;
		}
		next.dev_flags[i] = was >= 0 ? old.dev_flags[was]
					     : made_clsact ? TS_DEV_F_OWN_CLSACT : 0;
		/* this device's clsact is accounted for from now on */
		intent.dev_flags[find_ifindex(&intent, next.ifindex[i])] = next.dev_flags[i];
		settings_write(skel, &intent, NULL);
		if (mg.from && !i)
			ts_migration_step("first-device");
	}
	/* The mode: XDP on top of tc on every device, or (switched to tc) no
	 * more. A device that refuses XDP undoes what this loop attached,
	 * and the mode stays what it was. */
	for (__u32 i = 0; i < next.ndevices; i++) {
		xdp_had[i] = ts_xdp_attached((int)next.ifindex[i], &generic) != 0;
		if (xdp && !r)
			r = ts_bpf_xdp_dev_add(skel, (int)next.ifindex[i], xdp_generic,
					       &xdp_target[i], err);
	}
	for (__u32 i = 0; i < next.ndevices && !r; i++) {
		if (xdp)
			r = attach_xdp(skel, &owner, (int)next.ifindex[i], xdp_generic, err);
		else
			detach_xdp((int)next.ifindex[i], &owner);
	}
	/* The cgroup programs, after the devices (an upgrade's new tc program
	 * knows local sockets' packets before they exist); a failure undoes
	 * the devices' changes too. */
	if (!r && o->cgroup)
		r = ts_local_attach(skel, o->pin_dir, o->cgroup, &owner, err);
	if (r) {
		for (__u32 j = 0; j < next.ndevices; j++) {
			if (!xdp_had[j])
				detach_xdp((int)next.ifindex[j], &owner);
			if (find_ifindex(&old, next.ifindex[j]) < 0)
				detach_dev((int)next.ifindex[j],
					   next.dev_flags[j] & TS_DEV_F_OWN_CLSACT, &owner);
		}
		old.flags = (old.flags & ~(TS_SETTINGS_F_XDP | TS_SETTINGS_F_XDP_GENERIC)) |
			    (prev_flags & (TS_SETTINGS_F_XDP | TS_SETTINGS_F_XDP_GENERIC));
		goto fail;
	}
	/* said once everything is attached: a refusal says all */
	for (__u32 i = 0; i < next.ndevices && xdp; i++)
		if (!xdp_target[i])
			warn_no_redirect((int)next.ifindex[i]);
	/* without --cgroup the cgroup programs go, as devices no longer
	 * named do */
	if (!o->cgroup)
		ts_local_detach(o->pin_dir, &owner);
	/* `load` names the whole set: devices no longer named are detached. */
	for (__u32 i = 0; i < old.ndevices && i < TS_MAX_DEVICES; i++)
		if (find_ifindex(&next, old.ifindex[i]) < 0)
			detach_dev((int)old.ifindex[i], old.dev_flags[i] & TS_DEV_F_OWN_CLSACT,
				   &owner);

	next.abi_version = old.abi_version;
	next.seed = old.seed;
	next.flags = old.flags & ~TS_SETTINGS_F_LOADING;
	next.netns_dev = ns_dev;
	next.netns_ino = ns_ino;
	next.netns_cookie = netns_cookie();
	r = settings_write(skel, &next, err);
	if (mg.from)
		ts_migration_step("attached");
	/* every device runs the new programs: the new maps take the old
	 * ones' pins (the commit point of a migration) */
	r = r ?: ts_migration_commit(&mg, o->pin_dir, skel_map_fd, skel, err);
	if (r)
		goto fail;
	/* over pins: an earlier build's backends settled, a new --seed journaled */
	if (!fresh) {
		struct ts_maps m;
		struct ts_err merr;

		if (!ts_maps_open(&m, o->pin_dir, &merr)) {
			ts_backends_settle(&m);
			if (journal_before)
				ts_journal_after(&m, journal_before);
			ts_maps_close(&m);
		}
	}
	warn_forwarding("/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward");
	goto out;
fail:
	if (skel && !fresh) /* an upgrade: the devices attached before stay */
		settings_write(skel, &old, NULL);
	if (fresh) {
		/* a first load leaves nothing: no pin, no directory it made */
		ts_local_detach(o->pin_dir, &owner);
		unpin_all(o->pin_dir);
		if (made_dir)
			rmdir(o->pin_dir);
	}
out:
	ts_journal_change_free(journal_before);
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
 * refused whole, and the directory itself goes only when it is empty; only
 * filters whose program uses this instance's maps are detached, and
 * only from the namespace load ran in.
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
	r = r ?: ts_maps_open_flags(&m, pin_dir,
				    TS_OPEN_INCOMPLETE | TS_OPEN_MISSING_OK | TS_OPEN_OLDER, err);
	if (r)
		return r;
	if (m.settings >= 0)
		r = ts_maps_lock(&m, err);
	else if ((m.lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		 ts_flock_wait(m.lock_fd, LOCK_EX, pin_dir) || !(m.locked = LOCK_EX))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", pin_dir, strerror(errno));
	if (r)
		goto out;
	/* the cgroup programs first: their links are pins like the maps (a
	 * killed first load may have left them without settings) */
	ts_local_detach(pin_dir, &m.owner);
	if (m.settings >= 0 && !bpf_map_lookup_elem(m.settings, &zero, &s)) {
		/* its ifindexes mean other devices in another namespace */
		r = s.ndevices ? ts_settings_check_netns(&s, err) : 0;
		if (r < 0)
			goto out;
		/* Detach first, so no packet meets a program whose maps are
		 * gone; a namespace that is gone took its devices along. */
		for (__u32 i = 0; r != TS_NETNS_GONE && i < s.ndevices && i < TS_MAX_DEVICES; i++)
			detach_dev((int)s.ifindex[i], s.dev_flags[i] & TS_DEV_F_OWN_CLSACT,
				   &m.owner);
		r = 0;
	}
	/* the pins ts_maps_open_flags validated: the layout's, where present */
	for (size_t i = 0; i < n; i++)
		if (!pin_path(path, sizeof(path), pin_dir, layout[i].name) && unlink(path) &&
		    errno != ENOENT) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot remove %s: %s", path,
				    strerror(errno));
			goto out;
		}
	ts_migration_clean(pin_dir);
	if (rmdir(pin_dir))
		r = ts_fail(err, TS_ERR_RUNTIME,
			    "unloaded, but %s stays: %s (it holds something that is not "
			    "tcpshift's, left as it was)",
			    pin_dir, strerror(errno));
out:
	ts_maps_close(&m);
	return r;
}
