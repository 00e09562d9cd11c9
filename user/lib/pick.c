// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which backend a new flow gets, computed by the data plane's own code: the
 * real program, loaded with dry_run on the pinned maps, runs a crafted SYN
 * from the client to the VIP under BPF_PROG_TEST_RUN; the destination it
 * writes is the pick. No map is written, no pin is read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"

#define TC_ACT_OK	0

struct ts_picker {
	struct tcpshift_bpf	*skel;
	int			prog_fd;
	struct ts_config	cfg;
	struct ts_service_cfg	*service;
};

int ts_picker_open(struct ts_picker **out, const struct ts_maps *m, const char *service,
		   struct ts_err *err)
{
	struct ts_picker *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = ts_config_read(m, &p->cfg, err);
	if (r)
		goto fail;
	p->service = ts_config_service(&p->cfg, service);
	if (!p->service) {
		r = ts_fail(err, TS_ERR_USAGE, "unknown service '%s': see 'tcpshift service list'",
			    service);
		goto fail;
	}
	p->skel = ts_bpf_open_dry_run(m, err);
	if (!p->skel) {
		r = -err->status;
		goto fail;
	}
	p->prog_fd = ts_bpf_prog_fd(p->skel);
	*out = p;
	return 0;
fail:
	ts_picker_close(p);
	return r;
}

void ts_picker_close(struct ts_picker *p)
{
	if (!p)
		return;
	if (p->skel)
		ts_bpf_destroy(p->skel);
	ts_config_free(&p->cfg);
	free(p);
}

/* Ethernet + IP + TCP SYN from client to the service's VIP:port. The program
 * checks no checksum, so none is computed. Returns the frame's length. */
static size_t build_syn(unsigned char *pkt, const struct ts_endpoint *client,
			const struct ts_endpoint_key *vip, size_t *dst_off, size_t *dport_off)
{
	struct ethhdr *eth = (struct ethhdr *)pkt;
	struct tcphdr *tcp;
	size_t l4;

	if (client->family == TS_AF_INET) {
		struct iphdr *ip = (struct iphdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(sizeof(*ip) + sizeof(*tcp));
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = client->addr[0];
		ip->daddr = vip->addr[0];
		*dst_off = sizeof(*eth) + offsetof(struct iphdr, daddr);
		l4 = sizeof(*eth) + sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->payload_len = htons(sizeof(*tcp));
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, client->addr, 16);
		memcpy(&ip6->daddr, vip->addr, 16);
		*dst_off = sizeof(*eth) + offsetof(struct ipv6hdr, daddr);
		l4 = sizeof(*eth) + sizeof(*ip6);
	}
	tcp = (struct tcphdr *)(pkt + l4);
	tcp->source = client->port;
	tcp->dest = vip->port;
	tcp->seq = htonl(1);
	tcp->doff = 5;
	tcp->syn = 1;
	tcp->window = htons(65535);
	*dport_off = l4 + offsetof(struct tcphdr, dest);
	return l4 + sizeof(*tcp);
}

int ts_picker_pick(struct ts_picker *p, const struct ts_endpoint *client,
		   const struct ts_backend_cfg **backend, struct ts_err *err)
{
	unsigned char in[128] = { 0 }, out[128] = { 0 };
	const struct ts_service_cfg *s = p->service;
	size_t len, dst_off, dport_off;
	__be32 addr[4] = { 0 };
	__be16 port;
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = in, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);

	*backend = NULL;
	if (client->family != s->key.family)
		return ts_fail(err, TS_ERR_USAGE,
			       "client is IPv%u but service '%s' is IPv%u: give a matching address",
			       client->family, s->svc.name, s->key.family);
	len = build_syn(in, client, &s->key, &dst_off, &dport_off);
	run.data_size_in = (__u32)len;
	if (bpf_prog_test_run_opts(p->prog_fd, &run))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot run the data plane: %s",
			       strerror(errno));
	if (run.retval != TC_ACT_OK)
		return 0; /* no backend of weight > 0 */
	memcpy(addr, out + dst_off, client->family == TS_AF_INET ? 4 : 16);
	memcpy(&port, out + dport_off, sizeof(port));
	for (size_t i = 0; i < s->nbackends; i++)
		if (!memcmp(s->backends[i].be.addr, addr, sizeof(addr)) &&
		    s->backends[i].be.port == port) {
			*backend = &s->backends[i];
			return 0;
		}
	return ts_fail(err, TS_ERR_RUNTIME,
		       "the data plane picked an address that is no backend of '%s' (the "
		       "configuration changed meanwhile?)",
		       s->svc.name);
}
