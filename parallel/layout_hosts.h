/* A layout's groups on the hosts of the world.
 *
 * Tensor-parallel and Ulysses groups exchange activations in every block
 * (an all-reduce per sublayer; four all-to-alls per attention), so they
 * belong inside one host, on NVLink; ring, CFG and data-parallel groups
 * exchange far less or only once a step and may cross the network
 * (docs/multi-node.md gives the volumes). The rank order tp-sp-cfg-dp keeps
 * a group of g consecutive ranks inside one host when each host holds
 * consecutive ranks and g divides their count; this file checks what the
 * launcher actually did, for any host map.
 *
 * host_of[world rank] numbers each rank's host (world.h); NULL: one host. */
#ifndef MOEDIT_PARALLEL_LAYOUT_HOSTS_H
#define MOEDIT_PARALLEL_LAYOUT_HOSTS_H

#include "parallel/layout.h"

/* 1 when some group of `kind` has ranks on more than one host, else 0. */
int layout_group_spans_hosts(const parallel_layout *layout, group_kind kind, const int *host_of);

/* 1 when a tensor-parallel or Ulysses group of `degrees` on world_size
 * ranks spans hosts; 0 when none does, or the degrees do not make a layout
 * of that world (no error is left set). */
int layout_degrees_cross_hosts(const parallel_degrees *degrees, int world_size, const int *host_of);

/* When a tensor-parallel or Ulysses group spans hosts: fills buf with one
 * line (no "moedit: warning: " and no newline) saying which groups, and the
 * change that keeps them inside one host: other degrees (the factor moved
 * from tp or ulysses to ring) when each host holds consecutive ranks, else
 * the launcher's placement. Returns 1 then, else 0. */
int layout_host_warning(const parallel_layout *layout, const int *host_of, char *buf, int size);

#endif
