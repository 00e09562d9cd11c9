// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Local clients (`load --cgroup`, doc/DESIGN.md "Local clients"): the cgroup
 * programs of bpf/local.h attached through BPF links pinned in the pin
 * directory, so they outlive the command that attached them and belong to
 * the instance as its maps do; and the sweep, the TCP socket iterator that
 * closes local connections of removed and expired backends.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "tcpshift.skel.h"

/* The cgroup hooks, each a link pinned under the pin directory. */
static const struct local_hook {
	const char		*prog;
	const char		*pin;
	enum bpf_attach_type	type;
} hooks[] = {
	{ "tcpshift_connect4", "link_connect4", BPF_CGROUP_INET4_CONNECT },
	{ "tcpshift_connect6", "link_connect6", BPF_CGROUP_INET6_CONNECT },
	{ "tcpshift_getpeername4", "link_getpeername4", BPF_CGROUP_INET4_GETPEERNAME },
	{ "tcpshift_getpeername6", "link_getpeername6", BPF_CGROUP_INET6_GETPEERNAME },
	{ "tcpshift_sockops", "link_sockops", BPF_CGROUP_SOCK_OPS },
};

#define NHOOKS		(sizeof(hooks) / sizeof(hooks[0]))
#define SWEEP_PROG	"tcpshift_local_sweep"
#define SWEEP_PIN	"link_local_sweep"

/* Every pin this file makes: the hooks', then the sweep's. */
static const char *link_pin(size_t i)
{
	return i < NHOOKS ? hooks[i].pin : i == NHOOKS ? SWEEP_PIN : NULL;
}

static const char *link_prog(size_t i)
{
	return i < NHOOKS ? hooks[i].prog : SWEEP_PROG;
}

void ts_local_autoload(struct tcpshift_bpf *skel, bool on)
{
	for (size_t i = 0; link_pin(i); i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(skel->obj, link_prog(i));

		if (p)
			bpf_program__set_autoload(p, on);
	}
}

/* The cgroup v2 mount point (first in /proc/mounts), or false. */
static bool cgroup2_mount(char *buf, size_t len)
{
	char line[PATH_MAX + 256], dev[64], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/mounts", "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %4095s %63s", dev, dir, type) == 3 && !strcmp(type, "cgroup2")) {
			snprintf(buf, len, "%s", dir);
			found = true;
		}
	fclose(f);
	return found;
}

int ts_local_check(const char *cgroup, struct ts_err *err)
{
	char mnt[PATH_MAX];
	struct statfs sfs;
	struct utsname u;
	struct stat st;
	struct btf *vmlinux;
	bool has_mount = cgroup2_mount(mnt, sizeof(mnt)), destroy;

	if (!has_mount)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "--cgroup %s: no cgroup v2 hierarchy is mounted (see /proc/mounts): "
			       "mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) and give a "
			       "directory of it",
			       cgroup);
	if (stat(cgroup, &st) || statfs(cgroup, &sfs))
		return ts_fail(err, TS_ERR_USAGE,
			       "--cgroup %s: %s: give a directory of the cgroup v2 hierarchy "
			       "(mounted at %s)",
			       cgroup, strerror(errno), mnt);
	if (!S_ISDIR(st.st_mode) || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return ts_fail(err, TS_ERR_USAGE,
			       "--cgroup %s is not a cgroup v2 directory: give a directory under "
			       "%s (the cgroup v2 mount)",
			       cgroup, mnt);
	/* The sweep needs bpf_sock_destroy (Linux 6.5); the hooks are older. */
	vmlinux = btf__load_vmlinux_btf();
	destroy = vmlinux && btf__find_by_name_kind(vmlinux, "bpf_sock_destroy", BTF_KIND_FUNC) >= 0 &&
		  btf__find_by_name_kind(vmlinux, "bpf_iter_tcp", BTF_KIND_FUNC) >= 0;
	btf__free(vmlinux);
	if (!destroy || libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, NULL) != 1 ||
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, NULL) != 1) {
		uname(&u);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "--cgroup: this kernel (%s) lacks what socket-level balancing needs "
			       "(cgroup connect and sockops hooks, and bpf_sock_destroy with BTF: "
			       "Linux 6.5 or later); load without --cgroup; nothing was changed",
			       u.release);
	}
	return 0;
}

/* A link pinned at pin_dir/name whose program is the instance's: its fd,
 * -ENOENT when there is none, -EPERM when the pin is not ours. */
static int our_link(const char *pin_dir, const char *name, const struct ts_owner *own,
		    struct bpf_link_info *info)
{
	char path[TS_PIN_DIR_MAX], fdpath[64], target[64];
	__u32 len = sizeof(*info);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EPERM;
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	n = readlink(fdpath, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	memset(info, 0, sizeof(*info));
	if (strcmp(target, "anon_inode:bpf-link") || bpf_obj_get_info_by_fd(fd, info, &len) ||
	    !ts_prog_is_ours(info->prog_id, own)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Refuse a cgroup where (or above which) another instance's, or another
 * version's, socket programs run: two balancers at connect() would each
 * rewrite the other's destination. */
int ts_local_check_owner(const char *cgroup, const struct ts_owner *own, struct ts_err *err)
{
	int cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (cg < 0)
		return ts_fail(err, TS_ERR_USAGE, "--cgroup %s: %s", cgroup, strerror(errno));
	for (size_t i = 0; i < NHOOKS && !r; i++) {
		__u32 ids[64];
		LIBBPF_OPTS(bpf_prog_query_opts, q, .query_flags = BPF_F_QUERY_EFFECTIVE,
			    .prog_ids = ids, .prog_cnt = 64);

		if (bpf_prog_query_opts(cg, hooks[i].type, &q))
			continue;
		for (__u32 j = 0; j < q.prog_cnt && j < 64 && !r; j++) {
			struct bpf_prog_info info = {};
			__u32 len = sizeof(info);
			int fd = bpf_prog_get_fd_by_id(ids[j]);

			if (fd < 0)
				continue;
			bpf_obj_get_info_by_fd(fd, &info, &len);
			close(fd);
			if (!strncmp(info.name, "tcpshift", 8) && !ts_prog_is_ours(ids[j], own))
				r = ts_fail(err, TS_ERR_RUNTIME,
					    "--cgroup %s: another tcpshift instance's socket "
					    "programs (program %u '%s') run for this cgroup or one "
					    "above it: unload that instance (with its own --pin-dir) "
					    "or give another cgroup; nothing was changed",
					    cgroup, ids[j], info.name);
		}
	}
	close(cg);
	return r;
}

static void unpin(const char *pin_dir, const char *name)
{
	char path[TS_PIN_DIR_MAX];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	unlink(path);
}

int ts_local_attach(struct tcpshift_bpf *skel, const char *pin_dir, const char *cgroup,
		    const struct ts_owner *own, struct ts_err *err)
{
	struct bpf_link *links[NHOOKS + 1] = {};
	struct bpf_link_info info;
	char path[TS_PIN_DIR_MAX];
	struct stat st;
	bool same = true;
	int cg, fd, r = 0;
	size_t i;

	cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0 || fstat(cg, &st)) {
		r = ts_fail(err, TS_ERR_USAGE, "--cgroup %s: %s", cgroup, strerror(errno));
		goto out;
	}
	/* An upgrade on the same cgroup replaces each link's program in
	 * place: no connect() goes unbalanced meanwhile. */
	for (i = 0; link_pin(i); i++) {
		fd = our_link(pin_dir, link_pin(i), own, &info);
		if (fd < 0) {
			same = false;
			break;
		}
		if (i < NHOOKS && info.cgroup.cgroup_id != (__u64)st.st_ino)
			same = false;
		close(fd);
	}
	if (same) {
		for (i = 0; link_pin(i); i++) {
			struct bpf_program *p = bpf_object__find_program_by_name(skel->obj,
										 link_prog(i));

			fd = our_link(pin_dir, link_pin(i), own, &info);
			if (fd >= 0 && bpf_link_update(fd, bpf_program__fd(p), NULL))
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot replace the program of %s: %s",
					    link_pin(i), strerror(errno));
			if (fd >= 0)
				close(fd);
			if (r)
				goto out;
		}
		goto out;
	}
	/* New links first: a failure leaves the old ones (or none) in force. */
	for (i = 0; link_pin(i); i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(skel->obj, link_prog(i));

		links[i] = i < NHOOKS ? bpf_program__attach_cgroup(p, cg)
				      : bpf_program__attach_iter(p, NULL);
		if (!links[i]) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot attach %s to %s: %s",
				    link_prog(i), i < NHOOKS ? cgroup : "the TCP socket iterator",
				    strerror(errno));
			goto out;
		}
	}
	/* Then the pins: the old links go with theirs (no fd holds them). */
	for (i = 0; link_pin(i); i++) {
		fd = our_link(pin_dir, link_pin(i), own, &info);
		if (fd >= 0) {
			close(fd);
			unpin(pin_dir, link_pin(i));
		}
		snprintf(path, sizeof(path), "%s/%s", pin_dir, link_pin(i));
		r = bpf_link__pin(links[i], path);
		if (r) {
			r = ts_fail(err, TS_ERR_RUNTIME, "cannot pin %s: %s", path, strerror(-r));
			while (i--)
				unpin(pin_dir, link_pin(i));
			goto out;
		}
	}
out:
	for (i = 0; i < NHOOKS + 1; i++)
		bpf_link__destroy(links[i]); /* a pinned link stays attached */
	if (cg >= 0)
		close(cg);
	return r;
}

void ts_local_detach(const char *pin_dir, const struct ts_owner *own)
{
	struct bpf_link_info info;

	for (size_t i = 0; link_pin(i); i++) {
		int fd = our_link(pin_dir, link_pin(i), own, &info);

		if (fd < 0)
			continue;
		close(fd);
		unpin(pin_dir, link_pin(i));
	}
}

/* nftw() has no context argument: the cgroup sought, and the path found. */
static __u64 find_ino;
static char *find_out;
static size_t find_len;

static int find_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type != FTW_D || st->st_ino != find_ino)
		return 0;
	snprintf(find_out, find_len, "%s", path);
	return 1;
}

int ts_local_status(const char *pin_dir, const struct ts_owner *own, struct ts_local_status *s)
{
	struct bpf_link_info info;
	char mnt[PATH_MAX];

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; link_pin(i); i++) {
		int fd = our_link(pin_dir, link_pin(i), own, &info);

		if (fd < 0)
			continue;
		close(fd);
		s->nlinks++;
		s->prog_ids[i] = info.prog_id;
		if (i < NHOOKS)
			s->cgroup_id = info.cgroup.cgroup_id;
	}
	s->nexpected = NHOOKS + 1;
	snprintf(s->cgroup, sizeof(s->cgroup), "?");
	if (s->cgroup_id && cgroup2_mount(mnt, sizeof(mnt))) {
		find_ino = s->cgroup_id;
		find_out = s->cgroup;
		find_len = sizeof(s->cgroup);
		/* bounded by the hierarchy; cgroupfs has no symlinks */
		nftw(mnt, find_cgroup, 16, FTW_PHYS | FTW_MOUNT);
	}
	return 0;
}

const char *ts_local_hook_name(size_t i)
{
	return link_pin(i) ? link_pin(i) + strlen("link_") : NULL;
}

int ts_local_sweep(const struct ts_maps *m, struct ts_err *err)
{
	struct bpf_link_info info;
	char buf[256];
	int link, it, r = 0;

	link = our_link(m->pin_dir, SWEEP_PIN, &m->owner, &info);
	if (link == -ENOENT)
		return 0; /* not loaded with --cgroup */
	if (link < 0)
		return ts_fail(err, TS_ERR_RUNTIME, "%s/%s is not this instance's sweep link",
			       m->pin_dir, SWEEP_PIN);
	it = bpf_iter_create(link);
	if (it < 0) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot run the local connections' sweep: %s",
			    strerror(errno));
		goto out;
	}
	/* The iterator prints nothing; reading runs it over every TCP socket
	 * of this namespace once. */
	for (int rounds = 0; rounds < 1 << 20; rounds++) {
		ssize_t n = read(it, buf, sizeof(buf));

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = ts_fail(err, TS_ERR_RUNTIME, "the local connections' sweep failed: %s",
				    strerror(errno));
		break;
	}
	close(it);
out:
	close(link);
	return r;
}
