// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place across layouts (doc/DESIGN.md, "Loading"), and the way
 * back (`downgrade`, at the end of this file): `load` on an
 * instance pinned by an older layout this build knows (layouts 5 and 6,
 * include/tcpshift_abi5.h, include/tcpshift_abi6.h). Each layout change is one
 * step, from a layout to the next, with the maps it makes anew, how it fills
 * them from the old ones before any program uses them (fill), and what it
 * carries over once every device runs the new programs (carry); an older
 * instance goes through every step from its layout on. The maps no step
 * remakes stay as they are, pins and all; those remade are created by the load
 * (unpinned), filled from the old ones, used by the new programs from their
 * first packet, and pinned in the old ones' place only once every device runs
 * the new programs. The settings pin is the commit point: until it is replaced
 * the instance is the old one (whose programs may already have been replaced
 * on some devices, which a kill leaves and the next `load` redoes from the
 * start), after it the new one.
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
#include "tcpshift_abi6.h"

/* Where the replaced maps are pinned before they are renamed into place (bpffs
 * takes no name with a dot). */
#define TS_STAGING_DIR		"migrating"

void ts_migration_step(const char *step)
{
	const char *at = getenv("TCPSHIFT_TEST_KILL_AT");

	if (at && !strcmp(at, step))
		raise(SIGKILL);
}

typedef int (*fd_of_fn)(void *ctx, const char *map);

struct migration_step {
	__u32		from;		/* the step goes from this layout to the next */
	const char	*const *remade;	/* maps made anew, NULL-terminated */
	/* before any device runs the new programs: fill the new maps */
	int		(*fill)(const char *pin_dir, fd_of_fn fd_of, void *ctx, struct ts_err *err);
	/* once every device runs them: add what the old programs counted */
	int		(*carry)(const char *pin_dir, fd_of_fn fd_of, void *ctx, struct ts_err *err);
};

static int migrate_5_to_6_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err);
static int migrate_6_to_7_fill(const char *pin_dir, fd_of_fn fd_of, void *ctx,
			       struct ts_err *err);
static int migrate_6_to_7_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err);

/* settings is remade by every step: the commit point */
static const char *const remade_5_to_6[] = { "settings", "counters", "direct_pending", NULL };
static const char *const remade_6_to_7[] = { "settings",      "services",	 "service_names",
					     "tables",	      "backends",	 "backend_addrs",
					     "backend_stats", "rollouts",	 NULL };

static const struct migration_step steps[] = {
	{ TS_ABI5_VERSION, remade_5_to_6, NULL, migrate_5_to_6_carry },
	{ TS_ABI6_VERSION, remade_6_to_7, migrate_6_to_7_fill, migrate_6_to_7_carry },
};

#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* The steps an instance of layout from goes through: steps[first..NSTEPS). */
static size_t first_step(__u32 from)
{
	for (size_t i = 0; i < NSTEPS; i++)
		if (steps[i].from == from)
			return i;
	return NSTEPS;
}

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

void ts_service_from_abi6(const struct ts_service_abi6 *in, struct ts_service *out)
{
	memset(out, 0, sizeof(*out));
	out->id = in->id;
	out->table_size = in->table_size;
	out->table_half = in->table_half;
	/* its table as layout 6 made it; a change that needs more room makes
	 * a new one (table.c) */
	out->half_len = TS_TABLE_HALF(in->table_size, TS_ABI6_MAX_SERVICE_BACKENDS);
	memcpy(out->name, in->name, sizeof(out->name));
	out->health = in->health;
	/* layout 6 documents always told a size: it stays given */
	out->flags = TS_SERVICE_F_FIXED_SIZE;
}

bool ts_migration_remakes(const struct ts_migration *mg, const char *map)
{
	for (size_t i = first_step(mg->from); i < NSTEPS; i++)
		for (const char *const *r = steps[i].remade; *r; r++)
			if (!strcmp(*r, map))
				return true;
	return false;
}

void ts_layout_older(__u32 abi, struct ts_map_layout *l)
{
	if (abi == TS_ABI5_VERSION && !strcmp(l->name, "settings"))
		l->value_size = sizeof(struct ts_settings_abi5);
	if (abi != TS_ABI5_VERSION && abi != TS_ABI6_VERSION)
		return;
	if (!strcmp(l->name, "services")) {
		l->value_size = sizeof(struct ts_service_abi6);
		l->map_flags = 0;
	} else if (!strcmp(l->name, "backend_addrs")) {
		l->map_flags = 0;
	} else if (!strcmp(l->name, "backend_stats")) {
		l->type = BPF_MAP_TYPE_PERCPU_ARRAY;
		l->map_flags = 0;
	}
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

	for (size_t i = 0; i < NSTEPS; i++)
		for (const char *const *r = steps[i].remade; *r; r++) {
			snprintf(path, sizeof(path), "%s/" TS_STAGING_DIR "/%s", pin_dir, *r);
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
	if (r || first_step(mg->from) == NSTEPS) {
		mg->from = 0;
		return r;
	}
	/* every pin has its layout's layout (checked, as any command does) */
	r = ts_map_layouts(layout, &n, err);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct ts_map_layout today = layout[i];

		if (!strcmp(layout[i].name, "settings"))
			continue;
		ts_layout_older(mg->from, &layout[i]);
		snprintf(path, sizeof(path), "%s/%s", pin_dir, layout[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		/* a map a killed migration already pinned in place has today's */
		r = ts_map_check(fd, path, &layout[i], err);
		if (r && ts_migration_remakes(mg, layout[i].name) &&
		    !ts_map_check(fd, path, &today, NULL))
			r = 0;
		close(fd);
		if (r)
			return r;
	}
	fd = open_pin(pin_dir, "settings");
	/* layout 6's settings are today's (abi_version apart), layout 5's a
	 * prefix of them */
	memset(&old, 0, sizeof(old));
	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, mg->from == TS_ABI5_VERSION ? (void *)&old
										: (void *)&mg->settings)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/settings: %s", pin_dir,
			    strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	if (mg->from == TS_ABI5_VERSION)
		ts_settings_from_abi5(&old, &mg->settings);
	mg->settings.abi_version = TS_ABI_VERSION;
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

/* ---- 5 -> 6: settings grew, counters got one more, direct_pending is new ---------- */

static int migrate_5_to_6_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int old = open_pin(pin_dir, "counters"), r;

	if (old < 0)
		return 0;
	r = bpf_obj_get_info_by_fd(old, &info, &len) ? -errno : 0;
	/* layout 5's, or today's already put in place by a commit that was
	 * killed (the counts carried into it then) */
	if (!r)
		r = ts_counters_carry(old, info.max_entries, fd_of(ctx, "counters"), err);
	close(old);
	return r;
}

/* ---- 6 -> 7: the limits of a cluster, memory that follows the configuration ------- */

/* Every entry of the old map at pin_dir/name into fd, through convert (NULL:
 * the same bytes). */
static int copy_entries(const char *pin_dir, const char *name, int to, size_t key_size,
			void (*convert)(const void *in, void *out), struct ts_err *err)
{
	char key[64], prev[64], value[1024], out[1024];
	int from = open_pin(pin_dir, name), r = 0;
	bool first = true;

	if (from < 0)
		return errno == ENOENT ? 0 : ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/%s: %s",
						     pin_dir, name, strerror(errno));
	while (!bpf_map_get_next_key(from, first ? NULL : prev, key)) {
		first = false;
		memcpy(prev, key, key_size);
		if (bpf_map_lookup_elem(from, key, value))
			continue;	/* deleted meanwhile: nobody writes them now */
		if (convert)
			convert(value, out);
		if (bpf_map_update_elem(to, key, convert ? out : value, BPF_ANY)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy %s into the new map: %s", name,
				    strerror(errno));
			break;
		}
	}
	close(from);
	return r;
}

static void convert_service(const void *in, void *out)
{
	ts_service_from_abi6(in, out);
}

static int migrate_6_to_7_fill(const char *pin_dir, fd_of_fn fd_of, void *ctx,
			       struct ts_err *err)
{
	int services = fd_of(ctx, "services"), names = fd_of(ctx, "service_names");
	int tables = fd_of(ctx, "tables"), old, r;
	struct ts_endpoint_key key, prev;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	bool first = true;

	/* layout 6's services, or today's pinned by a commit that was killed */
	old = open_pin(pin_dir, "services");
	if (old >= 0 && bpf_obj_get_info_by_fd(old, &info, &len))
		info.value_size = 0;
	if (old >= 0)
		close(old);
	r = copy_entries(pin_dir, "services", services, sizeof(struct ts_endpoint_key),
			 info.value_size == sizeof(struct ts_service) ? NULL : convert_service,
			 err);
	r = r ?: copy_entries(pin_dir, "backends", fd_of(ctx, "backends"), sizeof(__u32), NULL,
			      err);
	r = r ?: copy_entries(pin_dir, "backend_addrs", fd_of(ctx, "backend_addrs"),
			      sizeof(struct ts_endpoint_key), NULL, err);
	r = r ?: copy_entries(pin_dir, "rollouts", fd_of(ctx, "rollouts"), sizeof(__u32), NULL,
			      err);
	if (r)
		return r;
	/* the names index, and each service's table (an array of maps reads
	 * as map ids, is written with fds) */
	old = open_pin(pin_dir, "tables");
	if (old < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/tables: %s", pin_dir,
			       strerror(errno));
	while (!r && !bpf_map_get_next_key(services, first ? NULL : &prev, &key)) {
		struct ts_service_name name = {};
		struct ts_service svc;
		__u32 inner_id;
		int inner;

		first = false;
		prev = key;
		if (bpf_map_lookup_elem(services, &key, &svc))
			continue;
		memcpy(name.name, svc.name, sizeof(name.name) - 1);
		if (bpf_map_update_elem(names, &name, &key, BPF_ANY))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot index service %s: %s", svc.name,
				    strerror(errno));
		if (r || bpf_map_lookup_elem(old, &svc.id, &inner_id))
			continue;
		inner = bpf_map_get_fd_by_id(inner_id);
		if (inner < 0 || bpf_map_update_elem(tables, &svc.id, &inner, BPF_ANY))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot carry the table of %s: %s",
				    svc.name, strerror(errno));
		if (inner >= 0)
			close(inner);
	}
	close(old);
	if (r)
		return r;
	/* every backend id given so far has its counters: zero now, the old
	 * programs' counts added by the carry */
	for (__u32 id = 0; !r && id < TS_ABI6_MAX_BACKENDS; id++) {
		struct ts_backend be;

		if (bpf_map_lookup_elem(fd_of(ctx, "backends"), &id, &be) ||
		    be.state == TS_BACKEND_FREE)
			continue;
		r = ts_backend_stats_zero(fd_of(ctx, "backend_stats"), id, err);
	}
	return r;
}

static int migrate_6_to_7_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err)
{
	int old = open_pin(pin_dir, "backend_stats"), to = fd_of(ctx, "backend_stats");
	size_t words = sizeof(struct ts_backend_stats) / sizeof(__u64);
	int ncpus = libbpf_num_possible_cpus();
	__u64 *a = NULL, *b = NULL;
	__u32 id, prev;
	bool first = true;
	int r = 0;

	if (old < 0)
		return 0;
	a = ncpus > 0 ? calloc((size_t)ncpus * words, sizeof(*a)) : NULL;
	b = ncpus > 0 ? calloc((size_t)ncpus * words, sizeof(*b)) : NULL;
	if (!a || !b) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	/* the ids the fill gave counters; the old map is layout 6's array, or
	 * today's hash pinned by a commit that was killed (its counts are all
	 * the old programs' and the new ones' since) */
	while (!r && !bpf_map_get_next_key(to, first ? NULL : &prev, &id)) {
		first = false;
		prev = id;
		if (bpf_map_lookup_elem(old, &id, a))
			continue;
		if (bpf_map_lookup_elem(to, &id, b)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read the stats of backend %u: %s",
				    id, strerror(errno));
			break;
		}
		for (size_t w = 0; w < (size_t)ncpus * words; w++)
			b[w] += a[w];
		if (bpf_map_update_elem(to, &id, b, BPF_EXIST))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write the stats of backend %u: %s",
				    id, strerror(errno));
	}
out:
	free(a);
	free(b);
	close(old);
	return r;
}

int ts_migration_fill(const struct ts_migration *mg, const char *pin_dir, fd_of_fn fd_of,
		      void *ctx, struct ts_err *err)
{
	int r = 0;

	for (size_t i = first_step(mg->from); i < NSTEPS && !r; i++)
		if (steps[i].fill)
			r = steps[i].fill(pin_dir, fd_of, ctx, err);
	return r;
}

int ts_migration_commit(const struct ts_migration *mg, const char *pin_dir, fd_of_fn fd_of,
			void *ctx, struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX];
	int r = 0;

	if (!mg->from)
		return 0;
	/* counted by the old programs until they were replaced: added to what
	 * the new ones have counted since */
	for (size_t i = first_step(mg->from); i < NSTEPS && !r; i++)
		if (steps[i].carry)
			r = steps[i].carry(pin_dir, fd_of, ctx, err);
	if (r)
		return r;
	snprintf(dir, sizeof(dir), "%s/" TS_STAGING_DIR, pin_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create %s: %s", dir, strerror(errno));
	/* settings last: the commit point */
	for (size_t i = first_step(mg->from); i < NSTEPS && !r; i++)
		for (const char *const *m = steps[i].remade; *m && !r; m++)
			if (strcmp(*m, "settings"))
				r = pin_in_place(fd_of(ctx, *m), pin_dir, *m, err);
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
