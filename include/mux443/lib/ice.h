/* ICE and STUN syntax and limits shared by the probes, the fan-out, the ufrag table and
 * the configuration (RFC 8445 ufrags, RFC 8489 STUN, RFC 4571/6544 framing). */
#ifndef MUX443_LIB_ICE_H
#define MUX443_LIB_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UFRAG_MIN 4 /* RFC 8445 §5.3: ice-ufrag is 4..256 ice-chars */
#define UFRAG_MAX 256

#define STUN_HEADER 20
#define STUN_COOKIE 0x2112A442u

/* Bound on an ICE-TCP first frame (2-byte RFC 4571 length + one STUN message). RFC 4571
 * allows 64 KiB, but a connectivity check is a Binding request with a few short
 * attributes (Chromium's is 100 bytes; two 256-byte ufrags still fit well under 1 KiB);
 * the bound lets non-ICE bytes be refused on the first byte instead of after kilobytes,
 * and sizes what fan-out keeps of each server's answer. */
#define ICE_FRAME_MAX 4096

/* What a media server's answer to a fan-out says: the verdict on a framed STUN message
 * (RFC 4571: 2-byte length, then the message) against the client's framed Binding
 * request `req` (at least 2 + STUN_HEADER bytes). */
enum ice_verdict {
    ICE_AGAIN, /* not a whole frame yet, and one could still fit in `cap` */
    ICE_WIN,   /* a Binding success response for the request's transaction */
    ICE_LOSE,  /* anything else: an error response (401/400 for a foreign ufrag), another
                * transaction, not STUN, or a frame longer than cap */
};
enum ice_verdict ice_judge_answer(const uint8_t *req, const uint8_t *ans, size_t len, size_t cap);
/* The same over UDP (README "UDP on 443", fan-out): the verdict on one datagram `ans`
 * (len bytes) from a server against the client's STUN Binding request `req` (unframed,
 * at least STUN_HEADER bytes). ICE_WIN: a Binding success response of req's transaction
 * whose length field matches the datagram; ICE_LOSE: any other message of that
 * transaction (a 401/400 error response for a foreign ufrag); ICE_AGAIN: a datagram
 * about something else (not STUN, another transaction), which decides nothing — UDP has
 * no stream to fall out of step with, so the leg waits for its answer. */
enum ice_verdict ice_judge_udp(const uint8_t *req, const uint8_t *ans, size_t len);

/* True when s is a valid ufrag: UFRAG_MIN to UFRAG_MAX ice-chars (ALPHA DIGIT + /). */
bool ufrag_valid(const char *s, size_t len);
/* True when s is one or more ice-chars (e.g. a ufrag prefix). */
bool ufrag_charset(const char *s, size_t len);

#endif
