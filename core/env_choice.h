/* Reading a diagnostic environment switch (MOEDIT_ATTENTION, MOEDIT_CUDNN,
 * ...) that takes one of a few named values. */
#ifndef MOEDIT_CORE_ENV_CHOICE_H
#define MOEDIT_CORE_ENV_CHOICE_H

#ifdef __cplusplus
extern "C" {
#endif

/* The index in values[0..count) of the variable's value; `fallback` when it
 * is unset or empty, and also when it is none of them, which prints one
 * warning line naming the accepted values (once per *warned flag, so a
 * switch read on every call does not repeat it). */
int env_choice(const char *name, const char *const *values, int count, int fallback, int *warned);

#ifdef __cplusplus
}
#endif

#endif
