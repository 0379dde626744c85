/* ICE ufrag syntax. */
#include <ctype.h>
#include <string.h>

#include "mux443/lib/ice.h"

bool ufrag_charset(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
            return false;
    return len > 0;
}

bool ufrag_valid(const char *s, size_t len)
{
    return len >= UFRAG_MIN && len <= UFRAG_MAX && ufrag_charset(s, len);
}

enum ice_verdict ice_judge_answer(const uint8_t *req, const uint8_t *ans, size_t len, size_t cap)
{
    if (len < 2)
        return ICE_AGAIN;
    size_t flen = (size_t)ans[0] << 8 | ans[1];
    if (2 + flen > cap)
        return ICE_LOSE;
    if (len < 2 + flen)
        return ICE_AGAIN;
    const uint8_t *m = ans + 2;
    /* The magic cookie and the transaction id (bytes 4..19) must be the request's. */
    bool same_tx = flen >= STUN_HEADER && memcmp(m + 4, req + 2 + 4, 16) == 0;
    return same_tx && m[0] == 0x01 && m[1] == 0x01 ? ICE_WIN : ICE_LOSE;
}

enum ice_verdict ice_judge_udp(const uint8_t *req, const uint8_t *ans, size_t len)
{
    if (len < STUN_HEADER || ans[0] > 3 || memcmp(ans + 4, req + 4, 16) != 0)
        return ICE_AGAIN;
    size_t mlen = (size_t)ans[2] << 8 | ans[3];
    return ans[0] == 0x01 && ans[1] == 0x01 && STUN_HEADER + mlen == len ? ICE_WIN : ICE_LOSE;
}
