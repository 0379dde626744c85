/* --explain --udp: the same demultiplexing (udp_demux) and route selection (udp_route,
 * explain_route) as the UDP relay, over one datagram from stdin. */
#include <stdlib.h>

#include "mux443/core/explain.h"
#include "mux443/core/udp_explain.h"
#include "mux443/core/udp_flow.h"
#include "mux443/core/udp_relay.h"
#include "mux443/lib/log.h"
#include "mux443/lib/udp_demux.h"

#define DGRAM_MAX 65536

int udp_explain_run(const struct cfg *c, const char *listener, FILE *in, FILE *out)
{
    const struct cfg_listener *l = listener ? cfg_listener_find(c, listener) : &c->listeners[0];
    static const char *const classes[] = {"request", "indication", "success", "error"};
    uint8_t *buf = malloc(DGRAM_MAX);
    struct udp_first d;
    struct probe_out p;
    size_t n;
    int side;

    if (l == NULL) {
        fprintf(stderr, "mux443: no listener named '%s' in %s\n", listener, c->path);
        return 1;
    }
    if (buf == NULL)
        return 1;
    n = fread(buf, 1, DGRAM_MAX, in);
    udp_demux(buf, n, &d);
    free(buf);
    fprintf(out, "datagram  %zu bytes\nkind      %s\n", n, udp_kind_name(d.kind));
    if (d.kind == UDP_STUN) {
        char esc[2 * UFRAG_MAX + 8];

        fprintf(out, "stun      method 0x%03x, %s\n", d.stun_method, classes[d.stun_class & 3]);
        fprintf(out, "ufrag     %s\n",
                d.ufrag_len ? log_escape(esc, sizeof(esc), d.ufrag, d.ufrag_len) : "-");
    }
    if (d.kind == UDP_QUIC)
        fprintf(out, "quic      version 0x%08x, dcid %u bytes\n", d.quic_version, d.quic_dcid_len);
    if (d.why != NULL)
        fprintf(out, "note      %s\n", d.why);
    fprintf(out, "side      %s\n", udp_side_name(d.side));
    if (d.side == UDP_SIDE_QUIC) { /* opens a QUIC flow: everything after follows it */
        udp_probe_of(&d, UDP_UP_QUIC, &p);
        explain_route(out, c, udp_route(c, l, &d, UDP_UP_QUIC), &p);
        return 0;
    }
    if (d.side != UDP_SIDE_TURN && d.side != UDP_SIDE_MEDIA) {
        fprintf(out, "route     - (dropped: %s)\n",
                d.side == UDP_SIDE_REPLY ? "a response opens no flow" : "opens no flow");
        return 0;
    }
    if (d.kind != UDP_STUN) {
        fprintf(out,
                "route     - (dropped: only a STUN request opens a flow; inside a flow "
                "it goes to the %s side)\n",
                udp_side_name(d.side));
        return 0;
    }
    side = d.side == UDP_SIDE_MEDIA ? UDP_UP_MEDIA : UDP_UP_TURN;
    udp_probe_of(&d, side, &p);
    explain_route(out, c, udp_route(c, l, &d, side), &p);
    return 0;
}
