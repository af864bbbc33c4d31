/* host_memory_check: a need that fits once passes; the same need for each of
 * two ranks sharing the machine fails when twice it does not fit, with one
 * error line that says how much each rank needs. */
#include "core/error.h"
#include "core/host_memory.h"
#include "test_util.h"

#include <string.h>

int main(void)
{
    int64_t available = host_memory_available();
    CHECK_MSG(available > 0, "/proc/meminfo gave no MemAvailable");
    if (available > 0) {
        /* 5/8 of what is available: fits alone (3/8 to spare, more than
         * memory moves by while the test runs), not twice. */
        int64_t need = available / 8 * 5;
        CHECK(host_memory_check(need, "one rank's weights") == 0);
        host_memory_set_sharers(2);
        CHECK(host_memory_check(need, "the weights") != 0);
        CHECK_MSG(strstr(error_message(), "the weights: ") == error_message() &&
                      strstr(error_message(), "for each of the 2 ranks on this machine") &&
                      strstr(error_message(), "GiB available on this machine") && !strchr(error_message(), '\n'),
                  "message: %s", error_message());
        CHECK(host_memory_check(need / 4, "a quarter each") == 0);
        host_memory_set_sharers(1);
        CHECK(host_memory_check(need, "one rank's weights again") == 0);
    }
    return test_finish("test_host_memory");
}
