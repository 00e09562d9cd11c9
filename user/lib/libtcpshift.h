/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libtcpshift: the control plane's library. The pinned maps are the only
 * state (invariant 7): every function reads what it needs from them, and each
 * change ends with one map update that commits it (invariant 3).
 */
#ifndef LIBTCPSHIFT_H
#define LIBTCPSHIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <linux/types.h>
#include "tcpshift.h"

#define TS_DEFAULT_PIN_DIR	"/sys/fs/bpf/tcpshift"
#define TS_PIN_DIR_ENV		"TCPSHIFT_PIN_DIR"
/* where the journal of changes lives (journal.c); set empty: no journal */
#define TS_DEFAULT_STATE_DIR	"/var/lib/tcpshift"
#define TS_STATE_DIR_ENV	"TCPSHIFT_STATE_DIR"
#define TS_PIN_DIR_MAX		PATH_MAX	/* the pin directory and a pin name */
#define TS_ADDRSTRLEN		64	/* "[v6 address]:port" */

/* Exit codes of the CLI, also the class of every library error. */
enum ts_status {
	TS_OK		= 0,
	TS_ERR_RUNTIME	= 1,	/* the system or kernel refused; the environment is wrong */
	TS_ERR_USAGE	= 2,	/* what the operator typed is wrong */
	/* 3: rollout's "rolled back" */
	TS_ERR_BUSY	= 4,	/* another process holds what we need (an address in
				 * use): a daemon's unit tries again later */
};

/* One error: its class and a one-line message saying what and how to fix it. */
struct ts_err {
	int	status;
	char	msg[512];
};

int ts_fail(struct ts_err *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- parse.c: operator input ------------------------------------------- */

struct ts_endpoint {
	__u8	family;		/* enum ts_family */
	__be32	addr[4];
	__be16	port;
};

int ts_parse_endpoint(const char *s, struct ts_endpoint *ep, struct ts_err *err);
int ts_parse_address(const char *s, struct ts_endpoint *ep, struct ts_err *err);
/* An endpoint that can be a VIP: not unspecified, loopback, multicast,
 * broadcast or IPv4-mapped. */
int ts_parse_vip(const char *s, struct ts_endpoint *ep, struct ts_err *err);
int ts_parse_name(const char *s, const char *what, struct ts_err *err);
int ts_parse_weight(const char *s, __u32 *weight, struct ts_err *err);
int ts_parse_assignment(const char *s, char name[TS_NAME_LEN], __u32 *weight,
			struct ts_err *err);
int ts_parse_table_size(const char *s, __u32 *size, struct ts_err *err);
int ts_parse_duration(const char *s, __u64 *ns, struct ts_err *err);
int ts_parse_u32(const char *s, const char *what, __u32 min, __u32 max, __u32 *out,
		 struct ts_err *err);
bool ts_is_prime(__u32 n);
/* A flow hash seed: decimal, or hex after 0x; never octal. 0 or -EINVAL. */
int ts_parse_seed(const char *s, __u32 *seed);
void ts_format_endpoint(const __be32 addr[4], __be16 port, __u8 family, char *buf, size_t len);
/* AF_INET or AF_INET6 of an enum ts_family: the one conversion on the user
 * side (include/tcpshift.h). */
int ts_family_af(__u8 family);
void ts_format_address(const __be32 addr[4], __u8 family, char *buf, size_t len);

/* ---- maglev.c: the weighted Maglev table builder ----------------------- */

struct ts_maglev_backend {
	const char	*name;	/* preference list comes from a hash of the name */
	__u32		weight;	/* 0..TS_MAX_WEIGHT; 0 claims no slot */
};

/*
 * Fill table[0..m) with indexes into b[] (or TS_NO_BACKEND when all weights
 * are 0). m must be prime. The result depends only on the set of (name,
 * weight) pairs, not on their order: every gateway builds the same table.
 * Returns 0, or -EINVAL/-ENOMEM.
 */
int ts_maglev_build(const struct ts_maglev_backend *b, size_t n, __u32 m, __u32 *table);

/* ---- maps.c: the pinned maps -------------------------------------------- */

/* The ids of an instance's pinned maps: a program that uses one of them is
 * that instance's (map ids are unique while the maps exist). */
#define TS_MAX_PINNED_MAPS	32
struct ts_owner {
	__u32	map_id[TS_MAX_PINNED_MAPS];
	size_t	n;
};

/* A never-used backend id and the generation it gets. */
struct ts_free_backend {
	__u32	id;
	__u32	generation;
};

struct ts_journal_change;

struct ts_maps {
	int	services;
	int	service_names;
	int	vip_ports;
	int	tables;
	int	backends;
	int	flows;
	int	half_open;
	int	replies;
	int	rollouts;
	int	backend_addrs;
	int	backend_stats;
	int	counters;
	int	settings;
	int	local_flows;
	int	sync_events;	/* ring buffer read by `tcpshift sync` */
	int	lock_fd;	/* the pin directory, open from ts_maps_open to
				 * ts_maps_close: flock()ed by changes and readers,
				 * so that locking needs no new descriptor */
	int	locked;		/* 0, LOCK_SH or LOCK_EX */
	__u64	settings_dev;	/* the pinned settings when opened (stat): this */
	__u64	settings_ino;	/* instance, while the pin is the same inode */
	struct ts_owner owner;	/* ids of every pinned map validated */
	char	pin_dir[TS_PIN_DIR_MAX];
	struct ts_journal_change *journal;	/* what the change under the lock
						 * exclusive touched (journal.c), or NULL */
	bool	repair;		/* the lock was taken with TS_SETTINGS_F_CHANGING set:
				 * a change was killed (or failed) holding it */
	bool	failed;		/* a change failed under this lock: the flag stays */
	bool	untouched;	/* the change under this lock wrote nothing (config.c):
				 * letting go moves no generation */
	__u32	free_backend_hint;	/* ids below are not FREE (this process) */
	struct ts_free_backend *free_backends;	/* ids for new backends (config.c),
						 * found under the lock held now */
	__u32	free_backends_head, free_backends_count;	/* not taken yet */
	__u32	free_table_hint;	/* table ids below are taken (this process) */
	struct ts_stats_cache *stats_cache;	/* backend_stats' chunk open last, or
						 * NULL (no memory: each read opens) */
};

/* One chunk of counters kept open (ts_stats_chunk): readers go through ids in
 * order, and a daemon holds a few struct ts_maps for its life, so a
 * descriptor per chunk (256 at the limit, each) would eat into the 1,024 a
 * service gets. */
struct ts_stats_cache {
	int	fd;	/* -1: none */
	__u32	chunk;
};

/* The layout a pinned map must have, from the BPF object's own definitions. */
struct ts_map_layout {
	char	name[16];	/* BPF_OBJ_NAME_LEN */
	__u32	type;
	__u32	key_size;
	__u32	value_size;
	__u32	map_flags;
};

/* layout.c: every map the object pins (out[TS_MAX_PINNED_MAPS]), as the build
 * read it from the object; ..._of_object reads the object now (the build and
 * the tests). */
int ts_map_layouts(struct ts_map_layout *out, size_t *n, struct ts_err *err);
int ts_map_layouts_of_object(struct ts_map_layout *out, size_t *n, struct ts_err *err);
/* Is fd, opened from pin path, a map of layout l? Refuses foreign pins. */
int ts_map_check(int fd, const char *path, const struct ts_map_layout *l, struct ts_err *err);
/* A pin directory whose pins fit PATH_MAX and bpffs names (TS_ERR_USAGE if not). */
int ts_check_pin_dir(const char *dir, struct ts_err *err);

enum ts_open_flags {
	TS_OPEN_INCOMPLETE	= 1,	/* accept a load that did not finish (ABI version 0) */
	TS_OPEN_MISSING_OK	= 2,	/* pins may be missing (unload of a killed load) */
	TS_OPEN_OLDER		= 4,	/* accept the older layouts this build
					 * migrates (unload, downgrade): their maps
					 * are checked against their layout
					 * (ts_layout_older); nothing reads counters
					 * through such an open */
};

int ts_check_root(struct ts_err *err);
int ts_check_bpffs(const char *dir, struct ts_err *err);
/*
 * Open the pinned maps, each validated against the object's layout (type, key
 * and value size, flags) and settings' ABI version before anything reads it:
 * a foreign or older pin directory is refused, never read (invariant 9).
 */
int ts_maps_open(struct ts_maps *m, const char *pin_dir, struct ts_err *err);
int ts_maps_open_flags(struct ts_maps *m, const char *pin_dir, unsigned int flags,
		       struct ts_err *err);
void ts_maps_close(struct ts_maps *m);
/* No map open (every descriptor -1): ts_maps_close is then a no-op. */
void ts_maps_init(struct ts_maps *m);
/* Is the instance m was opened on still pinned there (the same settings
 * pin)? Needs no descriptor. 0, or TS_ERR_RUNTIME saying it is gone. */
int ts_maps_check_instance(const struct ts_maps *m, struct ts_err *err);
/* Mark port (network order) as a VIP's in vip_ports, fd (include/tcpshift.h). */
int ts_vip_port_set(int fd, __be16 port, struct ts_err *err);
/* Is any of the object's maps pinned under pin_dir? */
bool ts_any_pin(const char *pin_dir);
/* Take the pin directory's lock, exclusive for a change, shared for a reader
 * that wants one configuration; says so on stderr when it waits more than a
 * second; fails when the instance was unloaded meanwhile. */
int ts_maps_lock(struct ts_maps *m, struct ts_err *err);
int ts_maps_lock_shared(struct ts_maps *m, struct ts_err *err);
void ts_maps_unlock(struct ts_maps *m);
/* The configuration's generation: it moves with every committed change. */
int ts_config_generation(const struct ts_maps *m, __u64 *generation, struct ts_err *err);
/* flock(fd, op), telling stderr after a second of waiting; 0 or -errno. */
int ts_flock_wait(int fd, int op, const char *what);
/* This process's network namespace. */
int ts_netns_self(__u64 *dev, __u64 *ino);
/* Refuse (TS_ERR_RUNTIME) when the instance was loaded in another network
 * namespace than this process's: its ifindexes mean other devices here.
 * TS_NETNS_GONE: that namespace no longer exists, and its devices and their
 * filters went with it: nothing to detach. */
#define TS_NETNS_GONE	1
int ts_settings_check_netns(const struct ts_settings *s, struct ts_err *err);
int ts_settings_read(const struct ts_maps *m, struct ts_settings *s, struct ts_err *err);
/* The mode the instance was loaded in: "tc", "xdp" or "xdp-generic". */
const char *ts_settings_mode(const struct ts_settings *s);
/* Where it handles handshakes: "xdp" (--handshakes xdp), else "tc". */
const char *ts_settings_handshakes(const struct ts_settings *s);
int ts_counters_read(const struct ts_maps *m, __u64 out[TS_CNT_MAX], struct ts_err *err);
int ts_backend_stats_read(const struct ts_maps *m, __u32 id, struct ts_backend_stats *out,
			  struct ts_err *err);
/* Id's counters read zero from now on, and the data plane has them to count
 * into: its chunk made when there is none, else what a removed backend or a
 * killed command left under it zeroed. Under the exclusive lock. */
int ts_backend_stats_reset(const struct ts_maps *m, __u32 id, struct ts_err *err);
/* The descriptor of backend id's chunk of counters in backend_stats (outer),
 * made when make and there is none (*made then true); -ENOENT when there is
 * none and !make (a failure, told in err, is -TS_ERR_RUNTIME). With a cache
 * (fd -1 at first) the descriptor is the cache's, which holds one (the
 * caller closes cache->fd at the end); without, the caller closes it. */
int ts_stats_chunk(int outer, struct ts_stats_cache *cache, __u32 id, bool make, bool *made,
		   struct ts_err *err);
/* Connections of the backend open now (confirmed, not seen to end). */
__u64 ts_backend_open(const struct ts_backend_stats *st);
/* Handshakes counted in the histogram. */
__u64 ts_handshake_count(const struct ts_backend_stats *st);
/*
 * What a rollout's gate judges (doc/DESIGN.md, "Rollout integrity"): a
 * backend's connections with an outcome between two readings of its counters
 * (base, then st) and the failures among them. Failures: SYNs refused, and
 * the larger of the timeouts counted and the attempts never answered (pinned
 * by settled, a reading a second or more before st, with neither a SYN-ACK
 * nor a refusal by st), which no eviction of half-open pins can hide.
 * Connections: the handshakes completed and the failures. Attempts answered
 * but not completed (spoofed SYNs) are neither.
 */
void ts_gate_outcomes(const struct ts_backend_stats *base, const struct ts_backend_stats *settled,
		      const struct ts_backend_stats *st, __u64 *conns, __u64 *fail);
/* The upper bound (ns) of the histogram bucket holding quantile q (0 < q <= 1)
 * of the handshake times; 0 when there are none, UINT64_MAX in the last. */
__u64 ts_handshake_quantile(const struct ts_backend_stats *st, double q);
/* The upper bound (ns) of histogram bucket i (UINT64_MAX for the last). */
__u64 ts_handshake_bucket_le(__u32 i);
const char *ts_counter_name(enum ts_counter c);
typedef void (*ts_flow_cb)(const struct ts_flow_key *key, const struct ts_flow *flow,
			   void *ctx);
/* Call cb for every pinned flow, established (flows), half-open and local
 * (TS_FLOW_F_LOCAL) (a consistent view of each entry, not of the whole tables
 * while the data plane runs). Returns 0 or -errno. */
int ts_flows_foreach(const struct ts_maps *m, ts_flow_cb cb, void *ctx);
/* The same, for one of the two tables (m->flows or m->half_open). */
int ts_flow_map_foreach(int map_fd, ts_flow_cb cb, void *ctx);
/* Name of the i-th map struct ts_maps holds, NULL past the last; ts_maps_fd:
 * its fd in m. The set of pins itself is ts_map_layouts(). */
const char *ts_pin_name(size_t i);
int ts_maps_fd(const struct ts_maps *m, size_t i);
int ts_count_entries(int map_fd, size_t key_size, __u32 *count);

/* ---- config.c: services, backends, weights ------------------------------ */

struct ts_backend_cfg {
	__u32			id;
	__u32			weight;
	struct ts_backend	be;
};

struct ts_service_cfg {
	struct ts_endpoint_key	key;
	struct ts_service	svc;
	size_t			nbackends;	/* sorted by name */
	struct ts_backend_cfg	*backends;	/* malloc()ed: ts_config_free */
};

struct ts_config {
	size_t			nservices;	/* sorted by name */
	struct ts_service_cfg	*services;
};

int ts_config_read(const struct ts_maps *m, struct ts_config *cfg, struct ts_err *err);
/* Only the service named name (none in cfg when there is none), in time that
 * does not grow with the number of services. */
int ts_config_read_service(const struct ts_maps *m, const char *name, struct ts_config *cfg,
			   struct ts_err *err);
void ts_config_free(struct ts_config *cfg);
/* The whole configuration read without the lock, so that no change waits for
 * it: consistent, as no change began or committed while it was read (the
 * generation and TS_SETTINGS_F_CHANGING of settings, before and after), and
 * *generation the one it is of. -EAGAIN when one did: read again. */
int ts_config_read_quiet(const struct ts_maps *m, struct ts_config *cfg, __u64 *generation,
			 struct ts_err *err);
/* The configuration in force as `export` prints it (malloc()ed), or NULL
 * with err filled. Reads without locking: hold the lock for one moment's. */
char *ts_doc_text_read(const struct ts_maps *m, struct ts_err *err);
struct ts_service_cfg *ts_config_service(struct ts_config *cfg, const char *name);
struct ts_service_cfg *ts_config_service_by_id(struct ts_config *cfg, __u32 id);
struct ts_backend_cfg *ts_service_backend(struct ts_service_cfg *s, const char *name);
/* One more than the highest backend id cfg's services list (0: none): how
 * many ids of the backends map to read for them. */
__u32 ts_config_id_limit(const struct ts_config *cfg);
/* All TS_MAX_BACKENDS entries of the backends map, in one batch. */
int ts_backends_read_all(const struct ts_maps *m, struct ts_backend *all, struct ts_err *err);
/* ... the first n ids only (all[n]) */
int ts_backends_read(const struct ts_maps *m, struct ts_backend *all, __u32 n, struct ts_err *err);
/* The table size M of a service of n backends whose size follows them. */
__u32 ts_table_size_for(size_t n);
/* The table size a service was given, 0 when its size follows its backends. */
static inline __u32 ts_service_fixed_size(const struct ts_service *svc)
{
	return svc->flags & TS_SERVICE_F_FIXED_SIZE ? svc->table_size : 0;
}
/* Slot counts per backend (same order as s->backends) in the live table. */
int ts_table_shares(const struct ts_maps *m, const struct ts_service_cfg *s, __u32 *slots,
		    struct ts_err *err);

int ts_service_add(struct ts_maps *m, const char *name, const struct ts_endpoint *vip,
		   __u32 table_size, struct ts_err *err);
int ts_service_del(struct ts_maps *m, const char *name, struct ts_err *err);
int ts_backend_add(struct ts_maps *m, const char *service, const char *name,
		   const struct ts_endpoint *addr, __u32 weight, struct ts_err *err);
int ts_backend_del(struct ts_maps *m, const char *service, const char *name,
		   struct ts_err *err);
/* All n weights change in one table switch. */
int ts_weights_set(struct ts_maps *m, const char *service, char (*names)[TS_NAME_LEN],
		   const __u32 *weights, size_t n, struct ts_err *err);
int ts_backend_drain(struct ts_maps *m, const char *service, const char *name,
		     __u64 timeout_ns, struct ts_err *err);
/* A service's health checks (TS_CHECK_NONE: none, and every backend is up
 * again), through the change pipeline. */
int ts_health_set(struct ts_maps *m, const char *service, const struct ts_health_check *hc,
		  struct ts_err *err);
/* A backend's health (the agent's checks): stored with the backend, and the
 * table switched to the effective weights, in one change. Nothing happens
 * when the backend is already in that state. */
int ts_backend_health_set(struct ts_maps *m, const char *service, const char *name,
			  enum ts_health health, __u64 since_s, struct ts_err *err);
/* The weights a table is built with, out[0..n): the operator's, and 0 for a
 * backend that is down, unless every backend with a weight is down (then
 * the operator's: fail open). Pure. */
void ts_effective_weights(const struct ts_backend_cfg *b, size_t n, __u32 *out);
/* health.c: one backend's checks, as the agent sees them. */
struct ts_health_track {
	__u8	health;		/* enum ts_health: the stored state */
	__u32	count;		/* results in a row against it */
};

/* One check's result: true when the state changes (count reached fall from
 * up, rise from down). Pure. */
bool ts_health_step(struct ts_health_track *t, bool ok, __u8 rise, __u8 fall);
/* Valid health check settings (TS_CHECK_NONE: all fields 0). */
int ts_health_check_valid(const struct ts_health_check *hc, struct ts_err *err);
const char *ts_health_check_name(__u8 check);

/* ---- pick.c: the data plane's pick for a new flow ------------------------ */

struct ts_picker;

int ts_picker_open(struct ts_picker **p, const struct ts_maps *m, const char *service,
		   struct ts_err *err);
/* *backend: the backend a new flow from client gets now, NULL when the
 * service has no backend of weight > 0 (the SYN would be dropped). */
int ts_picker_pick(struct ts_picker *p, const struct ts_endpoint *client,
		   const struct ts_backend_cfg **backend, struct ts_err *err);
void ts_picker_close(struct ts_picker *p);

/* ---- loader.c: program load, attach, detach ----------------------------- */

/* Every filter of the clsact hook (ifindex, parent), from an rtnetlink dump:
 * each(prog_id, arg) per filter, prog_id that of a cls_bpf filter's program,
 * else 0. 0 once the dump ended, or -errno. */
int ts_tc_filters(int ifindex, __u32 parent, void (*each)(__u32 prog_id, void *arg), void *arg);

struct tcpshift_bpf;

struct ts_load_opts {
	const char	*pin_dir;
	const char	**devs;
	size_t		ndevs;
	const char	*cgroup;	/* socket-level balancing of this cgroup v2 subtree;
					 * NULL: none (detached if it was) */
	__u32		max_flows;	/* 0: keep the loaded value, or the default */
	__u32		seed;
	bool		seed_set;	/* else keep the loaded seed, or the default */
	int		forward_fib;	/* 1 fib, 0 stack, -1 keep the loaded mode (stack) */
	int		mode;		/* TS_MODE_*, or -1: keep the loaded mode (tc) */
	bool		xdp_generic;	/* with TS_MODE_XDP: generic (skb) XDP */
	int		handshakes;	/* with TS_MODE_XDP: TS_HANDSHAKES_* (with mode -1:
					 * kept as loaded) */
	bool		discard_newer;	/* replace an instance of a newer layout, its
					 * configuration carried over, its flows lost */
	const struct ts_migration *migration;	/* set by ts_load: an older layout's
						 * maps to replace; NULL: none */
};

enum ts_mode {
	TS_MODE_TC = 0,		/* the program at tc ingress only */
	TS_MODE_XDP = 1,	/* confirmed flows at XDP, the rest at tc */
};

/* Where xdp mode handles handshakes (load --handshakes). */
enum ts_handshakes {
	TS_HANDSHAKES_TC = 0,	/* at tc: netfilter judges every new connection */
	TS_HANDSHAKES_XDP = 1,	/* at XDP too: whole connections skip the stack */
};

/* The XDP program attached to ifindex, if any: its id, and in *generic
 * whether in generic (skb) mode. */
__u32 ts_xdp_attached(int ifindex, bool *generic);
/* Does program prog_id use one of the instance's maps (own)? Then it is
 * that instance's. */
bool ts_prog_is_ours(__u32 prog_id, const struct ts_owner *own);

/* Load the object with maps pinned under pin_dir (reused when present),
 * write settings; no attach. For tests and `load`. */
struct tcpshift_bpf *ts_bpf_open_load(const struct ts_load_opts *o, struct ts_err *err);
/* The same object with dry_run set, on the pinned maps of a loaded gateway:
 * its verdicts show the current table's picks, and it writes no map. */
struct tcpshift_bpf *ts_bpf_open_dry_run(const struct ts_maps *m, struct ts_err *err);
void ts_bpf_destroy(struct tcpshift_bpf *skel);
int ts_bpf_prog_fd(struct tcpshift_bpf *skel);		/* tc ingress */
int ts_bpf_egress_prog_fd(struct tcpshift_bpf *skel);	/* tc egress */
int ts_bpf_xdp_prog_fd(struct tcpshift_bpf *skel);	/* XDP */
/* Write dev (its ifindex set) into the XDP program's device maps, xdp_devs
 * and its slot of xdp_dev_slots unless another device holds that: 0 or
 * -errno. */
int ts_bpf_xdp_dev_set(struct tcpshift_bpf *skel, const struct ts_xdp_dev *dev);
/* Make ifindex one of the devices the object's XDP program works on (its MAC,
 * whether its frames may carry partial checksums, and, when it can take them
 * (*target), a redirect target), in native or generic mode: `load` does it for
 * every --dev. */
int ts_bpf_xdp_dev_add(struct tcpshift_bpf *skel, int ifindex, bool generic, bool *target,
		       struct ts_err *err);
/* Does ifindex take frames that XDP redirects to it (its xdp-features say
 * NDO_XMIT: a veth only when its peer has GRO or an XDP program)? True when
 * the kernel cannot say. */
bool ts_xdp_redirect_target(int ifindex);
int ts_load(const struct ts_load_opts *o, struct ts_err *err);

/* ---- migrate.c: upgrade in place from an older layout, and back ---------- */

struct ts_settings_abi5;

struct ts_migration {
	__u32			from;		/* the pinned layout to migrate: 0 none */
	struct ts_settings	settings;	/* the pinned settings, in today's layout */
};

/* The layout version of the instance pinned under pin_dir: 0 when nothing
 * is pinned, TS_ABI_VERSION, an older one this build migrates, or a newer
 * one (refused unless its state is discarded). */
int ts_pinned_layout(const char *pin_dir, __u32 *abi, struct ts_err *err);
/* Is an older layout pinned under pin_dir? Then mg->from says which, every
 * pin it keeps is checked, and its settings are read and converted. Removes
 * what a killed migration left in the staging directory. */
int ts_migration_prepare(struct ts_migration *mg, const char *pin_dir, struct ts_err *err);
/* Does the migration create map anew (its layout changed)? */
bool ts_migration_remakes(const struct ts_migration *mg, const char *map);
/* Once every device runs the new programs: carry the old counters over and
 * pin the new maps (fd_of(ctx, name)) in the old ones' place, settings last. */
int ts_migration_commit(const struct ts_migration *mg, const char *pin_dir,
			int (*fd_of)(void *ctx, const char *map), void *ctx, struct ts_err *err);
/* Tests of a killed migration: with TCPSHIFT_TEST_KILL_AT=step in the
 * environment, the process kills itself (SIGKILL) at that step. */
void ts_migration_step(const char *step);
/* Remove a killed migration's staging directory. */
void ts_migration_clean(const char *pin_dir);
/* Before any device runs the new programs: fill the maps the migration made
 * anew from the old pins (layout 6's configuration maps, layout 7's counters'
 * chunks). */
int ts_migration_fill(const struct ts_migration *mg, const char *pin_dir,
		      int (*fd_of)(void *ctx, const char *map), void *ctx, struct ts_err *err);
/* Layout l of a pinned map as the older layout abi pinned it. */
void ts_layout_older(__u32 abi, struct ts_map_layout *l);
/* Conversions, one per changed value (include/tcpshift_abi5.h,
 * include/tcpshift_abi6.h). */
struct ts_service_abi6;
void ts_settings_from_abi5(const struct ts_settings_abi5 *in, struct ts_settings *out);
void ts_settings_to_abi5(const struct ts_settings *in, struct ts_settings_abi5 *out);
/* What a downgrade would lose, one line each. */
#define TS_LOSSES_MAX	8
struct ts_losses {
	size_t	n;
	char	what[TS_LOSSES_MAX][200];
};
/* Hand the instance under pin_dir to an older release: its pins converted to
 * layout `to` (7: release 0.3.0's, 6, or 5: release 0.2.0's) in place, the
 * running programs left attached, for that release's `load` to reuse. What it
 * would lose is listed in l; unless accept_loss, a loss refuses it
 * (TS_ERR_USAGE) with nothing changed. Run again, it completes a killed one. */
int ts_downgrade(const char *pin_dir, __u32 to, bool accept_loss, struct ts_losses *l,
		 struct ts_err *err);
void ts_service_from_abi6(const struct ts_service_abi6 *in, struct ts_service *out);
void ts_service_to_abi6(const struct ts_service *in, struct ts_service_abi6 *out);
/* Settle (doc/DESIGN.md, "Established flows") the backends an earlier build
 * left a member of one table half, when no change was killed; best effort.
 * Under the exclusive lock (ts_load holds it). */
void ts_backends_settle(struct ts_maps *m);
/* Add per-CPU counters 0..nfrom-1 of from_fd into to_fd's. */
int ts_counters_carry(int from_fd, __u32 nfrom, int to_fd, struct ts_err *err);
int ts_unload(const char *pin_dir, struct ts_err *err);
/* Who holds tcpshift's tc slot (handle, priority) on a device. */
enum ts_slot {
	TS_SLOT_FREE,		/* nothing there (at some attach point) */
	TS_SLOT_OURS,		/* the instance's programs (they use its settings map) */
	TS_SLOT_FOREIGN,	/* another instance's or another tool's filter */
	TS_SLOT_PARTIAL,	/* ours at some attach points, nothing at the others
				 * (a load killed half-way: the next load completes it) */
};

/* The state of ifindex for the instance owning the maps in own; *prog_id:
 * the first attach point's program id, 0 unless ours. */
enum ts_slot ts_attached_prog(int ifindex, const struct ts_owner *own, __u32 *prog_id);
/* Does BPF program prog_id use one of the instance's maps? */
bool ts_prog_is_ours(__u32 prog_id, const struct ts_owner *own);
__u64 ts_now_ns(void);

/* ---- version.c: versions ------------------------------------------------------ */

/* This build's version: VERSION, with a git describe suffix off a release
 * (tools/version.sh), e.g. "0.3.0" or "0.3.0-dev.45+g8896a77". */
const char *ts_version(void);
/* The version of the build that loaded BPF program prog_id, into buf: 0, or
 * -ENOENT when the program's object tells none (a release before 0.3.0). */
int ts_prog_version(__u32 prog_id, char *buf, size_t len);
/* The same for the instance's running object (the program attached to its
 * first device that has one): 0; -ENODATA: loaded by a release that tells no
 * version; -ENOENT: nothing attached here. */
int ts_object_version(const struct ts_settings *s, const struct ts_owner *own, char *buf,
		      size_t len);

/* ---- journal.c: the journal of committed changes (history, undo, restore) ---- */

#define TS_JOURNAL_MAX_ENTRIES	100		/* the oldest go first */
#define TS_JOURNAL_MAX_BYTES	(4U << 20)	/* entries: what changed, command lines */
#define TS_JOURNAL_MAX_FILE	(TS_JOURNAL_MAX_BYTES * 2 + TS_DOC_MAX_SIZE * 4)
/* the whole document is written again after this many changes (or when the
 * entries since it pass TS_JOURNAL_MAX_BYTES / 2) */
#define TS_JOURNAL_BASE_EVERY	64

struct ts_journal_entry {
	__u64	seq;		/* 1, 2, ...: never reused by the journal */
	__u64	time_s;		/* Unix time of the commit */
	__u32	uid;
	char	user[96];	/* the uid's name, and "(sudo from NAME)" */
	char	*command;	/* the command line */
	char	*before, *after;	/* documents, as `export` prints them: of the
					 * services the change changed and the seed
					 * (partial), or whole (journals of 0.3) */
	bool	partial;
};

struct ts_journal {
	size_t			n;
	struct ts_journal_entry	*entries;	/* oldest first, seqs one after the other */
	__u64			base_seq;	/* the whole document after this change is
						 * kept beside (0: none) */
};

/* The journal's directory for an instance: 0, or -ENOENT when none is kept
 * (TCPSHIFT_STATE_DIR set empty). */
int ts_journal_dir(const char *pin_dir, char *buf, size_t len);
/* The instance's journal (empty when there is none yet). */
int ts_journal_read(const char *pin_dir, struct ts_journal *j, struct ts_err *err);
void ts_journal_free(struct ts_journal *j);
/* The whole document after change seq of j (malloc()ed): seq an entry's, or
 * the one before the oldest; NULL with err filled when the journal cannot
 * tell. */
char *ts_journal_doc(const char *pin_dir, const struct ts_journal *j, __u64 seq,
		     struct ts_err *err);
/* The hook of ts_maps_lock (exclusive) and ts_maps_unlock: a change that
 * committed is journaled once, with what it changed. */
void ts_journal_begin(struct ts_maps *m);
void ts_journal_commit(struct ts_maps *m);
/* The same for a change that wrote nothing: nothing to journal. */
void ts_journal_drop(struct ts_maps *m);
/* Before a change writes service (config.c): what it was, kept for the commit.
 * A change that writes a service it did not touch first is not journaled. */
void ts_journal_touch(struct ts_maps *m, const char *service);
/* The same for every service of cfg, read under the lock held exclusive (a
 * document's import, which reads them all anyway). */
void ts_journal_touch_config(struct ts_maps *m, const struct ts_config *cfg);
/* The same for a change made under a lock of its own (`load`: the seed):
 * the state before it (NULL: none to journal), then, once it committed, an
 * entry when it moved (a warning on stderr when it cannot be written). */
struct ts_journal_change *ts_journal_before(const struct ts_maps *m);
void ts_journal_after(const struct ts_maps *m, struct ts_journal_change *c);
void ts_journal_change_free(struct ts_journal_change *c);

/* ---- local.c: local clients, balanced at connect() (load --cgroup) ------- */

/* The programs of bpf/local.h are loaded only when on (a kernel without
 * their hooks still loads the rest). */
void ts_local_autoload(struct tcpshift_bpf *skel, bool on);
/* Before anything changes: cgroup is a directory of the cgroup v2 hierarchy,
 * and the kernel has the hooks and bpf_sock_destroy. */
int ts_local_check(const char *cgroup, struct ts_err *err);
/* Refuse a cgroup where (or above which) socket programs of another tcpshift
 * instance run. */
int ts_local_check_owner(const char *cgroup, const struct ts_owner *own, struct ts_err *err);
/* Attach the cgroup programs and the sweep through links pinned under
 * pin_dir; on the cgroup already attached, replace their programs. */
int ts_local_attach(struct tcpshift_bpf *skel, const char *pin_dir, const char *cgroup,
		    const struct ts_owner *own, struct ts_err *err);
/* Unpin (and so detach) the instance's links; others' are left. */
void ts_local_detach(const char *pin_dir, const struct ts_owner *own);

struct ts_local_status {
	size_t	nlinks;		/* the instance's links pinned, of nexpected */
	size_t	nexpected;
	__u64	cgroup_id;	/* 0: not attached */
	char	cgroup[PATH_MAX];	/* its path, "?" when not found */
	__u32	prog_ids[8];	/* per hook, ts_local_hook_name(i) */
};

int ts_local_status(const char *pin_dir, const struct ts_owner *own, struct ts_local_status *s);
const char *ts_local_hook_name(size_t i);
/* Close the local connections of removed backends and of drains past their
 * deadline (bpf_sock_destroy from a TCP socket iterator, in this process's
 * network namespace). 0 also when not loaded with --cgroup. */
int ts_local_sweep(const struct ts_maps *m, struct ts_err *err);

/* ---- doc.c: configuration documents (export, import); pure --------------- */

/*
 * The whole configuration as a document, the format of `tcpshift export` and
 * `tcpshift import`: {"tcpshift":1,"seed":N,"services":[{"name","vip",
 * "table_size","backends":[{"name","addr","weight"}]}]}. Services and each
 * service's backends are sorted by name, so that gateways with the same
 * configuration export the same bytes.
 */
#define TS_DOC_VERSION		1
#define TS_DOC_MAX_SIZE		(64U << 20)	/* bytes of a document: 65,536 services
						 * of 4 backends take 13 MiB */

struct ts_doc_backend {
	char			name[TS_NAME_LEN];
	struct ts_endpoint	addr;
	__u32			weight;
};

struct ts_doc_service {
	char			name[TS_NAME_LEN];
	struct ts_endpoint	vip;
	__u32			table_size;	/* 0: follows the backends */
	struct ts_health_check	health;		/* check TS_CHECK_NONE: all 0 */
	size_t			nbackends;	/* sorted by name */
	struct ts_doc_backend	*backends;
};

struct ts_doc {
	__u32			seed;
	size_t			nservices;	/* sorted by name */
	struct ts_doc_service	*services;
};

/*
 * Parse and validate a whole document: text[0..len) (need not be
 * NUL-terminated). A pure function: no I/O, no maps, no global state. On
 * success fills doc (free it with ts_doc_free) and returns 0; otherwise
 * returns -TS_ERR_USAGE with err->msg one line naming the place in the
 * document, e.g. "services[1].backends[0].weight: 70000 is out of range: give
 * an integer 0-65535", and doc empty.
 */
int ts_doc_parse(const char *text, size_t len, struct ts_doc *doc, struct ts_err *err);
struct ts_json_limits;
/* ... within tighter bounds of its shape than a document's own (a source
 * whose documents must stay small in memory: the agent's from etcd). */
int ts_doc_parse_limited(const char *text, size_t len, const struct ts_json_limits *limits,
			 struct ts_doc *doc, struct ts_err *err);
void ts_doc_free(struct ts_doc *doc);
/* The service of doc named name (documents hold their services sorted by
 * name), or NULL. */
const struct ts_doc_service *ts_doc_service_find(const struct ts_doc *doc, const char *name);

/*
 * The shape of a JSON text, bounded on the text itself before json-c builds a
 * tree of it. Bytes alone bound nothing useful: json-c spends about a kilobyte
 * on each empty object, so a few MiB of "{}," take gigabytes. Values are
 * counted from the text ('{', '[' and ',' outside strings, plus one), an upper
 * bound of what json-c would allocate for it, valid JSON or not.
 */
struct ts_json_limits {
	unsigned int	depth;		/* arrays and objects inside each other */
	size_t		containers;	/* arrays and objects */
	size_t		values;		/* all values, containers included */
};

/* 0, or -E2BIG with why ("line L, column C: more than N arrays and objects")
 * for text[0..len) past a limit. */
int ts_json_check_limits(const char *text, size_t len, const struct ts_json_limits *lim,
			 char *why, size_t whylen);
/* The document of a configuration read with ts_config_read. */
int ts_doc_from_config(const struct ts_config *cfg, __u32 seed, struct ts_doc *doc,
		       struct ts_err *err);
/* The whole configuration in force as a document of the given seed (no lock
 * taken: hold it for one moment's). */
int ts_doc_read(const struct ts_maps *m, __u32 seed, struct ts_doc *doc, struct ts_err *err);
/* A service's health checks as JSON (json-c), and as one line of text. */
struct json_object;
struct json_object *ts_health_json(const struct ts_health_check *hc);
void ts_health_text(const struct ts_health_check *hc, char *buf, size_t len);
/* The document as JSON text ending in a newline (malloc()ed), or NULL. */
char *ts_doc_format(const struct ts_doc *doc);
/* One service as a document holds it, on one line (no newline) to f: 0 or
 * -EIO. */
int ts_doc_service_print(FILE *f, const struct ts_doc_service *s);

/* One step that makes a gateway's configuration equal to a document. */
enum ts_change_kind {
	TS_CHANGE_SEED,			/* from, to: the seeds */
	TS_CHANGE_SERVICE_DEL,		/* from: VIP */
	TS_CHANGE_SERVICE_ADD,		/* to: VIP and table size */
	TS_CHANGE_SERVICE_REPLACE,	/* VIP or table size: deleted and added again */
	TS_CHANGE_BACKEND_DEL,		/* from: address */
	TS_CHANGE_BACKEND_ADD,		/* to: address and weight */
	TS_CHANGE_BACKEND_REPLACE,	/* address: removed and added again */
	TS_CHANGE_WEIGHT,		/* from, to: the weights */
	TS_CHANGE_HEALTH,		/* from, to: the health checks */
};

struct ts_change {
	enum ts_change_kind	kind;
	char			service[TS_NAME_LEN];
	char			backend[TS_NAME_LEN];	/* "" for service and seed changes */
	char			from[96];
	char			to[96];
};

struct ts_plan {
	size_t			nchanges;
	struct ts_change	*changes;	/* in the order they are made */
};

/* One change as the line `import` and the agent print. */
void ts_change_text(const struct ts_change *c, char *buf, size_t len);
/* The changes that turn configuration have into want (both validated). */
int ts_doc_plan(const struct ts_doc *have, const struct ts_doc *want, struct ts_plan *plan,
		struct ts_err *err);
void ts_plan_free(struct ts_plan *plan);
const char *ts_change_name(enum ts_change_kind kind);

/*
 * Make the pinned configuration equal to want (validated by ts_doc_parse):
 * services not in want are deleted first, then each service of want is
 * changed by ts_service_apply, then the seed is written if it differs. Holds
 * the pin directory's lock throughout. Atomic per service, not across
 * services: a failure half-way leaves the services done so far changed.
 */
int ts_doc_apply(struct ts_maps *m, const struct ts_doc *want, struct ts_err *err);
/*
 * What `tcpshift import` does, for every caller (import, the agent's
 * configuration from etcd): under the pin directory's lock, the plan from
 * the configuration in force to want (validated by ts_doc_parse) into *plan
 * (free it with ts_plan_free, also on failure), then, unless dry_run,
 * ts_doc_apply. Releases the lock before it returns.
 */
int ts_doc_import(struct ts_maps *m, const struct ts_doc *want, bool dry_run,
		  struct ts_plan *plan, struct ts_err *err);

/*
 * config.c: make service want->name equal to want. A service whose VIP and
 * table size stay is changed with one table switch (all backend additions,
 * removals, address and weight changes together); a new one appears with its
 * whole table in one `services` insert; one whose VIP or table size changes
 * is deleted and added again (not atomic: its connections break). Does
 * nothing when nothing differs.
 */
int ts_service_apply(struct ts_maps *m, const struct ts_doc_service *want, struct ts_err *err);

#endif /* LIBTCPSHIFT_H */
