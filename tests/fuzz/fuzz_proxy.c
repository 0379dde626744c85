/* libFuzzer target for proxy_parse (and proxy_signature), plus proxy_build round trips
 * of parsed addresses: a header we build from what we parsed must parse back to the
 * same addresses; and a caller that parses again only once `need` bytes are in must
 * stop where one that parses after every byte does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_need(const uint8_t *p, size_t size)
{
    struct proxy_info info;
    size_t first = 0, k = 0;
    enum probe_result r, rk;

    while ((r = proxy_parse(p, first, &info, NULL)) == PROBE_AGAIN && first < size)
        first++;
    while ((rk = proxy_parse(p, k, &info, NULL)) == PROBE_AGAIN && k < size) {
        FUZZ_CHECK(info.need > k);
        k = info.need < size ? info.need : size;
    }
    FUZZ_CHECK(k == first && rk == r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_info a, b;
    const char *why = NULL;
    uint8_t *copy = malloc(size ? size : 1);
    uint8_t hdr[PROXY_HDR_MAX];
    enum probe_result r;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    r = proxy_parse(copy, size, &a, &why);
    FUZZ_CHECK(r == PROBE_AGAIN || r == PROBE_MATCH || r == PROBE_NOMATCH);
    /* Whatever parses as a header starts with a signature (the plain listeners' check). */
    if (r == PROBE_MATCH)
        FUZZ_CHECK(proxy_signature(copy, size) == PROBE_MATCH);
    if (r == PROBE_NOMATCH)
        FUZZ_CHECK(why != NULL);
    if (r == PROBE_MATCH) {
        FUZZ_CHECK(a.hdr_len > 0 && a.hdr_len <= size);
        for (int v = 1; v <= 2; v++) {
            size_t n = proxy_build(hdr, sizeof(hdr), v, (struct sockaddr *)&a.src,
                                   (struct sockaddr *)&a.dst);

            FUZZ_CHECK(n > 0 && n <= sizeof(hdr));
            FUZZ_CHECK(proxy_parse(hdr, n, &b, &why) == PROBE_MATCH && b.hdr_len == n);
            FUZZ_CHECK(b.local == a.local);
            if (!a.local)
                FUZZ_CHECK(memcmp(&a.src, &b.src, sizeof(a.src)) == 0 &&
                           memcmp(&a.dst, &b.dst, sizeof(a.dst)) == 0);
        }
    }
    check_need(copy, size);
    free(copy);
    return 0;
}
