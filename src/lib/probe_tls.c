/* TLS ClientHello probe: record framing, defragmentation across records, and the
 * extensions routing needs (SNI, ALPN, supported_versions). Also the SSLv2-format hello. */
#include <string.h>

#include "mux443/lib/probe.h"
#include "mux443/lib/probe_tls.h"

#define TLS_RECORD_HEADER   5
#define TLS_RECORD_MAX      16384 /* TLSPlaintext.length bound (RFC 8446 §5.1) */
#define TLS_HS_HEADER       4
#define TLS_CT_HANDSHAKE    0x16
#define TLS_HS_CLIENT_HELLO 1

#define EXT_SERVER_NAME        0x0000
#define EXT_ALPN               0x0010
#define EXT_SUPPORTED_VERSIONS 0x002b

/* A bounded cursor over the reassembled handshake message: every read is checked
 * against what is left, so a length field can never send us past its container. */
struct rd {
    const uint8_t *p;
    size_t n;
};

static bool rd_u8(struct rd *r, unsigned *v)
{
    if (r->n < 1)
        return false;
    *v = r->p[0];
    r->p++;
    r->n--;
    return true;
}

static bool rd_u16(struct rd *r, unsigned *v)
{
    if (r->n < 2)
        return false;
    *v = (unsigned)r->p[0] << 8 | r->p[1];
    r->p += 2;
    r->n -= 2;
    return true;
}

/* Splits off a sub-reader of len bytes. */
static bool rd_sub(struct rd *r, size_t len, struct rd *sub)
{
    if (r->n < len)
        return false;
    sub->p = r->p;
    sub->n = len;
    r->p += len;
    r->n -= len;
    return true;
}

static bool is_grease(unsigned v)
{
    /* RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA */
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* server_name (RFC 6066 §3). The first host_name entry wins; other name types are skipped.
 * An SNI longer than PROBE_NAME_MAX cannot be a DNS name and probe_out has no sni_cut
 * flag: it is not reported (sni_len 0, why set) rather than cut, so that a cut name can
 * never match a routing rule. A NUL byte inside the name is refused (NOMATCH): no real
 * client sends one and it would make the C string and the length disagree. */
static const char *parse_sni(struct rd ext, struct probe_out *out)
{
    unsigned list_len;
    struct rd list;
    bool done = false;

    if (!rd_u16(&ext, &list_len) || list_len != ext.n || list_len == 0)
        return "malformed server_name extension";
    rd_sub(&ext, list_len, &list);
    while (list.n > 0) {
        unsigned type, len;
        struct rd name;

        if (!rd_u8(&list, &type) || !rd_u16(&list, &len) || !rd_sub(&list, len, &name))
            return "malformed server_name entry";
        if (type != 0 || done)
            continue;
        done = true;
        if (len == 0)
            return "empty SNI host_name";
        if (memchr(name.p, 0, name.n) != NULL)
            return "NUL byte in SNI";
        if (len > PROBE_NAME_MAX) {
            out->why = "SNI longer than 255 bytes: ignored";
            continue;
        }
        memcpy(out->sni, name.p, len);
        out->sni[len] = '\0';
        out->sni_len = (uint16_t)len;
    }
    return NULL;
}

/* application_layer_protocol_negotiation (RFC 7301 §3.1): copied in wire format,
 * whole entries only; every entry is validated even once the copy is full. */
static const char *parse_alpn(struct rd ext, struct probe_out *out)
{
    unsigned list_len;
    struct rd list;

    if (!rd_u16(&ext, &list_len) || list_len != ext.n || list_len < 2)
        return "malformed ALPN extension";
    rd_sub(&ext, list_len, &list);
    while (list.n > 0) {
        unsigned len;
        struct rd name;

        if (!rd_u8(&list, &len) || len == 0 || !rd_sub(&list, len, &name))
            return "malformed ALPN protocol name";
        if (out->alpn_cut || out->alpn_len + 1 + len > PROBE_ALPN_MAX) {
            out->alpn_cut = true;
            continue;
        }
        out->alpn[out->alpn_len] = (uint8_t)len;
        memcpy(out->alpn + out->alpn_len + 1, name.p, len);
        out->alpn_len = (uint16_t)(out->alpn_len + 1 + len);
    }
    out->alpn[out->alpn_len] = 0;
    return NULL;
}

/* supported_versions (RFC 8446 §4.2.1): the highest non-GREASE version offered. */
static const char *parse_versions(struct rd ext, struct probe_out *out)
{
    unsigned list_len, best = 0;

    if (!rd_u8(&ext, &list_len) || list_len != ext.n || list_len < 2 || list_len % 2 != 0)
        return "malformed supported_versions extension";
    while (ext.n > 0) {
        unsigned v;

        if (!rd_u16(&ext, &v)) /* cannot happen: the length is even */
            break;
        if (!is_grease(v) && v > best)
            best = v;
    }
    if (best != 0)
        out->tls_version = (uint16_t)best;
    return NULL;
}

/* Parses a complete ClientHello body (after the 4-byte handshake header). */
static const char *parse_client_hello(const uint8_t *body, size_t len, struct probe_out *out)
{
    struct rd r = {body, len}, skip, exts;
    unsigned legacy, sid_len, cs_len, comp_len, exts_len;
    bool seen_sni = false, seen_alpn = false, seen_sv = false;

    if (!rd_u16(&r, &legacy) || (legacy >> 8) != 3)
        return "bad ClientHello legacy_version";
    out->tls_version = (uint16_t)legacy;
    if (!rd_sub(&r, 32, &skip))
        return "ClientHello too short for random";
    if (!rd_u8(&r, &sid_len) || sid_len > 32 || !rd_sub(&r, sid_len, &skip))
        return "bad ClientHello session_id";
    if (!rd_u16(&r, &cs_len) || cs_len < 2 || cs_len % 2 != 0 || !rd_sub(&r, cs_len, &skip))
        return "bad ClientHello cipher_suites";
    if (!rd_u8(&r, &comp_len) || comp_len < 1 || !rd_sub(&r, comp_len, &skip))
        return "bad ClientHello compression_methods";
    if (r.n == 0)
        return NULL; /* no extensions: a legal (old) hello */
    if (!rd_u16(&r, &exts_len) || exts_len != r.n)
        return "ClientHello extensions length does not match the message";
    rd_sub(&r, exts_len, &exts);

    while (exts.n > 0) {
        unsigned type, ext_len;
        struct rd ext;
        const char *err = NULL;

        if (!rd_u16(&exts, &type) || !rd_u16(&exts, &ext_len) || !rd_sub(&exts, ext_len, &ext))
            return "TLS extension overruns the ClientHello";
        /* Duplicates are illegal (RFC 8446 §4.2); refusing them keeps the routing
         * decision and the backend's view of the hello from disagreeing. */
        switch (type) {
        case EXT_SERVER_NAME:
            if (seen_sni)
                return "duplicate server_name extension";
            seen_sni = true;
            err = parse_sni(ext, out);
            break;
        case EXT_ALPN:
            if (seen_alpn)
                return "duplicate ALPN extension";
            seen_alpn = true;
            err = parse_alpn(ext, out);
            break;
        case EXT_SUPPORTED_VERSIONS:
            if (seen_sv)
                return "duplicate supported_versions extension";
            seen_sv = true;
            err = parse_versions(ext, out);
            break;
        default:
            break;
        }
        if (err != NULL)
            return err;
    }
    return NULL;
}

/* NOMATCH with out reset but for the reason. */
static enum probe_result tls_refuse(struct probe_out *out, const char *why)
{
    memset(out, 0, sizeof(*out));
    out->why = why;
    return PROBE_NOMATCH;
}

/* SSLv2-format CLIENT-HELLO (RFC 6101 appendix E.1, RFC 5246 appendix E.2): 2-byte
 * header with the high bit set, msg_type 1, version, then three lengths and the data. */
static enum probe_result probe_sslv2(const uint8_t *p, size_t n, struct probe_out *out,
                                     size_t *need)
{
    size_t rec_len, cs, sid, chal;
    unsigned version;

    if (n >= 3 && p[2] != 0x01)
        return tls_refuse(out, "SSLv2 record is not a CLIENT-HELLO");
    if (n >= 4 && p[3] != 0x00 && p[3] != 0x03)
        return tls_refuse(out, "bad SSLv2 CLIENT-HELLO version");
    if (n < 5)
        return PROBE_AGAIN;
    version = (unsigned)p[3] << 8 | p[4];
    if (version != 0x0002 && (version < 0x0300 || version > 0x0303))
        return tls_refuse(out, "bad SSLv2 CLIENT-HELLO version");
    rec_len = ((size_t)(p[0] & 0x7f) << 8) | p[1];
    if (rec_len < 9)
        return tls_refuse(out, "SSLv2 CLIENT-HELLO too short");
    if (n < 11)
        return PROBE_AGAIN;
    *need = 2 + rec_len; /* the rest is the record's length */
    cs = (size_t)p[5] << 8 | p[6];
    sid = (size_t)p[7] << 8 | p[8];
    chal = (size_t)p[9] << 8 | p[10];
    if (cs == 0 || cs % 3 != 0 || (sid != 0 && sid != 16) || chal < 16 || chal > 32 ||
        9 + cs + sid + chal != rec_len)
        return tls_refuse(out, "malformed SSLv2 CLIENT-HELLO");
    if (n < 2 + rec_len)
        return PROBE_AGAIN;
    memset(out, 0, sizeof(*out));
    out->cls = CLASS_TLS;
    out->tls_sslv2 = true;
    out->tls_version = (uint16_t)version;
    out->consumed = 2 + rec_len;
    return PROBE_MATCH;
}

/* Copies the handshake message's first cap bytes out of the records that carry it
 * (whole records p[0..end), already checked by the walk). */
static void tls_reassemble(const uint8_t *p, size_t end, uint8_t *hs, size_t cap)
{
    size_t pos = 0, len = 0;

    while (pos < end && len < cap) {
        size_t rec_len = (size_t)p[pos + 3] << 8 | p[pos + 4];
        size_t copy = rec_len < cap - len ? rec_len : cap - len;

        memcpy(hs + len, p + pos + TLS_RECORD_HEADER, copy);
        len += copy;
        pos += TLS_RECORD_HEADER + rec_len;
        PROBE_WORK(1 + copy);
    }
}

/* Walks the records from where the previous call stopped; each complete record is
 * passed once, and only its first bytes (the handshake header) are read on the way. The
 * hello is reassembled and parsed once the message and the record that ends it are both
 * complete. Bytes are checked as soon as they arrive so that non-TLS traffic is refused
 * early. */
enum probe_result probe_tls_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need)
{
    struct probe_tls_state *t = &st->tls;
    uint8_t hs[TLS_HS_HEADER + PROBE_TLS_HS_MAX];
    const char *err;

    if (n == 0)
        return PROBE_AGAIN;
    if (p[0] & 0x80)
        return probe_sslv2(p, n, out, need);

    /* Complete already (a call after MATCH): the bytes after the hello are not ours. */
    while (t->hs_need == 0 || t->hs_got < t->hs_need) {
        size_t pos = t->rec, avail = n - pos, rec_len, take, hs_len = t->hs_got;

        PROBE_WORK(1);
        if (avail >= 1 && p[pos] != TLS_CT_HANDSHAKE)
            return tls_refuse(out, pos == 0 ? "not a TLS handshake record"
                                            : "non-handshake record before the ClientHello ended");
        if (avail >= 2 && p[pos + 1] != 3)
            return tls_refuse(out, "bad TLS record version");
        if (avail >= 3 && p[pos + 2] > 4)
            return tls_refuse(out, "bad TLS record version");
        if (avail < TLS_RECORD_HEADER)
            return PROBE_AGAIN;
        rec_len = (size_t)p[pos + 3] << 8 | p[pos + 4];
        if (rec_len == 0 || rec_len > TLS_RECORD_MAX)
            return tls_refuse(out, "bad TLS record length");
        avail -= TLS_RECORD_HEADER;
        take = avail < rec_len ? avail : rec_len;
        /* Only the handshake message's bytes count; the rest of the last record (a
         * following message, in theory) is skipped but counted in consumed. */
        if (t->hs_need == 0 || hs_len < t->hs_need) {
            size_t room = (t->hs_need ? t->hs_need : sizeof(hs)) - hs_len;
            size_t copy = take < room ? take : room;

            for (size_t i = hs_len; i < TLS_HS_HEADER && i < hs_len + copy; i++)
                t->hs_head[i] = p[pos + TLS_RECORD_HEADER + i - hs_len];
            hs_len += copy;
        }
        if (hs_len >= 1 && t->hs_head[0] != TLS_HS_CLIENT_HELLO)
            return tls_refuse(out, "TLS handshake is not a ClientHello");
        if (hs_len >= TLS_HS_HEADER && t->hs_need == 0) {
            size_t body = (size_t)t->hs_head[1] << 16 | (size_t)t->hs_head[2] << 8 | t->hs_head[3];

            if (body > PROBE_TLS_HS_MAX)
                return tls_refuse(out, "ClientHello larger than 16 KiB");
            t->hs_need = TLS_HS_HEADER + body;
        }
        if (t->hs_need != 0 && hs_len > t->hs_need)
            hs_len = t->hs_need; /* the first record also held bytes past the hello */
        if (take < rec_len) {
            /* Within a record, nothing more is checked once the header is in. */
            if (t->hs_need != 0)
                *need = pos + TLS_RECORD_HEADER + rec_len;
            return PROBE_AGAIN;
        }
        t->rec = pos + TLS_RECORD_HEADER + rec_len;
        t->hs_got = hs_len;
    }

    tls_reassemble(p, t->rec, hs, t->hs_need);
    memset(out, 0, sizeof(*out));
    err = parse_client_hello(hs + TLS_HS_HEADER, t->hs_need - TLS_HS_HEADER, out);
    PROBE_WORK(t->hs_need);
    if (err != NULL)
        return tls_refuse(out, err);
    out->cls = CLASS_TLS;
    out->consumed = t->rec;
    return PROBE_MATCH;
}

enum probe_result probe_tls(const uint8_t *p, size_t n, struct probe_out *out)
{
    return probe_step_once(probe_tls_step, NULL, p, n, out);
}
