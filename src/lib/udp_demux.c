/* First-byte demultiplexing of a UDP datagram on a port shared by STUN, TURN, DTLS,
 * SRTP and QUIC (RFC 9443 §3, RFC 7983 §7), with the STUN fields that route it. */
#include <string.h>

#include "mux443/lib/udp_demux.h"

#define STUN_ATTR_USERNAME 0x0006
#define STUN_ATTR_MI       0x0008
#define STUN_ATTR_MI256    0x001c

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void other(struct udp_first *out, const char *why)
{
    out->kind = UDP_OTHER;
    out->side = UDP_SIDE_NONE;
    out->why = why;
}

/* USERNAME of a Binding request: "<server ufrag>:<client ufrag>" (RFC 8445 §7.2.2). Only
 * the first USERNAME before MESSAGE-INTEGRITY counts (RFC 8489 §14.5). False with
 * out->why when the attributes are malformed. */
static int stun_attrs(const uint8_t *p, size_t n, struct udp_first *out)
{
    const uint8_t *user = NULL;
    size_t user_len = 0;
    int integrity = 0;

    for (size_t pos = STUN_HEADER; pos < n;) {
        size_t type, len, padded;

        if (n - pos < 4) {
            out->why = "STUN attribute header overruns the datagram";
            return 0;
        }
        type = be16(p + pos);
        len = be16(p + pos + 2);
        padded = (len + 3) & ~(size_t)3;
        if (padded > n - pos - 4) {
            out->why = "STUN attribute overruns the datagram";
            return 0;
        }
        if (type == STUN_ATTR_USERNAME && !integrity && user == NULL) {
            user = p + pos + 4;
            user_len = len;
        }
        if (type == STUN_ATTR_MI || type == STUN_ATTR_MI256)
            integrity = 1;
        pos += 4 + padded;
    }
    if (user != NULL) {
        const uint8_t *colon = memchr(user, ':', user_len);
        size_t ulen = colon != NULL ? (size_t)(colon - user) : 0;

        if (colon == NULL)
            out->why = "STUN USERNAME has no ':'";
        else if (!ufrag_valid((const char *)user, ulen))
            out->why = "STUN USERNAME server ufrag is not a valid ufrag";
        else {
            memcpy(out->ufrag, user, ulen);
            out->ufrag[ulen] = '\0';
            out->ufrag_len = (uint16_t)ulen;
            out->cufrag_ok = ufrag_valid((const char *)colon + 1, user_len - ulen - 1);
        }
    }
    out->integrity = integrity;
    return 1;
}

static void stun(const uint8_t *p, size_t n, struct udp_first *out)
{
    uint16_t type;

    /* One message per datagram: the header's length is the rest of it (RFC 8489 §6). */
    if (n < STUN_HEADER)
        return other(out, "STUN datagram shorter than a header");
    if (((uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7]) != STUN_COOKIE)
        return other(out, "no STUN magic cookie");
    if ((size_t)be16(p + 2) != n - STUN_HEADER || (n & 3) != 0)
        return other(out, "STUN length differs from the datagram");
    type = be16(p);
    out->kind = UDP_STUN;
    out->stun_method = (uint16_t)((type & 0x3e00) >> 2 | (type & 0x00e0) >> 1 | (type & 0x000f));
    out->stun_class = (uint8_t)((type & 0x0100) >> 7 | (type & 0x0010) >> 4);
    memcpy(out->tid, p + 8, sizeof(out->tid));
    if (!stun_attrs(p, n, out))
        return other(out, out->why);

    if (out->stun_class == STUN_SUCCESS || out->stun_class == STUN_ERROR) {
        out->side = UDP_SIDE_REPLY;
        return;
    }
    switch (out->stun_method) {
    case STUN_M_BINDING:
        /* ICE checks carry USERNAME; a plain Binding (RFC 8489 NAT discovery) or a
         * Binding indication (keepalive) belongs to the STUN server. */
        if (out->stun_class == STUN_REQUEST && out->ufrag_len > 0)
            out->side = UDP_SIDE_MEDIA;
        else if (out->why != NULL) /* a USERNAME, unusable: an ICE check nobody owns */
            out->side = UDP_SIDE_NONE;
        else
            out->side = UDP_SIDE_TURN;
        return;
    case STUN_M_ALLOCATE:
    case STUN_M_REFRESH:
    case STUN_M_CREATE_PERM:
    case STUN_M_CHANNEL_BIND:
        out->side = out->stun_class == STUN_REQUEST ? UDP_SIDE_TURN : UDP_SIDE_NONE;
        break;
    case STUN_M_SEND:
        out->side = out->stun_class == STUN_INDICATION ? UDP_SIDE_TURN : UDP_SIDE_NONE;
        break;
    default: /* Data, Connect...: sent by a server, or TURN over TCP only */
        out->side = UDP_SIDE_NONE;
        break;
    }
    if (out->side == UDP_SIDE_NONE)
        out->why = "STUN method or class a UDP client does not send";
}

#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu /* RFC 9369 */

/* Whether a long header packet can be a client's first: an Initial (type 0 in v1, 1 in
 * v2, RFC 9369 §3.2), or any packet of a version mux443 does not know (the backend
 * answers with Version Negotiation), in a datagram padded to QUIC_INITIAL_MIN. Version 0
 * is Version Negotiation, which only servers send. */
static bool quic_opens(uint8_t first, uint32_t version, size_t n)
{
    unsigned type = (first >> 4) & 3;

    if (n < QUIC_INITIAL_MIN || version == 0)
        return false;
    if (version == QUIC_V1)
        return type == 0;
    if (version == QUIC_V2)
        return type == 1;
    return true;
}

void udp_demux(const uint8_t *p, size_t n, struct udp_first *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return other(out, "empty datagram");
    if (p[0] <= 3)
        return stun(p, n, out);
    if (p[0] >= 20 && p[0] <= 63) {
        /* DTLS 1.0/1.2 record: type, version 0xfe 0xff/0xfd, epoch, sequence, length
         * (13 bytes). 32..63 is DTLS 1.3's unified header (RFC 9147 §4), shorter. */
        if (p[0] <= 31 && (n < 13 || p[1] != 0xfe))
            return other(out, "DTLS record header too short or not version 0xfe..");
        if (p[0] >= 32 && n < 2)
            return other(out, "DTLS 1.3 header too short");
        out->kind = UDP_DTLS;
        out->side = UDP_SIDE_MEDIA;
        return;
    }
    if (p[0] >= 64 && p[0] <= 127) {
        /* ChannelData: number, length, data; over UDP the padding is optional. RFC 8656
         * numbers channels 0x4000..0x4fff; RFC 5766 allowed up to 0x7fff, and coturn's
         * clients still pick there, where RFC 9443 puts QUIC short headers (80..127).
         * Outside a QUIC flow (whose datagrams the relay does not classify), 80..127
         * are taken as ChannelData. */
        if (n < 4 || (size_t)be16(p + 2) > n - 4)
            return other(out, "ChannelData length overruns the datagram");
        out->kind = UDP_CHANNEL;
        out->side = UDP_SIDE_TURN;
        out->channel = be16(p);
        return;
    }
    if (p[0] >= 128 && p[0] <= 191) {
        /* Version 2; RTCP packet types 192..223 (RFC 5761 §4), header 8 bytes; RTP 12. */
        out->rtcp = n >= 2 && p[1] >= 192 && p[1] <= 223;
        if (n < (out->rtcp ? 8u : 12u))
            return other(out, "RTP/RTCP header too short");
        out->kind = UDP_RTP;
        out->side = UDP_SIDE_MEDIA;
        return;
    }
    if (p[0] >= 192) {
        /* Long header (RFC 9000 §17.2, RFC 8999 §5.1): form and fixed bits, version,
         * DCID length and DCID, SCID length and SCID. */
        if (n < 7 || (size_t)p[5] + 7 > n || (size_t)p[5] + 7 + p[6 + p[5]] > n)
            return other(out, "QUIC long header overruns the datagram");
        out->kind = UDP_QUIC;
        out->quic_version =
            (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        out->quic_dcid_len = p[5];
        out->side = quic_opens(p[0], out->quic_version, n) ? UDP_SIDE_QUIC : UDP_SIDE_NONE;
        if (out->side == UDP_SIDE_NONE)
            out->why = "QUIC long header that is not a client Initial of at least 1200 bytes";
        return;
    }
    return other(out, "first byte in no RFC 9443 range");
}

const char *udp_kind_name(enum udp_kind k)
{
    static const char *const names[] = {"other", "stun", "dtls", "channeldata", "rtp", "quic"};

    return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *udp_side_name(enum udp_side s)
{
    static const char *const names[] = {"none", "turn", "media", "reply", "quic"};

    return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}
