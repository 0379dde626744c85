/* PROXY protocol v1 (text) and v2 (binary), per HAProxy's proxy-protocol.txt:
 * parsing the header a trusted load balancer puts in front of a connection, and building
 * the header mux443 sends to backends that want the real client address. Pure code. */
#ifndef MUX443_PROXY_PROTO_H
#define MUX443_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux443/lib/probe.h"

#define PROXY_V1_MAX  107 /* longest v1 line, CRLF included */
#define PROXY_HDR_MAX 232 /* room for what proxy_build writes (v2 IPv6 + spare) */

struct proxy_info {
    int local;                   /* v2 LOCAL command or v1 UNKNOWN: keep the socket's own address */
    struct sockaddr_storage src; /* client address as seen by the load balancer */
    struct sockaddr_storage dst; /* address the client connected to */
    size_t hdr_len;              /* bytes of header to strip from the stream */
    size_t need;                 /* on AGAIN: see proxy_parse */
};

/* Parses a PROXY v1 or v2 header at the start of p. MATCH: *out filled, out->hdr_len is
 * the number of bytes to strip. AGAIN: header incomplete; only out->need is set: the
 * total byte count (n included) before which the answer cannot change, so that a caller
 * reading a byte at a time need not parse again until then (v2: 16 + its length field
 * once the 16-byte fixed part is in, else one more byte; v1: one more byte, the line
 * being at most 107). NOMATCH: not a (valid) PROXY header; *why says what was wrong. */
enum probe_result proxy_parse(const uint8_t *p, size_t n, struct proxy_info *out, const char **why);

/* Whether p starts with a PROXY v1 ("PROXY ") or v2 signature: MATCH once the whole
 * signature is there, AGAIN while p is a prefix of one, else NOMATCH. */
enum probe_result proxy_signature(const uint8_t *p, size_t n);

/* Writes a v1 (version 1) or v2 (version 2) PROXY header for a TCP connection from src to
 * dst into buf (cap >= PROXY_HDR_MAX). src and dst must be of the same family (AF_INET or
 * AF_INET6; a v4-mapped IPv6 address counts as IPv4). Returns the header length (> 0):
 * when the addresses cannot be expressed (mixed families, AF_UNIX), v1 "PROXY UNKNOWN"
 * or a v2 LOCAL header is written. Returns 0 only if cap is too small. */
size_t proxy_build(uint8_t *buf, size_t cap, int version, const struct sockaddr *src,
                   const struct sockaddr *dst);

#endif
