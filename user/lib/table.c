// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A service's table: two halves in one array map, each the Maglev slots plus
 * the (backend id, weight) list they were built from. A change writes the
 * half that is not live and switches halves with one update of the service's
 * `services` entry (doc/DESIGN.md, "The table commit protocol"; invariant 3).
 *
 * The maps are not mmap-able: the kernel then allocates a table of up to
 * 32 KiB (M up to 1,021 with its room) with kmalloc, in its direct map, the
 * map's header before the slots, where an mmap-able one is vmalloc memory of
 * its own pages, the header on a page of its own. A new connection's first
 * packet, each to another of 65,536 services, found them cold: about 300 ns
 * more (BENCHMARKS.md, "Tables in the kernel's direct map"). A range is read
 * and written with one batch command, which copies one element at a time
 * (~140 ns each): a table of one entry per element made an import of 65,536
 * services 60 % slower than the mmap it replaced, and a `stats` of them 2.2
 * times; TS_TABLE_CHUNK entries to an element (include/tcpshift.h) make a
 * half of M 509 nine or ten elements.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "libtcpshift.h"
#include "table.h"

int table_cmp_backend_name(const void *a, const void *b)
{
	const struct ts_backend_cfg *x = a, *y = b;

	return strcmp(x->be.name, y->be.name);
}

void table_close(struct table_view *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* what tables holds is checked as the pins are: before it is read */
static int table_check(struct table_view *t, __u32 half_len, const char *what,
		       struct ts_err *err)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);

	if (bpf_obj_get_info_by_fd(t->fd, &info, &info_len) || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.map_flags != BPF_F_INNER_MAP ||
	    info.max_entries != TS_TABLE_CHUNKS(2 * half_len) ||
	    info.value_size != sizeof(struct ts_table_chunk)) {
		table_close(t);
		return ts_fail(err, TS_ERR_RUNTIME, "the table of %s is inconsistent", what);
	}
	t->half_len = half_len;
	return 0;
}

int table_open(const struct ts_maps *m, const struct ts_service *svc, struct table_view *t,
	       struct ts_err *err)
{
	__u32 inner_id;

	t->fd = -1;
	if (bpf_map_lookup_elem(m->tables, &svc->id, &inner_id) ||
	    (t->fd = bpf_map_get_fd_by_id(inner_id)) < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open the table of service %s: %s",
			       svc->name, strerror(errno));
	if (svc->half_len <= svc->table_size) {
		table_close(t);
		return ts_fail(err, TS_ERR_RUNTIME, "the table of %s is inconsistent", svc->name);
	}
	return table_check(t, svc->half_len, svc->name, err);
}

/* Elements [c, c + nc) of t into out, with one batch command. */
static int chunks_read(struct table_view *t, __u32 c, __u32 nc, struct ts_table_chunk *out,
		       struct ts_err *err)
{
	__u32 *keys = calloc(nc, sizeof(*keys)), in_batch = c - 1, out_batch, got = nc;
	int r = 0;

	if (!keys)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	/* a batch starts after the key given; ENOENT: it reached the end */
	if (bpf_map_lookup_batch(t->fd, c ? &in_batch : NULL, &out_batch, keys, out, &got,
				 NULL) &&
	    errno != ENOENT)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read a table: %s", strerror(errno));
	else if (got != nc || keys[0] != c)
		r = ts_fail(err, TS_ERR_RUNTIME, "short read of a table (%u of %u elements)", got,
			    nc);
	free(keys);
	return r;
}

/* The elements holding entries [first, first + n) of t, read: *c the first,
 * *nc how many, *buf them (freed by the caller). */
static int chunks_around(struct table_view *t, __u32 first, __u32 n, __u32 *c, __u32 *nc,
			 struct ts_table_chunk **buf, struct ts_err *err)
{
	int r;

	*buf = NULL;
	if ((__u64)first + n > 2 * t->half_len)
		return ts_fail(err, TS_ERR_RUNTIME, "a table has no entries %u to %u (of %u)",
			       first, first + n, 2 * t->half_len);
	*c = first / TS_TABLE_CHUNK;
	*nc = TS_TABLE_CHUNKS(first + n) - *c;
	*buf = calloc(*nc ?: 1, sizeof(**buf));
	if (!*buf)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = *nc ? chunks_read(t, *c, *nc, *buf, err) : 0;
	if (r) {
		free(*buf);
		*buf = NULL;
	}
	return r;
}

int table_read(struct table_view *t, __u32 first, __u32 n, struct ts_table_entry *out,
	       struct ts_err *err)
{
	struct ts_table_chunk *buf;
	__u32 c, nc;
	int r = chunks_around(t, first, n, &c, &nc, &buf, err);

	if (!r)
		memcpy(out, buf->e + (first - c * TS_TABLE_CHUNK), n * sizeof(*out));
	free(buf);
	return r;
}

/*
 * The elements the range falls in are read, the range written over them, and
 * they are written back with one batch command. An element at the edge of a
 * half may hold entries of the other half, the live one: they are written
 * back as they were read, byte for byte, so a packet that reads one while it
 * is written finds it as it was (no other change writes them: the lock).
 */
int table_write(struct table_view *t, __u32 first, __u32 n, const struct ts_table_entry *in,
		struct ts_err *err)
{
	struct ts_table_chunk *buf;
	__u32 c, nc, *keys = NULL, count;
	int r = chunks_around(t, first, n, &c, &nc, &buf, err);

	if (r || !n)
		goto out;
	memcpy(buf->e + (first - c * TS_TABLE_CHUNK), in, n * sizeof(*in));
	keys = calloc(nc, sizeof(*keys));
	if (!keys) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	for (__u32 i = 0; i < nc; i++)
		keys[i] = c + i;
	count = nc;
	if (bpf_map_update_batch(t->fd, keys, buf, &count, NULL))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot write a table: %s", strerror(errno));
out:
	free(keys);
	free(buf);
	return r;
}

__u32 ts_table_size_for(size_t n)
{
	static const __u32 sizes[] = { TS_TABLE_SIZES };
	size_t i = 0;

	while (i + 1 < sizeof(sizes) / sizeof(sizes[0]) &&
	       sizes[i] < (__u64)TS_SLOTS_PER_BACKEND * n)
		i++;
	return sizes[i];
}

__u32 table_room(__u32 size, bool fixed)
{
	__u32 room = size / TS_SLOTS_PER_BACKEND;

	/* a size that follows the backends grows before they outgrow it */
	if (fixed || room > TS_MAX_SERVICE_BACKENDS)
		return TS_MAX_SERVICE_BACKENDS;
	return room ?: 1;
}

void ts_effective_weights(const struct ts_backend_cfg *b, size_t n, __u32 *out)
{
	bool any_up = false, any_weight = false;

	for (size_t i = 0; i < n; i++) {
		any_weight |= b[i].weight > 0;
		any_up |= b[i].weight > 0 && b[i].be.health != TS_HEALTH_DOWN;
	}
	/* Fail open: when every backend with weight is down, the checks are
	 * more likely wrong than all the backends (Envoy's panic threshold). */
	for (size_t i = 0; i < n; i++)
		out[i] = any_weight && !any_up ? b[i].weight
		       : b[i].be.health == TS_HEALTH_DOWN ? 0 : b[i].weight;
}

/* Write one half: the Maglev slots for backends b[0..n) (sorted by name),
 * then the configuration they come from. */
int table_write_half(struct ts_table_entry *half, __u32 size,
			    const struct ts_backend_cfg *b, size_t n, struct ts_err *err)
{
	struct ts_maglev_backend *mb = calloc(n ? n : 1, sizeof(*mb));
	__u32 *slots = calloc(size, sizeof(*slots));
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	int r = 0;

	if (!mb || !slots || n > TS_MAX_SERVICE_BACKENDS) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory building a table of %u slots",
			    size);
		goto out;
	}
	ts_effective_weights(b, n, eff);
	for (size_t i = 0; i < n; i++) {
		mb[i].name = b[i].be.name;
		mb[i].weight = eff[i];
	}
	r = ts_maglev_build(mb, n, size, slots);
	if (r) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot build a table of %u slots: %s", size,
			    strerror(-r));
		goto out;
	}
	for (__u32 i = 0; i < size; i++)
		half[i] = (struct ts_table_entry){
			.backend_id = slots[i] == TS_NO_BACKEND ? TS_NO_BACKEND : b[slots[i]].id,
		};
	half[size] = (struct ts_table_entry){ .backend_id = (__u32)n };
	for (size_t i = 0; i < n; i++)
		half[size + 1 + i] = (struct ts_table_entry){ b[i].id, b[i].weight };
out:
	free(mb);
	free(slots);
	return r;
}

int table_put_half(struct table_view *t, __u32 half, __u32 size,
		   const struct ts_backend_cfg *b, size_t n, struct ts_err *err)
{
	struct ts_table_entry *e = calloc(t->half_len, sizeof(*e));
	int r;

	if (!e)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory building a table of %u slots",
			       size);
	r = n > t->half_len - size - 1
		    ? ts_fail(err, TS_ERR_RUNTIME, "a table of %u slots has no room for %zu "
			      "backends", size, n)
		    : table_write_half(e, size, b, n, err);
	/* the slots and the list: what follows it is never read */
	r = r ?: table_write(t, (half & 1) * t->half_len, size + 1 + (__u32)n, e, err);
	free(e);
	return r;
}

/* A new table of svc's size (both halves of svc->half_len), not in `tables`
 * yet: its fd in *fd. Its halves are left as the kernel made them (zeros): a
 * half is read only once live, and the change that makes it live writes it
 * first (writing both here was a third of an import's time). */
static int table_make(const struct ts_service *svc, int *fd, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
	char map_name[BPF_OBJ_NAME_LEN];

	snprintf(map_name, sizeof(map_name), "ts_table_%u", svc->id);
	*fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, map_name, sizeof(__u32),
			     sizeof(struct ts_table_chunk), TS_TABLE_CHUNKS(2 * svc->half_len),
			     &opts);
	if (*fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create a table of %u slots: %s",
			       svc->table_size, strerror(errno));
	return 0;
}

/* The rollouts map is keyed by the id of the service's table. */
static int rollout_write(struct ts_maps *m, __u32 id, const struct ts_rollout *r,
			 struct ts_err *err)
{
	if (bpf_map_update_elem(m->rollouts, &id, r, BPF_ANY))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the rollout record of id %u: %s",
			       id, strerror(errno));
	return 0;
}

/* A new table for service svc->id (both halves of svc->half_len, not written
 * yet), put in `tables`. It is not live until a service entry refers to it. */
int table_create(struct ts_maps *m, const struct ts_service *svc, struct ts_err *err)
{
	return table_create_many(m, svc, 1, err);
}

int table_create_many(struct ts_maps *m, const struct ts_service *svcs, size_t n,
		      struct ts_err *err)
{
	__u32 *ids = calloc(n ?: 1, sizeof(*ids));
	int *fds = calloc(n ?: 1, sizeof(*fds));
	struct ts_rollout *none;
	__u32 count = (__u32)n;
	size_t made = 0;
	int r = ids && fds ? 0 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");

	for (; !r && made < n; made++) {
		ids[made] = svcs[made].id;
		fds[made] = -1;
		r = table_make(&svcs[made], &fds[made], err);
	}
	/* an id starts without a rollout record: one a deleted service or a
	 * killed command left would otherwise show under the id's new service */
	none = r || !n ? NULL : calloc(n, sizeof(*none));
	if (!r && n && !none)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (!r && n && bpf_map_update_batch(m->rollouts, ids, none, &count, NULL))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot clear the rollout records of %zu "
			    "services: %s", n, strerror(errno));
	free(none);
	count = (__u32)n;
	if (!r && n && bpf_map_update_batch(m->tables, ids, fds, &count, NULL))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot store the tables of %zu services: %s", n,
			    strerror(errno));
	for (size_t i = 0; i < made; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(ids);
	free(fds);
	return r;
}

/* The entry of backend id in b[0..n), or NULL. */
static const struct ts_backend_cfg *backend_listed(const struct ts_backend_cfg *b, size_t n,
						   __u32 id)
{
	for (size_t i = 0; i < n; i++)
		if (b[i].id == id)
			return &b[i];
	return NULL;
}

/* Set backend id's membership bits of table half `half` (a member; a member
 * with weight > 0: the data plane's test for "takes new flows"); the other
 * half's bits, the ones packets read now, are left alone.
 *
 * The bits of the half that is not live mean nothing to the data plane but
 * one thing: a backend member of both halves is live whatever half is
 * (ts_backend_settled of bpf/tcpshift.bpf.c), and its flows' packets skip
 * the service's entry. So every member is made a member of both halves,
 * but for the one change that adds it (before its commit, a member of the
 * half not live only) or removes it (a member of the live half only, until
 * its commit). */
static int backend_set_member(struct ts_maps *m, __u32 id, __u32 half,
			      const struct ts_backend_cfg *cfg, __u32 eff, struct ts_err *err)
{
	struct ts_backend be;
	__u32 bit = 1U << (half & 1);
	__u32 member, weighted;

	if (bpf_map_lookup_elem(m->backends, &id, &be))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %u: %s", id,
			       strerror(errno));
	member = cfg ? be.table_halves | bit : be.table_halves & ~bit;
	weighted = cfg && eff ? be.weighted_halves | bit : be.weighted_halves & ~bit;
	if (member == be.table_halves && weighted == be.weighted_halves)
		return 0;
	be.table_halves = member;
	be.weighted_halves = weighted;
	if (bpf_map_update_elem(m->backends, &id, &be, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write backend %u: %s", id,
			       strerror(errno));
	return 0;
}

int table_free_id(struct ts_maps *m, __u32 *id, struct ts_err *err)
{
	__u32 inner;

	for (__u32 i = 0; i < TS_MAX_SERVICES; i++) {
		*id = (m->free_table_hint + i) % TS_MAX_SERVICES;
		if (bpf_map_lookup_elem(m->tables, id, &inner) && errno == ENOENT) {
			m->free_table_hint = *id + 1;
			return 0;
		}
	}
	return ts_fail(err, TS_ERR_RUNTIME, "too many services (at most %d)", TS_MAX_SERVICES);
}

/* Backend id, of entry be, a member of one half only (its live one, the
 * caller knows), made a member of both: settled (backend_set_member), with
 * the same weight in both. Best effort: one left unsettled is served the
 * slower way. */
static void backend_settle_entry(struct ts_maps *m, __u32 id, struct ts_backend *be)
{
	__u32 h = be->table_halves & 3;

	if (h == 0 || h == 3)
		return;
	be->weighted_halves = be->weighted_halves & h ? 3 : 0;
	be->table_halves = 3;
	bpf_map_update_elem(m->backends, &id, be, BPF_EXIST);
}

/* After the commit, a backend the change added (a member of the live half
 * only) is made a member of the other half too, the half the next change
 * builds. Past the commit nothing can fail: a backend left unsettled (a
 * killed command) is served the slower way. */
static void backend_settle(struct ts_maps *m, __u32 id)
{
	struct ts_backend be;

	if (!bpf_map_lookup_elem(m->backends, &id, &be))
		backend_settle_entry(m, id, &be);
}

/* After an upgrade (ts_load over pins): backends an earlier build left a
 * member of one half only are settled, at rest only. With no change killed
 * (TS_SETTINGS_F_CHANGING clear) every ACTIVE member of one half is a member
 * of its service's live half: a change leaves one-half members only until its
 * commit, and marks the ones it removed. Ids are given lowest first, so the
 * walk stops at the first batch without a backend that was ever used. */
void ts_backends_settle(struct ts_maps *m)
{
	enum { BATCH = 4096 };
	struct ts_backend *be = calloc(BATCH, sizeof(*be));
	__u32 *keys = calloc(BATCH, sizeof(*keys));
	struct ts_settings st;
	__u32 zero = 0, in_batch, out_batch;
	bool first = true;

	if (!be || !keys || bpf_map_lookup_elem(m->settings, &zero, &st) ||
	    st.flags & TS_SETTINGS_F_CHANGING)
		goto out;
	for (;;) {
		__u32 got = BATCH;
		bool used = false;
		int r = bpf_map_lookup_batch(m->backends, first ? NULL : &in_batch, &out_batch,
					     keys, be, &got, NULL);

		if (r && errno != ENOENT)
			break;
		for (__u32 i = 0; i < got; i++) {
			used |= be[i].state != TS_BACKEND_FREE;
			if (be[i].state == TS_BACKEND_ACTIVE)
				backend_settle_entry(m, keys[i], &be[i]);
		}
		if (r || !used)
			break;
		in_batch = out_batch;
		first = false;
	}
out:
	free(be);
	free(keys);
}

int table_unsettle(struct ts_maps *m, const struct ts_service_cfg *s, struct ts_err *err)
{
	int r = 0;

	for (size_t i = 0; !r && i < s->nbackends; i++)
		r = backend_set_member(m, s->backends[i].id, !s->svc.table_half, NULL, 0, err);
	return r;
}

/*
 * Rebuild service s's table from backends b[0..n) (sorted by name) into the
 * half that is not live, then switch halves with one update of the service's
 * entry: the commit of every change to a service's backends or weights.
 * When the table must change size (its M follows the backends, or it has no
 * room left to list them), the new half is built in a new table under a free
 * service id, and the same one update switches table, size and half.
 */
int table_install(struct ts_maps *m, struct ts_service_cfg *s,
			 const struct ts_backend_cfg *b, size_t n, struct ts_err *err)
{
	bool fixed = s->svc.flags & TS_SERVICE_F_FIXED_SIZE;
	struct ts_service next = s->svc;
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	struct ts_rollout rollout;
	struct table_view t;
	int r;

	next.table_half = !s->svc.table_half;
	if (!fixed)
		next.table_size = ts_table_size_for(n);
	if (next.table_size != s->svc.table_size || n > s->svc.half_len - s->svc.table_size - 1) {
		next.half_len = TS_TABLE_HALF(next.table_size, table_room(next.table_size, fixed));
		r = table_free_id(m, &next.id, err);
		r = r ?: table_create(m, &next, err);
		if (r)
			return r;
		/* the service's rollout record (keyed by its table's id) goes
		 * with it, in force from the same switch */
		if (!bpf_map_lookup_elem(m->rollouts, &s->svc.id, &rollout))
			r = rollout_write(m, next.id, &rollout, err);
		if (r) {
			bpf_map_delete_elem(m->tables, &next.id);
			return r;
		}
	}
	r = table_open(m, &next, &t, err);
	if (r)
		return r;
	r = table_put_half(&t, next.table_half, next.table_size, b, n, err);
	table_close(&t);
	/* who is a member of the new half: the old members and the new ones;
	 * "weighted" (takes new flows) by the effective weight */
	ts_effective_weights(b, n, eff);
	for (size_t i = 0; !r && i < s->nbackends; i++) {
		const struct ts_backend_cfg *l = backend_listed(b, n, s->backends[i].id);

		r = backend_set_member(m, s->backends[i].id, next.table_half, l,
				       l ? eff[l - b] : 0, err);
	}
	for (size_t i = 0; !r && i < n; i++)
		r = backend_set_member(m, b[i].id, next.table_half, &b[i], eff[i], err);
	/* the commit: one update, seen by the data plane all at once */
	if (!r && bpf_map_update_elem(m->services, &s->key, &next, BPF_EXIST))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot switch the table of service %s: %s",
			    s->svc.name, strerror(errno));
	if (r) {
		if (next.id != s->svc.id)	/* never live */
			bpf_map_delete_elem(m->tables, &next.id);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		backend_settle(m, b[i].id);
	/* a replaced table: no packet reads it once the switch is seen */
	if (next.id != s->svc.id) {
		bpf_map_delete_elem(m->tables, &s->svc.id);
		bpf_map_update_elem(m->rollouts, &s->svc.id, &(struct ts_rollout){}, BPF_ANY);
	}
	s->svc = next;
	return 0;
}

/* The (id, weight) pairs the live half was built from, without their
 * backends' entries. */
int table_read_list(const struct ts_maps *m, struct ts_service_cfg *s, struct ts_err *err)
{
	__u32 size = s->svc.table_size, room, n;
	struct ts_table_entry *list = NULL;
	struct table_view t;
	int r;

	s->nbackends = 0;
	r = table_open(m, &s->svc, &t, err);
	if (r)
		return r;
	/* the count and the room after it, in one read */
	room = s->svc.half_len - size - 1;
	list = calloc(1 + room, sizeof(*list));
	r = list ? table_read(&t, (s->svc.table_half & 1) * t.half_len + size, 1 + room, list,
			      err)
		 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	table_close(&t);
	if (r)
		goto out;
	n = list[0].backend_id;
	if (n > TS_MAX_SERVICE_BACKENDS || n > room ||
	    !(s->backends = calloc(n ?: 1, sizeof(*s->backends)))) {
		r = ts_fail(err, TS_ERR_RUNTIME, "the table of service %s is inconsistent",
			    s->svc.name);
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		struct ts_backend_cfg *b = &s->backends[i];

		b->id = list[1 + i].backend_id;
		b->weight = list[1 + i].weight;
		if (b->id >= TS_MAX_BACKENDS) {
			r = ts_fail(err, TS_ERR_RUNTIME, "the table of service %s is inconsistent",
				    s->svc.name);
			goto out;
		}
	}
	s->nbackends = n;
out:
	if (r) {
		free(s->backends);
		s->backends = NULL;
	}
	free(list);
	return r;
}

/* The (id, weight) pairs the live half was built from, and their backends. */
int table_read_config(const struct ts_maps *m, struct ts_service_cfg *s,
			     struct ts_err *err)
{
	int r = table_read_list(m, s, err);

	for (size_t i = 0; !r && i < s->nbackends; i++)
		if (bpf_map_lookup_elem(m->backends, &s->backends[i].id, &s->backends[i].be))
			r = ts_fail(err, TS_ERR_RUNTIME, "the table of service %s is inconsistent",
				    s->svc.name);
	if (r) {
		free(s->backends);
		s->backends = NULL;
		s->nbackends = 0;
	}
	return r;
}

int ts_table_shares(const struct ts_maps *m, const struct ts_service_cfg *s, __u32 *slots,
		    struct ts_err *err)
{
	struct ts_table_entry *half = calloc(s->svc.table_size ?: 1, sizeof(*half));
	struct table_view t;
	int r;

	memset(slots, 0, s->nbackends * sizeof(*slots));
	if (!half)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = table_open(m, &s->svc, &t, err);
	r = r ?: table_read(&t, (s->svc.table_half & 1) * t.half_len, s->svc.table_size, half,
			    err);
	table_close(&t);
	for (__u32 i = 0; !r && i < s->svc.table_size; i++)
		for (size_t j = 0; j < s->nbackends; j++)
			if (half[i].backend_id == s->backends[j].id) {
				slots[j]++;
				break;
			}
	free(half);
	return r;
}
