/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tcpshift maps. The state that must outlive a program (configuration, flows,
 * counters) is pinned by name under the pin directory (invariant 7); the XDP
 * device maps and the next-hop cache at the end are not: each load makes its
 * own. sync_events (bpf/sync.h) is pinned too.
 */
#ifndef TCPSHIFT_MAPS_H
#define TCPSHIFT_MAPS_H

#include "tcpshift.h"

/*
 * Memory follows what is configured (doc/DESIGN.md, "Memory"): the hash maps
 * the control plane fills are allocated as they fill (BPF_F_NO_PREALLOC; the
 * data plane only reads them, so it never allocates), and each table is sized
 * by its service. What stays preallocated at the limits: the arrays indexed by
 * id (backends, rollouts, tables' slots), which the kernel cannot allocate
 * lazily, and the flow tables sized by `load --max-flows` (LRU maps are
 * always preallocated).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, struct ts_endpoint_key);
	__type(value, struct ts_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} services SEC(".maps");

/* The ports services use (tcpshift.h): 8 KiB. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_VIP_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_ports SEC(".maps");

/* Read by the control plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, struct ts_service_name);
	__type(value, struct ts_endpoint_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_names SEC(".maps");

/* Tables differ in size (TS_TABLE_CHUNKS(2 * ts_service.half_len) elements),
 * hence BPF_F_INNER_MAP; not mmap-able, so that the kernel puts a small one in
 * its direct map (user/lib/table.c). The value is a struct ts_table_chunk,
 * declared by size: clang emits only a forward declaration into BTF for a
 * struct that the inner map template alone names. */
_Static_assert(sizeof(struct ts_table_chunk) == 512, "table chunk size");
struct ts_table_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u8[sizeof(struct ts_table_chunk)]);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ts_table_map);	/* must be last */
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps");

/* max_entries of flows and half_open are set by `load --max-flows`. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS / 4);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} half_open SEC(".maps");

/* Sized like flows by `load --max-flows`; keyed by the reply's own 5-tuple. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_reply_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, struct ts_endpoint_key);
	__type(value, struct ts_reply);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_addrs SEC(".maps");

/* Per-CPU counters of TS_STATS_CHUNK backend ids each (tcpshift.h): made by
 * the control plane when it first gives an id of the chunk (per CPU, 232
 * bytes an id: preallocated at the limit they would be 58 MiB per CPU). The
 * value is declared by size, as the tables' (above). */
struct ts_stats_chunk {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_STATS_CHUNK);
	__type(key, __u32);
	__type(value, __u8[sizeof(struct ts_backend_stats)]);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TS_STATS_CHUNKS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ts_stats_chunk);	/* must be last */
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/* Sized like half_open by `load --max-flows`. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS / 4);
	__type(key, struct ts_flow_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} direct SEC(".maps");

/* Sized like half_open by `load --max-flows`. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS / 4);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_direct_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} direct_pending SEC(".maps");

/* Written and read by `tcpshift rollout` and `status` only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ts_rollout);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rollouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

/* Local clients (tcpshift.h, ts_local_sock). local_flows is sized like flows
 * by `load --max-flows`, and allocated as it fills. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ts_local_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_flows SEC(".maps");

/*
 * load --mode xdp: the instance's devices as the XDP program knows them,
 * keyed by ifindex: xdp_tx, those it may redirect to, the ones that take
 * redirected frames (a devmap, so that the kernel sends them in batches), and
 * xdp_devs, each one's MAC, to tell a frame to this host from one seen in
 * promiscuous mode, and whether its frames may carry partial checksums
 * (xdp_dev_slots: most of them again, found with an array access:
 * include/tcpshift.h).
 * Written by every load before it attaches, so not pinned: each program has
 * its own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, TS_MAX_DEVICES);
	__type(key, __u32);
	__type(value, __u32);
} xdp_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_DEVICES);
	__type(key, __u32);
	__type(value, struct ts_xdp_dev);
} xdp_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_XDP_DEV_SLOTS);
	__type(key, __u32);
	__type(value, struct ts_xdp_dev);
} xdp_dev_slots SEC(".maps");

/* Next hops that bpf_fib_lookup found (include/tcpshift.h); a cache, so not
 * pinned: a new load starts empty. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_NEXTHOPS);
	__type(key, struct ts_nexthop_key);
	__type(value, struct ts_nexthop);
} nexthops SEC(".maps");

/* The per-CPU front of nexthops (include/tcpshift.h); not pinned either. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1U << TS_ROUTE_CACHE_BITS);
	__type(key, __u32);
	__type(value, struct ts_route_cache);
} route_cache SEC(".maps");

/* A flows value being made (ts_promote), one per CPU: larger than the stack
 * the programs that make it have left. Not pinned: nothing in it outlives
 * the packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_flow_entry);
} flow_scratch SEC(".maps");

#endif /* TCPSHIFT_MAPS_H */
