// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place across layouts (doc/DESIGN.md, "Loading"), and the way
 * back (`downgrade`, at the end of this file): `load` on an
 * instance pinned by an older layout this build knows (today: layout 5,
 * include/tcpshift_abi5.h). The maps whose layout did not change stay as
 * they are, pins and all; those whose layout changed are created anew by
 * the load (unpinned), filled from the old ones, used by the new programs
 * from their first packet, and pinned in the old ones' place only once every
 * device runs the new programs. The settings pin is the commit point: until
 * it is replaced the instance is the old one (whose programs may already
 * have been replaced on some devices, which a kill leaves and the next
 * `load` redoes from the start), after it the new one.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "tcpshift_abi5.h"

/* Where the replaced maps are pinned before they are renamed into place (bpffs
 * takes no name with a dot). */
#define TS_STAGING_DIR		"migrating"

void ts_migration_step(const char *step)
{
	const char *at = getenv("TCPSHIFT_TEST_KILL_AT");

	if (at && !strcmp(at, step))
		raise(SIGKILL);
}

/* The maps a migration from layout 5 creates anew; the others keep their pins. */
static const char *const remade_abi5[] = { "settings", "counters", "direct_pending" };

void ts_settings_from_abi5(const struct ts_settings_abi5 *in, struct ts_settings *out)
{
	memset(out, 0, sizeof(*out));
	out->abi_version = TS_ABI_VERSION;
	out->seed = in->seed;
	out->ndevices = in->ndevices;
	out->flags = in->flags;
	out->netns_dev = in->netns_dev;
	out->netns_ino = in->netns_ino;
	out->netns_cookie = in->netns_cookie;
	memcpy(out->ifindex, in->ifindex, sizeof(out->ifindex));
	memcpy(out->dev_flags, in->dev_flags, sizeof(out->dev_flags));
	out->generation = 0;
}

bool ts_migration_remakes(const struct ts_migration *mg, const char *map)
{
	if (mg->from != TS_ABI5_VERSION)
		return false;
	for (size_t i = 0; i < sizeof(remade_abi5) / sizeof(remade_abi5[0]); i++)
		if (!strcmp(remade_abi5[i], map))
			return true;
	return false;
}

static int open_pin(const char *pin_dir, const char *name)
{
	char path[TS_PIN_DIR_MAX];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return bpf_obj_get(path);
}

/* A killed migration's staging pins: never used by a program once the
 * process that made them is gone, whatever step it reached. */
void ts_migration_clean(const char *pin_dir)
{
	char path[TS_PIN_DIR_MAX];

	for (size_t i = 0; i < sizeof(remade_abi5) / sizeof(remade_abi5[0]); i++) {
		snprintf(path, sizeof(path), "%s/" TS_STAGING_DIR "/%s", pin_dir, remade_abi5[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/" TS_STAGING_DIR, pin_dir);
	rmdir(path);
}

int ts_pinned_layout(const char *pin_dir, __u32 *abi, struct ts_err *err)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), zero = 0;
	/* big enough for a newer layout's settings: only its first field is read */
	__u32 buf[1024] = {};
	int fd = open_pin(pin_dir, "settings"), r = 0;

	*abi = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/settings: %s",
						     pin_dir, strerror(errno));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.key_size != 4 || info.value_size < sizeof(__u32) || info.value_size > sizeof(buf))
		r = ts_fail(err, TS_ERR_RUNTIME,
			    "%s/settings is not tcpshift's settings map: give another --pin-dir; "
			    "nothing was changed",
			    pin_dir);
	else if (bpf_map_lookup_elem(fd, &zero, buf))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", pin_dir,
			    strerror(errno));
	else if (info.value_size == sizeof(struct ts_settings_abi5) && buf[0] == TS_ABI5_VERSION)
		*abi = TS_ABI5_VERSION;
	else if (info.value_size == sizeof(struct ts_settings))
		*abi = buf[0] ?: TS_ABI_VERSION; /* 0: our own load that did not finish */
	else if (buf[0] > TS_ABI_VERSION)
		*abi = buf[0];
	else	/* no layout of ours: the checks of every pin refuse it as foreign */
		*abi = TS_ABI_VERSION;
	close(fd);
	return r;
}

int ts_migration_prepare(struct ts_migration *mg, const char *pin_dir, struct ts_err *err)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	struct ts_settings_abi5 old;
	char path[TS_PIN_DIR_MAX];
	__u32 zero = 0;
	size_t n;
	int fd, r;

	memset(mg, 0, sizeof(*mg));
	ts_migration_clean(pin_dir);
	r = ts_pinned_layout(pin_dir, &mg->from, err);
	if (r || mg->from != TS_ABI5_VERSION) {
		mg->from = 0;
		return r;
	}
	/* every other pin has today's layout (checked, as any command does) */
	r = ts_map_layouts(layout, &n, err);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(layout[i].name, "settings"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layout[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		r = ts_map_check(fd, path, &layout[i], err);
		close(fd);
		if (r)
			return r;
	}
	fd = open_pin(pin_dir, "settings");
	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &old)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", pin_dir,
			    strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	ts_settings_from_abi5(&old, &mg->settings);
	return 0;
}

int ts_counters_carry(int from_fd, __u32 nfrom, int to_fd, struct ts_err *err)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 *a, *b;
	int r = 0;

	if (ncpus <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count the CPUs: %s", strerror(-ncpus));
	a = calloc((size_t)ncpus, sizeof(*a));
	b = calloc((size_t)ncpus, sizeof(*b));
	for (__u32 k = 0; a && b && k < nfrom && k < TS_CNT_MAX && !r; k++) {
		if (bpf_map_lookup_elem(from_fd, &k, a) || bpf_map_lookup_elem(to_fd, &k, b)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read counter %u: %s", k,
				    strerror(errno));
			break;
		}
		for (int c = 0; c < ncpus; c++)
			b[c] += a[c];
		if (bpf_map_update_elem(to_fd, &k, b, BPF_EXIST))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write counter %u: %s", k,
				    strerror(errno));
	}
	if (!a || !b)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	free(a);
	free(b);
	return r;
}

/* Pin fd under the staging directory, then rename it over pin_dir/name: a
 * reader finds the old map or the new one there, never none. */
static int pin_in_place(int fd, const char *pin_dir, const char *name, struct ts_err *err)
{
	char staged[TS_PIN_DIR_MAX], final[TS_PIN_DIR_MAX];

	snprintf(staged, sizeof(staged), "%s/" TS_STAGING_DIR "/%s", pin_dir, name);
	snprintf(final, sizeof(final), "%s/%s", pin_dir, name);
	unlink(staged);
	if (bpf_obj_pin(fd, staged))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot pin the new %s at %s: %s", name,
			       staged, strerror(errno));
	ts_migration_step("staged");
	if (rename(staged, final))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "cannot pin the new %s at %s: %s (the new programs run; 'tcpshift "
			       "load' again completes the upgrade)",
			       name, final, strerror(errno));
	return 0;
}

int ts_migration_commit(const struct ts_migration *mg, const char *pin_dir,
			int (*fd_of)(void *ctx, const char *map), void *ctx, struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX];
	int old, r;

	if (mg->from != TS_ABI5_VERSION)
		return 0;
	/* counted by the old programs until they were replaced: added to what
	 * the new ones have counted since */
	old = open_pin(pin_dir, "counters");
	if (old >= 0) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		r = bpf_obj_get_info_by_fd(old, &info, &len) ? -errno : 0;
		/* layout 5's, or today's already put in place by a commit that was
		 * killed (the counts carried into it then) */
		if (!r)
			r = ts_counters_carry(old, info.max_entries, fd_of(ctx, "counters"), err);
		close(old);
		if (r)
			return r;
	}
	snprintf(dir, sizeof(dir), "%s/" TS_STAGING_DIR, pin_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create %s: %s", dir, strerror(errno));
	/* settings last: the commit point */
	r = pin_in_place(fd_of(ctx, "direct_pending"), pin_dir, "direct_pending", err);
	r = r ?: pin_in_place(fd_of(ctx, "counters"), pin_dir, "counters", err);
	ts_migration_step("before-settings-pin");
	r = r ?: pin_in_place(fd_of(ctx, "settings"), pin_dir, "settings", err);
	if (!r)
		rmdir(dir);
	return r;
}

/* ---- downgrade: the pins handed to the previous release ------------------------
 *
 * `tcpshift downgrade --to-layout N` (doc/DESIGN.md, "Downgrading"): the
 * programs running now stay attached and keep forwarding; the pins become
 * layout N's, so that the older release's `load` reuses them as its own and
 * replaces the programs, as a load within one layout does, with every pinned
 * flow kept. One step per layout, from L to L - 1, each with what it would
 * lose (the downgrade is refused unless the caller accepts that) and its
 * conversion. A step's conversion is idempotent: run again, it finishes what
 * a killed one left (the settings pin is its commit point; the older layout is
 * in force from there, and this build's `load` upgrades it again).
 */

void ts_settings_to_abi5(const struct ts_settings *in, struct ts_settings_abi5 *out)
{
	memset(out, 0, sizeof(*out));
	out->abi_version = TS_ABI5_VERSION;
	out->seed = in->seed;
	out->ndevices = in->ndevices;
	out->flags = in->flags;
	out->netns_dev = in->netns_dev;
	out->netns_ino = in->netns_ino;
	out->netns_cookie = in->netns_cookie;
	memcpy(out->ifindex, in->ifindex, sizeof(out->ifindex));
	memcpy(out->dev_flags, in->dev_flags, sizeof(out->dev_flags));
	/* generation: layout 5 has none (its readers poll the configuration) */
}

static void lost(struct ts_losses *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lost(struct ts_losses *l, const char *fmt, ...)
{
	va_list ap;

	if (l->n == TS_LOSSES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(l->what[l->n++], sizeof(l->what[0]), fmt, ap);
	va_end(ap);
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
}

/* A map like the pinned one (type, key, flags, name), with another value size
 * or number of entries: what the older layout pins there. */
static int map_like(int fd, __u32 value_size, __u32 max_entries, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);
	struct bpf_map_info info;
	int r = map_info(fd, &info), nfd;

	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot inspect a pinned map: %s",
			       strerror(-r));
	opts.map_flags = info.map_flags;
	nfd = bpf_map_create(info.type, info.name, info.key_size, value_size, max_entries, &opts);
	if (nfd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create the older layout's %s: %s",
			       info.name, strerror(errno));
	return nfd;
}

/* Entries of a hash map (its keys of key_size bytes), counted by walking it. */
static __u64 map_count(int fd, __u32 key_size)
{
	char key[256], next[256];
	void *prev = NULL;
	__u64 n = 0;

	if (key_size > sizeof(key))
		return 0;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

/* Layout 6 -> 5 loses:
 *  - the syn_not_viable counter (layout 5 has no entry for it);
 *  - direct connection marks, when the unconfirmed ones (direct_pending,
 *    which layout 5 has not: they become marks in `direct`, which layout 5
 *    makes on a direct connection's first packet) do not fit beside the
 *    confirmed ones: the LRU would evict marks of live connections.
 * Nothing else: every other map is layout 5's, pinned flows included. */
static int lost_6_to_5(const char *pin_dir, struct ts_losses *l, struct ts_err *err)
{
	int ncpus = libbpf_num_possible_cpus(), fd = open_pin(pin_dir, "counters");
	__u32 k = TS_CNT_SYN_NOT_VIABLE;
	struct bpf_map_info info;
	__u64 *v, sum = 0;
	int pending, direct;

	if (ncpus <= 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot count the CPUs: %s", strerror(-ncpus));
	v = calloc((size_t)ncpus, sizeof(*v));
	if (fd >= 0 && v && !map_info(fd, &info) && info.max_entries > k &&
	    !bpf_map_lookup_elem(fd, &k, v))
		for (int c = 0; c < ncpus; c++)
			sum += v[c];
	free(v);
	if (fd >= 0)
		close(fd);
	if (sum)
		lost(l, "the syn_not_viable counter (%llu SYNs): layout 5 has no place for it",
		     (unsigned long long)sum);
	pending = open_pin(pin_dir, "direct_pending");
	direct = open_pin(pin_dir, "direct");
	if (pending >= 0 && direct >= 0 && !map_info(direct, &info)) {
		__u64 np = map_count(pending, sizeof(struct ts_flow_key));
		__u64 nd = map_count(direct, sizeof(struct ts_flow_key));

		if (np + nd > info.max_entries)
			lost(l, "marks of direct connections: %llu unconfirmed and %llu confirmed do "
			     "not fit layout 5's one table of %u",
			     (unsigned long long)np, (unsigned long long)nd, info.max_entries);
	}
	if (pending >= 0)
		close(pending);
	if (direct >= 0)
		close(direct);
	return 0;
}

/* Pin fd as pin_dir/name, in place of what is there (through the staging
 * directory, as pin_in_place: the old map or the new one, never none). */
static int repin(int fd, const char *pin_dir, const char *name, struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX];

	snprintf(dir, sizeof(dir), "%s/" TS_STAGING_DIR, pin_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create %s: %s", dir, strerror(errno));
	return pin_in_place(fd, pin_dir, name, err);
}

static int down_6_to_5(const char *pin_dir, struct ts_err *err)
{
	int fd = open_pin(pin_dir, "settings"), nfd = -1, pending, direct, r = 0;
	struct bpf_map_info info;
	__u32 zero = 0;

	if (fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/settings: %s", pin_dir,
			       strerror(errno));
	/* direct_pending's connections marked in direct first: from the
	 * commit on, the older programs mark direct connections there alone */
	pending = open_pin(pin_dir, "direct_pending");
	direct = open_pin(pin_dir, "direct");
	if (pending >= 0 && direct >= 0) {
		struct ts_flow_key key, next;
		__u32 mark = 0;
		void *prev = NULL;

		while (!bpf_map_get_next_key(pending, prev, &next)) {
			bpf_map_update_elem(direct, &next, &mark, BPF_NOEXIST);
			key = next;
			prev = &key;
		}
	}
	/* settings: the commit point */
	if (!map_info(fd, &info) && info.value_size == sizeof(struct ts_settings)) {
		struct ts_settings s;
		struct ts_settings_abi5 s5;

		if (bpf_map_lookup_elem(fd, &zero, &s)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", pin_dir,
				    strerror(errno));
			goto out;
		}
		ts_settings_to_abi5(&s, &s5);
		nfd = map_like(fd, sizeof(s5), 1, err);
		if (nfd < 0) {
			r = nfd;
			goto out;
		}
		if (bpf_map_update_elem(nfd, &zero, &s5, BPF_ANY)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write layout 5's settings: %s",
				    strerror(errno));
			goto out;
		}
		r = repin(nfd, pin_dir, "settings", err);
		close(nfd);
		nfd = -1;
		if (r)
			goto out;
		ts_migration_step("down-settings");
	}
	close(fd);
	/* counters: what was counted until now, in layout 5's entries */
	fd = open_pin(pin_dir, "counters");
	if (fd >= 0 && !map_info(fd, &info) && info.max_entries != TS_ABI5_CNT_MAX) {
		nfd = map_like(fd, info.value_size, TS_ABI5_CNT_MAX, err);
		r = nfd < 0 ? nfd : ts_counters_carry(fd, TS_ABI5_CNT_MAX, nfd, err);
		r = r ?: repin(nfd, pin_dir, "counters", err);
		if (r)
			goto out;
		ts_migration_step("down-counters");
	}
	/* direct_pending: no map of layout 5 (the running programs keep theirs) */
	if (pending >= 0) {
		char path[TS_PIN_DIR_MAX];

		snprintf(path, sizeof(path), "%s/direct_pending", pin_dir);
		if (unlink(path) && errno != ENOENT)
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot remove %s: %s", path,
				    strerror(errno));
	}
out:
	if (!r)
		ts_migration_clean(pin_dir);
	if (nfd >= 0)
		close(nfd);
	if (fd >= 0)
		close(fd);
	if (pending >= 0)
		close(pending);
	if (direct >= 0)
		close(direct);
	return r;
}

/* The steps, one per layout; a newer layout adds its step to the previous one
 * here (its pins then go through every step down to the one asked for). */
static const struct down_step {
	__u32	from;	/* takes layout from's pins to layout from - 1's */
	int	(*lost)(const char *pin_dir, struct ts_losses *l, struct ts_err *err);
	int	(*apply)(const char *pin_dir, struct ts_err *err);
} down_steps[] = {
	{ 6, lost_6_to_5, down_6_to_5 },
};

static const struct down_step *down_step_from(__u32 layout)
{
	for (size_t i = 0; i < sizeof(down_steps) / sizeof(down_steps[0]); i++)
		if (down_steps[i].from == layout)
			return &down_steps[i];
	return NULL;
}

int ts_downgrade(const char *pin_dir, __u32 to, bool accept_loss, struct ts_losses *l,
		 struct ts_err *err)
{
	struct ts_settings s = {};
	struct ts_maps m;
	__u32 layout, zero = 0;
	int r;

	memset(l, 0, sizeof(*l));
	if (!to || to > TS_ABI_VERSION || !down_step_from(to + 1))
		return ts_fail(err, TS_ERR_USAGE,
			       "--to-layout %u: this tcpshift (layout %u) downgrades to layout %u, "
			       "release 0.2.0's",
			       to, TS_ABI_VERSION, TS_ABI5_VERSION);
	r = ts_check_root(err) ?: ts_pinned_layout(pin_dir, &layout, err);
	if (r)
		return r;
	if (layout > TS_ABI_VERSION)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the instance under %s has layout %u, newer than this tcpshift's "
			       "(%u): downgrade it with the tcpshift that loaded it",
			       pin_dir, layout, TS_ABI_VERSION);
	if (layout < to)
		return ts_fail(err, TS_ERR_USAGE,
			       "the instance under %s has layout %u, older than %u: 'tcpshift "
			       "load' upgrades it",
			       pin_dir, layout, to);
	/* every pin validated as ours (an older layout's settings as a
	 * prefix), loaded from this namespace, under the exclusive lock */
	r = ts_maps_open_flags(&m, pin_dir, TS_OPEN_OLDER | TS_OPEN_MISSING_OK, err);
	if (r)
		return r;
	r = m.settings < 0 || bpf_map_lookup_elem(m.settings, &zero, &s)
		    ? ts_fail(err, TS_ERR_RUNTIME, "not loaded under %s: nothing to downgrade",
			      pin_dir)
		    : 0;
	if (!r && !s.abi_version)
		r = ts_fail(err, TS_ERR_RUNTIME,
			    "the load under %s did not finish: run 'tcpshift load' again first",
			    pin_dir);
	if (!r && s.ndevices && ts_settings_check_netns(&s, err) < 0)
		r = -err->status;
	if (!r) {
		r = ts_flock_wait(m.lock_fd, LOCK_EX, pin_dir);
		if (r)
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot lock %s: %s", pin_dir,
				    strerror(-r));
	}
	/* what every step would lose, before any changes anything */
	for (__u32 at = layout; !r && at > to; at--)
		r = down_step_from(at)->lost(pin_dir, l, err);
	if (!r && l->n && !accept_loss) {
		char what[TS_LOSSES_MAX * 200] = "";

		for (size_t i = 0; i < l->n; i++)
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s",
				 i ? "; " : "", l->what[i]);
		r = ts_fail(err, TS_ERR_USAGE,
			    "a downgrade to layout %u would lose %s; nothing was changed "
			    "(--accept-loss to downgrade anyway)",
			    to, what);
	}
	/* down to `to`; at `to` already, the last step completes what a killed
	 * run of it left (or finds nothing to do) */
	for (__u32 at = layout > to ? layout : to + 1; !r && at > to; at--)
		r = down_step_from(at)->apply(pin_dir, err);
	ts_maps_close(&m);
	return r;
}
