/* STUN/TURN over TCP probe (RFC 8489, RFC 8656) and ICE-TCP probe (RFC 4571 framing of
 * STUN, RFC 6544): header checks byte by byte, and the USERNAME ufrags for routing. */
#include <string.h>

#include "mux443/lib/ice.h"
#include "mux443/lib/probe.h"
#include "mux443/lib/probe_stun.h"

#define STUN_ATTR_USERNAME 0x0006
#define STUN_ATTR_MI       0x0008
#define STUN_ATTR_MI256    0x001c
static const uint8_t stun_cookie[4] = {0x21, 0x12, 0xa4, 0x42};

/* Checks the STUN header at p (avail bytes of it present) as far as the bytes go.
 * Returns NULL while it still looks like a request or an indication. */
static const char *stun_header_why(const uint8_t *p, size_t avail)
{
    /* Byte 0: the two top bits are zero (RFC 8489 §5), and bit 0 is C1 of the class:
     * set for both response classes, which a client never sends first. */
    if (avail >= 1 && (p[0] & 0xc0) != 0)
        return "STUN top bits not zero";
    if (avail >= 1 && (p[0] & 0x01) != 0)
        return "STUN response, not a request or indication";
    /* Byte 3 ends the message length, which is a multiple of 4 (attributes are padded). */
    if (avail >= 4 && (p[3] & 0x03) != 0)
        return "STUN length not a multiple of 4";
    for (size_t i = 0; i < 4 && 4 + i < avail; i++) {
        if (p[4 + i] != stun_cookie[i])
            return "no STUN magic cookie";
    }
    return NULL;
}

enum probe_result probe_stun(const uint8_t *p, size_t n, struct probe_out *out)
{
    const char *why;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return PROBE_AGAIN;
    why = stun_header_why(p, n);
    if (why != NULL) {
        out->why = why;
        return PROBE_NOMATCH;
    }
    if (n < STUN_HEADER)
        return PROBE_AGAIN;
    out->cls = CLASS_STUN;
    out->stun_type = (uint16_t)(p[0] << 8 | p[1]);
    out->consumed = STUN_HEADER + ((size_t)p[2] << 8 | p[3]);
    return PROBE_MATCH;
}

/* USERNAME = "<server ufrag>:<client ufrag>" (RFC 8445 §7.2.2); split at the first ':'. */
static void take_username(const uint8_t *v, size_t len, struct probe_out *out)
{
    const uint8_t *colon = memchr(v, ':', len);
    size_t ulen, clen;

    if (colon == NULL) {
        out->why = "ICE-TCP USERNAME has no ':'";
        return;
    }
    ulen = (size_t)(colon - v);
    clen = len - ulen - 1;
    if (ulen > PROBE_UFRAG_MAX || clen > PROBE_UFRAG_MAX) {
        out->why = "ICE-TCP ufrag longer than 256 bytes";
        return;
    }
    if (ulen == 0) {
        out->why = "ICE-TCP USERNAME has an empty server ufrag";
        return;
    }
    memcpy(out->ufrag, v, ulen);
    out->ufrag[ulen] = '\0';
    out->ufrag_len = (uint16_t)ulen;
    memcpy(out->cufrag, colon + 1, clen);
    out->cufrag[clen] = '\0';
    out->cufrag_len = (uint16_t)clen;
}

enum probe_result probe_ice_tcp(const uint8_t *p, size_t n, struct probe_out *out)
{
    size_t frame, pos, end, user_len = 0;
    const uint8_t *user = NULL;
    bool integrity = false, have_user = false;
    const char *why;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return PROBE_AGAIN;
    if (p[0] > ICE_FRAME_MAX >> 8) {
        out->why = "RFC 4571 frame longer than an ICE connectivity check";
        return PROBE_NOMATCH;
    }
    /* The frame holds one STUN message (RFC 6544 §3): its length is 20 + a multiple
     * of 4, so bit 0-1 of byte 1 are zero and the frame is at least 20 bytes. */
    if (n >= 2) {
        frame = (size_t)p[0] << 8 | p[1];
        if ((frame & 3) != 0 || frame < STUN_HEADER || frame > ICE_FRAME_MAX) {
            out->why = "RFC 4571 frame length cannot hold a STUN message";
            return PROBE_NOMATCH;
        }
    }
    why = stun_header_why(p + 2, n - (n >= 2 ? 2 : n));
    if (why != NULL) {
        out->why = why;
        return PROBE_NOMATCH;
    }
    if (n < 6)
        return PROBE_AGAIN;
    frame = (size_t)p[0] << 8 | p[1];
    if (frame != STUN_HEADER + ((size_t)p[4] << 8 | p[5])) {
        out->why = "RFC 4571 frame length differs from the STUN length";
        return PROBE_NOMATCH;
    }
    if (n < 2 + frame)
        return PROBE_AGAIN;

    end = 2 + frame;
    for (pos = 2 + STUN_HEADER; pos < end;) {
        size_t type, len, padded;

        if (end - pos < 4) {
            out->why = "STUN attribute header overruns the frame";
            return PROBE_NOMATCH;
        }
        type = (size_t)p[pos] << 8 | p[pos + 1];
        len = (size_t)p[pos + 2] << 8 | p[pos + 3];
        padded = (len + 3) & ~(size_t)3;
        if (padded > end - pos - 4) {
            out->why = "STUN attribute overruns the frame";
            return PROBE_NOMATCH;
        }
        /* Only FINGERPRINT may follow MESSAGE-INTEGRITY(-SHA256); anything else there
         * is not covered by the integrity check and must be ignored (RFC 8489 §14.5). */
        if (type == STUN_ATTR_USERNAME && !integrity && !have_user) {
            have_user = true;
            user = p + pos + 4;
            user_len = len;
        }
        if (type == STUN_ATTR_MI || type == STUN_ATTR_MI256)
            integrity = true;
        pos += 4 + padded;
    }
    /* Fields are only filled once the whole frame is known to be well formed. */
    if (have_user)
        take_username(user, user_len, out);
    else
        out->why = "ICE-TCP STUN message has no USERNAME";
    out->stun_type = (uint16_t)(p[2] << 8 | p[3]);
    out->stun_integrity = integrity;
    out->cls = CLASS_ICE_TCP;
    out->consumed = end;
    PROBE_WORK(frame);
    return PROBE_MATCH;
}

/* STUN and ICE-TCP keep no state: their checks read a fixed number of first bytes, and
 * past those the answer cannot change until the header (STUN) or the frame (ICE-TCP) is
 * in, so the dispatcher runs them again only then. */
enum probe_result probe_stun_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need)
{
    enum probe_result r = probe_stun(p, n, out);

    if (r == PROBE_AGAIN && n >= 8) /* bytes 0..7 checked: the header decides */
        *need = STUN_HEADER;
    return r;
}

enum probe_result probe_ice_tcp_step(struct probe_state *st, const uint8_t *p, size_t n,
                                     struct probe_out *out, size_t *need)
{
    enum probe_result r = probe_ice_tcp(p, n, out);

    if (r == PROBE_AGAIN && n >= 10) /* frame and STUN header checked through the cookie */
        *need = 2 + ((size_t)p[0] << 8 | p[1]);
    return r;
}
