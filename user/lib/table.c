// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A service's table: two halves in one mmap-able array map, each the Maglev
 * slots plus the (backend id, weight) list they were built from. A change
 * writes the half that is not live and switches halves with one update of
 * the service's `services` entry (doc/DESIGN.md, "The table commit
 * protocol"; invariant 3).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "libtcpshift.h"
#include "table.h"

int table_cmp_backend_name(const void *a, const void *b)
{
	const struct ts_backend_cfg *x = a, *y = b;

	return strcmp(x->be.name, y->be.name);
}

void table_unmap(struct table_view *t)
{
	if (t->e)
		munmap(t->e, t->len);
	if (t->fd >= 0)
		close(t->fd);
	t->e = NULL;
	t->fd = -1;
}

static int table_mmap(struct table_view *t, __u32 half_len, bool writable, const char *what,
		      struct ts_err *err)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	/* what tables holds is checked as the pins are: before it is read */
	if (bpf_obj_get_info_by_fd(t->fd, &info, &info_len) || info.type != BPF_MAP_TYPE_ARRAY ||
	    !(info.map_flags & BPF_F_MMAPABLE) || info.max_entries != 2 * half_len ||
	    info.value_size != sizeof(struct ts_table_entry)) {
		table_unmap(t);
		return ts_fail(err, TS_ERR_RUNTIME, "the table of %s is inconsistent", what);
	}
	t->len = ((size_t)info.max_entries * sizeof(struct ts_table_entry) + page - 1) / page *
		 page;
	t->e = mmap(NULL, t->len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, t->fd, 0);
	if (t->e == MAP_FAILED) {
		t->e = NULL;
		table_unmap(t);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot map the table of %s: %s", what,
			       strerror(errno));
	}
	return 0;
}

int table_open(const struct ts_maps *m, const struct ts_service *svc, bool writable,
		      struct table_view *t, struct ts_err *err)
{
	__u32 inner_id;

	t->e = NULL;
	t->fd = -1;
	if (bpf_map_lookup_elem(m->tables, &svc->id, &inner_id) ||
	    (t->fd = bpf_map_get_fd_by_id(inner_id)) < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open the table of service %s: %s",
			       svc->name, strerror(errno));
	if (svc->half_len <= svc->table_size) {
		table_unmap(t);
		return ts_fail(err, TS_ERR_RUNTIME, "the table of %s is inconsistent", svc->name);
	}
	return table_mmap(t, svc->half_len, writable, svc->name, err);
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

/* A new, empty table of svc's size (both halves of svc->half_len), not in
 * `tables` yet: its fd in *fd. */
static int table_make(const struct ts_service *svc, int *fd, struct ts_err *err)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	struct table_view t = { .fd = -1 };
	char map_name[BPF_OBJ_NAME_LEN];
	int r;

	snprintf(map_name, sizeof(map_name), "ts_table_%u", svc->id);
	t.fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, map_name, sizeof(__u32),
			      sizeof(struct ts_table_entry), 2 * svc->half_len, &opts);
	if (t.fd < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create a table of %u slots: %s",
			       svc->table_size, strerror(errno));
	r = table_mmap(&t, svc->half_len, true, svc->name, err);
	if (r)
		return r;
	r = table_write_half(t.e, svc->table_size, NULL, 0, err);
	r = r ?: table_write_half(t.e + svc->half_len, svc->table_size, NULL, 0, err);
	*fd = r ? -1 : dup(t.fd);
	table_unmap(&t);
	if (!r && *fd < 0)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot keep the table of %s: %s", svc->name,
			    strerror(errno));
	return r;
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

/* A new, empty table for service svc->id (both halves of svc->half_len), put
 * in `tables`. It is not live until a service entry refers to it. */
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
 * half's bits, the ones packets read now, are left alone. */
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
	r = table_open(m, &next, true, &t, err);
	if (r)
		return r;
	r = table_write_half(t.e + next.table_half * next.half_len, next.table_size, b, n, err);
	table_unmap(&t);
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
	/* a replaced table: no packet reads it once the switch is seen */
	if (next.id != s->svc.id) {
		bpf_map_delete_elem(m->tables, &s->svc.id);
		bpf_map_update_elem(m->rollouts, &s->svc.id, &(struct ts_rollout){}, BPF_ANY);
	}
	s->svc = next;
	return 0;
}

/* The (id, weight) pairs the live half was built from, and their backends. */
int table_read_config(const struct ts_maps *m, struct ts_service_cfg *s,
			     struct ts_err *err)
{
	const struct ts_table_entry *half;
	struct table_view t;
	__u32 n;
	int r;

	s->nbackends = 0;
	r = table_open(m, &s->svc, false, &t, err);
	if (r)
		return r;
	half = t.e + (s->svc.table_half & 1) * s->svc.half_len;
	n = half[s->svc.table_size].backend_id;
	if (n > TS_MAX_SERVICE_BACKENDS || n > s->svc.half_len - s->svc.table_size - 1 ||
	    !(s->backends = calloc(n ?: 1, sizeof(*s->backends)))) {
		r = ts_fail(err, TS_ERR_RUNTIME, "the table of service %s is inconsistent",
			    s->svc.name);
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		struct ts_backend_cfg *b = &s->backends[i];

		b->id = half[s->svc.table_size + 1 + i].backend_id;
		b->weight = half[s->svc.table_size + 1 + i].weight;
		if (b->id >= TS_MAX_BACKENDS || bpf_map_lookup_elem(m->backends, &b->id, &b->be)) {
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
	table_unmap(&t);
	return r;
}

int ts_table_shares(const struct ts_maps *m, const struct ts_service_cfg *s, __u32 *slots,
		    struct ts_err *err)
{
	const struct ts_table_entry *half;
	struct table_view t;
	int r;

	memset(slots, 0, s->nbackends * sizeof(*slots));
	r = table_open(m, &s->svc, false, &t, err);
	if (r)
		return r;
	half = t.e + (s->svc.table_half & 1) * s->svc.half_len;
	for (__u32 i = 0; i < s->svc.table_size; i++)
		for (size_t j = 0; j < s->nbackends; j++)
			if (half[i].backend_id == s->backends[j].id) {
				slots[j]++;
				break;
			}
	table_unmap(&t);
	return 0;
}
