/* libFuzzer target for the configuration loader: cfg_fuzz_load (in libmux443core) parses
 * the input as a configuration file and must never crash, leak or hang. */
#include <stddef.h>
#include <stdint.h>

int cfg_fuzz_load(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg_fuzz_load(data, size);
    return 0;
}
