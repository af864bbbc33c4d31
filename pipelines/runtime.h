/* The world moedit_init joined, for pipeline code. */
#ifndef MOEDIT_PIPELINES_RUNTIME_H
#define MOEDIT_PIPELINES_RUNTIME_H

#include "parallel/world.h"

const world *runtime_world(void);

#endif
