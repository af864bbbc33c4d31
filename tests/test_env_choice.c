/* env_choice: a named value gives its index; unset or empty gives the
 * fallback; anything else gives the fallback with one warning per flag. */
#include "core/env_choice.h"
#include "test_util.h"

#include <stdlib.h>

int main(void)
{
    static const char *const values[3] = {"nhwc", "0", "heuristic"};
    int warned = 0;
    unsetenv("MOEDIT_TEST_CHOICE");
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 0, &warned) == 0);
    setenv("MOEDIT_TEST_CHOICE", "", 1);
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 1, &warned) == 1);
    setenv("MOEDIT_TEST_CHOICE", "heuristic", 1);
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 0, &warned) == 2);
    setenv("MOEDIT_TEST_CHOICE", "0", 1);
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 0, &warned) == 1);
    CHECK(warned == 0);
    /* Not a value (case matters): the fallback, and the flag set once. */
    setenv("MOEDIT_TEST_CHOICE", "NHWC", 1);
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 0, &warned) == 0);
    CHECK(warned == 1);
    setenv("MOEDIT_TEST_CHOICE", "yes", 1);
    CHECK(env_choice("MOEDIT_TEST_CHOICE", values, 3, 2, &warned) == 2);
    CHECK(warned == 1);
    return test_finish("test_env_choice");
}
