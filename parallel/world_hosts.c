/* The host of every rank; see world_hosts.h. */
#include "parallel/world_hosts.h"

#include "core/error.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This rank's host name: the test override, else the lowest world rank of
 * the ranks sharing its memory; *local_ranks: how many share it. */
static int name_this_host(char name[WORLD_HOST_NAME_MAX], int *local_ranks)
{
    int rank, leader;
    MPI_Comm node;
    memset(name, 0, WORLD_HOST_NAME_MAX);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return error_set("rank %d: MPI_Comm_split_type could not find the ranks sharing this machine", rank);
    MPI_Comm_size(node, local_ranks);
    int status = MPI_Allreduce(&rank, &leader, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    if (status != MPI_SUCCESS) return error_set("rank %d: the ranks of this machine could not agree on its name", rank);
    const char *test_name = getenv("MOEDIT_HOST_ID_FOR_TESTS");
    if (test_name && *test_name)
        snprintf(name, WORLD_HOST_NAME_MAX, "test:%s", test_name); /* never equal to a real one */
    else
        snprintf(name, WORLD_HOST_NAME_MAX, "shared-memory:%d", leader);
    return 0;
}

int world_hosts_find(int **host_of, int *hosts, int *local_ranks)
{
    int size;
    char mine[WORLD_HOST_NAME_MAX];
    *host_of = NULL;
    *hosts = 1;
    *local_ranks = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* Every rank reaches the gather, even one whose name failed, so none waits forever. */
    int named = name_this_host(mine, local_ranks);
    char *names = malloc((size_t)size * WORLD_HOST_NAME_MAX);
    int *of = malloc((size_t)size * sizeof *of);
    if (!names || !of) {
        free(names), free(of);
        return error_set("out of memory gathering the hosts of %d ranks", size);
    }
    if (MPI_Allgather(mine, WORLD_HOST_NAME_MAX, MPI_CHAR, names, WORLD_HOST_NAME_MAX, MPI_CHAR, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        free(names), free(of);
        return error_set("MPI_Allgather failed: the ranks could not tell each other their hosts");
    }
    int count = 0;
    for (int r = 0; r < size; r++) {
        of[r] = -1;
        for (int q = 0; q < r && of[r] < 0; q++)
            if (!memcmp(names + (size_t)q * WORLD_HOST_NAME_MAX, names + (size_t)r * WORLD_HOST_NAME_MAX,
                        WORLD_HOST_NAME_MAX))
                of[r] = of[q];
        if (of[r] < 0) of[r] = count++;
    }
    free(names);
    if (named) {
        free(of);
        return -1;
    }
    *host_of = of;
    *hosts = count;
    return 0;
}
