// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prometheus text (exposition format 0.0.4), written in one place for every
 * daemon (prom.h), and the agent's metrics of an instance, rendered from what
 * `tcpshift agent` read from the maps: pure, so the unit tests check the
 * text. Every per-backend series has the labels service, backend and addr;
 * which backends have them is the agent's choice (prom.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

/* ---- the writer ------------------------------------------------------------------- */

int prom_begin(struct prom *p)
{
	p->buf = NULL;
	p->len = 0;
	p->f = open_memstream(&p->buf, &p->len);
	return p->f ? 0 : -1;
}

char *prom_end(struct prom *p, size_t *len)
{
	if (fclose(p->f)) {
		free(p->buf);
		return NULL;
	}
	*len = p->len;
	return p->buf;
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
	fprintf(p->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: \\, " and newline escaped (names and addresses have none,
 * but the format is the format). */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*v, f);
	}
}

void prom_sample(struct prom *p, const char *name, const struct prom_label *labels,
		 size_t nlabels, const char *fmt, ...)
{
	va_list ap;

	fputs(name, p->f);
	for (size_t i = 0; i < nlabels; i++) {
		fprintf(p->f, "%s%s=\"", i ? "," : "{", labels[i].key);
		put_label(p->f, labels[i].value);
		fputc('"', p->f);
	}
	fputs(nlabels ? "} " : " ", p->f);
	va_start(ap, fmt);
	vfprintf(p->f, fmt, ap);
	va_end(ap);
	fputc('\n', p->f);
}

/* ---- the agent's metrics ------------------------------------------------------------ */

/* A backend's labels, room for two more (direction, le). */
struct backend_labels {
	struct prom_label	l[5];
	char			addr[TS_ADDRSTRLEN];
};

static size_t backend_labels(struct backend_labels *bl, const struct ts_service_cfg *s,
			     const struct ts_backend_cfg *b)
{
	ts_format_endpoint(b->be.addr, b->be.port, b->be.family, bl->addr, sizeof(bl->addr));
	bl->l[0] = (struct prom_label){ "service", s->svc.name };
	bl->l[1] = (struct prom_label){ "backend", b->be.name };
	bl->l[2] = (struct prom_label){ "addr", bl->addr };
	return 3;
}

/* One value per backend of every service: the series of one metric. */
typedef unsigned long long (*backend_value)(const struct ts_metrics *in, size_t si, size_t bi);

static void per_backend(struct prom *p, const struct ts_metrics *in, const char *name,
			const char *type, const char *help, backend_value value)
{
	prom_family(p, name, type, help);
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++) {
			struct backend_labels bl;
			size_t n = backend_labels(&bl, s, &s->backends[j]);

			prom_sample(p, name, bl.l, n, "%llu", value(in, i, j));
		}
	}
}

#define STAT(field)                                                                      \
	static unsigned long long stat_##field(const struct ts_metrics *in, size_t si,   \
					       size_t bi)                                 \
	{                                                                                \
		return in->stats[si][bi].field;                                         \
	}
STAT(new_flows)
STAT(handshakes)
STAT(refused)
STAT(syn_retransmits)
STAT(reset)
STAT(closed)
STAT(packets)

static unsigned long long open_connections(const struct ts_metrics *in, size_t si, size_t bi)
{
	const struct ts_backend_stats *st = &in->stats[si][bi];

	/* evicted flows are not seen to end: never below 0 */
	return st->opened > st->ended ? st->opened - st->ended : 0;
}

static unsigned long long weight(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].weight;
}

static unsigned long long effective_weight(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->effective[si][bi];
}

static unsigned long long up(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].be.health != TS_HEALTH_DOWN;
}

static unsigned long long health_since(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].be.health_since_s;
}

static unsigned long long slots(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->slots[si][bi];
}

static void handshake_histogram(struct prom *p, const struct ts_metrics *in)
{
	const char *name = "tcpshift_backend_handshake_seconds";

	prom_family(p, name, "histogram",
		    "Time from a SYN forwarded to the backend's SYN-ACK seen at the gateway.");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++) {
			const struct ts_backend_stats *st = &in->stats[i][j];
			unsigned long long cum = 0;
			struct backend_labels bl;
			size_t n = backend_labels(&bl, s, &s->backends[j]);
			char le[32];

			bl.l[n] = (struct prom_label){ "le", le };
			for (int k = 0; k < TS_HANDSHAKE_BUCKETS; k++) {
				cum += st->handshake_hist[k];
				if (k == TS_HANDSHAKE_BUCKETS - 1)
					snprintf(le, sizeof(le), "+Inf");
				else
					snprintf(le, sizeof(le), "%.9g",
						 (double)(TS_HANDSHAKE_BUCKET0_NS << k) / 1e9);
				prom_sample(p, "tcpshift_backend_handshake_seconds_bucket", bl.l, n + 1,
					    "%llu", cum);
			}
			prom_sample(p, "tcpshift_backend_handshake_seconds_sum", bl.l, n, "%.9f",
				    (double)st->handshake_ns_sum / 1e9);
			prom_sample(p, "tcpshift_backend_handshake_seconds_count", bl.l, n, "%llu",
				    cum);
		}
	}
}

static void source_metrics(struct prom *p, const struct ts_source_metrics *src)
{
	prom_family(p, "tcpshift_config_up", "gauge",
		    "1 while the agent watches its configuration key in etcd, 0 while it cannot.");
	prom_sample(p, "tcpshift_config_up", NULL, 0, "%d", src->up);
	prom_family(p, "tcpshift_config_revision", "gauge",
		    "etcd revision of the document in force (0: none applied yet).");
	prom_sample(p, "tcpshift_config_revision", NULL, 0, "%lld", (long long)src->revision);
	prom_family(p, "tcpshift_config_latest_revision", "gauge",
		    "etcd revision of the key's latest value seen; above tcpshift_config_revision "
		    "while the latest document is refused.");
	prom_sample(p, "tcpshift_config_latest_revision", NULL, 0, "%lld",
		    (long long)src->latest_revision);
	prom_family(p, "tcpshift_config_applied_total", "counter", "Documents from etcd applied.");
	prom_sample(p, "tcpshift_config_applied_total", NULL, 0, "%llu",
		    (unsigned long long)src->applied);
	prom_family(p, "tcpshift_config_rejected_total", "counter",
		    "Documents from etcd refused (invalid, too large, or failed to apply); the one "
		    "in force stays.");
	prom_sample(p, "tcpshift_config_rejected_total", NULL, 0, "%llu",
		    (unsigned long long)src->rejected);
	prom_family(p, "tcpshift_config_etcd_errors_total", "counter",
		    "Failed requests to etcd and lost watches (each retried with backoff).");
	prom_sample(p, "tcpshift_config_etcd_errors_total", NULL, 0, "%llu",
		    (unsigned long long)src->errors);
	prom_family(p, "tcpshift_config_applied_timestamp_seconds", "gauge",
		    "Unix time of the last document applied (0: none).");
	prom_sample(p, "tcpshift_config_applied_timestamp_seconds", NULL, 0, "%llu",
		    (unsigned long long)src->applied_time_s);
}

static void build_info(struct prom *p, const struct ts_metrics *in)
{
	char layout[16];
	const struct prom_label l[] = {
		{ "version", in->version ? in->version : "" },
		{ "layout", layout },
		{ "mode", in->mode ? in->mode : "" },
		{ "object_version", in->object_version ? in->object_version : "" },
	};

	snprintf(layout, sizeof(layout), "%u", in->layout);
	prom_family(p, "tcpshift_build_info", "gauge",
		    "1, labelled with this agent's version, the map layout and mode of the "
		    "instance, and the version of the build that loaded its running object "
		    "(empty: a release that tells none).");
	prom_sample(p, "tcpshift_build_info", l, sizeof(l) / sizeof(l[0]), "1");
}

char *ts_metrics_render(const struct ts_metrics *in, size_t *len)
{
	struct prom p;

	if (prom_begin(&p))
		return NULL;
	per_backend(&p, in, "tcpshift_backend_connection_attempts_total", "counter",
		    "New connections (SYNs) pinned to the backend.", stat_new_flows);
	per_backend(&p, in, "tcpshift_backend_handshakes_total", "counter",
		    "Handshakes completed: the backend's SYN-ACK, then the client's ACK.",
		    stat_handshakes);
	per_backend(&p, in, "tcpshift_backend_refused_total", "counter",
		    "Connections the backend refused (its RST to a SYN, before any SYN-ACK).",
		    stat_refused);
	per_backend(&p, in, "tcpshift_backend_syn_retransmits_total", "counter",
		    "Connections timed out: the client sent its SYN again, no SYN-ACK a second "
		    "after the first (counted once).",
		    stat_syn_retransmits);
	per_backend(&p, in, "tcpshift_backend_resets_total", "counter",
		    "Established connections reset by the backend.", stat_reset);
	per_backend(&p, in, "tcpshift_backend_closed_total", "counter",
		    "Established connections closed normally (FINs both ways).", stat_closed);
	per_backend(&p, in, "tcpshift_backend_open_connections", "gauge",
		    "Connections open now (confirmed minus ended; evicted flows are not seen "
		    "to end).",
		    open_connections);
	per_backend(&p, in, "tcpshift_backend_packets_total", "counter",
		    "Packets of the backend's flows, both directions.", stat_packets);
	prom_family(&p, "tcpshift_backend_bytes_total", "counter",
		    "Bytes of the backend's flows, by direction.");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++)
			for (int d = 0; d < 2; d++) {
				struct backend_labels bl;
				size_t n = backend_labels(&bl, s, &s->backends[j]);

				bl.l[n] = (struct prom_label){ "direction",
							       d ? "from_backend" : "to_backend" };
				prom_sample(&p, "tcpshift_backend_bytes_total", bl.l, n + 1, "%llu",
					    (unsigned long long)(d ? in->stats[i][j].bytes_from_backend
								   : in->stats[i][j].bytes_to_backend));
			}
	}
	handshake_histogram(&p, in);
	per_backend(&p, in, "tcpshift_backend_weight", "gauge",
		    "The backend's weight as the operator set it.", weight);
	per_backend(&p, in, "tcpshift_backend_effective_weight", "gauge",
		    "The weight its table is built with: 0 while it is down (unless every "
		    "backend is: fail open).",
		    effective_weight);
	per_backend(&p, in, "tcpshift_backend_up", "gauge",
		    "1 when the backend is up (or not checked), 0 when its health checks "
		    "marked it down.",
		    up);
	per_backend(&p, in, "tcpshift_backend_health_since_seconds", "gauge",
		    "Unix time of the backend's last health transition (0: never).",
		    health_since);
	per_backend(&p, in, "tcpshift_backend_table_slots", "gauge",
		    "Slots of its service's live Maglev table that the backend holds.", slots);
	prom_family(&p, "tcpshift_service_table_size", "gauge",
		    "Slots of the service's Maglev table (M).");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		struct prom_label l = { "service", in->cfg->services[i].svc.name };

		prom_sample(&p, "tcpshift_service_table_size", &l, 1, "%u",
			    in->cfg->services[i].svc.table_size);
	}
	prom_family(&p, "tcpshift_services", "gauge", "Services configured.");
	prom_sample(&p, "tcpshift_services", NULL, 0, "%u", in->services);
	prom_family(&p, "tcpshift_backends", "gauge", "Backends configured, of all services.");
	prom_sample(&p, "tcpshift_backends", NULL, 0, "%u", in->backends);
	prom_family(&p, "tcpshift_metrics_backends_omitted", "gauge",
		    "Backends whose per-backend series this answer leaves out: every one while "
		    "the instance has more than the agent's --metrics-max-backends; "
		    "/metrics?service=NAME has a service's.");
	prom_sample(&p, "tcpshift_metrics_backends_omitted", NULL, 0, "%u", in->backends_omitted);
	prom_family(&p, "tcpshift_events_total", "counter",
		    "The data plane's global counters, by event (as 'tcpshift status').");
	for (int c = 0; c < TS_CNT_MAX; c++) {
		struct prom_label l = { "event", ts_counter_name(c) };

		prom_sample(&p, "tcpshift_events_total", &l, 1, "%llu",
			    (unsigned long long)in->counters[c]);
	}
	prom_family(&p, "tcpshift_flow_table_entries", "gauge",
		    "Entries in the flow tables (flows: confirmed; half_open: not yet).");
	prom_sample(&p, "tcpshift_flow_table_entries", &(struct prom_label){ "table", "flows" }, 1,
		    "%u", in->flows);
	prom_sample(&p, "tcpshift_flow_table_entries",
		    &(struct prom_label){ "table", "half_open" }, 1, "%u", in->half_open);
	prom_family(&p, "tcpshift_flow_table_max_entries", "gauge", "Size of the flow tables.");
	prom_sample(&p, "tcpshift_flow_table_max_entries",
		    &(struct prom_label){ "table", "flows" }, 1, "%u", in->flows_max);
	prom_sample(&p, "tcpshift_flow_table_max_entries",
		    &(struct prom_label){ "table", "half_open" }, 1, "%u", in->half_open_max);
	if (in->source)
		source_metrics(&p, in->source);
	build_info(&p, in);
	return prom_end(&p, len);
}
