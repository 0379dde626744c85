/* Operator-chosen names and host name patterns. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mux443/lib/names.h"

bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

bool name_match(const char *pattern, const char *name, size_t len)
{
    if (len && name[len - 1] == '.')
        len--;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = strlen(pattern + 1); /* ".example.com" */
        return len > sl && strncasecmp(name + len - sl, pattern + 1, sl) == 0;
    }
    return strlen(pattern) == len && strncasecmp(pattern, name, len) == 0;
}
