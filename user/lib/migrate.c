// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place across layouts (doc/DESIGN.md, "Loading"): `load` on an
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
