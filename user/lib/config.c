// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Changes: services, backends, weights, drains, and applying a document.
 *
 * Every change validates all of its input first, then ends with one map
 * update that commits it (invariant 3):
 *  - a service's table (Maglev slots plus the backend ids and weights it was
 *    built from) is written into the half of its table map that is not live,
 *    and the halves switch with one update of the service's `services` entry;
 *  - a service appears with its `services` insert and disappears with its
 *    delete.
 * Writes before the commit (a new backend's entry and its backend_addrs
 * index) send no flow anywhere until the commit; writes after it (marking a
 * removed backend, dropping its index entry) only tidy up. A backend
 * entry no current table refers to is free for reuse, so a command killed
 * half-way leaves nothing that matters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "libtcpshift.h"
#include "table.h"

static int repair_leftovers(struct ts_maps *m, struct ts_err *err);

/* Lock against concurrent changes. A change that takes the lock here has
 * written nothing yet (m->untouched) until a repair or end_change: letting go
 * of the lock then moves nothing (ts_maps_unlock). */
static int lock_change(struct ts_maps *m, struct ts_err *err)
{
	bool fresh = !m->locked;
	int r = ts_maps_lock(m, err);

	if (!r && fresh)
		m->untouched = true;
	return r;
}

/* Lock (repairing what a killed or failed change left, when one did), and
 * read the configuration: the whole of it, or with service given only that
 * service, found through service_names. */
static int begin_change(struct ts_maps *m, struct ts_config *cfg, const char *service,
			struct ts_service_cfg **s, struct ts_err *err)
{
	int r = lock_change(m, err);

	if (!r && m->repair)
		m->untouched = false;
	r = r ?: repair_leftovers(m, err);
	if (r || !cfg)
		return r;
	if (!service)
		return ts_config_read(m, cfg, err);
	ts_journal_touch(m, service);
	r = ts_config_read_service(m, service, cfg, err);
	if (r)
		return r;
	*s = cfg->nservices ? &cfg->services[0] : NULL;
	if (!*s) {
		ts_config_free(cfg);
		return ts_fail(err, TS_ERR_USAGE,
			       "unknown service '%s': see 'tcpshift service list'", service);
	}
	return 0;
}

/* What a change that may have written ends with: the generation moves when
 * it lets go of the lock, and a failure leaves TS_SETTINGS_F_CHANGING set, so
 * that the next change repairs what it may have left. A change refused before
 * its first write (begin_change's errors, an edit or a document that does not
 * check) returns without: bad input leaves the instance as it was, the
 * generation too, and copies of backends' entries standing (ts_epoch). */
static int end_change(struct ts_maps *m, int r)
{
	m->untouched = false;
	if (r)
		m->failed = true;
	return r;
}

static int unknown_backend(struct ts_err *err, const char *service, const char *name)
{
	return ts_fail(err, TS_ERR_USAGE,
		       "service '%s' has no backend '%s': see 'tcpshift service list'", service,
		       name);
}

/* live[id]: backend id is in a service's live table. */
static void live_backends(const struct ts_config *cfg, bool *live)
{
	for (size_t i = 0; i < cfg->nservices; i++)
		for (size_t j = 0; j < cfg->services[i].nbackends; j++)
			live[cfg->services[i].backends[j].id] = true;
}

/* Tidying after a commit: read the entry afresh (table_install changed it). */
static void backend_mark_removed(struct ts_maps *m, __u32 id)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &id, &be) || be.state == TS_BACKEND_REMOVED)
		return;
	be.state = TS_BACKEND_REMOVED;
	bpf_map_update_elem(m->backends, &id, &be, BPF_EXIST);
}

/*
 * Tidy what a command killed (or failed) before or after its commit left
 * behind: backends that no live table refers to are marked removed (the data
 * plane already ignores them: they are members of no live half),
 * backend_addrs entries that name no live backend at its own address are
 * dropped (else the data plane would rewrite replies from an address that is
 * no backend), and so are service_names entries and tables no service has.
 * Run by the next change under the lock, only when the lock was taken with
 * TS_SETTINGS_F_CHANGING set: what a clean change leaves needs no repair, and
 * this walk reads every service and backend.
 */
static int repair_leftovers(struct ts_maps *m, struct ts_err *err)
{
	struct ts_backend *all;
	struct ts_endpoint_key *stale;
	struct ts_endpoint_key key, cur;
	struct ts_service_name nkey, ncur;
	struct ts_config cfg;
	bool *live, *used;
	void *prev = NULL;
	size_t nstale = 0;
	int r;

	if (!m->repair)
		return 0;
	all = calloc(TS_MAX_BACKENDS, sizeof(*all));
	stale = calloc(TS_MAX_BACKENDS, sizeof(*stale));
	live = calloc(TS_MAX_BACKENDS, sizeof(*live));
	used = calloc(TS_MAX_SERVICES, sizeof(*used));
	r = all && stale && live && used ? ts_config_read(m, &cfg, err)
					 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (r)
		goto out;
	r = ts_backends_read_all(m, all, err);
	if (r)
		goto out_cfg;
	live_backends(&cfg, live);
	for (__u32 id = 0; id < TS_MAX_BACKENDS; id++)
		if (all[id].state == TS_BACKEND_ACTIVE && !live[id])
			backend_mark_removed(m, id);
	/* collect first: deleting the key being iterated restarts the walk */
	while (nstale < TS_MAX_BACKENDS && !bpf_map_get_next_key(m->backend_addrs, prev, &key)) {
		const struct ts_backend *be;
		struct ts_reply reply;

		cur = key;
		prev = &cur;
		if (bpf_map_lookup_elem(m->backend_addrs, &key, &reply) ||
		    reply.backend_id >= TS_MAX_BACKENDS || !live[reply.backend_id]) {
			stale[nstale++] = key;
			continue;
		}
		be = &all[reply.backend_id];
		if (memcmp(be->addr, key.addr, sizeof(key.addr)) || be->port != key.port ||
		    be->family != key.family)
			stale[nstale++] = key;
	}
	for (size_t i = 0; i < nstale; i++)
		bpf_map_delete_elem(m->backend_addrs, &stale[i]);
	/* names whose service is gone or has another name */
	for (prev = NULL; !bpf_map_get_next_key(m->service_names, prev, &nkey);) {
		struct ts_service svc;

		ncur = nkey;
		prev = &ncur;
		if (bpf_map_lookup_elem(m->service_names, &nkey, &key) ||
		    bpf_map_lookup_elem(m->services, &key, &svc) ||
		    strncmp(svc.name, nkey.name, sizeof(nkey.name))) {
			bpf_map_delete_elem(m->service_names, &nkey);
			prev = NULL;	/* the walk starts again, without it */
		}
	}
	/* tables of no service: a create or resize killed before its commit */
	for (size_t i = 0; i < cfg.nservices; i++)
		used[cfg.services[i].svc.id] = true;
	for (__u32 id = 0; id < TS_MAX_SERVICES; id++) {
		__u32 inner;

		/* looked up first: a delete is a map write (and waits for RCU) */
		if (!used[id] && !bpf_map_lookup_elem(m->tables, &id, &inner))
			bpf_map_delete_elem(m->tables, &id);
	}
	m->repair = false;
out_cfg:
	ts_config_free(&cfg);
out:
	free(all);
	free(stale);
	free(live);
	free(used);
	return r;
}

/* After a commit: the local connections of backends it removed are closed
 * now, with those of drains past their deadline (doc/DESIGN.md, "Local
 * clients"). The change stands whatever happens here. */
static void sweep_local(const struct ts_maps *m)
{
	struct ts_err e;

	if (ts_local_sweep(m, &e))
		fprintf(stderr, "tcpshift: warning: %s\n", e.msg);
}

/* ---- services --------------------------------------------------------------- */

static void endpoint_key(const __be32 addr[4], __be16 port, __u8 family,
			 struct ts_endpoint_key *key)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->addr, addr, sizeof(key->addr));
	key->port = port;
	key->proto = IPPROTO_TCP;
	key->family = family;
}

static void name_key(const char *name, struct ts_service_name *key)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->name, name, strnlen(name, sizeof(key->name) - 1));
}

/* service_names: before the service's insert (an entry without its service
 * means nothing), removed after its delete. */
static int service_name_set(struct ts_maps *m, const struct ts_service_cfg *s,
			    struct ts_err *err)
{
	struct ts_service_name key;

	name_key(s->svc.name, &key);
	if (bpf_map_update_elem(m->service_names, &key, &s->key, BPF_ANY))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot index service %s: %s", s->svc.name,
			       strerror(errno));
	return 0;
}

static void service_name_del(struct ts_maps *m, const struct ts_service_cfg *s)
{
	struct ts_service_name key;
	struct ts_endpoint_key vip;

	name_key(s->svc.name, &key);
	if (!bpf_map_lookup_elem(m->service_names, &key, &vip) &&
	    !memcmp(&vip, &s->key, sizeof(vip)))
		bpf_map_delete_elem(m->service_names, &key);
}

/* The service at VIP key, if any (svc filled). */
/* Is there a service named name? (found as ts_config_read_service finds it,
 * without reading its table) */
static bool service_named(const struct ts_maps *m, const char *name)
{
	struct ts_service_name key;
	struct ts_endpoint_key vip;
	struct ts_service svc;

	if (strlen(name) >= sizeof(key.name))
		return false;
	name_key(name, &key);
	return !bpf_map_lookup_elem(m->service_names, &key, &vip) &&
	       !bpf_map_lookup_elem(m->services, &vip, &svc) && !strcmp(svc.name, name);
}

static bool service_at(const struct ts_maps *m, const struct ts_endpoint_key *key,
		       struct ts_service *svc)
{
	return !bpf_map_lookup_elem(m->services, key, svc);
}

/* The backend at address key, if any: its name and its service's. */
static bool backend_owner(const struct ts_maps *m, const struct ts_endpoint_key *key,
			  char *backend, char *service)
{
	struct ts_endpoint_key vip;
	struct ts_service svc = {};
	struct ts_backend be = {};
	struct ts_reply reply;

	if (bpf_map_lookup_elem(m->backend_addrs, key, &reply))
		return false;
	endpoint_key(reply.vip, reply.vport, key->family, &vip);
	bpf_map_lookup_elem(m->backends, &reply.backend_id, &be);
	bpf_map_lookup_elem(m->services, &vip, &svc);
	snprintf(backend, TS_NAME_LEN, "%s", be.name);
	snprintf(service, TS_NAME_LEN, "%s", svc.name);
	return true;
}

/* backend_addrs: replies from b get s's VIP:port as source. */
static int backend_index_set(struct ts_maps *m, const struct ts_service_cfg *s,
			     const struct ts_backend_cfg *b, struct ts_err *err)
{
	struct ts_reply reply = { .vport = s->key.port, .backend_id = b->id };
	struct ts_endpoint_key key;

	endpoint_key(b->be.addr, b->be.port, b->be.family, &key);
	memcpy(reply.vip, s->key.addr, sizeof(reply.vip));
	if (bpf_map_update_elem(m->backend_addrs, &key, &reply, BPF_ANY))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot index backend %s: %s", b->be.name,
			       strerror(errno));
	return 0;
}

static void backend_index_del(struct ts_maps *m, const struct ts_backend_cfg *b)
{
	struct ts_endpoint_key key;
	struct ts_reply reply;

	endpoint_key(b->be.addr, b->be.port, b->be.family, &key);
	if (!bpf_map_lookup_elem(m->backend_addrs, &key, &reply) && reply.backend_id == b->id)
		bpf_map_delete_elem(m->backend_addrs, &key);
}

/* ---- one change pipeline ---------------------------------------------------
 *
 * Every change states the service it wants (a struct ts_doc_service: name,
 * VIP, table size, backends with addresses and weights) and goes through one
 * path: validate (check_service, backend_list_build) -> build the table ->
 * write the half that is not live -> switch (service_update), or, for a new
 * service, build its whole table and insert it (service_create). service
 * add and del, backend add and del, weight, drain and import all end there.
 */

static int backend_set_deadline(struct ts_maps *m, __u32 id, __u64 deadline_ns,
				struct ts_err *err)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &id, &be))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %u: %s", id,
			       strerror(errno));
	if (be.drain_deadline_ns == deadline_ns)
		return 0;
	be.drain_deadline_ns = deadline_ns;
	if (bpf_map_update_elem(m->backends, &id, &be, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the drain deadline of %s: %s",
			       be.name, strerror(errno));
	return 0;
}

static bool backend_at(const struct ts_backend *be, const struct ts_endpoint *ep)
{
	return be->family == ep->family && be->port == ep->port &&
	       !memcmp(be->addr, ep->addr, sizeof(be->addr));
}

/* What every service must be, whatever the change. */
static int check_service(const struct ts_doc_service *want, struct ts_err *err)
{
	int r = ts_parse_name(want->name, "service", err);

	if (r)
		return r;
	/* 0: the size follows the backends */
	if (want->table_size && (!ts_is_prime(want->table_size) ||
				 want->table_size < TS_MIN_TABLE_SIZE ||
				 want->table_size > TS_MAX_TABLE_SIZE))
		return ts_fail(err, TS_ERR_USAGE, "table size %u is not a prime in %u-%u",
			       want->table_size, TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE);
	if (want->nbackends > TS_MAX_SERVICE_BACKENDS)
		return ts_fail(err, TS_ERR_USAGE,
			       "service '%s' has %d backends, the most allowed: remove one first",
			       want->name, TS_MAX_SERVICE_BACKENDS);
	return ts_health_check_valid(&want->health, err);
}

/* Service s as it is, as the service a change wants; b holds room for
 * TS_MAX_SERVICE_BACKENDS + 1 backends (one more for an addition). */
static void want_of(const struct ts_service_cfg *s, struct ts_doc_service *w,
		    struct ts_doc_backend *b)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", s->svc.name);
	w->vip.family = s->key.family;
	memcpy(w->vip.addr, s->key.addr, sizeof(w->vip.addr));
	w->vip.port = s->key.port;
	w->table_size = ts_service_fixed_size(&s->svc);
	w->health = s->svc.health;
	w->backends = b;
	w->nbackends = s->nbackends;
	for (size_t i = 0; i < s->nbackends; i++) {
		const struct ts_backend_cfg *sb = &s->backends[i];

		memset(&b[i], 0, sizeof(b[i]));
		snprintf(b[i].name, sizeof(b[i].name), "%s", sb->be.name);
		b[i].addr.family = sb->be.family;
		memcpy(b[i].addr.addr, sb->be.addr, sizeof(b[i].addr.addr));
		b[i].addr.port = sb->be.port;
		b[i].weight = sb->weight;
	}
}

static struct ts_doc_backend *want_backend(struct ts_doc_service *w, const char *name)
{
	for (size_t i = 0; i < w->nbackends; i++)
		if (!strcmp(w->backends[i].name, name))
			return &w->backends[i];
	return NULL;
}

static int service_update(struct ts_maps *m, struct ts_config *cfg, struct ts_service_cfg *s,
			  const struct ts_doc_service *want, struct ts_err *err);
static int service_vacant(struct ts_maps *m, const struct ts_doc_service *want,
			  struct ts_err *err);
static int service_create(struct ts_maps *m, const struct ts_doc_service *want,
			  const struct ts_service *made, struct ts_err *err);

/* A change of one existing service: lock, read, let edit() state the service
 * it wants, and run the pipeline. */
typedef int (*edit_fn)(struct ts_config *cfg, struct ts_service_cfg *s,
		       struct ts_doc_service *want, void *arg, struct ts_err *err);

static int change_service(struct ts_maps *m, const char *service, edit_fn edit, void *arg,
			  struct ts_err *err)
{
	struct ts_doc_backend *wb = calloc(TS_MAX_SERVICE_BACKENDS + 1, sizeof(*wb));
	struct ts_doc_service want;
	struct ts_service_cfg *s;
	struct ts_config cfg = {};
	int r;

	if (!wb)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = begin_change(m, &cfg, service, &s, err);
	if (r)
		goto out;
	want_of(s, &want, wb);
	r = edit(&cfg, s, &want, arg, err);
	r = r ?: check_service(&want, err);
	r = r ?: end_change(m, service_update(m, &cfg, s, &want, err));
	if (!r)
		sweep_local(m);
	ts_config_free(&cfg);
out:
	free(wb);
	return r;
}

int ts_service_add(struct ts_maps *m, const char *name, const struct ts_endpoint *vip,
		   __u32 table_size, struct ts_err *err)
{
	struct ts_doc_service want = { .vip = *vip, .table_size = table_size };
	int r;

	snprintf(want.name, sizeof(want.name), "%s", name);
	r = ts_parse_name(name, "service", err);
	r = r ?: check_service(&want, err);
	r = r ?: begin_change(m, NULL, NULL, NULL, err);
	if (r)
		return r;
	ts_journal_touch(m, name);
	r = service_vacant(m, &want, err);
	return r ?: end_change(m, service_create(m, &want, NULL, err));
}

int ts_service_del(struct ts_maps *m, const char *name, struct ts_err *err)
{
	struct ts_service_cfg *s;
	struct ts_config cfg;
	int r;

	r = begin_change(m, &cfg, name, &s, err);
	if (r)
		return r;
	/* Its backends unsettled first: their flows' packets then read the
	 * service's entry (doc/DESIGN.md, "Established flows"), and so stop
	 * being balanced at the commit. */
	r = table_unsettle(m, s, err);
	if (r)
		goto out;
	/* The commit: packets to the VIP are no longer ours (invariant 5:
	 * passed untouched), whether or not their flow was pinned. */
	if (bpf_map_delete_elem(m->services, &s->key)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot delete service %s: %s", name,
			    strerror(errno));
		goto out;
	}
	/* Its backends' ids are free for reuse; their flow entries age out. */
	for (size_t i = 0; i < s->nbackends; i++) {
		backend_index_del(m, &s->backends[i]);
		backend_mark_removed(m, s->backends[i].id);
	}
	bpf_map_delete_elem(m->tables, &s->svc.id);
	service_name_del(m, s);
	sweep_local(m);
out:
	ts_config_free(&cfg);
	return end_change(m, r);
}

/* ---- backends, weights, drains: edits of the service a change wants ------------ */

struct backend_addition {
	struct ts_maps		*m;
	const char		*name;
	const struct ts_endpoint *addr;
	__u32			weight;
};

static int edit_backend_add(struct ts_config *cfg, struct ts_service_cfg *s,
			    struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct backend_addition *a = arg;
	char ep[TS_ADDRSTRLEN], bname[TS_NAME_LEN], sname[TS_NAME_LEN];
	struct ts_endpoint_key key;
	struct ts_service svc;

	ts_format_endpoint(a->addr->addr, a->addr->port, a->addr->family, ep, sizeof(ep));
	if (a->addr->family != s->key.family)
		return ts_fail(err, TS_ERR_USAGE,
			       "backend %s is IPv%u but service '%s' is IPv%u: use a matching "
			       "address",
			       ep, a->addr->family, s->svc.name, s->key.family);
	if (want_backend(want, a->name))
		return ts_fail(err, TS_ERR_USAGE,
			       "service '%s' already has a backend '%s': pick another name",
			       s->svc.name, a->name);
	endpoint_key(a->addr->addr, a->addr->port, a->addr->family, &key);
	/* One service per backend address:port: its replies name one VIP. */
	if (backend_owner(a->m, &key, bname, sname))
		return ts_fail(err, TS_ERR_USAGE,
			       "%s is already backend '%s' of service '%s': a backend address:port "
			       "serves one service",
			       ep, bname, sname);
	/* A backend at a VIP:port would loop its packets into the gateway. */
	if (service_at(a->m, &key, &svc))
		return ts_fail(err, TS_ERR_USAGE,
			       "%s is the VIP of service '%s': a backend cannot be a VIP:port", ep,
			       svc.name);
	/* check_service refuses one too many: a usage error, as in import */
	want->backends[want->nbackends++] = (struct ts_doc_backend){
		.addr = *a->addr,
		.weight = a->weight,
	};
	snprintf(want->backends[want->nbackends - 1].name, TS_NAME_LEN, "%s", a->name);
	return 0;
}

int ts_backend_add(struct ts_maps *m, const char *service, const char *name,
		   const struct ts_endpoint *addr, __u32 weight, struct ts_err *err)
{
	struct backend_addition a = { m, name, addr, weight };
	int r = ts_parse_name(name, "backend", err);

	if (r)
		return r;
	if (weight > TS_MAX_WEIGHT)
		return ts_fail(err, TS_ERR_USAGE, "weight %u is out of range: give 0-%d", weight,
			       TS_MAX_WEIGHT);
	return change_service(m, service, edit_backend_add, &a, err);
}

static int edit_backend_del(struct ts_config *cfg, struct ts_service_cfg *s,
			    struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	struct ts_doc_backend *b = want_backend(want, arg);

	if (!b)
		return unknown_backend(err, s->svc.name, arg);
	/* the commit drops it from the new half: its flows are closed */
	*b = want->backends[--want->nbackends];
	return 0;
}

int ts_backend_del(struct ts_maps *m, const char *service, const char *name,
		   struct ts_err *err)
{
	return change_service(m, service, edit_backend_del, (void *)name, err);
}

struct weight_change {
	char		(*names)[TS_NAME_LEN];
	const __u32	*weights;
	size_t		n;
};

static int edit_weights(struct ts_config *cfg, struct ts_service_cfg *s,
			struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct weight_change *w = arg;

	for (size_t i = 0; i < w->n; i++) {
		struct ts_doc_backend *b = want_backend(want, w->names[i]);

		if (!b)
			return unknown_backend(err, s->svc.name, w->names[i]);
		b->weight = w->weights[i];
	}
	return 0;
}

int ts_weights_set(struct ts_maps *m, const char *service, char (*names)[TS_NAME_LEN],
		   const __u32 *weights, size_t n, struct ts_err *err)
{
	struct weight_change w = { names, weights, n };

	for (size_t i = 0; i < n; i++) {
		if (weights[i] > TS_MAX_WEIGHT)
			return ts_fail(err, TS_ERR_USAGE, "weight %u is out of range: give 0-%d",
				       weights[i], TS_MAX_WEIGHT);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return ts_fail(err, TS_ERR_USAGE,
					       "backend '%s' is given twice: give each weight once",
					       names[i]);
	}
	/* A backend given weight again is no longer draining: service_update
	 * clears its deadline before the commit. */
	return change_service(m, service, edit_weights, &w, err);
}

struct drain {
	const char	*name;
	__u64		deadline_ns;
	__u32		id;	/* out: the backend drained */
};

static int edit_drain(struct ts_config *cfg, struct ts_service_cfg *s,
		      struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	struct drain *d = arg;
	struct ts_doc_backend *b = want_backend(want, d->name);

	if (!b)
		return unknown_backend(err, s->svc.name, d->name);
	b->weight = 0;
	d->id = ts_service_backend(s, d->name)->id;
	return 0;
}

int ts_backend_drain(struct ts_maps *m, const char *service, const char *name,
		     __u64 timeout_ns, struct ts_err *err)
{
	struct drain d = { .name = name };
	int r;

	r = change_service(m, service, edit_drain, &d, err);
	if (r)
		return r;
	/* After the commit, still under the lock: a command killed here has
	 * drained without a deadline, never the reverse. */
	return backend_set_deadline(m, d.id, timeout_ns ? ts_now_ns() + timeout_ns : 0, err);
}

/* ---- health: the checks (operator) and each backend's state (agent) ------------- */

/* Store backend b's health before the commit: the data plane does not read
 * it; the switch that follows makes the effective weight. A command killed in
 * between leaves a health that the next change of the service builds into
 * its table (service_update compares effective weights with the live half). */
static int backend_write_health(struct ts_maps *m, struct ts_backend_cfg *b, __u8 health,
				__u64 since_s, struct ts_err *err)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &b->id, &be))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %s: %s", b->be.name,
			       strerror(errno));
	be.health = health;
	be.health_since_s = since_s;
	m->untouched = false;	/* an edit that writes */
	if (bpf_map_update_elem(m->backends, &b->id, &be, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the health of backend %s: %s",
			       b->be.name, strerror(errno));
	b->be.health = health;	/* the list the table is built from copies s */
	b->be.health_since_s = since_s;
	return 0;
}

struct health_checks {
	struct ts_maps			*m;
	const struct ts_health_check	*hc;
};

static int edit_health(struct ts_config *cfg, struct ts_service_cfg *s,
		       struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct health_checks *a = arg;
	const struct ts_health_check *hc = a->hc;
	int r = ts_health_check_valid(hc, err);

	want->health = *hc;
	/* No checks: nothing will ever mark a backend up again, so all are. */
	for (size_t i = 0; !r && hc->check == TS_CHECK_NONE && i < s->nbackends; i++)
		if (s->backends[i].be.health != TS_HEALTH_UP)
			r = backend_write_health(a->m, &s->backends[i], TS_HEALTH_UP,
						 (__u64)time(NULL), err);
	return r;
}

int ts_health_set(struct ts_maps *m, const char *service, const struct ts_health_check *hc,
		  struct ts_err *err)
{
	struct health_checks a = { m, hc };

	return change_service(m, service, edit_health, &a, err);
}

struct health_change {
	struct ts_maps	*m;
	const char	*name;
	__u8		health;
	__u64		since_s;
};

static int edit_backend_health(struct ts_config *cfg, struct ts_service_cfg *s,
			       struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct health_change *h = arg;
	struct ts_backend_cfg *b = ts_service_backend(s, h->name);

	if (!b)
		return unknown_backend(err, s->svc.name, h->name);
	if (b->be.health == h->health)
		return 0;
	return backend_write_health(h->m, b, h->health, h->since_s, err);
}

int ts_backend_health_set(struct ts_maps *m, const char *service, const char *name,
			  enum ts_health health, __u64 since_s, struct ts_err *err)
{
	struct health_change h = { m, name, (__u8)health, since_s };

	return change_service(m, service, edit_backend_health, &h, err);
}

/* ---- the pipeline's steps --------------------------------------------------------- */

/* Refill m's pool of backend ids: the next batch of `backends`, from where
 * this process last found one, that has never-used ones; when none is left,
 * every id no table refers to (removed, or left by a command killed before
 * its commit), which takes a read of every service and backend, done once
 * for as many ids as there are rather than once per service. The pool holds
 * while the lock does (emptied when it is let go). */
static int free_backends_refill(struct ts_maps *m, struct ts_err *err)
{
	enum { BATCH = 4096 };
	struct ts_backend *all;
	struct ts_config cfg;
	bool *referenced;
	__u32 *keys;
	int r = 0;

	m->free_backends_head = m->free_backends_count = 0;
	if (!m->free_backends)
		m->free_backends = calloc(TS_MAX_BACKENDS, sizeof(*m->free_backends));
	all = calloc(BATCH, sizeof(*all));
	keys = calloc(BATCH, sizeof(*keys));
	if (!m->free_backends || !all || !keys) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	for (__u32 start = m->free_backend_hint;
	     start < TS_MAX_BACKENDS && !m->free_backends_count; start += BATCH) {
		__u32 count = BATCH < TS_MAX_BACKENDS - start ? BATCH : TS_MAX_BACKENDS - start;
		__u32 in_batch = start - 1, out_batch, got = count;

		/* a batch starts after the key given: the one before start */
		if (bpf_map_lookup_batch(m->backends, start ? &in_batch : NULL, &out_batch, keys,
					 all, &got, NULL) &&
		    errno != ENOENT) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot read the backends map: %s",
				    strerror(errno));
			goto out;
		}
		for (__u32 i = 0; i < got; i++)
			if (all[i].state == TS_BACKEND_FREE)
				m->free_backends[m->free_backends_count++] =
					(struct ts_free_backend){ keys[i], all[i].generation + 1 };
		if (!m->free_backends_count)
			m->free_backend_hint = start + count;
	}
	if (m->free_backends_count)
		goto out;
	free(all);
	all = calloc(TS_MAX_BACKENDS, sizeof(*all));
	referenced = calloc(TS_MAX_BACKENDS, sizeof(*referenced));
	r = all && referenced ? ts_config_read(m, &cfg, err)
			      : ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (!r) {
		r = ts_backends_read_all(m, all, err);
		for (size_t i = 0; !r && i < cfg.nservices; i++)
			for (size_t j = 0; j < cfg.services[i].nbackends; j++)
				referenced[cfg.services[i].backends[j].id] = true;
		ts_config_free(&cfg);
	}
	/* never-used ones are past the hint, and none is left there */
	for (__u32 i = 0; !r && i < TS_MAX_BACKENDS; i++)
		if (all[i].state != TS_BACKEND_FREE && !referenced[i])
			m->free_backends[m->free_backends_count++] =
				(struct ts_free_backend){ i, all[i].generation + 1 };
	free(referenced);
out:
	free(all);
	free(keys);
	return r;
}

static bool id_listed(const __u32 *ids, size_t n, __u32 id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* n ids for new backends and their generations, from m's pool (refilled a
 * batch at a time: an import allocates a few per service, and a read of the
 * backends map per service cost more than all the rest of it). */
static int backend_alloc_many(struct ts_maps *m, size_t n, __u32 *ids, __u32 *gens,
			      struct ts_err *err)
{
	size_t k = 0, k_refilled = SIZE_MAX;
	int r;

	while (k < n) {
		const struct ts_free_backend *f;

		if (m->free_backends_head == m->free_backends_count) {
			if (k == k_refilled)	/* it had nothing this call has not */
				break;
			k_refilled = k;
			r = free_backends_refill(m, err);
			if (r)
				return r;
			if (!m->free_backends_count)
				break;
		}
		f = &m->free_backends[m->free_backends_head++];
		/* a pool read again within this call offers the ones it chose,
		 * not referenced yet, again */
		if (id_listed(ids, k, f->id))
			continue;
		ids[k] = f->id;
		gens[k++] = f->generation;
		if (f->id >= m->free_backend_hint)
			m->free_backend_hint = f->id + 1;
	}
	if (k < n)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "too many backends (at most %d in all, counting those being "
			       "replaced)",
			       TS_MAX_BACKENDS);
	return 0;
}

/*
 * want's backends as a table's list, sorted by name: a backend of s (NULL for
 * a new service) with the same name and address:port keeps its id, and so its
 * pinned flows; every other one gets a new id (is_new). Writes nothing.
 */
static int backend_list_build(struct ts_maps *m, struct ts_service_cfg *s, const struct ts_doc_service *want,
			      struct ts_backend_cfg *list, bool *is_new, size_t *nnew,
			      struct ts_err *err)
{
	__u32 ids[TS_MAX_SERVICE_BACKENDS], gens[TS_MAX_SERVICE_BACKENDS];
	size_t n = want->nbackends, k = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct ts_doc_backend *wb = &want->backends[i];

		r = ts_parse_name(wb->name, "backend", err);
		if (r)
			return r;
		if (wb->weight > TS_MAX_WEIGHT)
			return ts_fail(err, TS_ERR_USAGE,
				       "backend '%s': weight %u is out of range: give 0-%d",
				       wb->name, wb->weight, TS_MAX_WEIGHT);
		if (wb->addr.family != want->vip.family)
			return ts_fail(err, TS_ERR_USAGE,
				       "backend '%s' is IPv%u but service '%s' is IPv%u: use a "
				       "matching address",
				       wb->name, wb->addr.family, want->name, want->vip.family);
		memset(&list[i], 0, sizeof(list[i]));
		snprintf(list[i].be.name, sizeof(list[i].be.name), "%s", wb->name);
		memcpy(list[i].be.addr, wb->addr.addr, sizeof(list[i].be.addr));
		list[i].be.port = wb->addr.port;
		list[i].be.family = wb->addr.family;
		list[i].be.state = TS_BACKEND_ACTIVE;
		list[i].weight = wb->weight;
	}
	qsort(list, n, sizeof(*list), table_cmp_backend_name);
	for (size_t i = 0; i < n; i++) {
		struct ts_endpoint ep = { .family = list[i].be.family, .port = list[i].be.port };
		struct ts_backend_cfg *cur = s ? ts_service_backend(s, list[i].be.name) : NULL;

		if (i && !strcmp(list[i].be.name, list[i - 1].be.name))
			return ts_fail(err, TS_ERR_USAGE,
				       "service '%s' is given backend '%s' twice: give each once",
				       want->name, list[i].be.name);
		memcpy(ep.addr, list[i].be.addr, sizeof(ep.addr));
		is_new[i] = !cur || !backend_at(&cur->be, &ep);
		if (!is_new[i]) {
			__u32 weight = list[i].weight;

			list[i] = *cur;
			list[i].weight = weight;
		} else {
			k++;
		}
	}
	r = backend_alloc_many(m, k, ids, gens, err);
	if (r)
		return r;
	for (size_t i = 0, j = 0; i < n; i++)
		if (is_new[i]) {
			list[i].id = ids[j];
			list[i].be.generation = gens[j++];
		}
	*nnew = k;
	return 0;
}

/* The new backends' entries, their counters (zero) and backend_addrs
 * entries: sends no flow anywhere until a table refers to them. */
static int backends_write_new(struct ts_maps *m, const struct ts_service_cfg *s,
			      const struct ts_backend_cfg *list, const bool *is_new, size_t n,
			      struct ts_err *err)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		if (!is_new[i])
			continue;
		if (bpf_map_update_elem(m->backends, &list[i].id, &list[i].be, BPF_ANY))
			return ts_fail(err, TS_ERR_RUNTIME, "cannot write backend %s: %s",
				       list[i].be.name, strerror(errno));
		r = ts_backend_stats_reset(m, list[i].id, err);
		r = r ?: backend_index_set(m, s, &list[i], err);
		if (r)
			return r;
	}
	return 0;
}

/* An existing service, same VIP and table size: one table switch. */
static int service_update(struct ts_maps *m, struct ts_config *cfg, struct ts_service_cfg *s,
			  const struct ts_doc_service *want, struct ts_err *err)
{
	struct ts_backend_cfg *list = calloc(TS_MAX_SERVICE_BACKENDS, sizeof(*list));
	bool is_new[TS_MAX_SERVICE_BACKENDS], changed;
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	size_t n = want->nbackends, nnew = 0, nkept = 0;
	int r;

	if (!list)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = backend_list_build(m, s, want, list, is_new, &nnew, err);
	if (r)
		goto out;
	changed = nnew > 0 || memcmp(&want->health, &s->svc.health, sizeof(want->health));
	ts_effective_weights(list, n, eff);
	for (size_t i = 0; i < n; i++)
		if (!is_new[i]) {
			nkept++;
			changed |= list[i].weight != ts_service_backend(s, list[i].be.name)->weight;
			/* health changes the effective weight: the live half
			 * says whether it was > 0 when it was built */
			changed |= !eff[i] != !(list[i].be.weighted_halves &
						 (1U << (s->svc.table_half & 1)));
		}
	if (!changed && nkept == s->nbackends)
		goto out; /* nothing differs: no write at all */
	r = backends_write_new(m, s, list, is_new, n, err);
	if (r)
		goto out;
	/* A backend with weight is not draining: before the commit, so that a
	 * kill in between leaves a drain without a deadline, never the reverse. */
	for (size_t i = 0; !r && i < n; i++)
		if (!is_new[i] && list[i].weight)
			r = backend_set_deadline(m, list[i].id, 0, err);
	if (r)
		goto out;
	/* The commit: additions, removals, weights and health checks, all at
	 * once (the health checks ride in the same `services` update). */
	s->svc.health = want->health;
	r = table_install(m, s, list, n, err);
	if (r)
		goto out;
	/* After the commit, tidying up: a removed backend's replies are no
	 * longer ours. */
	for (size_t i = 0; i < s->nbackends; i++) {
		bool kept = false;

		for (size_t j = 0; j < n && !kept; j++)
			kept = !is_new[j] && list[j].id == s->backends[i].id;
		if (!kept) {
			backend_index_del(m, &s->backends[i]);
			backend_mark_removed(m, s->backends[i].id);
		}
	}
out:
	free(list);
	return r;
}

/* The service entry a new service want gets (its id free, its table not made
 * yet). */
static int service_plan(struct ts_maps *m, const struct ts_doc_service *want,
			struct ts_service *svc, struct ts_err *err)
{
	bool fixed = want->table_size != 0;

	memset(svc, 0, sizeof(*svc));
	svc->table_size = fixed ? want->table_size : ts_table_size_for(want->nbackends);
	svc->half_len = TS_TABLE_HALF(svc->table_size, table_room(svc->table_size, fixed));
	svc->flags = fixed ? TS_SERVICE_F_FIXED_SIZE : 0;
	svc->health = want->health;
	snprintf(svc->name, sizeof(svc->name), "%s", want->name);
	return table_free_id(m, &svc->id, err);
}

/* May service want be added: are its name and VIP:port free? Lookups only,
 * in time that does not grow with the number of services: a refusal here
 * leaves the change clean (end_change). */
static int service_vacant(struct ts_maps *m, const struct ts_doc_service *want,
			  struct ts_err *err)
{
	char ep[TS_ADDRSTRLEN], bname[TS_NAME_LEN], sname[TS_NAME_LEN];
	struct ts_config have = {};
	struct ts_endpoint_key key;
	struct ts_service other;
	int r;

	endpoint_key(want->vip.addr, want->vip.port, want->vip.family, &key);
	ts_format_endpoint(want->vip.addr, want->vip.port, want->vip.family, ep, sizeof(ep));
	r = ts_config_read_service(m, want->name, &have, err);
	if (!r && have.nservices)
		r = ts_fail(err, TS_ERR_USAGE,
			    "service '%s' already exists: pick another name or 'tcpshift service "
			    "del %s' first",
			    want->name, want->name);
	ts_config_free(&have);
	if (!r && service_at(m, &key, &other))
		r = ts_fail(err, TS_ERR_USAGE,
			    "%s is already used by service '%s': pick another VIP:port", ep,
			    other.name);
	if (!r && backend_owner(m, &key, bname, sname))
		r = ts_fail(err, TS_ERR_USAGE,
			    "%s is backend '%s' of service '%s': a VIP:port cannot be a backend", ep,
			    bname, sname);
	return r;
}

/* A new service, with its whole table: the `services` insert commits it.
 * service_vacant said it may be; its backends' addresses are checked against
 * the others' by lookups too (backend_list_build). made: its entry, its table
 * already made (and in `tables`) by table_create_many, or NULL. */
static int service_create(struct ts_maps *m, const struct ts_doc_service *want,
			  const struct ts_service *made, struct ts_err *err)
{
	struct ts_backend_cfg *list = calloc(TS_MAX_SERVICE_BACKENDS, sizeof(*list));
	struct ts_service_cfg *ns = calloc(1, sizeof(*ns));
	bool *is_new = calloc(TS_MAX_SERVICE_BACKENDS, sizeof(*is_new));
	size_t n = want->nbackends, nnew;
	struct table_view t;
	int r = 0;

	if (!list || !ns || !is_new) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	endpoint_key(want->vip.addr, want->vip.port, want->vip.family, &ns->key);
	if (made)
		ns->svc = *made;
	else
		r = service_plan(m, want, &ns->svc, err);
	r = r ?: backend_list_build(m, NULL, want, list, is_new, &nnew, err);
	/* members of half 0, the half that goes live with the service, and
	 * settled: of half 1 too, which the next change builds (table.c,
	 * table_install) */
	for (size_t i = 0; !r && i < n; i++) {
		list[i].be.table_halves = 3;
		list[i].be.weighted_halves = list[i].weight ? 3 : 0;
	}
	r = r ?: backends_write_new(m, ns, list, is_new, n, err);
	/* Its table, built in the half that will be live, before anything
	 * refers to it. */
	if (!made)
		r = r ?: table_create(m, &ns->svc, err);
	r = r ?: table_open(m, &ns->svc, &t, err);
	if (r)
		goto out;
	r = table_put_half(&t, 0, ns->svc.table_size, list, n, err);
	table_close(&t);
	r = r ?: service_name_set(m, ns, err);
	r = r ?: ts_vip_port_set(m->vip_ports, ns->key.port, err);
	if (r)
		goto out;
	/* The commit: the VIP is balanced from here on, by the whole table. */
	if (bpf_map_update_elem(m->services, &ns->key, &ns->svc, BPF_NOEXIST))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot add service %s: %s", want->name,
			    strerror(errno));
out:
	free(list);
	free(ns);
	free(is_new);
	return r;
}

static int service_apply(struct ts_maps *m, const struct ts_doc_service *want,
			 const struct ts_service *made, struct ts_err *err);

int ts_service_apply(struct ts_maps *m, const struct ts_doc_service *want, struct ts_err *err)
{
	return service_apply(m, want, NULL, err);
}

/* made: a new service's entry and table, made beforehand (ts_doc_apply) */
static int service_apply(struct ts_maps *m, const struct ts_doc_service *want,
			 const struct ts_service *made, struct ts_err *err)
{
	struct ts_endpoint_key key;
	struct ts_service_cfg *s;
	struct ts_config cfg = {};
	int r;

	r = check_service(want, err);
	r = r ?: begin_change(m, NULL, NULL, NULL, err);
	if (!r)
		ts_journal_touch(m, want->name);
	r = r ?: ts_config_read_service(m, want->name, &cfg, err);
	if (r)
		return r;
	endpoint_key(want->vip.addr, want->vip.port, want->vip.family, &key);
	s = cfg.nservices ? &cfg.services[0] : NULL;
	if (s && (memcmp(&s->key, &key, sizeof(key)) ||
		  ts_service_fixed_size(&s->svc) != want->table_size)) {
		/* A new VIP or table size: a new service under the old name. */
		ts_config_free(&cfg);
		r = ts_service_del(m, want->name, err);
		if (r)
			return end_change(m, r);
		s = NULL;
	}
	r = s ? service_update(m, &cfg, s, want, err)
	      : service_vacant(m, want, err) ?: service_create(m, want, made, err);
	ts_config_free(&cfg);
	return end_change(m, r);
}

/* ---- applying ---------------------------------------------------------------------- */

/* New flows hash with the new seed; pinned flows keep their backends. */
static int seed_write(struct ts_maps *m, __u32 seed, struct ts_err *err)
{
	struct ts_settings s;
	__u32 zero = 0;
	int r = ts_settings_read(m, &s, err);

	if (r || s.seed == seed)
		return r;
	s.seed = seed;
	if (bpf_map_update_elem(m->settings, &zero, &s, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the seed to settings: %s",
			       strerror(errno));
	return 0;
}

/* err, prefixed with where the import stopped and what that means. */
static int stopped(struct ts_err *err, const char *what)
{
	char msg[sizeof(err->msg)];

	snprintf(msg, sizeof(msg), "%s", err->msg);
	return ts_fail(err, err->status,
		       "import stopped at %s: %s (services changed before it stay changed: "
		       "import is atomic per service; fix and import again)",
		       what, msg);
}

/*
 * The tables of the services a document adds, made TABLE_CHUNK at a time
 * with one update of `tables` each (table_create_many): an import of 65,536
 * new services would otherwise wait for 65,536 RCU grace periods.
 */
#define TABLE_CHUNK	1024

static struct {
	size_t			first;		/* want->services index of made[0] */
	struct ts_service	made[TABLE_CHUNK];
	bool			is_made[TABLE_CHUNK];
} chunk;

static const struct ts_service *want_made(size_t i)
{
	return i >= chunk.first && i < chunk.first + TABLE_CHUNK && chunk.is_made[i - chunk.first]
		       ? &chunk.made[i - chunk.first]
		       : NULL;
}

/* At every TABLE_CHUNK-th service of want: the tables of the new ones among
 * the next TABLE_CHUNK. */
static int doc_apply_chunk(struct ts_maps *m, const struct ts_doc *want, size_t i,
			   struct ts_err *err)
{
	struct ts_service list[TABLE_CHUNK];
	size_t n = 0;
	int r = 0;

	if (i % TABLE_CHUNK)
		return 0;
	memset(&chunk, 0, sizeof(chunk));
	chunk.first = i;
	for (size_t j = i; j < want->nservices && j < i + TABLE_CHUNK && !r; j++) {
		struct ts_err ignored;

		/* one that will be refused is left to service_apply, which says why */
		if (!service_named(m, want->services[j].name) &&
		    !check_service(&want->services[j], &ignored)) {
			r = service_plan(m, &want->services[j], &chunk.made[j - i], err);
			chunk.is_made[j - i] = !r;
			if (!r)
				list[n++] = chunk.made[j - i];
		}
	}
	r = r ?: table_create_many(m, list, n, err);
	if (r)
		memset(chunk.is_made, 0, sizeof(chunk.is_made));
	return r;
}

int ts_doc_apply(struct ts_maps *m, const struct ts_doc *want, struct ts_err *err)
{
	struct ts_config cfg;
	char what[64];
	int r;

	/* Held until ts_maps_close: no other change interleaves. */
	r = begin_change(m, &cfg, NULL, NULL, err);
	if (r)
		return r;
	/* every service as it was, from this one read */
	ts_journal_touch_config(m, &cfg);
	/* Services that go, or that change VIP or table size, are deleted
	 * first: their VIPs and backend ids may be reused by the document. */
	for (size_t i = 0; i < cfg.nservices; i++) {
		const struct ts_service_cfg *c = &cfg.services[i];
		const struct ts_doc_service *w = ts_doc_service_find(want, c->svc.name);
		struct ts_endpoint_key key;

		if (w)
			endpoint_key(w->vip.addr, w->vip.port, w->vip.family, &key);
		if (w && !memcmp(&key, &c->key, sizeof(key)) &&
		    w->table_size == ts_service_fixed_size(&c->svc))
			continue;
		r = ts_service_del(m, c->svc.name, err);
		if (r) {
			snprintf(what, sizeof(what), "service '%s'", c->svc.name);
			ts_config_free(&cfg);
			return end_change(m, stopped(err, what));
		}
	}
	ts_config_free(&cfg);
	for (size_t i = 0; i < want->nservices; i++) {
		r = doc_apply_chunk(m, want, i, err);
		r = r ?: service_apply(m, &want->services[i], want_made(i), err);
		if (r) {
			snprintf(what, sizeof(what), "service '%s'", want->services[i].name);
			return end_change(m, stopped(err, what));
		}
	}
	r = seed_write(m, want->seed, err);
	sweep_local(m);
	return end_change(m, r ? stopped(err, "the seed") : 0);
}

int ts_doc_import(struct ts_maps *m, const struct ts_doc *want, bool dry_run,
		  struct ts_plan *plan, struct ts_err *err)
{
	struct ts_settings settings;
	struct ts_doc have = {};
	struct ts_config cfg;
	int r;

	memset(plan, 0, sizeof(*plan));
	/* Locked from reading the configuration to the last change. */
	r = lock_change(m, err);
	r = r ?: ts_settings_read(m, &settings, err);
	r = r ?: ts_config_read(m, &cfg, err);
	if (r)
		goto out;
	r = ts_doc_from_config(&cfg, settings.seed, &have, err);
	ts_config_free(&cfg);
	r = r ?: ts_doc_plan(&have, want, plan, err);
	if (!r && !dry_run)
		r = ts_doc_apply(m, want, err);
	ts_doc_free(&have);
out:
	ts_maps_unlock(m);
	return r;
}
