// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned maps: opening, locking, counters. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdint.h>
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
#include "tcpshift_abi5.h"

/* Where the maps the commands use by name go in struct ts_maps. The set of
 * pinned maps itself comes from the BPF object (ts_map_layouts): a map not
 * named here is validated and unpinned all the same. */
static const struct {
	const char *name;
	size_t offset;
} named_maps[] = {
	{ "services", offsetof(struct ts_maps, services) },
	{ "service_names", offsetof(struct ts_maps, service_names) },
	{ "vip_ports", offsetof(struct ts_maps, vip_ports) },
	{ "tables", offsetof(struct ts_maps, tables) },
	{ "backends", offsetof(struct ts_maps, backends) },
	{ "flows", offsetof(struct ts_maps, flows) },
	{ "half_open", offsetof(struct ts_maps, half_open) },
	{ "replies", offsetof(struct ts_maps, replies) },
	{ "rollouts", offsetof(struct ts_maps, rollouts) },
	{ "backend_addrs", offsetof(struct ts_maps, backend_addrs) },
	{ "backend_stats", offsetof(struct ts_maps, backend_stats) },
	{ "counters", offsetof(struct ts_maps, counters) },
	{ "settings", offsetof(struct ts_maps, settings) },
	{ "local_flows", offsetof(struct ts_maps, local_flows) },
	{ "sync_events", offsetof(struct ts_maps, sync_events) },
};

#define NAMED_MAPS (sizeof(named_maps) / sizeof(named_maps[0]))

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
	[TS_CNT_LOCAL_CONNECTS] = "local_connects",
	[TS_CNT_LOCAL_UNTRACKED] = "local_untracked",
	[TS_CNT_LOCAL_DRAIN_CLOSED] = "local_drain_closed",
	[TS_CNT_LOCAL_REMOVED] = "local_removed_backend",
	[TS_CNT_SYNC_LOST] = "sync_lost",
	[TS_CNT_SYN_NOT_VIABLE] = "syn_not_viable",
};

const char *ts_pin_name(size_t i)
{
	return i < NAMED_MAPS ? named_maps[i].name : NULL;
}

int ts_maps_fd(const struct ts_maps *m, size_t i)
{
	return i < NAMED_MAPS ? *(const int *)((const char *)m + named_maps[i].offset) : -1;
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

/* The name under /run/netns of the network namespace this process runs in,
 * into name: true when it has one. `ip netns exec NAME` runs a command there
 * with a /sys of its own, where /sys/fs/bpf is not mounted. */
static bool named_netns(char *name, size_t len)
{
	struct stat self, st;
	struct dirent *d;
	DIR *dir;
	bool found = false;

	if (stat("/proc/self/ns/net", &self) || !(dir = opendir("/run/netns")))
		return false;
	while (!found && (d = readdir(dir))) {
		char path[300];

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/run/netns/%s", d->d_name);
		if (!stat(path, &st) && st.st_dev == self.st_dev && st.st_ino == self.st_ino) {
			snprintf(name, len, "%s", d->d_name);
			found = true;
		}
	}
	closedir(dir);
	return found;
}

/* Is dir (or, when it does not exist yet, its parent) on bpffs? */
int ts_check_bpffs(const char *dir, struct ts_err *err)
{
	char parent[256], ns[256], *slash;
	struct statfs st, sys;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (statfs(dir, &st) && (errno != ENOENT || statfs(parent, &st)))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot access %s: %s", dir, strerror(errno));
	/* /sys/fs/bpf itself not bpffs either, in a named namespace: ip netns exec */
	if ((unsigned long)st.f_type != BPF_FS_MAGIC &&
	    (statfs("/sys/fs/bpf", &sys) || (unsigned long)sys.f_type != BPF_FS_MAGIC) &&
	    named_netns(ns, sizeof(ns)))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "pin directory %s is not on a bpf filesystem here, in network "
			       "namespace %s: 'ip netns exec' mounts a /sys of its own, without "
			       "/sys/fs/bpf; run 'tcpshift -n %s ...' instead",
			       dir, ns, ns);
	if ((unsigned long)st.f_type != BPF_FS_MAGIC)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "pin directory %s is not on a bpf filesystem: use a directory under "
			       "/sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)",
			       dir);
	return 0;
}

static int *named_fd(struct ts_maps *m, const char *name)
{
	for (size_t i = 0; i < NAMED_MAPS; i++)
		if (!strcmp(named_maps[i].name, name))
			return (int *)((char *)m + named_maps[i].offset);
	return NULL;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static bool any_pin(const char *pin_dir, const struct ts_map_layout *layout, size_t n)
{
	char path[TS_PIN_DIR_MAX];
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layout[i].name);
		if (!stat(path, &st))
			return true;
	}
	return false;
}

bool ts_any_pin(const char *pin_dir)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	size_t n;

	/* unknown: assume there is, so that nothing is removed */
	return ts_map_layouts(layout, &n, NULL) || any_pin(pin_dir, layout, n);
}

int ts_maps_open(struct ts_maps *m, const char *pin_dir, struct ts_err *err)
{
	return ts_maps_open_flags(m, pin_dir, 0, err);
}

void ts_maps_init(struct ts_maps *m)
{
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < NAMED_MAPS; i++)
		*(int *)((char *)m + named_maps[i].offset) = -1;
	m->lock_fd = -1;
}

static void stats_cache_close(struct ts_maps *m)
{
	if (m->stats_cache && m->stats_cache->fd >= 0)
		close(m->stats_cache->fd);
	free(m->stats_cache);
	m->stats_cache = NULL;
}

int ts_maps_open_flags(struct ts_maps *m, const char *pin_dir, unsigned int flags,
		       struct ts_err *err)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	char path[TS_PIN_DIR_MAX];
	struct ts_settings s;
	struct stat st;
	const char *missing = NULL;
	size_t n;
	__u32 zero = 0, abi = 0;
	int r;

	ts_maps_init(m);
	r = ts_check_pin_dir(pin_dir, err);
	if (r)
		return r;
	snprintf(m->pin_dir, sizeof(m->pin_dir), "%s", pin_dir);

	/* "not on bpffs" rather than "not loaded" when that is the cause */
	r = ts_check_bpffs(pin_dir, err);
	if (r)
		return r;
	if (stat(pin_dir, &st))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "not loaded under %s: run 'tcpshift load --dev IFACE' first",
			       pin_dir);
	r = ts_map_layouts(layout, &n, err);
	if (r)
		return r;
	/* every pin that is there validated before a missing one is reported:
	 * "not ours" is the more useful news */
	for (size_t i = 0; i < n; i++) {
		int fd, *slot = named_fd(m, layout[i].name);
		struct ts_map_layout today;

		snprintf(path, sizeof(path), "%s/%s", pin_dir, layout[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (errno != ENOENT) {
				r = -errno;
				ts_maps_close(m);
				return ts_fail(err, TS_ERR_RUNTIME, "cannot open pinned map %s: %s",
					       path, strerror(-r));
			}
			missing = missing ?: layout[i].name;
			continue;
		}
		today = layout[i];
		if ((flags & TS_OPEN_OLDER) && !ts_pinned_layout(pin_dir, &abi, NULL) &&
		    abi < TS_ABI_VERSION)
			ts_layout_older(abi, &layout[i]);
		r = ts_map_check(fd, path, &layout[i], err);
		/* a downgrade killed after its commit point leaves maps it has not
		 * converted yet in today's layout (run again, it converts them) */
		if (r && abi < TS_ABI_VERSION && (flags & TS_OPEN_OLDER) &&
		    !ts_map_check(fd, path, &today, NULL))
			r = 0;
		if (!r)
			m->owner.map_id[m->owner.n++] = map_id(fd);
		if (r || !slot) {
			/* validated but not used by name: nothing to keep open */
			close(fd);
			if (r) {
				ts_maps_close(m);
				return r;
			}
			continue;
		}
		*slot = fd;
	}
	if (missing && !(flags & TS_OPEN_MISSING_OK)) {
		bool none = !any_pin(pin_dir, layout, n);

		ts_maps_close(m);
		if (none)
			return ts_fail(err, TS_ERR_RUNTIME,
				       "not loaded under %s: run 'tcpshift load --dev IFACE' first",
				       pin_dir);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "cannot open pinned map %s/%s: %s (a load that did not finish? run "
			       "'tcpshift load' again)",
			       pin_dir, missing, strerror(ENOENT));
	}
	if (m->settings < 0) {
		if (flags & TS_OPEN_MISSING_OK)
			return 0;
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME, "no settings map under %s", pin_dir);
	}
	snprintf(path, sizeof(path), "%s/settings", pin_dir);
	m->lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->lock_fd < 0 || stat(path, &st)) {
		r = -errno;
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open %s: %s", pin_dir, strerror(-r));
	}
	m->settings_dev = st.st_dev;
	m->settings_ino = st.st_ino;
	/* the layout is ours; the ABI version catches a change of meaning that
	 * kept the sizes */
	memset(&s, 0, sizeof(s));	/* an older layout's settings are a prefix */
	if (bpf_map_lookup_elem(m->settings, &zero, &s)) {
		r = -errno;
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", pin_dir,
			       strerror(-r));
	}
	if (s.abi_version == 0 && !(flags & TS_OPEN_INCOMPLETE)) {
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the load under %s did not finish: run 'tcpshift load' again, or "
			       "'tcpshift unload'",
			       pin_dir);
	}
	if (s.abi_version && s.abi_version < TS_ABI_VERSION && (flags & TS_OPEN_OLDER))
		return 0;
	if (s.abi_version && s.abi_version < TS_ABI_VERSION) {
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the maps in %s have layout version %u, this tcpshift has %u: "
			       "'tcpshift load' with this tcpshift upgrades them in place (flows "
			       "kept), or use the tcpshift that loaded them",
			       pin_dir, s.abi_version, TS_ABI_VERSION);
	}
	if (s.abi_version && s.abi_version != TS_ABI_VERSION) {
		ts_maps_close(m);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the maps in %s have layout version %u, newer than this tcpshift's "
			       "(%u): use the tcpshift that loaded them",
			       pin_dir, s.abi_version, TS_ABI_VERSION);
	}
	/* without it (no memory) every read opens its chunk anew */
	m->stats_cache = malloc(sizeof(*m->stats_cache));
	if (m->stats_cache)
		m->stats_cache->fd = -1;
	return 0;
}

void ts_maps_close(struct ts_maps *m)
{
	ts_maps_unlock(m);
	ts_journal_change_free(m->journal);
	m->journal = NULL;
	free(m->free_backends);
	m->free_backends = NULL;
	stats_cache_close(m);
	for (size_t i = 0; i < NAMED_MAPS; i++) {
		int *fd = (int *)((char *)m + named_maps[i].offset);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

/* flock, saying on stderr that it waits when another command holds the lock
 * for more than a second. */
int ts_flock_wait(int fd, int op, const char *what)
{
	for (int i = 0; i < 100; i++) {
		if (!flock(fd, op | LOCK_NB))
			return 0;
		if (errno != EWOULDBLOCK)
			return -errno;
		usleep(10000);
	}
	fprintf(stderr, "tcpshift: waiting for the lock on %s (another tcpshift command holds it)\n",
		what);
	return flock(fd, op) ? -errno : 0;
}

/*
 * Serialise commands: changes hold the lock exclusive, readers that want one
 * configuration shared. The lock is the pin directory's own flock, released
 * by the kernel when the process exits, however it exits. A command that
 * waited behind `unload` finds the pins gone (or others in their place) and
 * fails rather than write to maps nobody reads.
 */
static int maps_lock(struct ts_maps *m, int op, struct ts_err *err)
{
	int r;

	if (m->locked)
		return 0;
	if (m->lock_fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: not open", m->pin_dir);
	r = ts_flock_wait(m->lock_fd, op, m->pin_dir);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", m->pin_dir,
			       strerror(-r));
	m->locked = op;
	if (ts_maps_check_instance(m, err)) {
		ts_maps_unlock(m);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "tcpshift was unloaded from %s while this command waited for its "
			       "lock: nothing was changed",
			       m->pin_dir);
	}
	if (op == LOCK_EX) {
		struct ts_settings st;
		__u32 zero = 0;

		/* set until a clean unlock: a change killed or failed under the
		 * lock leaves it, and the next change repairs (config.c) */
		if (m->settings >= 0 && !bpf_map_lookup_elem(m->settings, &zero, &st)) {
			m->repair = st.flags & TS_SETTINGS_F_CHANGING;
			st.flags |= TS_SETTINGS_F_CHANGING;
			bpf_map_update_elem(m->settings, &zero, &st, BPF_EXIST);
		}
		m->failed = false;
		m->untouched = false;
		ts_journal_begin(m);
	}
	return 0;
}

/* by path, not by descriptor: a process short of descriptors can tell */
int ts_maps_check_instance(const struct ts_maps *m, struct ts_err *err)
{
	char path[TS_PIN_DIR_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/settings", m->pin_dir);
	if (stat(path, &st) || st.st_dev != m->settings_dev || st.st_ino != m->settings_ino)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the instance under %s is gone (unloaded, or loaded anew)",
			       m->pin_dir);
	return 0;
}

int ts_maps_lock(struct ts_maps *m, struct ts_err *err)
{
	return maps_lock(m, LOCK_EX, err);
}

int ts_maps_lock_shared(struct ts_maps *m, struct ts_err *err)
{
	return maps_lock(m, LOCK_SH, err);
}

/* Letting go of the exclusive lock commits: a change is journaled, and the
 * generation moves, so that a reader that keeps the configuration (the agent)
 * reads it again, and the data plane its backends' entries (bpf/tcpshift.bpf.c,
 * ts_epoch). The generation moves in a write of its own, before the one that
 * clears TS_SETTINGS_F_CHANGING: the data plane, which reads the two without
 * a lock, then never finds the flag cleared and the generation of before. A
 * change refused before its first write (m->untouched) moves nothing: the
 * copies of backends' entries stand again, and the agent reads nothing. */
void ts_maps_unlock(struct ts_maps *m)
{
	struct ts_settings s;
	__u32 zero = 0;

	/* what was FREE under the lock may be taken by another command next */
	m->free_backends_head = m->free_backends_count = 0;
	if (!m->locked)
		return;
	if (m->locked == LOCK_EX && m->untouched)
		ts_journal_drop(m);
	else if (m->locked == LOCK_EX)
		ts_journal_commit(m);
	if (m->locked == LOCK_EX && m->settings >= 0 &&
	    !bpf_map_lookup_elem(m->settings, &zero, &s)) {
		if (!m->untouched) {
			s.generation++;
			bpf_map_update_elem(m->settings, &zero, &s, BPF_EXIST);
		}
		/* left set when the repair it asked for has not run yet */
		if (!m->failed && !m->repair) {
			s.flags &= ~TS_SETTINGS_F_CHANGING;
			bpf_map_update_elem(m->settings, &zero, &s, BPF_EXIST);
		}
	}
	flock(m->lock_fd, LOCK_UN);
	m->locked = 0;
	m->untouched = false;
}

int ts_config_generation(const struct ts_maps *m, __u64 *generation, struct ts_err *err)
{
	struct ts_settings s;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(m->settings, &zero, &s))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", m->pin_dir,
			       strerror(errno));
	*generation = s.generation;
	return 0;
}

int ts_netns_self(__u64 *dev, __u64 *ino)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return -errno;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/* The name under /run/netns of namespace (dev, ino), if it has one. */
static bool netns_name(__u64 dev, __u64 ino, char *name, size_t len)
{
	DIR *d = opendir("/run/netns");
	struct dirent *e;
	bool found = false;
	int budget = 4096;

	if (!d)
		return false;
	while (!found && budget-- > 0 && (e = readdir(d))) {
		char path[300];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/run/netns/%s", e->d_name);
		if (!stat(path, &st) && st.st_dev == dev && st.st_ino == ino) {
			snprintf(name, len, "%s", e->d_name);
			found = true;
		}
	}
	closedir(d);
	return found;
}

/* Does namespace (dev, ino) still exist? Something holds every live one: a
 * name under /run/netns, or a process. (Not seen: one held only by an open
 * file descriptor or a bind mount elsewhere, which is then taken as gone.) */
static bool netns_alive(__u64 dev, __u64 ino)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char name[256];
	bool found = false;
	int budget = 1 << 20;

	if (netns_name(dev, ino, name, sizeof(name)))
		return true;
	if (!d)
		return true; /* cannot tell: alive, so that nothing is skipped */
	while (!found && budget-- > 0 && (e = readdir(d))) {
		char path[300];
		struct stat st;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", e->d_name);
		found = !stat(path, &st) && st.st_dev == dev && st.st_ino == ino;
	}
	closedir(d);
	return found;
}

int ts_settings_check_netns(const struct ts_settings *s, struct ts_err *err)
{
	char name[256];
	__u64 dev = 0, ino = 0;

	if (!s->netns_ino)
		return 0; /* never attached anywhere */
	if (ts_netns_self(&dev, &ino))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read /proc/self/ns/net: %s",
			       strerror(errno));
	if (dev == s->netns_dev && ino == s->netns_ino)
		return 0;
	if (netns_name(s->netns_dev, s->netns_ino, name, sizeof(name)))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "loaded in another network namespace; run with -n %s", name);
	if (!netns_alive(s->netns_dev, s->netns_ino))
		return TS_NETNS_GONE;
	return ts_fail(err, TS_ERR_RUNTIME,
		       "loaded in another network namespace (inode %llu, no name under "
		       "/run/netns); run with -n NAME in that namespace",
		       (unsigned long long)s->netns_ino);
}

int ts_settings_read(const struct ts_maps *m, struct ts_settings *s, struct ts_err *err)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(m->settings, &zero, s))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read settings map: %s",
			       strerror(errno));
	return 0;
}

const char *ts_settings_mode(const struct ts_settings *s)
{
	return !(s->flags & TS_SETTINGS_F_XDP)		? "tc"
	       : s->flags & TS_SETTINGS_F_XDP_GENERIC ? "xdp-generic"
						      : "xdp";
}

const char *ts_settings_handshakes(const struct ts_settings *s)
{
	return (s->flags & (TS_SETTINGS_F_XDP | TS_SETTINGS_F_XDP_HANDSHAKES)) ==
			       (TS_SETTINGS_F_XDP | TS_SETTINGS_F_XDP_HANDSHAKES)
		       ? "xdp"
		       : "tc";
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

int ts_stats_chunk(int outer, struct ts_stats_cache *cache, __u32 id, bool make, bool *made,
		   struct ts_err *err)
{
	__u32 chunk = id >> TS_STATS_CHUNK_SHIFT, inner_id;
	int fd;

	if (made)
		*made = false;
	if (chunk >= TS_STATS_CHUNKS)
		return ts_fail(err, TS_ERR_RUNTIME, "backend id %u is past the limit", id);
	if (cache && cache->fd >= 0 && cache->chunk == chunk)
		return cache->fd;
	if (!bpf_map_lookup_elem(outer, &chunk, &inner_id)) {
		fd = bpf_map_get_fd_by_id(inner_id);
		if (fd < 0)
			return ts_fail(err, TS_ERR_RUNTIME, "cannot open the counters of backend %u: %s",
				       id, strerror(errno));
	} else if (errno != ENOENT) {
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend_stats: %s", strerror(errno));
	} else if (!make) {
		return -ENOENT;
	} else {
		/* zeroed by the kernel; the programs see it from the update on.
		 * Made only under the exclusive lock: no other maker races
		 * (an array takes no BPF_NOEXIST) */
		fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "ts_stats_chunk", sizeof(__u32),
				    sizeof(struct ts_backend_stats), TS_STATS_CHUNK, NULL);
		if (fd < 0 || bpf_map_update_elem(outer, &chunk, &fd, BPF_ANY)) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return ts_fail(err, TS_ERR_RUNTIME,
				       "cannot make the counters of backend ids %u-%u: %s",
				       chunk << TS_STATS_CHUNK_SHIFT,
				       ((chunk + 1) << TS_STATS_CHUNK_SHIFT) - 1, strerror(e));
		}
		if (made)
			*made = true;
	}
	if (cache) {
		if (cache->fd >= 0)
			close(cache->fd);
		cache->fd = fd;
		cache->chunk = chunk;
	}
	return fd;
}

/* ts_stats_chunk through m's cache; the caller closes the descriptor when
 * *close_it. */
static int maps_stats_chunk(const struct ts_maps *m, __u32 id, bool make, bool *made,
			    bool *close_it, struct ts_err *err)
{
	*close_it = !m->stats_cache;
	return ts_stats_chunk(m->backend_stats, m->stats_cache, id, make, made, err);
}

int ts_backend_stats_read(const struct ts_maps *m, __u32 id, struct ts_backend_stats *out,
			  struct ts_err *err)
{
	int ncpu = libbpf_num_possible_cpus(), fd, r = 0;
	__u32 slot = id & (TS_STATS_CHUNK - 1);
	struct ts_backend_stats *percpu;
	bool close_it;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count CPUs: %s", strerror(-ncpu));
	/* no chunk: no id of it ever given, nothing counted */
	fd = maps_stats_chunk(m, id, false, NULL, &close_it, err);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	percpu = calloc((size_t)ncpu, sizeof(*percpu));
	if (!percpu)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	else if (bpf_map_lookup_elem(fd, &slot, percpu))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read stats of backend %u: %s", id,
			    strerror(errno));
	/* every field is a __u64 counter: summed as words */
	_Static_assert(sizeof(*out) % sizeof(__u64) == 0, "backend stats are __u64 counters");
	for (int i = 0; !r && i < ncpu; i++)
		for (size_t w = 0; w < sizeof(*out) / sizeof(__u64); w++)
			((__u64 *)out)[w] += ((const __u64 *)&percpu[i])[w];
	free(percpu);
	if (close_it)
		close(fd);
	return r;
}

__u64 ts_backend_open(const struct ts_backend_stats *st)
{
	/* per-CPU counts summed: an end counted before its opening was read
	 * cannot make it negative */
	return st->opened > st->ended ? st->opened - st->ended : 0;
}

__u64 ts_handshake_count(const struct ts_backend_stats *st)
{
	__u64 n = 0;

	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS; i++)
		n += st->handshake_hist[i];
	return n;
}

/* b - a for counters that only grow, 0 when per-CPU sums read at different
 * moments make it look negative */
static __u64 grown(__u64 a, __u64 b)
{
	return b > a ? b - a : 0;
}

void ts_gate_outcomes(const struct ts_backend_stats *base, const struct ts_backend_stats *settled,
		      const struct ts_backend_stats *st, __u64 *conns, __u64 *fail)
{
	__u64 refused = grown(base->refused, st->refused);
	__u64 timeouts = grown(base->syn_retransmits, st->syn_retransmits);
	__u64 answered = grown(ts_handshake_count(base), ts_handshake_count(st)) + refused;
	__u64 unanswered = grown(answered, grown(base->new_flows, settled->new_flows));

	*fail = refused + (timeouts > unanswered ? timeouts : unanswered);
	*conns = grown(base->handshakes, st->handshakes) + *fail;
}

__u64 ts_handshake_bucket_le(__u32 i)
{
	return i + 1 < TS_HANDSHAKE_BUCKETS ? TS_HANDSHAKE_BUCKET0_NS << i : UINT64_MAX;
}

__u64 ts_handshake_quantile(const struct ts_backend_stats *st, double q)
{
	__u64 n = ts_handshake_count(st), seen = 0;

	if (!n)
		return 0;
	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS; i++) {
		seen += st->handshake_hist[i];
		if ((double)seen >= q * (double)n)
			return ts_handshake_bucket_le(i);
	}
	return UINT64_MAX;
}

int ts_backend_stats_reset(const struct ts_maps *m, __u32 id, struct ts_err *err)
{
	int ncpu = libbpf_num_possible_cpus(), fd, r = 0;
	__u32 slot = id & (TS_STATS_CHUNK - 1);
	struct ts_backend_stats *zero;
	bool made, close_it;

	if (ncpu <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count CPUs: %s", strerror(-ncpu));
	fd = maps_stats_chunk(m, id, true, &made, &close_it, err);
	if (fd < 0 || made)	/* a new chunk reads zero */
		return fd < 0 ? fd : 0;
	/* a per-CPU array's update: no lock, no allocation */
	zero = calloc((size_t)ncpu, sizeof(*zero));
	if (!zero)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	else if (bpf_map_update_elem(fd, &slot, zero, BPF_ANY))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot reset stats of backend %u: %s", id,
			    strerror(errno));
	free(zero);
	if (close_it)
		close(fd);
	return r;
}

/* Counted in batches of COUNT_CHUNK entries, a few syscalls where one per key
 * took seconds at 262,144 backends or millions of flows; one per key on a
 * kernel (or map type) without batch lookups. */
#define COUNT_CHUNK	4096

int ts_count_entries(int map_fd, size_t key_size, __u32 *count)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), batch, n;
	char key[64], next[64];
	void *keys = NULL, *vals = NULL, *in = NULL, *prev = NULL;
	size_t vsize;
	int r;

	if (key_size > sizeof(key))
		return -EINVAL;
	*count = 0;
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len))
		return -errno;
	vsize = info.value_size;
	if (info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH)
		vsize = ((vsize + 7) & ~(size_t)7) * (size_t)libbpf_num_possible_cpus();
	keys = malloc(COUNT_CHUNK * (size_t)info.key_size);
	vals = malloc(COUNT_CHUNK * vsize);
	r = keys && vals ? 0 : -ENOMEM;
	while (!r) {
		n = COUNT_CHUNK;
		r = bpf_map_lookup_batch(map_fd, in, &batch, keys, vals, &n, NULL) ? -errno : 0;
		if (!r || r == -ENOENT)
			*count += n;
		in = &batch;
	}
	free(keys);
	free(vals);
	if (r == -ENOENT)	/* the end */
		return 0;
	*count = 0;
	while (!bpf_map_get_next_key(map_fd, prev, next)) {
		(*count)++;
		memcpy(key, next, key_size);
		prev = key;
	}
	return 0;
}

/* Each entry of a map of flows: flows' values (struct ts_flow_entry) begin
 * with the struct ts_flow that half_open's and local_flows' are. */
static int foreach_flow(int map_fd, ts_flow_cb cb, void *ctx)
{
	enum { CHUNK = 4096 };
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), batch, count;
	struct ts_flow_key *keys = NULL;
	char *vals = NULL;
	void *in = NULL;
	int r = 0;

	if (bpf_obj_get_info_by_fd(map_fd, &info, &len))
		return -errno;
	if (info.key_size != sizeof(*keys) || info.value_size < sizeof(struct ts_flow))
		return -EINVAL;
	keys = calloc(CHUNK, sizeof(*keys));
	vals = calloc(CHUNK, info.value_size);
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
			cb(&keys[i], (const struct ts_flow *)(vals + (size_t)i * info.value_size),
			   ctx);
		in = &batch;
	} while (!r);
	r = 0;
out:
	free(keys);
	free(vals);
	return r;
}

int ts_flow_map_foreach(int map_fd, ts_flow_cb cb, void *ctx)
{
	return foreach_flow(map_fd, cb, ctx);
}

int ts_flows_foreach(const struct ts_maps *m, ts_flow_cb cb, void *ctx)
{
	return foreach_flow(m->flows, cb, ctx) ?: foreach_flow(m->half_open, cb, ctx) ?:
	       foreach_flow(m->local_flows, cb, ctx);
}

/* Mark port (network order) as a VIP's in vip_ports (fd), before a service
 * on it is inserted (include/tcpshift.h). */
int ts_vip_port_set(int fd, __be16 port, struct ts_err *err)
{
	__u32 p = ntohs(port), w = p >> 6;
	__u64 bits;

	if (bpf_map_lookup_elem(fd, &w, &bits))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read vip_ports: %s", strerror(errno));
	if (bits & (1ULL << (p & 63)))
		return 0;
	bits |= 1ULL << (p & 63);
	if (bpf_map_update_elem(fd, &w, &bits, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot mark port %u in vip_ports: %s", p,
			       strerror(errno));
	return 0;
}
