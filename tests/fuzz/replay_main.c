/* Stand-in for libFuzzer's driver when the compiler has none (GCC): feeds each file named
 * on the command line (or every file in a named directory) to LLVMFuzzerTestOneInput. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (f == NULL) {
        perror(path);
        return 1;
    }
    do {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap ? cap * 2 : 4096);

            if (nb == NULL) {
                free(buf);
                fclose(f);
                return 1;
            }
            buf = nb;
            cap = cap ? cap * 2 : 4096;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    /* Every prefix too, as libFuzzer's mutations would reach them. */
    for (size_t k = 0; k <= len; k++)
        LLVMFuzzerTestOneInput(buf, k);
    free(buf);
    printf("replayed %s (%zu bytes)\n", path, len);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;

            while (d != NULL && (e = readdir(d)) != NULL) {
                char path[4096];

                if (e->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
                bad |= replay_file(path);
            }
            if (d != NULL)
                closedir(d);
        } else {
            bad |= replay_file(argv[i]);
        }
    }
    return bad;
}
