// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned maps: opening, locking, counters. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"

static const struct {
	const char *name;
	size_t offset;
} pinned_maps[] = {
	{ "services", offsetof(struct ts_maps, services) },
	{ "tables", offsetof(struct ts_maps, tables) },
	{ "backends", offsetof(struct ts_maps, backends) },
	{ "flows", offsetof(struct ts_maps, flows) },
	{ "half_open", offsetof(struct ts_maps, half_open) },
	{ "replies", offsetof(struct ts_maps, replies) },
	{ "backend_addrs", offsetof(struct ts_maps, backend_addrs) },
	{ "backend_stats", offsetof(struct ts_maps, backend_stats) },
	{ "counters", offsetof(struct ts_maps, counters) },
	{ "settings", offsetof(struct ts_maps, settings) },
};

static const char *const counter_names[TS_CNT_MAX] = {
	[TS_CNT_NEW_FLOWS] = "new_flows",
	[TS_CNT_NON_SYN_MISS] = "non_syn_miss",
	[TS_CNT_NO_BACKEND] = "no_backend",
	[TS_CNT_MALFORMED] = "malformed",
	[TS_CNT_FRAGMENT] = "fragments",
	[TS_CNT_REMOVED_BACKEND] = "removed_backend",
	[TS_CNT_PROMOTED] = "promoted",
	[TS_CNT_DRAIN_CLOSED] = "drain_closed",
	[TS_CNT_ICMP] = "icmp_translated",
	[TS_CNT_V6_EXT] = "ipv6_ext_headers",
	[TS_CNT_SPOOF_REJECTED] = "spoof_rejected",
	[TS_CNT_BACKEND_REFUSED] = "backend_refused",
	[TS_CNT_HAIRPIN] = "hairpin_repicked",
};

const char *ts_pin_name(size_t i)
{
	return i < sizeof(pinned_maps) / sizeof(pinned_maps[0]) ? pinned_maps[i].name : NULL;
}

const char *ts_counter_name(enum ts_counter c)
{
	return c < TS_CNT_MAX ? counter_names[c] : "?";
}

int ts_check_root(struct ts_err *err)
{
	if (geteuid() != 0)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "must run as root (it manages BPF maps and tc filters): try sudo");
	return 0;
}

/* Is dir (or, when it does not exist yet, its parent) on bpffs? */
int ts_check_bpffs(const char *dir, struct ts_err *err)
{
	char parent[256], *slash;
	struct statfs st;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (statfs(dir, &st) && (errno != ENOENT || statfs(parent, &st)))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot access %s: %s", dir, strerror(errno));
	if ((unsigned long)st.f_type != BPF_FS_MAGIC)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "pin directory %s is not on a bpf filesystem: use a directory under "
			       "/sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)",
			       dir);
	return 0;
}

int ts_maps_open(struct ts_maps *m, const char *pin_dir, struct ts_err *err)
{
	char path[512];
	struct stat st;
	int r;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++)
		*(int *)((char *)m + pinned_maps[i].offset) = -1;
	m->lock_fd = -1;
	snprintf(m->pin_dir, sizeof(m->pin_dir), "%s", pin_dir);

	/* "not on bpffs" rather than "not loaded" when that is the cause */
	r = ts_check_bpffs(pin_dir, err);
	if (r)
		return r;
	if (stat(pin_dir, &st))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "not loaded under %s: run 'tcpshift load --dev IFACE' first",
			       pin_dir);
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/%s", pin_dir, pinned_maps[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			r = -errno;
			ts_maps_close(m);
			return ts_fail(err, TS_ERR_RUNTIME,
				       "cannot open pinned map %s: %s (run 'tcpshift load' again)",
				       path, strerror(-r));
		}
		*(int *)((char *)m + pinned_maps[i].offset) = fd;
	}
	return 0;
}

void ts_maps_close(struct ts_maps *m)
{
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		int *fd = (int *)((char *)m + pinned_maps[i].offset);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

/* Serialise changes between concurrent tcpshift commands. The lock is the
 * pin directory's own flock, released by the kernel when the process exits,
 * however it exits. */
int ts_maps_lock(struct ts_maps *m, struct ts_err *err)
{
	if (m->lock_fd >= 0)
		return 0;
	m->lock_fd = open(m->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->lock_fd < 0 || flock(m->lock_fd, LOCK_EX))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", m->pin_dir,
			       strerror(errno));
	return 0;
}

int ts_settings_read(const struct ts_maps *m, struct ts_settings *s, struct ts_err *err)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(m->settings, &zero, s))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read settings map: %s",
			       strerror(errno));
	return 0;
}

int ts_counters_read(const struct ts_maps *m, __u64 out[TS_CNT_MAX], struct ts_err *err)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *percpu;

	if (ncpu <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count CPUs: %s", strerror(-ncpu));
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (__u32 c = 0; c < TS_CNT_MAX; c++) {
		out[c] = 0;
		if (bpf_map_lookup_elem(m->counters, &c, percpu))
			continue;
		for (int i = 0; i < ncpu; i++)
			out[c] += percpu[i];
	}
	free(percpu);
	return 0;
}

int ts_backend_stats_read(const struct ts_maps *m, __u32 id, struct ts_backend_stats *out,
			  struct ts_err *err)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ts_backend_stats *percpu;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count CPUs: %s", strerror(-ncpu));
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (bpf_map_lookup_elem(m->backend_stats, &id, percpu)) {
		free(percpu);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read stats of backend %u: %s", id,
			       strerror(errno));
	}
	for (int i = 0; i < ncpu; i++) {
		out->new_flows += percpu[i].new_flows;
		out->packets += percpu[i].packets;
		out->bytes += percpu[i].bytes;
	}
	free(percpu);
	return 0;
}

int ts_backend_stats_reset(const struct ts_maps *m, __u32 id, struct ts_err *err)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ts_backend_stats *zero;
	int r = 0;

	zero = calloc(ncpu > 0 ? (size_t)ncpu : 1, sizeof(*zero));
	if (!zero)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (bpf_map_update_elem(m->backend_stats, &id, zero, BPF_ANY))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot reset stats of backend %u: %s", id,
			    strerror(errno));
	free(zero);
	return r;
}

int ts_count_entries(int map_fd, size_t key_size, __u32 *count)
{
	char key[64], next[64];
	void *prev = NULL;

	if (key_size > sizeof(key))
		return -EINVAL;
	*count = 0;
	while (!bpf_map_get_next_key(map_fd, prev, next)) {
		(*count)++;
		memcpy(key, next, key_size);
		prev = key;
	}
	return 0;
}

static int foreach_flow(int map_fd, ts_flow_cb cb, void *ctx)
{
	enum { CHUNK = 4096 };
	struct ts_flow_key *keys = calloc(CHUNK, sizeof(*keys));
	struct ts_flow *vals = calloc(CHUNK, sizeof(*vals));
	__u32 batch, count;
	void *in = NULL;
	int r = 0;

	if (!keys || !vals) {
		r = -ENOMEM;
		goto out;
	}
	do {
		count = CHUNK;
		r = bpf_map_lookup_batch(map_fd, in, &batch, keys, vals, &count, NULL);
		if (r && errno != ENOENT) {
			r = -errno;
			goto out;
		}
		for (__u32 i = 0; i < count; i++)
			cb(&keys[i], &vals[i], ctx);
		in = &batch;
	} while (!r);
	r = 0;
out:
	free(keys);
	free(vals);
	return r;
}

int ts_flows_foreach(const struct ts_maps *m, ts_flow_cb cb, void *ctx)
{
	return foreach_flow(m->flows, cb, ctx) ?: foreach_flow(m->half_open, cb, ctx);
}
