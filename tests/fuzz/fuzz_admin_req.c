/* libFuzzer target for the admin API's request reader (http_req_feed): the input is fed
 * whole, then again in pieces whose sizes come from its first bytes (as reads arrive);
 * both must agree on the outcome and, for a complete request, on every slice, and every
 * slice lies inside the bytes received. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slice(const struct http_slice *s, size_t n)
{
    FUZZ_CHECK(s->off <= n && s->len <= n - s->off);
}

/* Feeds buf[0, n) in pieces: piece k is 1 + splits[k % nsplits] bytes. */
static int feed(struct http_req *r, const char *buf, size_t n, const uint8_t *splits,
                size_t nsplits)
{
    const char *why = NULL;
    size_t have = 0;
    int res = 0;
    for (size_t k = 0; have < n; k++) {
        size_t step = nsplits ? (size_t)1 + splits[k % nsplits] : n;
        have = n - have < step ? n : have + step;
        /* A copy per call: the reader must cope with the buffer moving between calls. */
        char *copy = malloc(have ? have : 1);
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, buf, have);
        res = http_req_feed(r, copy, have, &why);
        free(copy);
        FUZZ_CHECK(res >= -1 && res <= 1);
        FUZZ_CHECK(res != -1 || why != NULL);
        if (res != 0)
            break;
    }
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nsplits = size ? data[0] % 8 : 0;
    if (size < 1 + nsplits)
        return 0;
    const uint8_t *splits = data + 1;
    const char *buf = (const char *)data + 1 + nsplits;
    size_t n = size - 1 - nsplits;

    struct http_req whole, parts;
    http_req_init(&whole);
    http_req_init(&parts);
    int rw = feed(&whole, buf, n, NULL, 0);
    int rp = feed(&parts, buf, n, splits, nsplits);
    FUZZ_CHECK(rw == rp);
    if (rw != 1)
        return 0;
    FUZZ_CHECK(whole.fed <= n);
    const struct http_req *rs[2] = {&whole, &parts};
    for (int i = 0; i < 2; i++) {
        check_slice(&rs[i]->url, rs[i]->fed);
        check_slice(&rs[i]->body, rs[i]->fed);
        for (int h = 0; h < HREQ_COUNT; h++) {
            check_slice(&rs[i]->hdr[h], rs[i]->fed);
            FUZZ_CHECK(rs[i]->hdr_count[h] > 0 || rs[i]->hdr[h].len == 0);
        }
    }
    FUZZ_CHECK(memcmp(&whole.url, &parts.url, sizeof(whole.url)) == 0);
    FUZZ_CHECK(memcmp(&whole.body, &parts.body, sizeof(whole.body)) == 0);
    FUZZ_CHECK(memcmp(whole.hdr, parts.hdr, sizeof(whole.hdr)) == 0);
    FUZZ_CHECK(memcmp(whole.hdr_count, parts.hdr_count, sizeof(whole.hdr_count)) == 0);
    FUZZ_CHECK(whole.p.method == parts.p.method);
    return 0;
}
