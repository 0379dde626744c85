/* UDP on 443 counters and their Prometheus rendering. */
#include "mux443/state/udp_metrics.h"

struct mx_udp mxu;

static const char *const class_names[MXU_CLASS_COUNT] = {"stun", "ice-udp", "quic"};
static const char *const drop_names[MXU_DROP_COUNT] = {
    "table_full", "per_prefix", "rate",   "malformed", "not_first",
    "unroutable", "quic",       "budget", "too_big",   "upstream",
};

const char *mxu_class_name(enum mxu_class c)
{
    return (unsigned)c < MXU_CLASS_COUNT ? class_names[c] : "?";
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static void head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void udp_metrics_render(FILE *out)
{
    head(out, "mux443_udp_flows_total", "counter", "UDP flows opened, by class.");
    for (int i = 0; i < MXU_CLASS_COUNT; i++)
        fprintf(out, "mux443_udp_flows_total{class=\"%s\"} %llu\n", class_names[i],
                LD(mxu.flows_total[i]));
    head(out, "mux443_udp_flows_open", "gauge", "UDP flows open, by class.");
    for (int i = 0; i < MXU_CLASS_COUNT; i++)
        fprintf(out, "mux443_udp_flows_open{class=\"%s\"} %lld\n", class_names[i],
                (long long)atomic_load(&mxu.flows_open[i]));
    head(out, "mux443_udp_datagrams_total", "counter",
         "UDP datagrams relayed; in = from clients, out = to clients.");
    fprintf(out, "mux443_udp_datagrams_total{direction=\"in\"} %llu\n", LD(mxu.dgrams_in));
    fprintf(out, "mux443_udp_datagrams_total{direction=\"out\"} %llu\n", LD(mxu.dgrams_out));
    head(out, "mux443_udp_bytes_total", "counter",
         "UDP payload bytes relayed; in = from clients, out = to clients.");
    fprintf(out, "mux443_udp_bytes_total{direction=\"in\"} %llu\n", LD(mxu.bytes_in));
    fprintf(out, "mux443_udp_bytes_total{direction=\"out\"} %llu\n", LD(mxu.bytes_out));
    head(out, "mux443_udp_dropped_total", "counter", "Client datagrams not relayed, by reason.");
    for (int i = 0; i < MXU_DROP_COUNT; i++)
        fprintf(out, "mux443_udp_dropped_total{reason=\"%s\"} %llu\n", drop_names[i],
                LD(mxu.drops[i]));
    head(out, "mux443_udp_table_flows", "gauge", "Flows in the workers' UDP flow tables.");
    fprintf(out, "mux443_udp_table_flows %lld\n", (long long)atomic_load(&mxu.table_flows));
    head(out, "mux443_udp_table_slots", "gauge", "Capacity of the workers' UDP flow tables.");
    fprintf(out, "mux443_udp_table_slots %llu\n", LD(mxu.table_slots));
    head(out, "mux443_udp_kernel_flows", "gauge",
         "UDP flow sides whose datagrams the kernel moves (relay = kernel).");
    fprintf(out, "mux443_udp_kernel_flows %lld\n", (long long)atomic_load(&mxu.kernel_sides));
    head(out, "mux443_udp_kernel_total", "counter",
         "Verified UDP flow sides of relay = kernel routes: kernel = handed to the kernel, "
         "fallback = kept in user space.");
    fprintf(out, "mux443_udp_kernel_total{result=\"kernel\"} %llu\n", LD(mxu.kernel_total[0]));
    fprintf(out, "mux443_udp_kernel_total{result=\"fallback\"} %llu\n", LD(mxu.kernel_total[1]));
    head(out, "mux443_udp_kernel_datagrams_total", "counter",
         "UDP datagrams the kernel moved, both ways, counted when their flows ended (also in "
         "mux443_udp_datagrams_total).");
    fprintf(out, "mux443_udp_kernel_datagrams_total %llu\n", LD(mxu.kernel_dgrams));
}
