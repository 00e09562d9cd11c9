/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tcpshift ABI: the one definition of every map key, value, constant and enum,
 * shared by the BPF program (bpf/) and the control plane (user/).
 *
 * Addresses are stored as four big-endian 32-bit words; an IPv4 address uses
 * word 0 only and the others are zero. Ports are big-endian (__be16).
 * Structs have explicit padding so that both sides agree on every byte and
 * hash keys contain no uninitialised holes.
 */
#ifndef TCPSHIFT_H
#define TCPSHIFT_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Bumped whenever a map layout below changes; `load` refuses to reuse pinned
 * maps written by a different layout. */
#define TS_ABI_VERSION		8

#define TS_NAME_LEN		32	/* service and backend names, NUL-terminated */
#define TS_MAX_SERVICES		65536
#define TS_MAX_BACKENDS		262144	/* all services together */
#define TS_MAX_SERVICE_BACKENDS	1024	/* one service */
#define TS_MAX_DEVICES		64
#define TS_DEFAULT_TABLE_SIZE	16381	/* prime: the size of layout 6's tables */
#define TS_MAX_TABLE_SIZE	131071	/* prime */
#define TS_MIN_TABLE_SIZE	7
/* Table size follows a service's backends unless given (`--table-size`): the
 * smallest of these primes with at least TS_SLOTS_PER_BACKEND slots per
 * backend, so that each share is within 1/M <= 1 % of an even share of the
 * table (user/lib/table.c, ts_table_size_for). */
#define TS_SLOTS_PER_BACKEND	100
#define TS_TABLE_SIZES		127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071
#define TS_DEFAULT_MAX_FLOWS	262144
#define TS_MAX_MAX_FLOWS	(16U << 20)	/* load --max-flows */
/* half_open holds a quarter as many flows as flows, at least 1024. */
#define TS_HALF_OPEN_SIZE(max_flows)	((max_flows) / 4 < 1024 ? 1024 : (max_flows) / 4)
#define TS_MAX_WEIGHT		65535
#define TS_DEFAULT_SEED		0x7c5f5eedU

/* Table slot value meaning "no backend has weight > 0". */
#define TS_NO_BACKEND		0xffffffffU

/* Last-seen stamps are refreshed at most this often (ns): the packets of an
 * established flow write its shared flow entry once a second, not each one
 * (and when its TCP state changes). Every packet still adds to per-CPU
 * counters (backend_stats), which no other CPU writes. */
#define TS_LAST_SEEN_GRANULARITY_NS	1000000000ULL

/* An address family, the one encoding of it in maps, in sync's messages and
 * in tcpshift's own structs. The kernel's AF_INET/AF_INET6 appear only where
 * a kernel or libc interface takes them, each side converting in one place:
 * ts_kernel_af() (bpf/forward.h) and ts_family_af() (user/lib/parse.c). */
enum ts_family {
	TS_AF_INET	= 4,
	TS_AF_INET6	= 6,
};

/* An address:port/protocol: the key of `services` (a VIP) and of
 * `backend_addrs` (a backend). */
struct ts_endpoint_key {
	__be32	addr[4];
	__be16	port;
	__u8	proto;		/* IPPROTO_TCP */
	__u8	family;		/* enum ts_family */
};

/*
 * A service's health checks, run by `tcpshift agent` (never by the data
 * plane, which does not read this): every interval_ms, a TCP connect to each
 * backend's address:port that must succeed within timeout_ms; `fall`
 * failures in a row mark a backend down, `rise` successes up again
 * (doc/DESIGN.md, "Health checks").
 */
enum ts_health_check_kind {
	TS_CHECK_NONE	= 0,
	TS_CHECK_TCP	= 1,
};

#define TS_HEALTH_DEFAULT_INTERVAL_MS	2000	/* HAProxy's inter */
#define TS_HEALTH_DEFAULT_TIMEOUT_MS	1000
#define TS_HEALTH_DEFAULT_RISE		2
#define TS_HEALTH_DEFAULT_FALL		3
#define TS_HEALTH_MAX_COUNT		100	/* rise, fall */

struct ts_health_check {
	__u32	interval_ms;
	__u32	timeout_ms;
	__u8	check;		/* enum ts_health_check_kind */
	__u8	rise;
	__u8	fall;
	__u8	pad;
};

enum ts_service_flags {
	TS_SERVICE_F_FIXED_SIZE	= 1,	/* table_size was given (`--table-size`, a document's
					 * table_size): it does not follow the backends */
};

/* services: hash, VIP endpoint -> service */
struct ts_service {
	__u32	id;		/* index into `tables` */
	__u32	table_size;	/* M, prime */
	__u32	table_half;	/* which half of the table is live: 0 or 1 */
	__u32	half_len;	/* entries in a half: M + 1 + room for backends */
	char	name[TS_NAME_LEN];
	struct ts_health_check health;	/* control plane only */
	__u32	flags;		/* enum ts_service_flags (control plane only) */
};

/*
 * vip_ports: array, word w -> bit b set when some service's VIP uses port
 * 64 * w + b (host order). Set by the control plane before it inserts the
 * service, never cleared: a packet to a port whose bit is clear is to no VIP,
 * and skips the `services` lookup, a miss that costs more the more services
 * there are (doc/DESIGN.md, "Established flows"). A port that no service uses
 * any more costs that lookup again until the next `load` of a fresh instance.
 */
#define TS_VIP_PORT_WORDS	(65536 / 64)

/* service_names: hash, service name (NUL-padded) -> its VIP endpoint, so that
 * a change finds its service without reading all of them. Written before the
 * service's insert and removed after its delete: an entry whose service has
 * another name (a command killed in between) means nothing. */
struct ts_service_name {
	char	name[TS_NAME_LEN];
};

/*
 * tables: array of maps, service id -> the service's table: a row of struct
 * ts_table_entry in two halves of ts_service.half_len entries
 * (TS_TABLE_HALF(M, room), room: the most backends the table can list), kept
 * TS_TABLE_CHUNK entries to an element of an array map (struct
 * ts_table_chunk: entry i is entry i % TS_TABLE_CHUNK of element
 * i / TS_TABLE_CHUNK; the last element's tail is zeros). The map is not
 * mmap-able, so that the kernel keeps a small table in its direct map, and
 * a half is written and read a few elements at a time (user/lib/table.c).
 *
 * A half holds the Maglev lookup table in entries [0, M) (backend id per
 * slot, or TS_NO_BACKEND), then the configuration it was built from, which the
 * data plane never reads: entry M holds the number n of backends in
 * backend_id, entries M+1..M+n the (backend id, weight) pairs, sorted by name.
 * A change that needs a larger room or another M builds a new table under a
 * new service id and switches to it with the same one update.
 *
 * A change writes the half that is not live (and each backend's membership
 * bit for that half, ts_backend.table_halves; an element that the halves
 * share is written whole, its live half's entries as they were read, byte
 * for byte, under the lock), then switches `table_half` in
 * the service's entry: one map update, so packets and readers of the
 * configuration see the old table, weights and members or the new ones
 * (invariant 3). A pinned flow's backend serves it only while it is a member
 * of the live half: a removal takes effect with the switch. A member of both
 * halves (settled, as every backend is but for the one change that adds or
 * removes it) is live whichever half is: its flows' packets need not read the
 * service's entry (doc/DESIGN.md, "Established flows").
 * The half being written stopped being live at the previous change, and BPF
 * programs that read it then have long finished (they cannot sleep).
 */
struct ts_table_entry {
	__u32	backend_id;
	__u32	weight;		/* configuration entries only */
};

#define TS_TABLE_HALF(m, room)	((m) + 1 + (room))

#define TS_TABLE_CHUNK		64	/* entries of an element: 512 bytes */
struct ts_table_chunk {
	struct ts_table_entry	e[TS_TABLE_CHUNK];
};
/* the elements of a table of n entries */
#define TS_TABLE_CHUNKS(n)	(((n) + TS_TABLE_CHUNK - 1) / TS_TABLE_CHUNK)

enum ts_backend_state {
	TS_BACKEND_FREE		= 0,	/* slot never used */
	TS_BACKEND_ACTIVE	= 1,
	TS_BACKEND_REMOVED	= 2,	/* pinned flows are dropped and counted */
};

/* backends: array, backend id -> backend */
struct ts_backend {
	__be32	addr[4];
	__be16	port;
	__u8	family;		/* enum ts_family */
	__u8	state;		/* enum ts_backend_state */
	__u32	generation;	/* bumped when the id is reused */
	__u32	table_halves;	/* bit h: a member of its service's table half h */
	__u32	weighted_halves;	/* bit h: ... with a weight > 0 in half h */
	__u64	drain_deadline_ns;	/* CLOCK_MONOTONIC; 0 = none */
	char	name[TS_NAME_LEN];
	/* Health, written by the agent's checks (control plane only): a backend
	 * down has an effective weight 0 in the tables built while it is, its
	 * operator's weight is kept in the table's configuration entries. */
	__u8	health;		/* enum ts_health */
	__u8	pad[7];
	__u64	health_since_s;	/* CLOCK_REALTIME seconds of the last transition; 0: never */
};

enum ts_health {
	TS_HEALTH_UP	= 0,	/* also: never checked */
	TS_HEALTH_DOWN	= 1,
};

/*
 * flows: LRU hash, client -> VIP 5-tuple as the client sent it -> pinned
 * backend, for flows that both sides confirmed (doc/DESIGN.md, "flow
 * lifecycle"): the client's handshake ACK acknowledged the backend's SYN-ACK
 * as this gateway saw it, or the backend answered a flow picked up mid-stream
 * with something other than a RST. half_open: LRU hash, same key and value,
 * for flows not confirmed yet (a SYN, a mid-stream pickup, a handshake whose
 * SYN-ACK took another path). Nothing an off-path sender can produce reaches
 * flows, so no flood of spoofed packets can evict an established flow.
 */
struct ts_flow_key {
	__be32	saddr[4];	/* client */
	__be32	daddr[4];	/* VIP */
	__be16	sport;
	__be16	dport;
	__u8	proto;
	__u8	family;		/* enum ts_family */
	__u8	pad[2];
};

enum ts_tcp_state {
	TS_TCP_SYN_SEEN		= 1,	/* SYN from the client, handshake not finished */
	TS_TCP_ESTABLISHED	= 2,	/* the client ACKed the handshake */
	TS_TCP_CLOSING		= 3,	/* an in-window FIN from one side */
	TS_TCP_CLOSED		= 4,	/* ended: FINs from both sides, an in-window RST from
					 * the client, or the backend's RST: a SYN picks again */
	TS_TCP_MIDSTREAM	= 5,	/* picked up from a non-SYN packet (flow-table miss),
					 * waiting for the backend's answer */
};

enum ts_flow_flags {
	TS_FLOW_F_SYNACK	= 1,	/* the backend's SYN-ACK was seen: backend_isn valid */
	TS_FLOW_F_CLIENT_FIN	= 2,	/* an in-window FIN from the client */
	TS_FLOW_F_BACKEND_FIN	= 4,	/* a FIN from the backend */
	TS_FLOW_F_TIMED_OUT	= 8,	/* its SYN sent again, no SYN-ACK after 1 s: counted */
	TS_FLOW_F_LOCAL		= 16,	/* a local client's socket (local_flows) */
	TS_FLOW_F_SYNCED	= 32,	/* written by `tcpshift sync`: a peer gateway's pin */
	TS_FLOW_F_COUNTED	= 64,	/* confirmed here: packets and bytes hold its client's
					 * packets not yet added to its backend's counters */
	TS_FLOW_F_UNLISTED	= 128,	/* a local socket's own copy (ts_local_sock): its
					 * key was taken, local_flows holds another's */
};

/*
 * Sequence numbers are tracked as conntrack does, with less state: a RST or
 * FIN from the client changes the flow only when its sequence number lies
 * within TS_SEQ_WINDOW of the client's highest sequence seen so far (an
 * off-path sender guesses it with probability 2 * TS_SEQ_WINDOW / 2^32).
 */
#define TS_SEQ_WINDOW		65536U

struct ts_flow {
	__u32	backend_id;
	__u32	generation;	/* of the backend when pinned */
	__u32	service_id;
	__u8	tcp_state;	/* enum ts_tcp_state */
	__u8	flags;		/* enum ts_flow_flags */
	__u8	pad[2];
	__u64	created_ns;	/* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64	last_seen_ns;	/* refreshed at most every TS_LAST_SEEN_GRANULARITY_NS */
	__u32	client_end;	/* client's highest seq + segment length (host order) */
	union {
		struct {	/* half_open: the backend's side of the handshake */
			__u32	backend_isn;	/* its SYN-ACK's sequence number (host order) */
			__u32	backend_end;	/* its highest seq + length so far */
		};
		struct {	/* flows, TS_FLOW_F_COUNTED: the client's packets since
				 * they were last added to the backend's counters */
			__u32	packets;
			__u32	bytes;
		};
	};
	__u32	ifindex;	/* device the backend's packets arrive on (0: not seen) */
};

/*
 * flows' value: the pin, and a copy of what its established packets need from
 * its backend's entry: the address and port they are rewritten to. The copy
 * is written with the entry, never in place (by the data plane when it
 * confirms the flow; by sync and by the upgrade, from the backend the pin
 * names). It stands for the backend's entry (a line among hundreds of
 * thousands) while epoch is the configuration's (bpf/tcpshift.bpf.c,
 * ts_epoch): a packet writes epoch when it found the backend settled, with no
 * drain deadline, at the copy's address and port, under no change; any
 * committed change moves the configuration's epoch, and the next packet reads
 * the backend's entry again. epoch 0: the copy does not stand.
 */
struct ts_flow_entry {
	struct ts_flow	flow;
	__be32	backend_addr[4];
	__be16	backend_port;
	__u8	pad[2];
	__u32	epoch;
};

/*
 * Counting per flow (doc/DESIGN.md, "Counters"): the packets of an established
 * flow, each way, are added up in its own entry (a line the packet touches
 * anyway) and moved to its backend's counters (backend_stats, a line among
 * hundreds of thousands) when that entry's stamp is refreshed, at most every
 * TS_LAST_SEEN_GRANULARITY_NS, and when the flow ends; or at once when its
 * bytes reach TS_PENDING_MAX (a count is read as signed: bpf/tcpshift.bpf.c,
 * ts_unpend).
 */
#define TS_PENDING_MAX		(1U << 30)

/*
 * replies: LRU hash, the backend -> client 5-tuple of a reply as it arrives
 * (saddr = backend, daddr = client) -> how to rewrite it; written when a flow
 * is confirmed. Replies of flows this gateway did not confirm use
 * backend_addrs, restricted (doc/DESIGN.md, "Replies").
 */
struct ts_reply_state {
	__be32	vip[4];
	__be16	vport;
	__u8	flags;		/* enum ts_reply_flags */
	__u8	pad;
	__u32	backend_id;
	__u32	ifindex;	/* replies are ours only when they arrive here */
	__u32	backend_ack;	/* the acknowledgment number of its last reply (host
				 * order): the client's window as the backend sees it */
	/* the replies since they were last added to the backend's counters
	 * (above, TS_PENDING_MAX), at counted_ns (coarse clock) */
	__u32	packets;
	__u32	bytes;
	__u64	counted_ns;
	/* its backend was found live (ACTIVE, this endpoint) with no drain
	 * deadline at this epoch (ts_flow_entry): a reply need not read its
	 * entry while the epoch stands; 0: not checked */
	__u32	epoch;
	__u32	pad2;
};

enum ts_reply_flags {
	TS_REPLY_F_ENDED	= 1,	/* its flow ended: its replies are counted at once */
};

/*
 * direct: LRU hash, the reply 5-tuple of a client's direct connection to a
 * backend's own address:port (through the gateway, not through a VIP) ->
 * __u32 0: its replies are not ours. Only confirmed connections are here:
 * the client's ACK acknowledged the backend's SYN-ACK as this gateway saw it,
 * or the backend acknowledged the client's segments of a connection picked up
 * mid-stream. A map of its own, so that a flood of spoofed packets to
 * backends cannot evict the reverse entries of flows, and fed only by what an
 * off-path sender cannot produce, so that such a flood cannot evict a
 * confirmed mark either (doc/DESIGN.md, "Replies").
 *
 * direct_pending: LRU hash, the same key -> struct ts_direct_pending, for a
 * direct connection not confirmed yet: its replies are left alone too, but a
 * flood of spoofed packets churns this table only.
 */
enum ts_direct_flags {
	TS_DIRECT_F_SYN		= 1,	/* started by the client's SYN */
	TS_DIRECT_F_SYNACK	= 2,	/* the backend's SYN-ACK seen: backend_next valid */
};

struct ts_direct_pending {
	__u32	client_end;	/* the client's seq + length, as first seen (host order) */
	__u32	backend_next;	/* the backend's SYN-ACK seq + 1 (host order) */
	__u32	flags;		/* enum ts_direct_flags */
	__u32	pad;
};

/*
 * backend_addrs: hash, backend endpoint -> the VIP:port its replies get as
 * source. Replies need no per-flow state, so they are rewritten also for
 * flows this gateway never saw (another gateway behind ECMP pinned them), and
 * a flood of new flows cannot evict them. A backend address:port belongs to
 * one service at most.
 */
struct ts_reply {
	__be32	vip[4];
	__be16	vport;
	__u8	pad[2];
	__u32	backend_id;
};

/*
 * backend_stats: array of maps, backend id >> TS_STATS_CHUNK_SHIFT -> a per-CPU
 * array of TS_STATS_CHUNK counters, slot id & (TS_STATS_CHUNK - 1): the
 * canary signals of a rollout (doc/DESIGN.md, "Canary signals"). Summed over
 * CPUs by the reader. The control plane makes a chunk when it first gives an
 * id in it, so that memory follows the backends configured, and a packet
 * finds its counters without hashing (doc/DESIGN.md, "Memory").
 */
#define TS_STATS_CHUNK_SHIFT	10
#define TS_STATS_CHUNK		(1U << TS_STATS_CHUNK_SHIFT)
#define TS_STATS_CHUNKS		(TS_MAX_BACKENDS / TS_STATS_CHUNK)
#define TS_HANDSHAKE_BUCKETS	16	/* bucket i: handshake time <= 2^i * 64 us; the last: more */
#define TS_HANDSHAKE_BUCKET0_NS	65536ULL

struct ts_backend_stats {
	/* written by every packet: one cache line */
	__u64	new_flows;		/* connection attempts: SYNs pinned to it */
	__u64	packets;		/* both directions */
	__u64	bytes;			/* both directions */
	__u64	bytes_to_backend;
	__u64	bytes_from_backend;
	/* written by connection events */
	__u64	syn_retransmits;	/* connections whose client sent its SYN again, no
					 * SYN-ACK 1 s after the first: timeouts, once each */
	__u64	handshakes;		/* completed: its SYN-ACK, then the client's ACK of it */
	__u64	refused;		/* its RST answering a SYN (before any SYN-ACK) */
	__u64	reset;			/* its RST to a confirmed connection */
	__u64	closed;			/* confirmed connections closed by FINs both ways */
	__u64	opened;			/* connections confirmed (handshakes and pickups) */
	__u64	ended;			/* confirmed connections that ended, however; open =
					 * opened - ended (evicted flows are not seen to end) */
	__u64	handshake_ns_sum;	/* SYN forwarded -> SYN-ACK seen, summed */
	__u64	handshake_hist[TS_HANDSHAKE_BUCKETS];
};

/* counters: per-CPU array, enum ts_counter -> __u64. Packets and bytes per
 * backend are in backend_stats; these count the exceptions. */
enum ts_counter {
	TS_CNT_NEW_FLOWS = 0,		/* flows pinned from a SYN */
	TS_CNT_NON_SYN_MISS,		/* non-SYN to a service with no pinned flow */
	TS_CNT_NO_BACKEND,		/* service with no backend of weight > 0: dropped */
	TS_CNT_MALFORMED,		/* truncated or invalid headers: passed untouched */
	TS_CNT_FRAGMENT,		/* IP fragment carrying TCP: passed untouched */
	TS_CNT_REMOVED_BACKEND,		/* packet of a flow pinned to a removed backend:
					 * answered with a RST to the client, or dropped */
	TS_CNT_PROMOTED,		/* half-open flows promoted to flows by the client's ACK */
	TS_CNT_DRAIN_CLOSED,		/* packets of flows past their backend's drain deadline:
					 * answered with a RST to the client */
	TS_CNT_ICMP,			/* ICMP errors about NATed flows, translated */
	TS_CNT_V6_EXT,			/* IPv6 TCP to a service behind extension headers:
					 * passed untouched */
	TS_CNT_SPOOF_REJECTED,		/* out-of-window RST/FIN, unacknowledged handshake
					 * ACK, or a reply from the wrong side: state kept */
	TS_CNT_BACKEND_REFUSED,		/* half-open flows ended by the backend's RST */
	TS_CNT_HAIRPIN,			/* a backend's own connection to its VIP: picked
					 * another backend */
	TS_CNT_LOCAL_CONNECTS,		/* connect()s to a VIP balanced at the socket */
	TS_CNT_LOCAL_UNTRACKED,		/* local connections local_flows had no room for,
					 * or whose key another socket's entry holds (the
					 * same port to the same VIP, another backend):
					 * balanced, not listed by flows */
	TS_CNT_LOCAL_DRAIN_CLOSED,	/* local connections closed past their backend's
					 * drain deadline */
	TS_CNT_LOCAL_REMOVED,		/* local connections closed: their backend was removed */
	TS_CNT_SYNC_LOST,		/* pin events for `tcpshift sync` dropped: its ring
					 * buffer was full (sync down or behind) */
	TS_CNT_SYN_NOT_VIABLE,		/* SYNs to a service that cannot lead to a connection
					 * (TTL or hop limit <= 1, a bad checksum, SYN+FIN, a
					 * source not routed back through their device):
					 * forwarded as the stack would, neither pinned nor
					 * counted for a backend */
	TS_CNT_MAX,
};

/*
 * rollouts: array, service id -> the rollout in progress (`tcpshift rollout`),
 * kept in the maps so that `status` tells an interrupted one (its process
 * gone, pid no longer alive) and a second one is refused. The data plane
 * never reads it.
 */
#define TS_ROLLOUT_MAX_STEPS	16

struct ts_rollout {
	__u32	pid;			/* of the rollout process; 0: none */
	__u32	from_id, to_id;		/* backend ids */
	__u32	from_weight, to_weight;	/* the weights it started from */
	__u32	nsteps;
	__u32	step;			/* index of the step in force */
	__u32	judged_s;		/* the step in force is judged this many seconds
					 * after started_ns (0: not told, as by 0.2.0) */
	__u64	started_ns;		/* CLOCK_MONOTONIC */
	__u8	percent[TS_ROLLOUT_MAX_STEPS];	/* TO's share of the pair at each step */
};

enum ts_dev_flags {
	TS_DEV_F_OWN_CLSACT	= 1,	/* `load` created the clsact qdisc: `unload` removes it */
};

/*
 * nexthops: what bpf_fib_lookup answered for a destination (reached from a
 * device), reused for TS_NEXTHOP_TTL_NS by the packets of established flows
 * that fit in it (doc/DESIGN.md, "XDP"). A FIB lookup with its neighbour
 * costs about as much as the rest of the XDP path.
 */
#define TS_NEXTHOP_TTL_NS	1000000000ULL
#define TS_NEXTHOPS		65536

struct ts_nexthop_key {
	__be32	daddr[4];
	__u32	ifindex;	/* the device the packet arrived on */
	__u8	family;		/* enum ts_family */
	__u8	pad[3];
};

struct ts_nexthop {
	__u64	expires_ns;	/* coarse clock */
	__u32	ifindex;	/* the device the route leaves by */
	__u32	max_len;	/* the longest packet (from its IP header) the route took */
	__u8	smac[6];
	__u8	dmac[6];
	__u8	xdp;		/* found by the XDP program: ifindex is in xdp_tx */
	__u8	pad[3];
};

/*
 * route_cache: per-CPU array, in front of nexthops: slot ts_nexthop_slot(key)
 * holds the last answer this CPU used for a key of that slot, with the key,
 * so that the next packet to the same destination (a backend, a client) finds
 * its route with one array access instead of a hash lookup. An entry is
 * nexthops' own, expiry included: it is used under the same conditions, and a
 * route change reaches it within the same TS_NEXTHOP_TTL_NS. Not pinned: a new
 * load starts it empty. TS_ROUTE_CACHE_BITS: log2 of its slots (56 KiB per CPU).
 */
#define TS_ROUTE_CACHE_BITS	10

struct ts_route_cache {
	struct ts_nexthop_key	key;
	struct ts_nexthop	nh;
};

/* The route_cache slot of a next-hop key: a multiplicative hash of its words,
 * whose top bits depend on every bit of the address (the data plane's, and
 * the tests' to find keys that share a slot). */
static inline __u32 ts_nexthop_slot(const struct ts_nexthop_key *k)
{
	__u32 h = k->daddr[0] ^ k->daddr[1] ^ k->daddr[2] ^ k->daddr[3] ^ k->ifindex;

	return (h * 2654435761U) >> (32 - TS_ROUTE_CACHE_BITS);
}

/*
 * xdp_devs: hash, ifindex -> a device of the instance, as the XDP program
 * knows it. xdp_dev_slots: array, the same devices in slot ifindex %
 * TS_XDP_DEV_SLOTS, so that the XDP program finds the device a frame arrived
 * on with one array access; a device whose slot another one holds is found in
 * xdp_devs only (ifindex 0: a free slot). Both unpinned, written together by
 * ts_bpf_xdp_dev_set (user/lib/loader.c).
 */
#define TS_XDP_DEV_SLOTS	256

struct ts_xdp_dev {
	__u32	ifindex;
	__u8	mac[6];		/* its address: frames to another are not this host's */
	__u8	flags;		/* enum ts_xdp_dev_flags */
	__u8	pad;
};

enum ts_xdp_dev_flags {
	/* Its frames may carry a partial TCP checksum (a local sender's
	 * offload: veth, tun, any device in generic mode): the XDP program
	 * passes those to tc (doc/DESIGN.md, "XDP", "Checksums"). */
	TS_XDP_DEV_F_PARTIAL_CSUM = 1,
};

enum ts_settings_flags {
	TS_SETTINGS_F_FORWARD_FIB = 1,	/* load --forward fib */
	TS_SETTINGS_F_LOADING	= 2,	/* a load is attaching (or was killed doing so):
					 * ifindex[] may name devices without our filter */
	TS_SETTINGS_F_XDP	= 4,	/* load --mode xdp */
	TS_SETTINGS_F_XDP_GENERIC = 8,	/* ... in generic (skb) mode: --xdp-generic */
	TS_SETTINGS_F_SYNC	= 16,	/* `tcpshift sync` runs (or died without clearing
					 * it): the data plane streams pin events */
	TS_SETTINGS_F_XDP_HANDSHAKES = 32,	/* with TS_SETTINGS_F_XDP: --handshakes xdp,
						 * whole connections at XDP */
	TS_SETTINGS_F_CHANGING	= 64,	/* a change holds the exclusive lock (or was killed
					 * holding it): the next change repairs what it left */
};

/*
 * settings: array with one entry, written by `load`. The instance's identity
 * (invariant 9): its pin directory plus the network namespace load ran in
 * (netns_dev, netns_ino: st_dev and st_ino of /proc/self/ns/net); ifindex[]
 * means devices of that namespace only. abi_version 0: a load that did not
 * finish (the next load or unload completes it).
 */
struct ts_settings {
	__u32	abi_version;	/* TS_ABI_VERSION of the writer */
	__u32	seed;		/* flow hash seed (invariant 6) */
	__u32	ndevices;
	__u32	flags;		/* enum ts_settings_flags */
	__u64	netns_dev;	/* 0: never attached */
	__u64	netns_ino;
	__u64	netns_cookie;	/* of the same namespace: only its sockets are balanced
				 * at connect() (load --cgroup) */
	__u32	ifindex[TS_MAX_DEVICES];	/* devices `load` attached to */
	__u32	dev_flags[TS_MAX_DEVICES];	/* enum ts_dev_flags, per ifindex[] */
	__u64	generation;	/* bumped by every change the pipeline commits (under
				 * the pin directory's exclusive lock): a reader
				 * re-reads the configuration when it moved; the
				 * data plane's copies of backends' entries are
				 * dropped (ts_flow_entry) */
};

/*
 * Local clients (doc/DESIGN.md, "Local clients"): a TCP socket of the cgroup
 * of `load --cgroup` that connect()s to a VIP:port gets its backend there, and
 * keeps this in its socket storage (local_socks), freed with the socket: key
 * is the flow as `flows` lists it (the socket's own address:port, known from
 * its SYN on, -> VIP:port), flow its pin, as in flows. local_flows: hash, key
 * -> flow (TS_FLOW_F_LOCAL), from the SYN until the socket closes: what
 * `flows` shows, and how the tc program knows the backend's answers to the
 * socket at once (they are the gateway's own: never rewritten).
 */
struct ts_local_sock {
	struct ts_flow_key	key;
	struct ts_flow		flow;
};

/*
 * sync_events: ring buffer of the pins the data plane makes and ends, read by
 * `tcpshift sync` (doc/DESIGN.md, "Flow sync"). Written only while
 * TS_SETTINGS_F_SYNC is set; a full ring drops the event and counts
 * TS_CNT_SYNC_LOST: the data plane never waits for the reader.
 */
#define TS_SYNC_RING_BYTES	(4U << 20)	/* ~58,000 events */

enum ts_sync_event_type {
	TS_SYNC_PIN		= 1,	/* a flow was confirmed (moved to flows) */
	TS_SYNC_END		= 2,	/* a confirmed flow ended (CLOSED) */
	TS_SYNC_PIN_HALF_OPEN	= 3,	/* the client's ACK of a handshake whose SYN-ACK
					 * took another path (ECMP): a half-open pin */
};

struct ts_sync_event {
	struct ts_flow_key key;	/* client -> VIP */
	__u32	backend_id;	/* this gateway's id: peers match by address */
	__u32	generation;
	__u32	client_end;	/* host order, as in ts_flow */
	__u8	type;		/* enum ts_sync_event_type */
	__u8	pad[3];
	__u64	time_ns;	/* CLOCK_MONOTONIC of the event */
};

#endif /* TCPSHIFT_H */
