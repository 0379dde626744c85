/* libFuzzer target for udp_demux, the first-datagram classifier: any datagram must give
 * a consistent answer (kind within its first byte's RFC 9443 range, a reason for every
 * refusal, a ufrag that is a valid one) and the same answer twice (it is pure). The
 * datagram is also judged as a server's answer in a UDP fan-out (ice_judge_udp) against
 * a fixed Binding request: a win must be a Binding success of that transaction. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/lib/ice.h"
#include "mux443/lib/udp_demux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct udp_first a, b;
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any over-read */

    if (size > 0)
        memcpy(copy, data, size);
    udp_demux(copy, size, &a);
    udp_demux(copy, size, &b);
    if (memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    if (a.kind == UDP_OTHER && (a.side != UDP_SIDE_NONE || a.why == NULL))
        abort();
    if (a.kind != UDP_OTHER && size == 0)
        abort();
    if (a.kind == UDP_STUN && (copy[0] > 3 || size < 20))
        abort();
    if (a.kind == UDP_DTLS && (copy[0] < 20 || copy[0] > 63))
        abort();
    if (a.kind == UDP_CHANNEL && (copy[0] < 64 || copy[0] > 127))
        abort();
    if (a.kind == UDP_RTP && (copy[0] < 128 || copy[0] > 191))
        abort();
    if (a.kind == UDP_QUIC && copy[0] < 192)
        abort();
    /* A QUIC flow opens only on a client Initial's padded datagram whose header fits. */
    if (a.side == UDP_SIDE_QUIC &&
        (a.kind != UDP_QUIC || size < QUIC_INITIAL_MIN || (size_t)a.quic_dcid_len + 7 > size))
        abort();
    if (a.ufrag_len > 0 && (!ufrag_valid(a.ufrag, a.ufrag_len) || a.ufrag[a.ufrag_len] != '\0'))
        abort();
    if (a.side == UDP_SIDE_MEDIA && a.kind == UDP_STUN && a.ufrag_len == 0)
        abort();
    static const uint8_t req[STUN_HEADER] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4,
                                             0x42, 't',  'r',  'a',  'n',  's',  'a',
                                             'c',  't',  'i',  'o',  'n',  '1'};
    if (ice_judge_udp(req, copy, size) == ICE_WIN &&
        (copy[0] != 0x01 || copy[1] != 0x01 || memcmp(copy + 4, req + 4, 16) != 0 ||
         STUN_HEADER + ((size_t)copy[2] << 8 | copy[3]) != size))
        abort();
    free(copy);
    return 0;
}
