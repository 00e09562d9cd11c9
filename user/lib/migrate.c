// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place across layouts (doc/DESIGN.md, "Loading"), and the way back
 * (`downgrade`, at the end of this file): `load` on an instance pinned by an
 * older layout this build knows (layouts 5, 6 and 7, include/tcpshift_abi5.h,
 * include/tcpshift_abi6.h, include/tcpshift_abi7.h). Each layout change is one
 * step, from a layout to the next, with the maps it makes anew, how it fills
 * them from the old ones before any program uses them (fill), and what it
 * carries over once every device runs the new programs (carry); an older
 * instance goes through every step from its layout on. The maps no step remakes
 * stay as they are, pins and all; those remade are created by the load
 * (unpinned), filled from the old ones, used by the new programs from their
 * first packet, and pinned in the old ones' place only once every device runs
 * the new programs. The settings pin is the commit point: until it is replaced
 * the instance is the old one (whose programs may already have been replaced on
 * some devices, which a kill leaves and the next `load` redoes from the start),
 * after it the new one.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "tcpshift_abi5.h"
#include "tcpshift_abi6.h"
#include "tcpshift_abi7.h"
#include "table.h"

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
static int migrate_7_to_8_fill(const char *pin_dir, fd_of_fn fd_of, void *ctx,
			       struct ts_err *err);
static int migrate_7_to_8_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err);
static int tables_current(const char *pin_dir, struct ts_err *err);
static int repin(int fd, const char *pin_dir, const char *name, struct ts_err *err);

/* settings is remade by every step: the commit point */
static const char *const remade_5_to_6[] = { "settings", "counters", "direct_pending", NULL };
static const char *const remade_6_to_7[] = { "settings", "services",	   "service_names",
					     "backends", "backend_addrs", "rollouts",
					     NULL };
static const char *const remade_7_to_8[] = { "settings", "backend_stats", "replies", "vip_ports",
					     "flows",	 "tables",	  NULL };

static const struct migration_step steps[] = {
	{ TS_ABI5_VERSION, remade_5_to_6, NULL, migrate_5_to_6_carry },
	{ TS_ABI6_VERSION, remade_6_to_7, migrate_6_to_7_fill, NULL },
	{ TS_ABI7_VERSION, remade_7_to_8, migrate_7_to_8_fill, migrate_7_to_8_carry },
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
	if (abi <= TS_ABI7_VERSION && !strcmp(l->name, "backend_stats")) {
		l->type = BPF_MAP_TYPE_PERCPU_HASH;
		l->value_size = sizeof(struct ts_backend_stats);
		l->map_flags = BPF_F_NO_PREALLOC;
	}
	if (abi <= TS_ABI7_VERSION && !strcmp(l->name, "replies"))
		l->value_size = sizeof(struct ts_reply_state_abi7);
	if (abi <= TS_ABI7_VERSION && !strcmp(l->name, "flows"))
		l->value_size = sizeof(struct ts_flow);
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

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
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
	if (r || (mg->from != TS_ABI_VERSION && first_step(mg->from) == NSTEPS)) {
		mg->from = 0;
		return r;
	}
	/* every pin has its layout's layout (checked, as any command does),
	 * before anything is made anew */
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
	if (mg->from == TS_ABI_VERSION) {
		mg->from = 0;
		return tables_current(pin_dir, err);
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
	int services = fd_of(ctx, "services"), names = fd_of(ctx, "service_names"), old, r;
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
	/* the names index; the tables are the next step's (tables_remake:
	 * every instance of layout 6 goes on to 8) */
	while (!r && !bpf_map_get_next_key(services, first ? NULL : &prev, &key)) {
		struct ts_service_name name = {};
		struct ts_service svc;

		first = false;
		prev = key;
		if (bpf_map_lookup_elem(services, &key, &svc))
			continue;
		memcpy(name.name, svc.name, sizeof(name.name) - 1);
		if (bpf_map_update_elem(names, &name, &key, BPF_ANY))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot index service %s: %s", svc.name,
				    strerror(errno));
	}
	return r;
}

/* ---- 7 -> 8: counters in chunks made by the control plane ------------------------ */

/* A chunk of counters in outer for each chunk of backend ids with one given:
 * the new programs count from their first packet. */
static int stats_chunks_make(int backends, int outer, struct ts_err *err)
{
	struct ts_backend *be = calloc(TS_STATS_CHUNK, sizeof(*be));
	__u32 *keys = calloc(TS_STATS_CHUNK, sizeof(*keys)), in_batch, out_batch;
	bool first = true;
	int r = be && keys ? 0 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");

	while (!r) {
		__u32 got = TS_STATS_CHUNK;
		int last = bpf_map_lookup_batch(backends, first ? NULL : &in_batch, &out_batch, keys,
						be, &got, NULL);

		if (last && errno != ENOENT) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read backends: %s", strerror(errno));
			break;
		}
		for (__u32 i = 0; !r && i < got; i++) {
			int fd;

			if (be[i].state == TS_BACKEND_FREE)
				continue;
			fd = ts_stats_chunk(outer, NULL, keys[i], true, NULL, err);
			if (fd < 0)
				r = fd;
			else
				close(fd);
			/* the rest of its chunk has it now */
			while (i + 1 < got && keys[i + 1] >> TS_STATS_CHUNK_SHIFT ==
						      keys[i] >> TS_STATS_CHUNK_SHIFT)
				i++;
		}
		if (last)
			break;
		in_batch = out_batch;
		first = false;
	}
	free(be);
	free(keys);
	return r;
}

/* What a copied entry's value gets beyond the old one's bytes (copy_prefix):
 * out holds them, and zeros after; ctx is the caller's (entries_up: the
 * backends' entries read so far). */
typedef void (*complete_fn)(void *out, void *ctx);

/*
 * Every entry of map from into map to (flags BPF_ANY; BPF_NOEXIST: only those
 * to lacks), its value's first bytes as they are and the rest zero, or what
 * complete (if given) makes of it: how replies' and flows' entries go between
 * layouts 7 and 8, whose values differ only in what layout 8 added at their
 * end (include/tcpshift_abi7.h). Read a chunk at a time (each bucket's
 * entries as they are when it is read: the old programs may still write
 * meanwhile), and written so (BPF_ANY) or one by one (BPF_NOEXIST, which a
 * batch does not take).
 */
static int copy_prefix(int from, int to, __u64 flags, complete_fn complete, void *ctx,
		       struct ts_err *err)
{
	enum { CHUNK = 4096 };
	struct bpf_map_info fi, ti;
	char *keys = NULL, *vals = NULL, *outs = NULL;
	__u32 batch, n;
	void *in = NULL;
	int r = map_info(from, &fi) ?: map_info(to, &ti);

	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot inspect a map: %s", strerror(-r));
	if (fi.key_size != ti.key_size)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot copy %s: unexpected sizes", fi.name);
	keys = calloc(CHUNK, fi.key_size);
	vals = calloc(CHUNK, fi.value_size);
	outs = calloc(CHUNK, ti.value_size);
	if (!keys || !vals || !outs) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	do {
		n = CHUNK;
		r = bpf_map_lookup_batch(from, in, &batch, keys, vals, &n, NULL) ? -errno : 0;
		if (r && r != -ENOENT) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read %s: %s", fi.name,
				    strerror(-r));
			goto out;
		}
		in = &batch;
		for (__u32 i = 0; i < n; i++) {
			char *o = outs + (size_t)i * ti.value_size;

			memset(o, 0, ti.value_size);
			memcpy(o, vals + (size_t)i * fi.value_size,
			       fi.value_size < ti.value_size ? fi.value_size : ti.value_size);
			if (complete)
				complete(o, ctx);
		}
		if (flags == BPF_ANY && n && bpf_map_update_batch(to, keys, outs, &n, NULL)) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy %s into the new map: %s",
				    fi.name, strerror(errno));
			goto out;
		}
		for (__u32 i = 0; flags != BPF_ANY && i < n; i++)
			if (bpf_map_update_elem(to, keys + (size_t)i * fi.key_size,
						outs + (size_t)i * ti.value_size, flags) &&
			    errno != EEXIST) {
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy %s into the new map: %s",
					    fi.name, strerror(errno));
				goto out;
			}
	} while (!r);
	r = 0;
out:
	free(keys);
	free(vals);
	free(outs);
	return r;
}

/* The backends' entries a copy of flows reads, each id once: flows are many
 * and their backends few (a lookup per flow was one more system call for each
 * of up to 16 M entries). The load holds the pin directory's lock and the
 * data plane never writes `backends`, so an entry does not change meanwhile. */
struct backend_cache {
	int			fd;	/* backends */
	struct ts_backend	*be;	/* by id, TS_MAX_BACKENDS: read when known */
	__u8			*known;	/* by id: 0 not read yet, 1 read, 2 none */
};

/* A flows entry of layout 7 gets the address and port of its backend, when
 * that is still the one it was pinned to (the data plane compares them with
 * the backend's entry before the copy stands for it: tcpshift.h). An entry
 * of today's (pinned by a killed commit) is made to stand at no epoch. */
static void flow_complete(void *out, void *ctx)
{
	struct backend_cache *c = ctx;
	struct ts_flow_entry *e = out;
	__u32 id = e->flow.backend_id;

	e->epoch = 0;
	if (id >= TS_MAX_BACKENDS)
		return;
	if (!c->known[id])
		c->known[id] = bpf_map_lookup_elem(c->fd, &id, &c->be[id]) ? 2 : 1;
	if (c->known[id] != 1 || c->be[id].generation != e->flow.generation)
		return;
	memcpy(e->backend_addr, c->be[id].addr, sizeof(e->backend_addr));
	e->backend_port = c->be[id].port;
}

/* ... and a replies entry (of today's, pinned by a killed commit) at none. */
static void reply_complete(void *out, void *ctx)
{
	(void)ctx;
	((struct ts_reply_state *)out)->epoch = 0;
}

/* Map name (replies or flows): the entries the old programs wrote, replies
 * with no counts waiting, flows with their backends' addresses (flags
 * BPF_ANY at the fill; at the carry, BPF_NOEXIST: those written since). */
static int entries_up(const char *pin_dir, const char *name, fd_of_fn fd_of, void *ctx,
		      __u64 flags, struct ts_err *err)
{
	int old = open_pin(pin_dir, name), r;
	bool flows = !strcmp(name, "flows");
	struct backend_cache c = { .fd = flows ? fd_of(ctx, "backends") : -1 };

	if (old < 0)
		return errno == ENOENT ? 0 : ts_fail(err, TS_ERR_RUNTIME,
						     "cannot open %s/%s: %s", pin_dir, name,
						     strerror(errno));
	/* untouched pages: only the ids the flows name take memory */
	if (flows && (!(c.be = calloc(TS_MAX_BACKENDS, sizeof(*c.be))) ||
		      !(c.known = calloc(TS_MAX_BACKENDS, sizeof(*c.known)))))
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	else
		r = copy_prefix(old, fd_of(ctx, name), flags,
				flows ? flow_complete : reply_complete, &c, err);
	free(c.be);
	free(c.known);
	close(old);
	return r;
}

/* vip_ports (new in layout 8): the port of every service (the services the
 * load uses, filled by an earlier step when it remade them), before any
 * program reads it. */
static int vip_ports_fill(fd_of_fn fd_of, void *ctx, struct ts_err *err)
{
	int services = fd_of(ctx, "services"), ports = fd_of(ctx, "vip_ports"), r = 0;
	struct ts_endpoint_key key, prev;
	bool first = true;

	while (!r && !bpf_map_get_next_key(services, first ? NULL : &prev, &key)) {
		first = false;
		prev = key;
		r = ts_vip_port_set(ports, key.port, err);
	}
	return r;
}

/*
 * Tables: layout 7's are mmap-able arrays of one entry per element, today's
 * not mmap-able arrays of TS_TABLE_CHUNK entries per element (include/
 * tcpshift.h), and an array of maps takes only maps of its template's flags
 * and value size. Every table of the pinned `tables` goes into to: one of the
 * flags and value size wanted as it is (today's, pinned by a commit that was
 * killed, shares its tables), another copied into a new map of them, the
 * same row of entries. The control plane's lock is held, so no table changes
 * meanwhile. In chunks of TABLES_CHUNK, each chunk with one update of to (each
 * update of an array of maps waits for an RCU grace period; a batch, once),
 * its descriptors closed before the next.
 */
#define TABLES_CHUNK	256

/* A copy of table map fd (info) with flags and values of value_size bytes:
 * entries of its row (0: all it holds), zeros after. Its fd, or -1 with err
 * set. */
static int table_copy(int fd, const struct bpf_map_info *info, __u32 flags, __u32 value_size,
		      __u64 entries, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
	size_t have = (size_t)info->max_entries * info->value_size;
	size_t want = entries ? entries * sizeof(struct ts_table_entry) : have;
	__u32 n = info->max_entries, nout = (__u32)((want + value_size - 1) / value_size);
	__u32 out_batch, *keys = calloc((n > nout ? n : nout) ?: 1, sizeof(*keys));
	char *in = calloc(have ?: 1, 1), *out = calloc(nout ?: 1, value_size);
	int nfd = -1;

	if (!keys || !in || !out) {
		ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	} else if (info->type != BPF_MAP_TYPE_ARRAY || !n || info->value_size % 8 || want > have) {
		ts_fail(err, TS_ERR_RUNTIME, "the pinned table %s is not its service's table",
			info->name);
	} else if ((bpf_map_lookup_batch(fd, NULL, &out_batch, keys, in, &n, NULL) &&
		    errno != ENOENT) || n != info->max_entries) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot read the table %s: %s", info->name,
			strerror(errno));
	} else if ((nfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, info->name, sizeof(__u32),
					 value_size, nout, &opts)) < 0) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot create a table: %s", strerror(errno));
	} else {
		memcpy(out, in, want);
		for (__u32 i = 0; i < nout; i++)
			keys[i] = i;
		if (bpf_map_update_batch(nfd, keys, out, &nout, NULL)) {
			ts_fail(err, TS_ERR_RUNTIME, "cannot copy the table %s: %s", info->name,
				strerror(errno));
			close(nfd);
			nfd = -1;
		}
	}
	free(keys);
	free(in);
	free(out);
	return nfd;
}

/* halves: NULL, or each service id's ts_service.half_len (0: no service), for
 * tables whose row length their map does not tell (today's, in elements of
 * TS_TABLE_CHUNK entries): those of no service are dropped. */
static int tables_remake(const char *pin_dir, int to, __u32 flags, __u32 value_size,
			 const __u32 *halves, struct ts_err *err)
{
	int old = open_pin(pin_dir, "tables"), fds[TABLES_CHUNK];
	__u32 ids[TABLES_CHUNK], n = 0, id = 0;
	struct bpf_map_info oinfo;
	bool more = true;
	int r = 0;

	if (old < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/tables: %s", pin_dir,
			       strerror(errno));
	if (map_info(old, &oinfo) || oinfo.type != BPF_MAP_TYPE_ARRAY_OF_MAPS)
		r = ts_fail(err, TS_ERR_RUNTIME, "%s/tables is not an array of maps", pin_dir);
	for (; !r && more; id++) {
		__u32 inner_id, count;
		struct bpf_map_info info;
		int fd = -1;

		more = id < oinfo.max_entries;
		if (more && !bpf_map_lookup_elem(old, &id, &inner_id) &&
		    (!halves || (id < TS_MAX_SERVICES && halves[id]))) {
			fd = bpf_map_get_fd_by_id(inner_id);
			if (fd < 0 || map_info(fd, &info)) {
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot open table %u: %s", id,
					    strerror(errno));
			} else if (info.map_flags != flags || info.value_size != value_size) {
				int copy = table_copy(fd, &info, flags, value_size,
						      halves ? 2 * (__u64)halves[id] : 0, err);

				close(fd);
				fd = copy;
				r = copy < 0 ? -1 : 0;
			}
			if (!r) {
				ids[n] = id;
				fds[n++] = fd;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		count = n;
		if (!r && n && (n == TABLES_CHUNK || !more) &&
		    bpf_map_update_batch(to, ids, fds, &count, NULL))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot store %u tables: %s", n,
				    strerror(errno));
		if (r || n == TABLES_CHUNK || !more)
			while (n)
				close(fds[--n]);
	}
	close(old);
	return r;
}

/*
 * A `tables` pinned by a build of layout 8 from before its tables held
 * TS_TABLE_CHUNK entries an element (its template and tables layout 7's):
 * remade as today's, its tables copied, before the load verifies the new
 * programs against it (they read 512-byte elements). The old programs keep
 * theirs until they are replaced, the same entries: nothing changes under
 * the lock. The template cannot be read back, but the kernel takes only
 * tables equal to it, so a service's table tells. Without one, a table of
 * today's put in an index no table uses and taken out again tells (EINVAL:
 * another); that costs two RCU grace periods, which a service spares.
 */
static int table_of_a_service(const char *pin_dir, int tables)
{
	int services = open_pin(pin_dir, "services"), fd = -1;
	struct ts_endpoint_key key;
	struct bpf_map_info info;
	struct ts_service svc;
	__u32 inner_id;

	/* (before the pins' checks: its sizes are those read into) */
	if (services >= 0 && !map_info(services, &info) && info.type == BPF_MAP_TYPE_HASH &&
	    info.key_size == sizeof(key) && info.value_size == sizeof(svc) &&
	    !bpf_map_get_next_key(services, NULL, &key) &&
	    !bpf_map_lookup_elem(services, &key, &svc) &&
	    !bpf_map_lookup_elem(tables, &svc.id, &inner_id))
		fd = bpf_map_get_fd_by_id(inner_id);
	if (services >= 0)
		close(services);
	return fd;
}

/* 1: tables takes today's tables, 0: an earlier template's, or -errno. */
static int tables_today(const char *pin_dir, int tables)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
	int table = table_of_a_service(pin_dir, tables), r;
	__u32 id = TS_MAX_SERVICES, inner_id;
	struct bpf_map_info info;

	if (table >= 0) {
		r = map_info(table, &info) ?: info.map_flags == BPF_F_INNER_MAP &&
						      info.value_size == sizeof(struct ts_table_chunk);
		close(table);
		return r;
	}
	while (id-- > 0 && !bpf_map_lookup_elem(tables, &id, &inner_id))
		;
	if (id >= TS_MAX_SERVICES)
		return -ENOSPC;
	table = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_probe", sizeof(__u32),
			       sizeof(struct ts_table_chunk), 1, &opts);
	if (table < 0)
		return -errno;
	if (!bpf_map_update_elem(tables, &id, &table, BPF_ANY))
		r = bpf_map_delete_elem(tables, &id) ? -errno : 1;
	else
		r = errno == EINVAL ? 0 : -errno;
	close(table);
	return r;
}

/* tables made anew with a template of flags and value_size, every table
 * shared or copied into its format (tables_remake), pinned in place of the
 * old one. */
static int tables_replace(const char *pin_dir, __u32 flags, __u32 value_size,
			  const __u32 *halves, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, topts, .map_flags = flags);
	LIBBPF_OPTS(bpf_map_create_opts, oopts);
	int tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_table_map", sizeof(__u32), value_size, 1,
				  &topts), nfd = -1, r;

	oopts.inner_map_fd = tmpl;
	if (tmpl >= 0)
		nfd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tables", sizeof(__u32),
				     sizeof(__u32), TS_MAX_SERVICES, &oopts);
	r = nfd < 0 ? ts_fail(err, TS_ERR_RUNTIME, "cannot create tables: %s", strerror(errno))
		    : tables_remake(pin_dir, nfd, flags, value_size, halves, err) ?:
			      repin(nfd, pin_dir, "tables", err);
	if (nfd >= 0)
		close(nfd);
	if (tmpl >= 0)
		close(tmpl);
	return r;
}

static int tables_current(const char *pin_dir, struct ts_err *err)
{
	int old = open_pin(pin_dir, "tables"), r;
	struct bpf_map_info info;

	if (old < 0 || map_info(old, &info) || info.type != BPF_MAP_TYPE_ARRAY_OF_MAPS) {
		if (old >= 0)
			close(old);
		return 0;	/* the pins' own check says what is wrong */
	}
	r = tables_today(pin_dir, old);
	if (r < 0)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot check %s/tables: %s", pin_dir,
			    strerror(-r));
	else if (r)
		r = 0;
	else if (!(r = tables_replace(pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk),
				      NULL, err)))
		ts_migration_clean(pin_dir);
	close(old);
	return r;
}

static int migrate_7_to_8_fill(const char *pin_dir, fd_of_fn fd_of, void *ctx,
			       struct ts_err *err)
{
	int outer = fd_of(ctx, "backend_stats"), old = open_pin(pin_dir, "backend_stats");
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int r = tables_remake(pin_dir, fd_of(ctx, "tables"), BPF_F_INNER_MAP,
			      sizeof(struct ts_table_chunk), NULL, err);

	if (!r && old >= 0 && !bpf_obj_get_info_by_fd(old, &info, &len) &&
	    info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
		/* today's, pinned by a commit that was killed: its chunks hold
		 * what every program counted so far, and are shared */
		for (__u32 c = 0; !r && c < TS_STATS_CHUNKS; c++) {
			__u32 inner_id;
			int inner;

			if (bpf_map_lookup_elem(old, &c, &inner_id))
				continue;
			inner = bpf_map_get_fd_by_id(inner_id);
			if (inner < 0 || bpf_map_update_elem(outer, &c, &inner, BPF_ANY))
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot carry counters: %s",
					    strerror(errno));
			if (inner >= 0)
				close(inner);
		}
		close(old);
		return r;
	}
	if (old >= 0)
		close(old);
	if (r)
		return r;
	return stats_chunks_make(fd_of(ctx, "backends"), outer, err) ?:
	       entries_up(pin_dir, "replies", fd_of, ctx, BPF_ANY, err) ?:
	       entries_up(pin_dir, "flows", fd_of, ctx, BPF_ANY, err) ?:
	       vip_ports_fill(fd_of, ctx, err);
}

/* The flows and reverse entries the old programs wrote since the fill, then
 * what they counted (layout 7's hash, or layout 6's array) added into the
 * chunks; counts of an id no longer given are not carried. */
static int migrate_7_to_8_carry(const char *pin_dir, fd_of_fn fd_of, void *ctx,
				struct ts_err *err)
{
	int old = open_pin(pin_dir, "backend_stats"), outer = fd_of(ctx, "backend_stats");
	size_t words = sizeof(struct ts_backend_stats) / sizeof(__u64);
	struct ts_stats_cache cache = { .fd = -1 };
	int ncpus = libbpf_num_possible_cpus();
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), id, prev;
	__u64 *a = NULL, *b = NULL;
	bool first = true;
	int r = 0;

	r = entries_up(pin_dir, "flows", fd_of, ctx, BPF_NOEXIST, err) ?:
	    entries_up(pin_dir, "replies", fd_of, ctx, BPF_NOEXIST, err);
	if (old < 0 || r)
		goto out;
	/* today's, pinned by a commit that was killed: shared by the fill */
	if (bpf_obj_get_info_by_fd(old, &info, &len) || info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS)
		goto out;
	a = ncpus > 0 ? calloc((size_t)ncpus * words, sizeof(*a)) : NULL;
	b = ncpus > 0 ? calloc((size_t)ncpus * words, sizeof(*b)) : NULL;
	if (!a || !b) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	while (!r && !bpf_map_get_next_key(old, first ? NULL : &prev, &id)) {
		__u32 slot = id & (TS_STATS_CHUNK - 1);
		int fd;

		first = false;
		prev = id;
		if (bpf_map_lookup_elem(old, &id, a))
			continue;
		fd = ts_stats_chunk(outer, &cache, id, false, NULL, err);
		if (fd == -ENOENT)
			continue;
		if (fd < 0 || bpf_map_lookup_elem(fd, &slot, b)) {
			r = fd < 0 ? fd : ts_fail(err, TS_ERR_RUNTIME,
						  "cannot read the stats of backend %u: %s", id,
						  strerror(errno));
			break;
		}
		for (size_t w = 0; w < (size_t)ncpus * words; w++)
			b[w] += a[w];
		if (bpf_map_update_elem(fd, &slot, b, BPF_EXIST))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write the stats of backend %u: %s",
				    id, strerror(errno));
	}
out:
	if (cache.fd >= 0)
		close(cache.fd);
	free(a);
	free(b);
	if (old >= 0)
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

/* ---- 7 -> 6: back to layout 6's limits and table geometry ---------------------- */

/* A half of a layout-6 table of M slots: room for 256 backends. */
#define ABI6_HALF(m)	TS_TABLE_HALF(m, TS_ABI6_MAX_SERVICE_BACKENDS)

/* A service of layout 7 as layout 6 would hold it. */
struct service7 {
	struct ts_endpoint_key	key;
	struct ts_service	svc;
	__u32			n;	/* backends its live table lists */
	struct ts_table_entry	*be;	/* their (id, weight), sorted by name */
	const char		*unfit;	/* why layout 6 cannot hold it; NULL: it can */
};

static void services7_free(struct service7 *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		free(s[i].be);
	free(s);
}

/* The configuration of a service's live table (entries M..M+n of its live
 * half), from today's table (TS_TABLE_CHUNK entries an element: its halves
 * as its entry says), layout 7's or the layout-6 one a killed run made already
 * (an entry an element, halves of either geometry: half the table). */
static int service7_read_table(int tables, struct service7 *c, struct ts_err *err)
{
	struct bpf_map_info info, outer;
	struct ts_table_entry e, *row = NULL;
	__u32 inner_id, at, half, n, out_batch, *keys = NULL;
	int inner, r = 0;

	if (bpf_map_lookup_elem(tables, &c->svc.id, &inner_id) ||
	    (inner = bpf_map_get_fd_by_id(inner_id)) < 0) {
		/* layout 6's tables made by a killed run: no table, not kept */
		if (!map_info(tables, &outer) && outer.max_entries == TS_ABI6_MAX_SERVICES) {
			c->unfit = "no table in layout 6's";
			return 0;
		}
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open the table of service %s: %s",
			       c->svc.name, strerror(errno));
	}
	if (map_info(inner, &info)) {
		close(inner);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot inspect the table of %s: %s",
			       c->svc.name, strerror(errno));
	}
	/* the whole row, read at once */
	n = info.max_entries;
	half = info.value_size == sizeof(struct ts_table_chunk) ? c->svc.half_len
								 : info.max_entries / 2;
	keys = calloc(n ?: 1, sizeof(*keys));
	row = calloc(n ?: 1, info.value_size);
	if (!keys || !row)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	else if (info.value_size % sizeof(e) ||
		 (bpf_map_lookup_batch(inner, NULL, &out_batch, keys, row, &n, NULL) &&
		  errno != ENOENT) || n != info.max_entries)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read the table of %s: %s", c->svc.name,
			    strerror(errno));
	n = r ? 0 : (__u32)((size_t)info.max_entries * info.value_size / sizeof(e));
	at = c->svc.table_half * half + c->svc.table_size;
	e = at < n ? row[at] : (struct ts_table_entry){ .backend_id = ~0U };
	if (!r && (e.backend_id > TS_MAX_SERVICE_BACKENDS || at + 1 + e.backend_id > n ||
		   !(c->be = calloc(e.backend_id ?: 1, sizeof(*c->be)))))
		r = ts_fail(err, TS_ERR_RUNTIME, "the table of service %s is inconsistent",
			    c->svc.name);
	for (__u32 i = 0; !r && i < e.backend_id; i++, c->n++)
		c->be[i] = row[at + 1 + i];
	free(keys);
	free(row);
	close(inner);
	return r;
}

/* Every service of a layout-7 `services` pin, each with its backends and
 * whether layout 6 can hold it (*is7 false: the pin is layout 6's already). */
static int services7_read(const char *pin_dir, struct service7 **out, size_t *n, bool *is7,
			  struct ts_err *err)
{
	int services = open_pin(pin_dir, "services"), tables = open_pin(pin_dir, "tables");
	struct ts_endpoint_key key, prev;
	struct service7 *s = NULL;
	struct bpf_map_info info;
	bool first = true;
	int r = 0;

	*n = 0;
	*is7 = services >= 0 && tables >= 0 && !map_info(services, &info) &&
	       info.value_size == sizeof(struct ts_service);
	if (!*is7)
		goto out;
	s = calloc(TS_MAX_SERVICES, sizeof(*s));
	if (!s)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	while (!r && *n < TS_MAX_SERVICES &&
	       !bpf_map_get_next_key(services, first ? NULL : &prev, &key)) {
		struct service7 *c = &s[*n];

		first = false;
		prev = key;
		if (bpf_map_lookup_elem(services, &key, &c->svc))
			continue;
		c->key = key;
		(*n)++;
		r = service7_read_table(tables, c, err);
		if (c->unfit)
			continue;
		if (c->svc.id >= TS_ABI6_MAX_SERVICES)
			c->unfit = "a service id from 256 on";
		else if (c->n > TS_ABI6_MAX_SERVICE_BACKENDS)
			c->unfit = "more than 256 backends";
		for (__u32 i = 0; !c->unfit && i < c->n; i++)
			if (c->be[i].backend_id >= TS_ABI6_MAX_BACKENDS)
				c->unfit = "a backend id from 4,096 on";
	}
out:
	if (services >= 0)
		close(services);
	if (tables >= 0)
		close(tables);
	if (r) {
		services7_free(s, *n);
		*n = 0;
		s = NULL;
	}
	*out = s;
	return r;
}

/* keep[id], id < 4,096: backend id of layout 7's `backends` that layout 6
 * keeps (in use, and not a backend of a service it cannot hold); the number
 * in use it does not keep in *dropped. */
static int backends7_kept(const char *pin_dir, const struct service7 *s, size_t n, bool *keep,
			  __u32 *dropped, struct ts_err *err)
{
	int fd = open_pin(pin_dir, "backends");
	struct ts_backend be;
	bool *unfit = calloc(TS_MAX_BACKENDS, sizeof(*unfit));

	*dropped = 0;
	if (fd < 0 || !unfit) {
		free(unfit);
		if (fd >= 0)
			close(fd);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read %s/backends: %s", pin_dir,
			       fd < 0 ? strerror(errno) : "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		for (__u32 j = 0; s[i].unfit && j < s[i].n; j++)
			if (s[i].be[j].backend_id < TS_MAX_BACKENDS)
				unfit[s[i].be[j].backend_id] = true;
	for (__u32 id = 0; id < TS_MAX_BACKENDS; id++) {
		bool used = !bpf_map_lookup_elem(fd, &id, &be) && be.state != TS_BACKEND_FREE;

		if (id < TS_ABI6_MAX_BACKENDS)
			keep[id] = used && !unfit[id];
		if (used && (id >= TS_ABI6_MAX_BACKENDS || unfit[id]))
			(*dropped)++;
	}
	free(unfit);
	close(fd);
	return 0;
}

/* Layout 7 -> 6 loses what does not fit layout 6's limits: services with an
 * id from 256 on (there are more than 256 if any), more than 256 backends or
 * a backend id from 4,096 on (more than 4,096 backends in all), each with its
 * backends, their flows, counters and rollout. Nothing else: every other map
 * is kept or converted whole. */
static int lost_7_to_6(const char *pin_dir, struct ts_losses *l, struct ts_err *err)
{
	bool keep[TS_ABI6_MAX_BACKENDS];
	struct service7 *s;
	struct ts_settings st;
	size_t n, nunfit = 0, first = 0;
	__u32 dropped = 0, zero = 0;
	int fd = open_pin(pin_dir, "settings"), r;
	bool is7;

	/* a change killed under the lock leaves what only layout 7 repairs */
	if (fd >= 0 && !bpf_map_lookup_elem(fd, &zero, &st) &&
	    st.abi_version >= TS_ABI7_VERSION && (st.flags & TS_SETTINGS_F_CHANGING)) {
		close(fd);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "a change under %s was interrupted: make any change with this "
			       "tcpshift first (it repairs what was left), then downgrade; "
			       "nothing was changed",
			       pin_dir);
	}
	if (fd >= 0)
		close(fd);
	r = services7_read(pin_dir, &s, &n, &is7, err);
	if (r || !is7)
		return r;
	for (size_t i = n; i-- > 0;)
		if (s[i].unfit) {
			nunfit++;
			first = i;
		}
	r = backends7_kept(pin_dir, s, n, keep, &dropped, err);
	if (!r && nunfit)
		lost(l, "%zu of %zu services, layout 6 holding 256 services of 256 backends, "
		     "4,096 in all (%s: %s)",
		     nunfit, n, s[first].svc.name, s[first].unfit);
	if (!r && dropped)
		lost(l, "%u backends (of those services, or ids from 4,096 on) with their flows",
		     dropped);
	services7_free(s, n);
	return r;
}

/* A map of layout 6's kind in place of a layout-7 pin (inner_fd: of an array
 * of maps, else 0). */
static int map_abi6(enum bpf_map_type type, const char *name, __u32 key_size, __u32 value_size,
		    __u32 max_entries, int inner_fd, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = inner_fd);
	int fd = bpf_map_create(type, name, key_size, value_size, max_entries, &opts);

	if (fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create layout 6's %s: %s", name,
			       strerror(errno));
	return fd;
}

/* The layout-6 table of service c (at its M, halves of M + 1 + 256), its live
 * half built again from its configuration, the other one empty. */
static int table_abi6(const struct service7 *c, int backends, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__u32 half = ABI6_HALF(c->svc.table_size), h = c->svc.table_half;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (2 * (size_t)half * sizeof(struct ts_table_entry) + page - 1) / page * page;
	struct ts_backend_cfg *b = calloc(c->n ?: 1, sizeof(*b));
	struct ts_table_entry *e;
	char name[BPF_OBJ_NAME_LEN];
	int fd, r = 0;

	snprintf(name, sizeof(name), "ts_table_%u", c->svc.id);
	fd = b ? bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32),
				sizeof(struct ts_table_entry), 2 * half, &opts)
	       : -1;
	if (fd < 0) {
		free(b);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create layout 6's table of %s: %s",
			       c->svc.name, b ? strerror(errno) : "out of memory");
	}
	for (__u32 i = 0; !r && i < c->n; i++) {
		b[i].id = c->be[i].backend_id;
		b[i].weight = c->be[i].weight;
		if (bpf_map_lookup_elem(backends, &b[i].id, &b[i].be))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %u: %s", b[i].id,
				    strerror(errno));
	}
	e = r ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!r && e == MAP_FAILED)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot map layout 6's table of %s: %s",
			    c->svc.name, strerror(errno));
	if (!r) {
		r = table_write_half(e + h * half, c->svc.table_size, b, c->n, err);
		r = r ?: table_write_half(e + (1 - h) * half, c->svc.table_size, NULL, 0, err);
		munmap(e, len);
	}
	free(b);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

void ts_service_to_abi6(const struct ts_service *in, struct ts_service_abi6 *out)
{
	memset(out, 0, sizeof(*out));
	out->id = in->id;
	out->table_size = in->table_size;
	out->table_half = in->table_half;
	memcpy(out->name, in->name, sizeof(out->name));
	out->health = in->health;
	/* half_len: layout 6's is TS_TABLE_HALF(M, 256), its tables are made so;
	 * flags: layout 6 always takes table_size as given */
}

/* The pin name, if it has layout 7's geometry (max_entries, type or flags
 * other than layout 6's), open in *fd; else -1 there. */
static int pin7(const char *pin_dir, const char *name, __u32 max6, enum bpf_map_type type6,
		int *fd)
{
	struct bpf_map_info info;

	*fd = open_pin(pin_dir, name);
	if (*fd >= 0 && !map_info(*fd, &info) && info.max_entries == max6 &&
	    info.type == type6 && !(info.map_flags & BPF_F_NO_PREALLOC)) {
		close(*fd);
		*fd = -1;
	}
	return *fd;
}

/* Copy the entries of from whose key (a __u32 id) or value's backend_id passes
 * keep into to (value_size bytes per CPU when percpu). */
static int copy_kept(int from, int to, size_t key_size, size_t value_size, bool percpu,
		     bool (*keep)(const void *key, const void *value, const bool *kept),
		     const bool *kept, const char *what, struct ts_err *err)
{
	int ncpus = percpu ? libbpf_num_possible_cpus() : 1;
	char key[64], prev[64];
	void *value = calloc((size_t)(ncpus > 0 ? ncpus : 1), (value_size + 7) / 8 * 8);
	bool first = true;
	int r = value ? 0 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");

	while (!r && !bpf_map_get_next_key(from, first ? NULL : prev, key)) {
		first = false;
		memcpy(prev, key, key_size);
		if (bpf_map_lookup_elem(from, key, value) || !keep(key, value, kept))
			continue;
		if (bpf_map_update_elem(to, key, value, BPF_ANY))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy %s into layout 6's: %s",
				    what, strerror(errno));
	}
	free(value);
	return r;
}

static bool kept_id(const void *key, const void *value, const bool *kept)
{
	__u32 id = *(const __u32 *)key;

	(void)value;
	return id < TS_ABI6_MAX_BACKENDS && kept[id];
}

static bool kept_reply(const void *key, const void *value, const bool *kept)
{
	__u32 id = ((const struct ts_reply *)value)->backend_id;

	(void)key;
	return id < TS_ABI6_MAX_BACKENDS && kept[id];
}

static bool kept_rollout(const void *key, const void *value, const bool *kept)
{
	__u32 id = *(const __u32 *)key;

	(void)value;
	return id < TS_ABI6_MAX_SERVICES && kept[id];
}

/* Unless r (or nfd < 0: its error), replace pin name (open in old, layout
 * 7's) by nfd; both closed after, whatever happened. */
static int repin_abi6(int r, int old, int nfd, const char *pin_dir, const char *name,
		      struct ts_err *err)
{
	r = r ?: nfd < 0 ? nfd : repin(nfd, pin_dir, name, err);
	if (nfd >= 0)
		close(nfd);
	if (old >= 0)
		close(old);
	return r;
}

/* Settings of layout from - 1 pinned in place (a step down's commit point),
 * unless they are no longer layout from's; clear: flags the older layout has
 * not. */
static int settings_down(const char *pin_dir, __u32 from, __u32 clear, struct ts_err *err)
{
	int fd = open_pin(pin_dir, "settings"), nfd, r = 0;
	struct ts_settings st;
	char step[32];
	__u32 zero = 0;

	if (fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/settings: %s", pin_dir,
			       strerror(errno));
	if (!bpf_map_lookup_elem(fd, &zero, &st) && st.abi_version == from) {
		st.abi_version = from - 1;
		st.flags &= ~clear;
		nfd = map_like(fd, sizeof(st), 1, err);
		r = nfd < 0 ? nfd : 0;
		if (!r && bpf_map_update_elem(nfd, &zero, &st, BPF_ANY))
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot write layout %u's settings: %s",
				    from - 1, strerror(errno));
		r = r ?: repin(nfd, pin_dir, "settings", err);
		if (nfd >= 0)
			close(nfd);
		snprintf(step, sizeof(step), "down-%u-settings", from);
		if (!r)
			ts_migration_step(step);
	}
	close(fd);
	return r;
}

/*
 * settings first (the commit point: from there on the instance is layout 6's,
 * and a run again finishes what is left), then each map that is still layout
 * 7's, in an order in which every one is converted from pins of layout 7:
 * backends (which ids layout 6 keeps: from services and tables), backend_addrs,
 * backend_stats and rollouts (from the kept backends), tables (from services),
 * services, and service_names removed.
 */
static int down_7_to_6(const char *pin_dir, struct ts_err *err)
{
	bool keep[TS_ABI6_MAX_BACKENDS] = {}, keep_svc[TS_ABI6_MAX_SERVICES] = {};
	int old, nfd, backends = -1, r;
	struct service7 *s = NULL;
	__u32 dropped;
	char path[TS_PIN_DIR_MAX];
	size_t n = 0;
	bool is7 = false;

	r = settings_down(pin_dir, TS_ABI7_VERSION, TS_SETTINGS_F_CHANGING, err);
	if (r)
		return r;
	r = services7_read(pin_dir, &s, &n, &is7, err);
	for (size_t i = 0; i < n; i++)
		if (!s[i].unfit)
			keep_svc[s[i].svc.id] = true;
	/* backends: the ids layout 6 keeps, in its 4,096 */
	if (!r && pin7(pin_dir, "backends", TS_ABI6_MAX_BACKENDS, BPF_MAP_TYPE_ARRAY, &old) >= 0) {
		r = backends7_kept(pin_dir, s, n, keep, &dropped, err);
		nfd = r ? -1 : map_abi6(BPF_MAP_TYPE_ARRAY, "backends", sizeof(__u32),
					sizeof(struct ts_backend), TS_ABI6_MAX_BACKENDS, 0, err);
		for (__u32 id = 0; nfd >= 0 && !r && id < TS_ABI6_MAX_BACKENDS; id++) {
			struct ts_backend be;

			if (keep[id] && (bpf_map_lookup_elem(old, &id, &be) ||
					 bpf_map_update_elem(nfd, &id, &be, BPF_ANY)))
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy backend %u: %s", id,
					    strerror(errno));
		}
		r = repin_abi6(r, old, nfd, pin_dir, "backends", err);
		ts_migration_step("down-7-backends");
	}
	/* from here on: the kept ids are those layout 6's backends has */
	backends = r ? -1 : open_pin(pin_dir, "backends");
	for (__u32 id = 0; backends >= 0 && id < TS_ABI6_MAX_BACKENDS; id++) {
		struct ts_backend be;

		keep[id] = !bpf_map_lookup_elem(backends, &id, &be) && be.state != TS_BACKEND_FREE;
	}
	if (!r && backends < 0)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/backends: %s", pin_dir,
			    strerror(errno));
	if (!r && pin7(pin_dir, "backend_addrs", TS_ABI6_MAX_BACKENDS, BPF_MAP_TYPE_HASH,
		       &old) >= 0) {
		nfd = map_abi6(BPF_MAP_TYPE_HASH, "backend_addrs", sizeof(struct ts_endpoint_key),
			       sizeof(struct ts_reply), TS_ABI6_MAX_BACKENDS, 0, err);
		r = nfd < 0 ? nfd
			    : copy_kept(old, nfd, sizeof(struct ts_endpoint_key),
					sizeof(struct ts_reply), false, kept_reply, keep,
					"backend_addrs", err);
		r = repin_abi6(r, old, nfd, pin_dir, "backend_addrs", err);
	}
	if (!r && pin7(pin_dir, "backend_stats", TS_ABI6_MAX_BACKENDS, BPF_MAP_TYPE_PERCPU_ARRAY,
		       &old) >= 0) {
		nfd = map_abi6(BPF_MAP_TYPE_PERCPU_ARRAY, "backend_stats", sizeof(__u32),
			       sizeof(struct ts_backend_stats), TS_ABI6_MAX_BACKENDS, 0, err);
		r = nfd < 0 ? nfd
			    : copy_kept(old, nfd, sizeof(__u32), sizeof(struct ts_backend_stats),
					true, kept_id, keep, "backend_stats", err);
		r = repin_abi6(r, old, nfd, pin_dir, "backend_stats", err);
	}
	if (!r && pin7(pin_dir, "rollouts", TS_ABI6_MAX_SERVICES, BPF_MAP_TYPE_ARRAY, &old) >= 0) {
		nfd = map_abi6(BPF_MAP_TYPE_ARRAY, "rollouts", sizeof(__u32),
			       sizeof(struct ts_rollout), TS_ABI6_MAX_SERVICES, 0, err);
		r = nfd < 0 ? nfd
			    : copy_kept(old, nfd, sizeof(__u32), sizeof(struct ts_rollout), false,
					kept_rollout, keep_svc, "rollouts", err);
		r = repin_abi6(r, old, nfd, pin_dir, "rollouts", err);
	}
	/* tables: each kept service's, built again in layout 6's geometry */
	if (!r && pin7(pin_dir, "tables", TS_ABI6_MAX_SERVICES, BPF_MAP_TYPE_ARRAY_OF_MAPS,
		       &old) >= 0) {
		LIBBPF_OPTS(bpf_map_create_opts, opts,
			    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
		int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_table_map", sizeof(__u32),
					   sizeof(struct ts_table_entry), 1, &opts);

		nfd = inner < 0 ? ts_fail(err, TS_ERR_RUNTIME, "cannot create a table: %s",
					  strerror(errno))
				: map_abi6(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tables", sizeof(__u32),
					   sizeof(__u32), TS_ABI6_MAX_SERVICES, inner, err);
		if (inner >= 0)
			close(inner);
		for (size_t i = 0; nfd >= 0 && !r && i < n; i++) {
			int t;

			if (s[i].unfit)
				continue;
			t = table_abi6(&s[i], backends, err);
			if (t < 0) {
				r = t;
				break;
			}
			if (bpf_map_update_elem(nfd, &s[i].svc.id, &t, BPF_ANY))
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot store the table of %s: %s",
					    s[i].svc.name, strerror(errno));
			close(t);
		}
		r = repin_abi6(r, old, nfd, pin_dir, "tables", err);
		ts_migration_step("down-7-tables");
	}
	if (!r && is7) {
		old = open_pin(pin_dir, "services");
		nfd = map_abi6(BPF_MAP_TYPE_HASH, "services", sizeof(struct ts_endpoint_key),
			       sizeof(struct ts_service_abi6), TS_ABI6_MAX_SERVICES, 0, err);
		for (size_t i = 0; nfd >= 0 && !r && i < n; i++) {
			struct ts_service_abi6 v;

			if (s[i].unfit)
				continue;
			ts_service_to_abi6(&s[i].svc, &v);
			if (bpf_map_update_elem(nfd, &s[i].key, &v, BPF_ANY))
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot copy service %s: %s",
					    s[i].svc.name, strerror(errno));
		}
		r = repin_abi6(r, old, nfd, pin_dir, "services", err);
	}
	snprintf(path, sizeof(path), "%s/service_names", pin_dir);
	if (!r && unlink(path) && errno != ENOENT)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot remove %s: %s", path, strerror(errno));
	if (!r)
		ts_migration_clean(pin_dir);
	if (backends >= 0)
		close(backends);
	services7_free(s, n);
	return r;
}

/* ---- 8 -> 7: the counters back in one per-CPU hash -------------------------------- */

static int lost_8_to_7(const char *pin_dir, struct ts_losses *l, struct ts_err *err)
{
	(void)pin_dir;
	(void)l;
	(void)err;
	return 0;	/* layout 7 holds every counter */
}

/* An insert into a map allocated as it fills: its per-CPU caches refill
 * asynchronously (irq_work), so a burst may find them empty for a moment
 * (ENOMEM); wait and try again, 1 ms doubling up to 64 ms, about 2 s in all. */
static int update_filling(int fd, const void *key, const void *value)
{
	int r;

	for (unsigned int us = 1000, waited = 0;
	     (r = bpf_map_update_elem(fd, key, value, BPF_ANY)) && errno == ENOMEM &&
	     waited < 2000000; waited += us, us = us < 64000 ? 2 * us : us)
		usleep(us);
	return r;
}

/* The chunks' counters (an id's that counted anything) into a per-CPU hash
 * of layout 7's. */
static int stats_to_hash(int outer, int to, struct ts_err *err)
{
	size_t words = sizeof(struct ts_backend_stats) / sizeof(__u64);
	int ncpus = libbpf_num_possible_cpus(), r = 0;
	__u64 *v = ncpus > 0 ? calloc((size_t)ncpus * words, sizeof(*v)) : NULL;

	if (!v)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (__u32 c = 0; !r && c < TS_STATS_CHUNKS; c++) {
		__u32 inner_id;
		int inner;

		if (bpf_map_lookup_elem(outer, &c, &inner_id))
			continue;
		inner = bpf_map_get_fd_by_id(inner_id);
		if (inner < 0) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot open counters: %s",
				    strerror(errno));
			break;
		}
		for (__u32 slot = 0; !r && slot < TS_STATS_CHUNK; slot++) {
			__u32 id = c << TS_STATS_CHUNK_SHIFT | slot;
			bool any = false;

			if (bpf_map_lookup_elem(inner, &slot, v))
				continue;
			for (size_t w = 0; w < (size_t)ncpus * words; w++)
				any |= v[w] != 0;
			if (any && update_filling(to, &id, v))
				r = ts_fail(err, TS_ERR_RUNTIME,
					    "cannot copy the stats of backend %u into layout 7's: %s",
					    id, strerror(errno));
		}
		close(inner);
	}
	free(v);
	return r;
}

/* Map name (replies or flows) with layout 7's values (value_size), while its
 * pin is still today's: the counts waiting in replies' entries are not
 * carried (up to a second of each open flow's replies, doc/DESIGN.md
 * "Counters"), nor flows' copies of their backends' addresses. */
static int entries_down(const char *pin_dir, const char *name, __u32 value_size,
			struct ts_err *err)
{
	int fd = open_pin(pin_dir, name), nfd, r;
	struct bpf_map_info info;

	if (fd < 0 || map_info(fd, &info) || info.value_size == value_size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	nfd = map_like(fd, value_size, info.max_entries, err);
	r = nfd < 0 ? nfd
		    : copy_prefix(fd, nfd, BPF_ANY, NULL, NULL, err) ?: repin(nfd, pin_dir, name, err);
	if (nfd >= 0)
		close(nfd);
	close(fd);
	return r;
}

/* Layout 7's tables, mmap-able and of one entry per element, in a `tables`
 * whose template is (the one that layout's control plane inserts into):
 * remade every time the step runs, since a template cannot be read back;
 * tables already layout 7's are shared, so a step run again after a kill
 * copies nothing more. Each is as long as its service's entry says (the
 * services pin is the same map in both layouts). */
static int tables_down(const char *pin_dir, struct ts_err *err)
{
	__u32 *halves = calloc(TS_MAX_SERVICES, sizeof(*halves));
	int services = open_pin(pin_dir, "services"), r = 0;
	struct ts_endpoint_key key, prev;
	bool first = true;

	if (!halves)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	else if (services < 0)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot open %s/services: %s", pin_dir,
			    strerror(errno));
	/* each table's row length, from its service's entry */
	while (!r && !bpf_map_get_next_key(services, first ? NULL : &prev, &key)) {
		struct ts_service svc;

		first = false;
		prev = key;
		if (!bpf_map_lookup_elem(services, &key, &svc) && svc.id < TS_MAX_SERVICES)
			halves[svc.id] = svc.half_len;
	}
	r = r ?: tables_replace(pin_dir, BPF_F_INNER_MAP | BPF_F_MMAPABLE,
				sizeof(struct ts_table_entry), halves, err);
	if (services >= 0)
		close(services);
	free(halves);
	return r;
}

/* settings with ABI version 7 (the commit point), then replies and flows with
 * its values, its tables mmap-able, vip_ports removed and backend_stats as a
 * per-CPU hash, while their pins are still today's. */
static int down_8_to_7(const char *pin_dir, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	char path[TS_PIN_DIR_MAX];
	struct bpf_map_info info;
	int fd, nfd, r;

	r = settings_down(pin_dir, TS_ABI_VERSION, 0, err) ?:
	    entries_down(pin_dir, "replies", sizeof(struct ts_reply_state_abi7), err) ?:
	    entries_down(pin_dir, "flows", sizeof(struct ts_flow), err) ?:
	    tables_down(pin_dir, err);
	snprintf(path, sizeof(path), "%s/vip_ports", pin_dir);
	if (!r && unlink(path) && errno != ENOENT)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot remove %s: %s", path, strerror(errno));
	fd = r ? -1 : open_pin(pin_dir, "backend_stats");
	if (fd < 0 || map_info(fd, &info) || info.type != BPF_MAP_TYPE_ARRAY_OF_MAPS) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	nfd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "backend_stats", sizeof(__u32),
			     sizeof(struct ts_backend_stats), TS_MAX_BACKENDS, &opts);
	r = nfd < 0 ? ts_fail(err, TS_ERR_RUNTIME, "cannot create layout 7's backend_stats: %s",
			      strerror(errno))
		    : stats_to_hash(fd, nfd, err);
	r = r ?: repin(nfd, pin_dir, "backend_stats", err);
	if (nfd >= 0)
		close(nfd);
	close(fd);
	return r;
}

/* The steps, one per layout, newest first; a newer layout adds its step here
 * (its pins then go through every step down to the one asked for). */
static const struct down_step {
	__u32	from;	/* takes layout from's pins to layout from - 1's */
	int	(*lost)(const char *pin_dir, struct ts_losses *l, struct ts_err *err);
	int	(*apply)(const char *pin_dir, struct ts_err *err);
} down_steps[] = {
	{ 8, lost_8_to_7, down_8_to_7 },
	{ 7, lost_7_to_6, down_7_to_6 },
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
	__u32 layout, lowest, zero = 0;
	int r;

	memset(l, 0, sizeof(*l));
	/* the layouts reached by steps from this build's: lowest up to it */
	for (lowest = TS_ABI_VERSION; lowest > 1 && down_step_from(lowest); lowest--)
		;
	if (lowest == TS_ABI_VERSION)
		return ts_fail(err, TS_ERR_USAGE,
			       "--to-layout %u: this tcpshift (layout %u) has no downgrade", to,
			       TS_ABI_VERSION);
	if (to < lowest || to >= TS_ABI_VERSION)
		return ts_fail(err, TS_ERR_USAGE,
			       "--to-layout %u: this tcpshift (layout %u) downgrades to layouts "
			       "%u to %u (5: release 0.2.0's, 7: release 0.3.0's)",
			       to, TS_ABI_VERSION, lowest, TS_ABI_VERSION - 1);
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
	/* every step down to `to`, each doing only what is left: one killed
	 * after its commit point (its layout in force, some of its maps not
	 * converted yet) is finished, a step already done finds nothing to do */
	for (__u32 at = TS_ABI_VERSION; !r && at > to; at--)
		r = down_step_from(at)->apply(pin_dir, err);
	ts_maps_close(&m);
	return r;
}
