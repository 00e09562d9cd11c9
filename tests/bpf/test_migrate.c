// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place from layouts 5, 6 and 7 (include/tcpshift_abi5.h,
 * include/tcpshift_abi6.h, include/tcpshift_abi7.h, user/lib/migrate.c): each
 * map whose layout changed is converted, each other map is kept as it is (the
 * same map, its entries untouched). The pin directory is made into one of an
 * older layout by hand: today's object pinned, then the maps a later layout
 * changed replaced by the older layout's (layout 7: backend_stats; layout 6:
 * also the maps layout 7 changed, and no service_names; layout 5: also
 * settings and counters, and no direct_pending).
 *
 * And the way back (`downgrade`): from 8 to 7 the counters into one per-CPU
 * hash; from 7 to 6 each map layout 7 changed converted to layout 6's, tables
 * rebuilt in layout 6's geometry, and a configuration layout 6 cannot hold
 * refused with nothing changed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ts_test.h"
#include "tcpshift_abi5.h"
#include "tcpshift_abi6.h"
#include "tcpshift_abi7.h"
#include "tcpshift.skel.h"

static void pin_replace(const char *dir, const char *name, int fd)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	ASSERT_EQ(bpf_obj_pin(fd, path), 0, "pin the layout 5 map");
}

static int pinned(const char *dir, const char *name, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);
	char path[256];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(info, 0, sizeof(*info));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	r = bpf_obj_get_info_by_fd(fd, info, &len);
	close(fd);
	return r;
}

static int skel_fd(void *ctx, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(((struct tcpshift_bpf *)ctx)->obj, name);

	return map ? bpf_map__fd(map) : -1;
}

static void pin_new(const char *dir, const char *name, enum bpf_map_type type, __u32 key,
		    __u32 value, __u32 entries, const struct bpf_map_create_opts *opts)
{
	int fd = bpf_map_create(type, name, key, value, entries, opts);

	ASSERT_TRUE(fd >= 0, name);
	pin_replace(dir, name, fd);
	close(fd);
}

/* A reverse entry (replies' key) numbered i, and its value in layout 7's
 * struct and in today's. */
static struct ts_flow_key reply_key(__u32 i)
{
	struct ts_flow_key k = { .sport = htons(80), .dport = htons((__u16)(40000 + i)),
				 .proto = IPPROTO_TCP, .family = TS_AF_INET };

	k.saddr[0] = htonl(0xc6120101);	/* 198.18.1.1, v1 */
	k.daddr[0] = htonl(0xc6120164);	/* 198.18.1.100, a client */
	return k;
}

static struct ts_reply_state_abi7 reply7(__u32 backend_id, __u32 ack)
{
	struct ts_reply_state_abi7 r = { .vport = htons(80), .backend_id = backend_id,
					 .ifindex = 7, .backend_ack = ack };

	r.vip[0] = htonl(0xc612000a);	/* 198.18.0.10 */
	return r;
}

/* Today's entry is layout 7's, its counts after it. */
static void expect_reply_entry(int fd, __u32 i, __u32 ack, __u32 packets, const char *what)
{
	struct ts_flow_key k = reply_key(i);
	struct ts_reply_state r;

	ASSERT_EQ(bpf_map_lookup_elem(fd, &k, &r), 0, what);
	ASSERT_EQ(r.backend_ack, ack, what);
	ASSERT_EQ(r.ifindex, 7, what);
	ASSERT_EQ(r.vport, htons(80), what);
	ASSERT_EQ(r.packets, packets, what);
}

/* replies as layouts 5 to 7 pinned it (a value without counts), holding n
 * reverse entries of backend id, and no vip_ports (new in layout 8); replies'
 * descriptor. */
static int pin_layout7_replies(const char *dir, __u32 id, __u32 n)
{
	char path[256];

	int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "replies", sizeof(struct ts_flow_key),
				sizeof(struct ts_reply_state_abi7), TEST_MAX_FLOWS, NULL);

	ASSERT_TRUE(fd >= 0, "layout 7's replies");
	for (__u32 i = 0; i < n; i++) {
		struct ts_flow_key k = reply_key(i);
		struct ts_reply_state_abi7 r = reply7(id, 1000 + i);

		ASSERT_EQ(bpf_map_update_elem(fd, &k, &r, 0), 0, "a layout 7 reverse entry");
	}
	pin_replace(dir, "replies", fd);
	snprintf(path, sizeof(path), "%s/vip_ports", dir);
	ASSERT_EQ(unlink(path), 0, "no vip_ports before layout 8");
	return fd;
}

/* A flow (flows' key) numbered i, the client's side of reply_key(i). */
static struct ts_flow_key flow_key(__u32 i)
{
	struct ts_flow_key k = { .sport = htons((__u16)(40000 + i)), .dport = htons(80),
				 .proto = IPPROTO_TCP, .family = TS_AF_INET };

	k.saddr[0] = htonl(0xc6120164);	/* 198.18.1.100, a client */
	k.daddr[0] = htonl(0xc612000a);	/* 198.18.0.10, the VIP */
	return k;
}

/* flows as layouts 5 to 7 pinned it (struct ts_flow values), holding n flows
 * of backend id at generation gen; flows' descriptor. */
static int pin_layout7_flows(const char *dir, __u32 id, __u32 gen, __u32 n)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "flows", sizeof(struct ts_flow_key),
				sizeof(struct ts_flow), TEST_MAX_FLOWS, NULL);

	ASSERT_TRUE(fd >= 0, "layout 7's flows");
	for (__u32 i = 0; i < n; i++) {
		struct ts_flow_key k = flow_key(i);
		struct ts_flow f = { .backend_id = id, .generation = gen,
				     .tcp_state = TS_TCP_ESTABLISHED, .client_end = 100 + i };

		ASSERT_EQ(bpf_map_update_elem(fd, &k, &f, 0), 0, "a layout 7 flow");
	}
	pin_replace(dir, "flows", fd);
	return fd;
}

/* Today's flows entry i: layout 7's value, then a copy of its backend's
 * address and port (198.18.1.1:80) when with_copy, and never an epoch. */
static void expect_flow_entry(int fd, __u32 i, __u32 client_end, bool with_copy,
			      const char *what)
{
	struct ts_flow_key k = flow_key(i);
	struct ts_flow_entry f;

	ASSERT_EQ(bpf_map_lookup_elem(fd, &k, &f), 0, what);
	ASSERT_EQ(f.flow.client_end, client_end, what);
	ASSERT_EQ(f.flow.tcp_state, TS_TCP_ESTABLISHED, what);
	ASSERT_EQ(f.backend_addr[0], with_copy ? htonl(0xc6120101) : 0, what);
	ASSERT_EQ(f.backend_port, with_copy ? htons(80) : 0, what);
	ASSERT_EQ(f.epoch, 0, what);
}

/* The maps layout 7 changed, as layout 6 (and 5) pinned them: empty, and no
 * service_names. */
static void pin_layout6_maps(const char *dir)
{
	LIBBPF_OPTS(bpf_map_create_opts, inner_opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	LIBBPF_OPTS(bpf_map_create_opts, outer_opts);
	char path[256];
	int inner;

	pin_new(dir, "services", BPF_MAP_TYPE_HASH, sizeof(struct ts_endpoint_key),
		sizeof(struct ts_service_abi6), TS_ABI6_MAX_SERVICES, NULL);
	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tmpl", 4, sizeof(struct ts_table_entry), 1,
			       &inner_opts);
	ASSERT_TRUE(inner >= 0, "an inner map template");
	outer_opts.inner_map_fd = inner;
	pin_new(dir, "tables", BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, TS_ABI6_MAX_SERVICES, &outer_opts);
	close(inner);
	pin_new(dir, "backends", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct ts_backend),
		TS_ABI6_MAX_BACKENDS, NULL);
	pin_new(dir, "backend_addrs", BPF_MAP_TYPE_HASH, sizeof(struct ts_endpoint_key),
		sizeof(struct ts_reply), TS_ABI6_MAX_BACKENDS, NULL);
	pin_new(dir, "backend_stats", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct ts_backend_stats),
		TS_ABI6_MAX_BACKENDS, NULL);
	pin_new(dir, "rollouts", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct ts_rollout),
		TS_ABI6_MAX_SERVICES, NULL);
	close(pin_layout7_replies(dir, 0, 0));
	snprintf(path, sizeof(path), "%s/service_names", dir);
	ASSERT_EQ(unlink(path), 0, "no service_names before layout 7");
}

/* Entries of a hash map, counted by walking it. */
static int map_entries(int fd, size_t key_size)
{
	char key[64], prev[64];
	int n = 0;

	while (!bpf_map_get_next_key(fd, n ? prev : NULL, key)) {
		memcpy(prev, key, key_size);
		n++;
	}
	return n;
}

/* Backend id's counters (per CPU) in backend_stats (outer), or -ENOENT when
 * its chunk was never made. */
static int stats_of(int outer, __u32 id, struct ts_backend_stats *st)
{
	__u32 slot = id & (TS_STATS_CHUNK - 1);
	struct ts_err err = {};
	int fd = ts_stats_chunk(outer, NULL, id, false, NULL, &err), r;

	if (fd < 0)
		return fd;
	r = bpf_map_lookup_elem(fd, &slot, st) ? -errno : 0;
	close(fd);
	return r;
}

static int stats_write(int outer, __u32 id, const struct ts_backend_stats *st)
{
	__u32 slot = id & (TS_STATS_CHUNK - 1);
	struct ts_err err = {};
	int fd = ts_stats_chunk(outer, NULL, id, false, NULL, &err), r;

	if (fd < 0)
		return fd;
	r = bpf_map_update_elem(fd, &slot, st, 0) ? -errno : 0;
	close(fd);
	return r;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	ASSERT_TRUE(fd >= 0, name);
	return fd;
}

/* The first table in dir's `tables`: its index in *id, a descriptor of it. */
static int first_table(const char *dir, __u32 *id)
{
	int fd = open_pinned(dir, "tables"), t = -1;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), inner_id;

	ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0, "tables");
	for (*id = 0; *id < info.max_entries && t < 0; ++*id)
		if (!bpf_map_lookup_elem(fd, id, &inner_id))
			t = bpf_map_get_fd_by_id(inner_id);
	--*id;
	close(fd);
	ASSERT_TRUE(t >= 0, "a table");
	return t;
}

/* The entries of the table of service id under dir: 2 * its half_len. */
static __u32 service_entries(const char *dir, __u32 id)
{
	int fd = open_pinned(dir, "services");
	struct ts_endpoint_key key, prev;
	struct ts_service svc;
	__u32 n = 0;
	bool first = true;

	while (!n && !bpf_map_get_next_key(fd, first ? NULL : &prev, &key)) {
		first = false;
		prev = key;
		if (!bpf_map_lookup_elem(fd, &key, &svc) && svc.id == id)
			n = 2 * svc.half_len;
	}
	close(fd);
	ASSERT_TRUE(n > 0, "the table's service");
	return n;
}

/* Does dir's `tables` take a new table of flags and value size (its
 * template's)? */
static bool tables_take(const char *dir, __u32 flags, __u32 value_size)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
	int fd = open_pinned(dir, "tables"), t;
	__u32 id = TS_MAX_SERVICES - 1;
	bool ok;

	t = bpf_map_create(BPF_MAP_TYPE_ARRAY, "probe", 4, value_size, 4, &opts);
	ASSERT_TRUE(t >= 0, "a table to insert");
	ok = !bpf_map_update_elem(fd, &id, &t, 0);
	if (ok)
		bpf_map_delete_elem(fd, &id);
	close(t);
	close(fd);
	return ok;
}

/* Every value of table map fd, in key order, as one row of bytes (*len). */
static unsigned char *table_row(int fd, size_t *len)
{
	struct bpf_map_info info = {};
	__u32 n, out_batch, *keys;
	unsigned char *row;

	ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &(__u32){ sizeof(info) }), 0, "a table");
	n = info.max_entries;
	*len = (size_t)n * info.value_size;
	keys = calloc(n, sizeof(*keys));
	row = calloc(*len, 1);
	ASSERT_TRUE(keys && row, "memory");
	ASSERT_TRUE(!bpf_map_lookup_batch(fd, NULL, &out_batch, keys, row, &n, NULL) ||
		    errno == ENOENT, "the table read");
	ASSERT_EQ(n, info.max_entries, "every element");
	free(keys);
	return row;
}

/* dir's `tables` as layout 7 pins it: an mmap-able template, and table id in
 * an mmap-able map of one entry per element, the first entries of today's
 * table t. Returns that map. */
static int pin_layout7_tables(const char *dir, __u32 id, int t, __u32 entries)
{
	LIBBPF_OPTS(bpf_map_create_opts, mopts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	LIBBPF_OPTS(bpf_map_create_opts, oopts);
	size_t len;
	unsigned char *row = table_row(t, &len);
	int tmpl, outer, t7;

	ASSERT_TRUE(entries * sizeof(struct ts_table_entry) <= len, "the row holds the entries");
	tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tmpl", 4, sizeof(struct ts_table_entry), 1,
			      &mopts);
	t7 = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_table_7", 4, sizeof(struct ts_table_entry),
			    entries, &mopts);
	ASSERT_TRUE(tmpl >= 0 && t7 >= 0, "layout 7's table maps");
	oopts.inner_map_fd = tmpl;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tables", 4, 4, TS_MAX_SERVICES, &oopts);
	ASSERT_TRUE(outer >= 0, "layout 7's tables");
	for (__u32 k = 0; k < entries; k++)
		ASSERT_EQ(bpf_map_update_elem(t7, &k, row + k * sizeof(struct ts_table_entry), 0),
			  0, "an entry copied");
	ASSERT_EQ(bpf_map_update_elem(outer, &id, &t7, 0), 0, "in tables");
	pin_replace(dir, "tables", outer);
	close(outer);
	close(tmpl);
	free(row);
	return t7;
}

/* tables[id] under dir: a map other than want (the table pinned before), of
 * flags, values of value_size, elements for entries entries, and want's row
 * of entries (what either holds beyond the other: zeros). */
static void expect_table_copy(const char *dir, __u32 id, int want, __u32 flags,
			      __u32 value_size, __u32 entries, const char *what)
{
	struct bpf_map_info wi = {}, gi = {};
	__u32 inner_id;
	int fd = open_pinned(dir, "tables"), got;
	unsigned char *a, *b;
	size_t alen, blen;

	ASSERT_EQ(bpf_map_lookup_elem(fd, &id, &inner_id), 0, what);
	close(fd);
	got = bpf_map_get_fd_by_id(inner_id);
	ASSERT_TRUE(got >= 0, what);
	ASSERT_EQ(bpf_obj_get_info_by_fd(want, &wi, &(__u32){ sizeof(wi) }), 0, what);
	ASSERT_EQ(bpf_obj_get_info_by_fd(got, &gi, &(__u32){ sizeof(gi) }), 0, what);
	ASSERT_EQ(gi.map_flags, flags, what);
	ASSERT_EQ(gi.value_size, value_size, what);
	ASSERT_EQ(gi.max_entries,
		  (entries * sizeof(struct ts_table_entry) + value_size - 1) / value_size, what);
	if (wi.map_flags != flags || wi.value_size != value_size)
		ASSERT_TRUE(gi.id != wi.id, what);
	a = table_row(want, &alen);
	b = table_row(got, &blen);
	ASSERT_TRUE(!memcmp(a, b, alen < blen ? alen : blen), what);
	for (size_t i = alen < blen ? alen : blen; i < (alen > blen ? alen : blen); i++)
		ASSERT_EQ((alen > blen ? a : b)[i], 0, what);
	free(a);
	free(b);
	close(got);
}

/*
 * Layout 6's configuration is carried into today's maps: a service (its
 * entry converted, its name indexed, its table of layout 6's half length
 * copied entry for entry into a map of today's flags: not mmap-able), its
 * backend, the backend's reply index, and its counters
 * (what the old programs counted plus what the new ones did before the
 * commit); the configuration then reads as it was.
 */
static void test_migrate_abi6_pin_dir(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, table_opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	struct ts_endpoint_key vip = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
	struct ts_endpoint_key baddr = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
	struct ts_service_abi6 old_svc = { .id = 3, .table_size = 7, .name = "web" };
	struct ts_backend be = { .family = TS_AF_INET, .state = TS_BACKEND_ACTIVE, .generation = 1,
				 .table_halves = 1, .weighted_halves = 1, .name = "v1" };
	struct ts_reply reply = { .backend_id = 5 };
	struct ts_service_name name = { .name = "web" };
	struct ts_settings settings = { .abi_version = 6, .seed = 0x1234 };
	__u32 half = TS_TABLE_HALF(7, TS_ABI6_MAX_SERVICE_BACKENDS), zero = 0, id = 5, abi;
	int ncpus = libbpf_num_possible_cpus(), fd, table;
	struct ts_backend_stats st[512] = {};
	struct ts_endpoint_key got_key;
	struct bpf_map_info info;
	struct ts_table_entry entry;
	struct tcpshift_bpf *skel;
	struct ts_migration mg;
	struct ts_service svc;
	struct ts_config cfg;
	struct ts_maps m;
	struct ts_err err = {};

	ASSERT_TRUE(ncpus > 0 && ncpus <= 512, "CPUs");
	ts_maps_close(&e->maps);
	pin_layout6_maps(e->pin_dir);
	fd = open_pinned(e->pin_dir, "settings");
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, &settings, 0), 0, "layout 6 settings");
	close(fd);
	/* web (id 3): 198.18.100.1:8008, table size 7, backend v1 (id 5) */
	inet_pton(AF_INET, "198.18.100.1", vip.addr);
	vip.port = htons(8008);
	inet_pton(AF_INET, "198.18.2.11", be.addr);
	be.port = htons(8008);
	memcpy(baddr.addr, be.addr, sizeof(be.addr));
	baddr.port = be.port;
	memcpy(reply.vip, vip.addr, sizeof(reply.vip));
	reply.vport = vip.port;
	table = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_table_3", 4, sizeof(entry), 2 * half,
			       &table_opts);
	ASSERT_TRUE(table >= 0, "a layout 6 table");
	for (__u32 i = 0; i < 7; i++) {
		entry = (struct ts_table_entry){ .backend_id = 5 };
		ASSERT_EQ(bpf_map_update_elem(table, &i, &entry, 0), 0, "a slot");
	}
	entry = (struct ts_table_entry){ .backend_id = 1 };
	ASSERT_EQ(bpf_map_update_elem(table, &(__u32){ 7 }, &entry, 0), 0, "n");
	entry = (struct ts_table_entry){ .backend_id = 5, .weight = 1 };
	ASSERT_EQ(bpf_map_update_elem(table, &(__u32){ 8 }, &entry, 0), 0, "(id, weight)");
	fd = open_pinned(e->pin_dir, "tables");
	ASSERT_EQ(bpf_map_update_elem(fd, &old_svc.id, &table, 0), 0, "tables[3]");
	close(fd);
	fd = open_pinned(e->pin_dir, "services");
	ASSERT_EQ(bpf_map_update_elem(fd, &vip, &old_svc, 0), 0, "the service");
	close(fd);
	fd = open_pinned(e->pin_dir, "backends");
	ASSERT_EQ(bpf_map_update_elem(fd, &id, &be, 0), 0, "the backend");
	close(fd);
	fd = open_pinned(e->pin_dir, "backend_addrs");
	ASSERT_EQ(bpf_map_update_elem(fd, &baddr, &reply, 0), 0, "its reply index");
	close(fd);
	for (int c = 0; c < ncpus; c++)
		st[c].packets = 100 + (__u64)c;
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(bpf_map_update_elem(fd, &id, st, 0), 0, "its counters");
	close(fd);

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, 6, "layout 6 recognised");
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 6, "migrates from 6");
	ASSERT_EQ(mg.settings.seed, 0x1234, "seed");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	if (!skel)
		fail_msg("load on the layout 6 pins: %s", err.msg);
	/* the new program counted a packet on each CPU before the commit */
	ASSERT_EQ(stats_of(bpf_map__fd(skel->maps.backend_stats), id, st), 0,
		  "v1's counters made by the fill");
	for (int c = 0; c < ncpus; c++)
		st[c].packets += 1;
	ASSERT_EQ(stats_write(bpf_map__fd(skel->maps.backend_stats), id, st), 0,
		  "counted by the new program");
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit");
	ts_bpf_destroy(skel);

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout after");
	ASSERT_EQ(abi, TS_ABI_VERSION, "today's layout after");
	ASSERT_EQ(pinned(e->pin_dir, "services", &info), 0, "services pinned");
	ASSERT_EQ(info.map_flags, BPF_F_NO_PREALLOC, "services allocated as they fill");
	fd = open_pinned(e->pin_dir, "services");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &vip, &svc), 0, "the service carried");
	close(fd);
	ASSERT_EQ(svc.id, 3, "its id");
	ASSERT_EQ(svc.table_size, 7, "its table size");
	ASSERT_EQ(svc.half_len, half, "its table's halves as layout 6 made them");
	ASSERT_EQ(svc.flags, TS_SERVICE_F_FIXED_SIZE, "its size stays given");
	fd = open_pinned(e->pin_dir, "service_names");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &name, &got_key), 0, "its name indexed");
	close(fd);
	ASSERT_TRUE(!memcmp(&got_key, &vip, sizeof(vip)), "the name gives its VIP");
	expect_table_copy(e->pin_dir, svc.id, table, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk), 2 * half,
			  "layout 6's table");
	close(table);
	ASSERT_EQ(pinned(e->pin_dir, "backends", &info), 0, "backends pinned");
	ASSERT_EQ(info.max_entries, TS_MAX_BACKENDS, "backends of today's size");
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(stats_of(fd, id, st), 0, "v1's counters");
	close(fd);
	for (int c = 0; c < ncpus; c++)
		ASSERT_EQ(st[c].packets, 101 + (__u64)c, "the old count plus the new program's");

	ASSERT_OK(ts_maps_open(&m, e->pin_dir, &err), err, "open today's layout");
	ASSERT_OK(ts_config_read(&m, &cfg, &err), err, "read the configuration");
	ASSERT_EQ(cfg.nservices, 1, "one service");
	ASSERT_EQ(cfg.services[0].nbackends, 1, "one backend");
	ASSERT_TRUE(!strcmp(cfg.services[0].backends[0].be.name, "v1"), "v1");
	ASSERT_EQ(cfg.services[0].backends[0].weight, 1, "its weight");
	ts_config_free(&cfg);
	ASSERT_OK(ts_config_read_service(&m, "web", &cfg, &err), err, "read web by name");
	ASSERT_EQ(cfg.nservices, 1, "web found by its name");
	ts_config_free(&cfg);
	ts_maps_close(&m);
}

/* Every field of layout 5's settings lands in today's, the version is today's. */
static void test_settings_from_abi5(void **state)
{
	struct ts_settings_abi5 in = {
		.abi_version = 5, .seed = 0x1234, .ndevices = 2,
		.flags = TS_SETTINGS_F_FORWARD_FIB | TS_SETTINGS_F_XDP,
		.netns_dev = 7, .netns_ino = 8, .netns_cookie = 9,
		.ifindex = { 3, 4 }, .dev_flags = { TS_DEV_F_OWN_CLSACT, 0 },
	};
	struct ts_settings out;

	(void)state;
	memset(&out, 0xff, sizeof(out));
	ts_settings_from_abi5(&in, &out);
	ASSERT_EQ(out.abi_version, TS_ABI_VERSION, "version");
	ASSERT_EQ(out.seed, 0x1234, "seed");
	ASSERT_EQ(out.ndevices, 2, "devices");
	ASSERT_EQ(out.flags, TS_SETTINGS_F_FORWARD_FIB | TS_SETTINGS_F_XDP, "flags");
	ASSERT_EQ(out.netns_dev, 7, "netns_dev");
	ASSERT_EQ(out.netns_ino, 8, "netns_ino");
	ASSERT_EQ(out.netns_cookie, 9, "netns_cookie");
	ASSERT_EQ(out.ifindex[1], 4, "ifindex");
	ASSERT_EQ(out.dev_flags[0], TS_DEV_F_OWN_CLSACT, "dev_flags");
	ASSERT_EQ(out.ifindex[2], 0, "unused devices zero");
	ASSERT_EQ(out.generation, 0, "generation starts at 0");
	/* layout 5's settings are today's without the last field */
	ASSERT_EQ(sizeof(struct ts_settings_abi5), offsetof(struct ts_settings, generation),
		  "layout 5 is a prefix");
}

static void test_migrate_abi5_pin_dir(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_settings_abi5 old = { .abi_version = 5, .seed = 0xabcd,
					.flags = TS_SETTINGS_F_FORWARD_FIB };
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	struct ts_flow_key key = { .family = TS_AF_INET, .proto = 6, .sport = 1, .dport = 2 };
	struct ts_flow_entry flow = { .flow.backend_id = 3 }, got;
	struct bpf_map_info info, flows_before;
	struct ts_migration mg;
	struct tcpshift_bpf *skel;
	struct ts_settings now;
	struct ts_err err = {};
	int ncpus = libbpf_num_possible_cpus();
	__u64 vals[512], sum[512];
	char path[256];
	struct stat st;
	__u32 zero = 0, abi;
	int fd;

	ASSERT_TRUE(ncpus > 0 && ncpus <= 512, "CPUs");
	ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &key, &flow, 0), 0, "a pinned flow");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &flows_before), 0, "flows pinned");
	/* layout 5's settings and counters in place of today's */
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "settings", 4, sizeof(old), 1, NULL);
	ASSERT_TRUE(fd >= 0, "layout 5 settings");
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, &old, 0), 0, "write layout 5 settings");
	pin_replace(e->pin_dir, "settings", fd);
	close(fd);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "counters", 4, 8, TS_ABI5_CNT_MAX, NULL);
	ASSERT_TRUE(fd >= 0, "layout 5 counters");
	for (__u32 k = 0; k < TS_ABI5_CNT_MAX; k++) {
		for (int c = 0; c < ncpus; c++)
			vals[c] = 1000 * k + (__u64)c;
		ASSERT_EQ(bpf_map_update_elem(fd, &k, vals, 0), 0, "write a layout 5 counter");
	}
	pin_replace(e->pin_dir, "counters", fd);
	close(fd);
	snprintf(path, sizeof(path), "%s/direct_pending", e->pin_dir);
	ASSERT_EQ(unlink(path), 0, "no direct_pending in layout 5");
	/* what layout 6 (the next step of the chain) changed, layout 5 had too */
	pin_layout6_maps(e->pin_dir);

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, 5, "layout 5 recognised");
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 5, "migrates from 5");
	ASSERT_EQ(mg.settings.seed, 0xabcd, "converted seed");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	ASSERT_TRUE(skel != NULL, "load on the layout 5 pins");
	ASSERT_TRUE(skel->rodata->forward_fib, "--forward fib kept from layout 5's settings");
	/* the new program counted one of each before the commit */
	for (__u32 k = 0; k < TS_CNT_MAX; k++) {
		for (int c = 0; c < ncpus; c++)
			vals[c] = 1;
		bpf_map_update_elem(bpf_map__fd(skel->maps.counters), &k, vals, 0);
	}
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit");
	ts_bpf_destroy(skel);

	ASSERT_EQ(pinned(e->pin_dir, "settings", &info), 0, "settings pinned");
	ASSERT_EQ(info.value_size, sizeof(struct ts_settings), "settings of today's layout");
	fd = bpf_obj_get(strcat(strcpy(path, e->pin_dir), "/settings"));
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &now), 0, "read settings");
	close(fd);
	ASSERT_EQ(now.abi_version, TS_ABI_VERSION, "version now");
	ASSERT_EQ(now.seed, 0xabcd, "seed kept");
	ASSERT_TRUE(now.flags & TS_SETTINGS_F_FORWARD_FIB, "flags kept");
	ASSERT_EQ(pinned(e->pin_dir, "counters", &info), 0, "counters pinned");
	ASSERT_EQ(info.max_entries, TS_CNT_MAX, "counters of today's layout");
	fd = bpf_obj_get(strcat(strcpy(path, e->pin_dir), "/counters"));
	for (__u32 k = 0; k < TS_CNT_MAX; k++) {
		ASSERT_EQ(bpf_map_lookup_elem(fd, &k, sum), 0, "read a counter");
		for (int c = 0; c < ncpus; c++) {
			test_context("counter %u, CPU %d", k, c);
			ASSERT_EQ(sum[c], k < TS_ABI5_CNT_MAX ? 1000 * k + (__u64)c + 1 : 1,
				  "layout 5's count plus the new program's");
		}
	}
	test_context("%s", "");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "direct_pending", &info), 0, "direct_pending pinned");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &info), 0, "flows pinned");
	ASSERT_TRUE(info.id != flows_before.id, "flows: remade (layout 8's values)");
	fd = open_pinned(e->pin_dir, "flows");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &key, &got), 0, "the flow is there");
	close(fd);
	ASSERT_EQ(got.flow.backend_id, 3, "the flow's backend");
	snprintf(path, sizeof(path), "%s/migrating", e->pin_dir);
	ASSERT_TRUE(stat(path, &st) && errno == ENOENT, "no staging directory left");
	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout after");
	ASSERT_EQ(abi, TS_ABI_VERSION, "today's layout after");
}

/* A layout newer than this build's is recognised as such (load refuses it). */
static void test_newer_layout_recognised(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	__u32 zero = 0, abi, buf[256] = { TS_ABI_VERSION + 1 };
	struct ts_err err = {};
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "settings", 4, sizeof(struct ts_settings) + 8, 1,
			    NULL);
	ASSERT_TRUE(fd >= 0, "a newer settings map");
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, buf, 0), 0, "write it");
	pin_replace(e->pin_dir, "settings", fd);
	close(fd);
	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, TS_ABI_VERSION + 1, "newer layout recognised");
}

/*
 * Layout 7's counters (a per-CPU hash, an entry from a backend's first packet)
 * go into chunks: a chunk is made for each chunk of ids with a backend given
 * (none for the others), before the new programs run, and a backend's counts
 * are what the old programs counted plus what the new one did before the
 * commit; counts under an id no longer given are not carried. flows and
 * replies are remade: their entries go with what layout 8 adds (a flow gets
 * its backend's address while that backend is still its), those the old
 * programs write before the commit are carried, and those the new one wrote
 * stay. A kill after the counters were pinned in place leaves them shared:
 * the next migration carries nothing twice. Layout 7's tables, mmap-able, are
 * copied into today's, which are not.
 */
static void test_migrate_abi7_pin_dir(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, hash_opts, .map_flags = BPF_F_NO_PREALLOC);
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	int ncpus = libbpf_num_possible_cpus(), fd, outer;
	struct ts_backend_stats st[512] = {};
	struct bpf_map_info info, flows_before;
	struct ts_settings settings;
	struct tcpshift_bpf *skel;
	struct ts_migration mg;
	struct ts_err err = {};
	__u32 zero = 0, v1, freed = 3 * TS_STATS_CHUNK + 5, abi, tid, rows;
	int old_replies, old_flows, table7;
	struct ts_backend be;

	ASSERT_TRUE(ncpus > 0 && ncpus <= 512, "CPUs");
	env_service(e, "web", "198.18.0.10:80", 0);
	env_backend(e, "web", "v1", "198.18.1.1:80", 1);
	v1 = env_backend_id(e, "web", "v1");
	ASSERT_LT(v1, TS_STATS_CHUNK, "v1 in the first chunk");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &v1, &be), 0, "v1's entry");
	ts_maps_close(&e->maps);
	/* layout 7's tables: mmap-able */
	fd = first_table(e->pin_dir, &tid);
	rows = service_entries(e->pin_dir, tid);
	table7 = pin_layout7_tables(e->pin_dir, tid, fd, rows);
	close(fd);
	/* layout 7's counters: v1's, and some under an id not given */
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "backend_stats", 4,
			    sizeof(struct ts_backend_stats), TS_MAX_BACKENDS, &hash_opts);
	ASSERT_TRUE(fd >= 0, "layout 7's backend_stats");
	for (int c = 0; c < ncpus; c++)
		st[c] = (struct ts_backend_stats){ .packets = 100 + (__u64)c, .opened = 3 };
	ASSERT_EQ(bpf_map_update_elem(fd, &v1, st, 0), 0, "v1's counts");
	ASSERT_EQ(bpf_map_update_elem(fd, &freed, st, 0), 0, "counts under an id not given");
	pin_replace(e->pin_dir, "backend_stats", fd);
	close(fd);
	/* layout 7's replies: two reverse entries; no vip_ports */
	old_replies = pin_layout7_replies(e->pin_dir, v1, 2);
	/* layout 7's flows: two of v1, and flow 3 of v1's id at a generation
	 * that is not v1's (its backend was removed, the id reused) */
	old_flows = pin_layout7_flows(e->pin_dir, v1, be.generation, 2);
	ASSERT_EQ(pinned(e->pin_dir, "flows", &flows_before), 0, "flows");
	{
		struct ts_flow_key k3 = flow_key(3);
		struct ts_flow f = { .backend_id = v1, .generation = be.generation + 1,
				     .tcp_state = TS_TCP_ESTABLISHED, .client_end = 103 };

		ASSERT_EQ(bpf_map_update_elem(old_flows, &k3, &f, 0), 0, "flow 3");
	}
	fd = open_pinned(e->pin_dir, "settings");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &settings), 0, "settings");
	settings.abi_version = TS_ABI7_VERSION;
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, &settings, 0), 0, "layout 7's settings");
	close(fd);

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, 7, "layout 7 recognised");
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 7, "migrates from 7");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	if (!skel)
		fail_msg("load on the layout 7 pins: %s", err.msg);
	outer = bpf_map__fd(skel->maps.backend_stats);
	ASSERT_EQ(stats_of(outer, v1, st), 0, "v1's chunk made by the fill");
	ASSERT_EQ(st[0].packets, 0, "from zero before the carry");
	ASSERT_EQ(stats_of(outer, freed, st), -ENOENT, "no chunk without a backend given");
	for (int c = 0; c < ncpus; c++)
		st[c].packets = 1;
	ASSERT_EQ(stats_write(outer, v1, st), 0, "counted by the new program");
	/* the reverse entries, each with no counts waiting; then, before the
	 * commit, the new program counts a reply of entry 1, and the old ones
	 * write entry 1 again and entry 2 anew: the carry adds entry 2 only */
	fd = bpf_map__fd(skel->maps.replies);
	expect_reply_entry(fd, 0, 1000, 0, "entry 0 filled in");
	expect_reply_entry(fd, 1, 1001, 0, "entry 1 filled in");
	{
		struct ts_flow_key k1 = reply_key(1), k2 = reply_key(2);
		struct ts_reply_state_abi7 r7 = reply7(v1, 5001);
		struct ts_reply_state r;

		ASSERT_EQ(bpf_map_lookup_elem(fd, &k1, &r), 0, "entry 1");
		r.packets = 1;
		r.backend_ack = 2001;
		ASSERT_EQ(bpf_map_update_elem(fd, &k1, &r, 0), 0, "entry 1 by the new program");
		ASSERT_EQ(bpf_map_update_elem(old_replies, &k1, &r7, 0), 0, "entry 1 by an old one");
		r7.backend_ack = 1002;
		ASSERT_EQ(bpf_map_update_elem(old_replies, &k2, &r7, 0), 0, "entry 2 by an old one");
	}
	close(old_replies);
	/* the flows, with their backend's address when it is still theirs;
	 * then as the reverse entries: the new program writes flow 1, the old
	 * ones write it again and flow 2 anew */
	fd = bpf_map__fd(skel->maps.flows);
	expect_flow_entry(fd, 0, 100, true, "flow 0 filled in, with v1's address");
	expect_flow_entry(fd, 1, 101, true, "flow 1 filled in");
	expect_flow_entry(fd, 3, 103, false, "flow 3 without: v1 is not its backend");
	{
		struct ts_flow_key k1 = flow_key(1), k2 = flow_key(2);
		struct ts_flow f7 = { .backend_id = v1, .generation = be.generation,
				      .tcp_state = TS_TCP_ESTABLISHED, .client_end = 5001 };
		struct ts_flow_entry f;

		ASSERT_EQ(bpf_map_lookup_elem(fd, &k1, &f), 0, "flow 1");
		f.flow.client_end = 7001;
		ASSERT_EQ(bpf_map_update_elem(fd, &k1, &f, 0), 0, "flow 1 by the new program");
		ASSERT_EQ(bpf_map_update_elem(old_flows, &k1, &f7, 0), 0, "flow 1 by an old one");
		f7.client_end = 102;
		ASSERT_EQ(bpf_map_update_elem(old_flows, &k2, &f7, 0), 0, "flow 2 by an old one");
	}
	close(old_flows);
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit");
	ts_bpf_destroy(skel);
	/* the table copied into one of today's, not mmap-able */
	expect_table_copy(e->pin_dir, tid, table7, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk), rows,
			  "web's table, today's");
	ASSERT_TRUE(tables_take(e->pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk)), "tables takes today's tables");
	close(table7);
	ASSERT_EQ(pinned(e->pin_dir, "replies", &info), 0, "replies pinned");
	ASSERT_EQ(info.value_size, sizeof(struct ts_reply_state), "today's replies");
	fd = open_pinned(e->pin_dir, "vip_ports");
	{
		__u32 w = 80 >> 6;
		__u64 bits;

		ASSERT_EQ(bpf_map_lookup_elem(fd, &w, &bits), 0, "vip_ports");
		ASSERT_EQ(bits, 1ULL << (80 & 63), "the service's port marked, no other");
	}
	close(fd);
	fd = open_pinned(e->pin_dir, "replies");
	expect_reply_entry(fd, 0, 1000, 0, "entry 0 after the commit");
	expect_reply_entry(fd, 1, 2001, 1, "entry 1 as the new program left it");
	expect_reply_entry(fd, 2, 1002, 0, "entry 2 carried");
	close(fd);

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout after");
	ASSERT_EQ(abi, TS_ABI_VERSION, "today's layout after");
	ASSERT_EQ(pinned(e->pin_dir, "backend_stats", &info), 0, "backend_stats pinned");
	ASSERT_EQ(info.type, BPF_MAP_TYPE_ARRAY_OF_MAPS, "chunks");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &info), 0, "flows");
	ASSERT_TRUE(info.id != flows_before.id, "flows remade");
	ASSERT_EQ(info.value_size, sizeof(struct ts_flow_entry), "today's flows");
	fd = open_pinned(e->pin_dir, "flows");
	expect_flow_entry(fd, 0, 100, true, "flow 0 after the commit");
	expect_flow_entry(fd, 1, 7001, true, "flow 1 as the new program left it");
	expect_flow_entry(fd, 2, 102, true, "flow 2 carried, with v1's address");
	expect_flow_entry(fd, 3, 103, false, "flow 3 still without");
	close(fd);
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(stats_of(fd, v1, st), 0, "v1's counters");
	for (int c = 0; c < ncpus; c++) {
		ASSERT_EQ(st[c].packets, 101 + (__u64)c, "the old count plus the new program's");
		ASSERT_EQ(st[c].opened, 3, "every field carried");
	}
	ASSERT_EQ(stats_of(fd, freed, st), -ENOENT, "nothing carried for an id not given");
	close(fd);

	/* killed after backend_stats was renamed into place, before settings:
	 * the next migration shares those chunks and adds nothing twice */
	fd = open_pinned(e->pin_dir, "settings");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &settings), 0, "settings");
	settings.abi_version = TS_ABI7_VERSION;
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, &settings, 0), 0, "layout 7's settings again");
	close(fd);
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare again");
	ASSERT_EQ(mg.from, 7, "from 7 again");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	if (!skel)
		fail_msg("load after a killed commit: %s", err.msg);
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit again");
	ts_bpf_destroy(skel);
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(stats_of(fd, v1, st), 0, "v1's counters");
	ASSERT_EQ(st[0].packets, 101, "counted once");
	close(fd);
}

/*
 * Layout 8 -> 7: settings say layout 7, backend_stats is layout 7's per-CPU
 * hash (allocated as it fills) with an entry for each id that counted
 * something, its counts whole; this build's `load` takes it back to 8 with
 * the same counts.
 */
static void test_downgrade_8_to_7(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	int ncpus = libbpf_num_possible_cpus(), fd;
	struct ts_backend_stats st[512] = {};
	struct bpf_map_info info;
	struct tcpshift_bpf *skel;
	struct ts_migration mg;
	struct ts_settings settings;
	struct ts_losses lost;
	struct ts_err err = {};
	__u32 zero = 0, v1, v2, abi, tid, rows;
	int table8, table7;

	ASSERT_TRUE(ncpus > 0 && ncpus <= 512, "CPUs");
	env_service(e, "web", "198.18.0.10:80", 0);
	env_backend(e, "web", "v1", "198.18.1.1:80", 1);
	env_backend(e, "web", "v2", "198.18.1.2:80", 1);
	v1 = env_backend_id(e, "web", "v1");
	v2 = env_backend_id(e, "web", "v2");
	for (int c = 0; c < ncpus; c++)
		st[c] = (struct ts_backend_stats){ .packets = 40 + (__u64)c, .handshakes = 2 };
	ASSERT_EQ(stats_write(e->maps.backend_stats, v1, st), 0, "v1's counts");
	{
		struct ts_reply_state_abi7 r7 = reply7(v1, 1000);
		struct ts_flow_key k = reply_key(0);
		struct ts_reply_state r = {};

		memcpy(&r, &r7, sizeof(r7));
		r.packets = 3;
		r.bytes = 300;
		r.epoch = 9;
		ASSERT_EQ(bpf_map_update_elem(e->maps.replies, &k, &r, 0), 0, "a reverse entry");
	}
	{
		struct ts_flow_entry f = { .flow = { .backend_id = v1, .client_end = 100,
						     .tcp_state = TS_TCP_ESTABLISHED },
					   .backend_port = htons(80), .epoch = 9 };
		struct ts_flow_key k = flow_key(0);
		struct ts_backend be;

		f.backend_addr[0] = htonl(0xc6120101);
		ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &v1, &be), 0, "v1's entry");
		f.flow.generation = be.generation;
		ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &k, &f, 0), 0, "a flow with its copy");
	}
	ts_maps_close(&e->maps);
	table8 = first_table(e->pin_dir, &tid);
	rows = service_entries(e->pin_dir, tid);

	ASSERT_OK(ts_downgrade(e->pin_dir, 7, false, &lost, &err), err, "downgrade to 7");
	ASSERT_EQ(lost.n, 0, "nothing lost");
	/* layout 7's tables are mmap-able, and its control plane inserts such */
	expect_table_copy(e->pin_dir, tid, table8, BPF_F_INNER_MAP | BPF_F_MMAPABLE, 8, rows,
			  "web's table, mmap-able");
	ASSERT_TRUE(tables_take(e->pin_dir, BPF_F_INNER_MAP | BPF_F_MMAPABLE, 8),
		    "tables takes layout 7's tables");
	ASSERT_TRUE(!tables_take(e->pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk)), "and not today's");
	table7 = first_table(e->pin_dir, &tid);
	fd = open_pinned(e->pin_dir, "settings");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &settings), 0, "settings");
	ASSERT_EQ(settings.abi_version, 7, "settings of layout 7");
	ASSERT_EQ(settings.seed, TEST_SEED, "the seed kept");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "backend_stats", &info), 0, "backend_stats");
	ASSERT_EQ(info.type, BPF_MAP_TYPE_PERCPU_HASH, "a per-CPU hash");
	ASSERT_EQ(info.map_flags, BPF_F_NO_PREALLOC, "allocated as it fills");
	ASSERT_EQ(info.max_entries, TS_MAX_BACKENDS, "of every backend id");
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(map_entries(fd, sizeof(__u32)), 1, "an entry for the id that counted");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &v1, st), 0, "v1's");
	for (int c = 0; c < ncpus; c++) {
		ASSERT_EQ(st[c].packets, 40 + (__u64)c, "its packets, per CPU");
		ASSERT_EQ(st[c].handshakes, 2, "every field");
	}
	ASSERT_TRUE(bpf_map_lookup_elem(fd, &v2, st) && errno == ENOENT, "none for v2");
	close(fd);
	ASSERT_TRUE(pinned(e->pin_dir, "vip_ports", &info) < 0, "no vip_ports in layout 7");
	ASSERT_EQ(pinned(e->pin_dir, "replies", &info), 0, "replies");
	ASSERT_EQ(info.value_size, sizeof(struct ts_reply_state_abi7), "layout 7's values");
	ASSERT_EQ(info.max_entries, TEST_MAX_FLOWS, "as many entries");
	fd = open_pinned(e->pin_dir, "replies");
	{
		struct ts_reply_state_abi7 r7, want = reply7(v1, 1000);
		struct ts_flow_key k = reply_key(0);

		ASSERT_EQ(bpf_map_lookup_elem(fd, &k, &r7), 0, "the reverse entry kept");
		ASSERT_EQ(memcmp(&r7, &want, sizeof(r7)), 0, "as layout 7 has it");
	}
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "flows", &info), 0, "flows");
	ASSERT_EQ(info.value_size, sizeof(struct ts_flow), "layout 7's values");
	ASSERT_EQ(info.max_entries, TEST_MAX_FLOWS, "as many entries");
	fd = open_pinned(e->pin_dir, "flows");
	{
		struct ts_flow_key k = flow_key(0);
		struct ts_flow f;

		ASSERT_EQ(bpf_map_lookup_elem(fd, &k, &f), 0, "the flow kept");
		ASSERT_EQ(f.backend_id, v1, "its backend");
		ASSERT_EQ(f.client_end, 100, "as it was");
	}
	close(fd);
	/* run again: nothing left to do, the tables shared */
	ASSERT_OK(ts_downgrade(e->pin_dir, 7, false, &lost, &err), err, "downgrade again");
	expect_table_copy(e->pin_dir, tid, table7, BPF_F_INNER_MAP | BPF_F_MMAPABLE, 8, rows,
			  "web's table again");
	{
		struct bpf_map_info a = {}, b = {};
		int again = first_table(e->pin_dir, &tid);

		ASSERT_EQ(bpf_obj_get_info_by_fd(table7, &a, &(__u32){ sizeof(a) }), 0, "table");
		ASSERT_EQ(bpf_obj_get_info_by_fd(again, &b, &(__u32){ sizeof(b) }), 0, "table");
		ASSERT_EQ(a.id, b.id, "the same table map");
		close(again);
	}

	/* and up again by this build: the same counts, in chunks */
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 7, "from 7");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	if (!skel)
		fail_msg("load on the downgraded pins: %s", err.msg);
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit");
	ts_bpf_destroy(skel);
	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout after");
	ASSERT_EQ(abi, TS_ABI_VERSION, "today's layout after");
	expect_table_copy(e->pin_dir, tid, table7, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk), rows,
			  "web's table, today's again");
	close(table7);
	close(table8);
	fd = open_pinned(e->pin_dir, "backend_stats");
	ASSERT_EQ(stats_of(fd, v1, st), 0, "v1's counters");
	ASSERT_EQ(st[1 % ncpus].packets, 40 + (__u64)(1 % ncpus), "kept through both ways");
	ASSERT_EQ(stats_of(fd, v2, st), 0, "v2's chunk");
	ASSERT_EQ(st[0].packets, 0, "v2 from zero");
	close(fd);
	fd = open_pinned(e->pin_dir, "replies");
	expect_reply_entry(fd, 0, 1000, 0, "the reverse entry, up again");
	close(fd);
	fd = open_pinned(e->pin_dir, "flows");
	expect_flow_entry(fd, 0, 100, true, "the flow, up again with its backend's address");
	close(fd);
}

/* The backend ids of the live half of service id's table (its M slots). */
static void live_slots(int tables, __u32 id, __u32 m, __u32 half_len, __u32 live, __u32 *out)
{
	const struct ts_table_entry *e;
	unsigned char *row;
	__u32 inner_id;
	size_t len;
	int inner;

	ASSERT_EQ(bpf_map_lookup_elem(tables, &id, &inner_id), 0, "the service's table");
	inner = bpf_map_get_fd_by_id(inner_id);
	ASSERT_TRUE(inner >= 0, "open the table");
	/* today's or layout 6's: the same row of entries */
	row = table_row(inner, &len);
	e = (const struct ts_table_entry *)row;
	ASSERT_TRUE((live * half_len + m) * sizeof(*e) <= len, "the slots in the table");
	for (__u32 i = 0; i < m; i++)
		out[i] = e[live * half_len + i].backend_id;
	free(row);
	close(inner);
}

/*
 * Layout 8 -> 6 (through 7): settings say layout 6, the service's entry is layout 6's,
 * its table has layout 6's halves (M + 1 + 256) with the same slots in its
 * live half, backends, backend_addrs, backend_stats and rollouts have layout
 * 6's types and sizes with the backends kept, service_names is gone, and
 * flows has their values (layout 7's step remakes it).
 */
static void test_downgrade_7_to_6(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	__u32 before[251], after[251], zero = 0, id, half6 = TS_TABLE_HALF(251, 256);
	struct ts_endpoint_key vip = { .proto = IPPROTO_TCP, .family = TS_AF_INET,
				       .port = htons(80) };
	struct ts_service svc;
	struct ts_service_abi6 svc6;
	struct ts_settings st;
	struct ts_backend be;
	struct bpf_map_info info, flows_before, flows_after;
	struct ts_losses lost;
	struct ts_err err = {};
	char path[256];
	int fd;

	env_service(e, "web", "198.18.0.10:80", 0);
	env_backend(e, "web", "v1", "198.18.1.1:80", 30);
	env_backend(e, "web", "v2", "198.18.1.2:80", 70);
	vip.addr[0] = inet_addr("198.18.0.10");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.services, &vip, &svc), 0, "the service");
	ASSERT_EQ(svc.table_size, 251, "a table sized by 2 backends");
	ASSERT_TRUE(svc.half_len < TS_TABLE_HALF(251, 256), "halves of layout 7's geometry");
	live_slots(e->maps.tables, svc.id, 251, svc.half_len, svc.table_half, before);
	ASSERT_EQ(pinned(e->pin_dir, "flows", &flows_before), 0, "flows");

	ASSERT_OK(ts_downgrade(e->pin_dir, 6, false, &lost, &err), err, "downgrade to 6");
	ASSERT_EQ(lost.n, 0, "nothing lost");

	fd = open_pinned(e->pin_dir, "settings");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &st), 0, "settings");
	ASSERT_EQ(st.abi_version, 6, "settings of layout 6");
	ASSERT_EQ(st.seed, TEST_SEED, "the seed kept");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "services", &info), 0, "services");
	ASSERT_EQ(info.value_size, sizeof(struct ts_service_abi6), "services of layout 6");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_SERVICES, "256 services");
	ASSERT_EQ(info.map_flags, 0, "preallocated");
	fd = open_pinned(e->pin_dir, "services");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &vip, &svc6), 0, "the service kept");
	ASSERT_EQ(svc6.id, svc.id, "its id");
	ASSERT_EQ(svc6.table_size, 251, "its M");
	ASSERT_EQ(svc6.table_half, svc.table_half, "its live half");
	ASSERT_EQ(strcmp(svc6.name, "web"), 0, "its name");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "tables", &info), 0, "tables");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_SERVICES, "256 tables");
	fd = open_pinned(e->pin_dir, "tables");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &svc.id, &id), 0, "the service's table");
	{
		int inner = bpf_map_get_fd_by_id(id);
		__u32 len = sizeof(info);

		ASSERT_TRUE(inner >= 0, "the table");
		ASSERT_EQ(bpf_obj_get_info_by_fd(inner, &info, &len), 0, "its info");
		ASSERT_EQ(info.max_entries, 2 * half6, "halves of M + 1 + 256");
		close(inner);
	}
	live_slots(fd, svc.id, 251, half6, svc.table_half, after);
	ASSERT_EQ(memcmp(before, after, sizeof(before)), 0, "the same slots in the live half");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "backends", &info), 0, "backends");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_BACKENDS, "4,096 backends");
	fd = open_pinned(e->pin_dir, "backends");
	id = before[0];
	ASSERT_EQ(bpf_map_lookup_elem(fd, &id, &be), 0, "a backend of the table");
	ASSERT_EQ(be.state, TS_BACKEND_ACTIVE, "kept");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "backend_addrs", &info), 0, "backend_addrs");
	ASSERT_EQ(info.map_flags, 0, "backend_addrs preallocated");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_BACKENDS, "backend_addrs of 4,096");
	fd = open_pinned(e->pin_dir, "backend_addrs");
	ASSERT_EQ(map_entries(fd, sizeof(struct ts_endpoint_key)), 2, "both backends' addresses");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "backend_stats", &info), 0, "backend_stats");
	ASSERT_EQ(info.type, BPF_MAP_TYPE_PERCPU_ARRAY, "backend_stats a per-CPU array");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_BACKENDS, "backend_stats of 4,096");
	ASSERT_EQ(pinned(e->pin_dir, "rollouts", &info), 0, "rollouts");
	ASSERT_EQ(info.max_entries, TS_ABI6_MAX_SERVICES, "rollouts of 256");
	snprintf(path, sizeof(path), "%s/service_names", e->pin_dir);
	ASSERT_TRUE(access(path, F_OK) && errno == ENOENT, "no service_names");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &flows_after), 0, "flows");
	ASSERT_EQ(flows_after.value_size, sizeof(struct ts_flow), "flows of layouts 7 and 6");
	ASSERT_EQ(flows_after.max_entries, flows_before.max_entries, "as many entries");
	/* run again: nothing left to do */
	ASSERT_OK(ts_downgrade(e->pin_dir, 6, false, &lost, &err), err, "downgrade again");
}

/* 300 services do not fit layout 6's 256: refused, every pin the same. */
static void test_downgrade_7_to_6_refuses_a_loss(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct bpf_map_info services, settings, info;
	struct ts_losses lost;
	struct ts_err err = {};
	char name[32], vip[32];

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		snprintf(vip, sizeof(vip), "198.18.%d.%d:80", 2 + i / 200, 1 + i % 200);
		env_service(e, name, vip, 0);
	}
	ASSERT_EQ(pinned(e->pin_dir, "services", &services), 0, "services");
	ASSERT_EQ(pinned(e->pin_dir, "settings", &settings), 0, "settings");
	ASSERT_EQ(ts_downgrade(e->pin_dir, 6, false, &lost, &err), -TS_ERR_USAGE, "refused");
	ASSERT_TRUE(strstr(err.msg, "44 of 300 services") != NULL, err.msg);
	ASSERT_TRUE(strstr(err.msg, "--accept-loss") != NULL, err.msg);
	ASSERT_EQ(pinned(e->pin_dir, "services", &info), 0, "services");
	ASSERT_EQ(info.id, services.id, "services the same map");
	ASSERT_EQ(pinned(e->pin_dir, "settings", &info), 0, "settings");
	ASSERT_EQ(info.id, settings.id, "settings the same map");
	/* accepted: the 256 services that fit are kept */
	ASSERT_OK(ts_downgrade(e->pin_dir, 6, true, &lost, &err), err, "downgrade, loss accepted");
	{
		int fd = open_pinned(e->pin_dir, "services");

		ASSERT_EQ(map_entries(fd, sizeof(struct ts_endpoint_key)), 256, "256 services");
		close(fd);
	}
}

/*
 * A `tables` that a build of layout 8 from before the 64-entry elements
 * pinned (layout 7's template and tables) is made today's at the next load:
 * its tables copied, and the programs then verify and run against it. With
 * no table in it, the template alone tells.
 */
static void test_tables_of_an_earlier_layout8(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	struct tcpshift_bpf *skel;
	struct ts_migration mg;
	struct ts_err err = {};
	__u32 tid, rows;
	int fd, old;

	env_service(e, "web", "198.18.0.10:80", 0);
	env_backend(e, "web", "v1", "198.18.1.1:80", 1);
	ts_maps_close(&e->maps);
	fd = first_table(e->pin_dir, &tid);
	rows = service_entries(e->pin_dir, tid);
	old = pin_layout7_tables(e->pin_dir, tid, fd, rows);
	close(fd);
	ASSERT_TRUE(!tables_take(e->pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk)),
		    "the earlier template");

	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 0, "no migration: the layout is today's");
	expect_table_copy(e->pin_dir, tid, old, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk),
			  rows, "web's table, today's");
	ASSERT_TRUE(tables_take(e->pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk)),
		    "today's template");
	skel = ts_bpf_open_load(&o, &err);
	if (!skel)
		fail_msg("load on the remade tables: %s", err.msg);
	ts_bpf_destroy(skel);
	/* again: nothing to do, the same tables map */
	{
		struct bpf_map_info a, b;

		ASSERT_EQ(pinned(e->pin_dir, "tables", &a), 0, "tables");
		ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare again");
		ASSERT_EQ(pinned(e->pin_dir, "tables", &b), 0, "tables");
		ASSERT_EQ(a.id, b.id, "kept");
	}
	close(old);

	/* no table: the template */
	{
		LIBBPF_OPTS(bpf_map_create_opts, mopts,
			    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
		LIBBPF_OPTS(bpf_map_create_opts, oopts);
		int tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tmpl", 4,
					  sizeof(struct ts_table_entry), 1, &mopts), outer;

		oopts.inner_map_fd = tmpl;
		outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tables", 4, 4, TS_MAX_SERVICES,
				       &oopts);
		ASSERT_TRUE(tmpl >= 0 && outer >= 0, "an empty tables of the earlier template");
		pin_replace(e->pin_dir, "tables", outer);
		close(outer);
		close(tmpl);
	}
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare, no table");
	ASSERT_TRUE(tables_take(e->pin_dir, BPF_F_INNER_MAP, sizeof(struct ts_table_chunk)),
		    "today's template, with no table to tell");
}

/* A load over a full instance (every service index holding a table) finds
 * its tables today's by a service's table, with no index free to try one. */
static void test_tables_current_on_a_full_instance(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct bpf_map_info a, b;
	struct ts_migration mg;
	struct ts_err err = {};
	__u32 *keys = calloc(TS_MAX_SERVICES, sizeof(*keys)), count = TS_MAX_SERVICES, tid;
	int *fds = calloc(TS_MAX_SERVICES, sizeof(*fds)), tables, table;

	ASSERT_TRUE(keys && fds, "memory");
	env_service(e, "web", "198.18.0.10:80", 0);
	env_backend(e, "web", "v1", "198.18.1.1:80", 1);
	ts_maps_close(&e->maps);
	table = first_table(e->pin_dir, &tid);
	tables = open_pinned(e->pin_dir, "tables");
	for (__u32 i = 0; i < TS_MAX_SERVICES; i++) {
		keys[i] = i;
		fds[i] = table;
	}
	ASSERT_EQ(bpf_map_update_batch(tables, keys, fds, &count, NULL), 0,
		  "web's table at every index");
	ASSERT_EQ(pinned(e->pin_dir, "tables", &a), 0, "tables");
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare, every index taken");
	ASSERT_EQ(mg.from, 0, "no migration");
	ASSERT_EQ(pinned(e->pin_dir, "tables", &b), 0, "tables");
	ASSERT_EQ(a.id, b.id, "the same tables");
	close(tables);
	close(table);
	free(keys);
	free(fds);
}

int run_migrate_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_from_abi5),
		TEST(test_migrate_abi5_pin_dir),
		TEST(test_migrate_abi6_pin_dir),
		TEST(test_migrate_abi7_pin_dir),
		TEST(test_newer_layout_recognised),
		TEST(test_tables_of_an_earlier_layout8),
		TEST(test_tables_current_on_a_full_instance),
		TEST(test_downgrade_8_to_7),
		TEST(test_downgrade_7_to_6),
		TEST(test_downgrade_7_to_6_refuses_a_loss),
	};

	return cmocka_run_group_tests_name("migration from older layouts", tests, NULL, NULL);
}
