/* Notices between ranks outside the collectives; see world_notice.h. */
#include "parallel/world_notice.h"

#include "core/error.h"

#include <mpi.h>

#define TAG_NOTICE 1

static MPI_Comm notices = MPI_COMM_NULL;

int world_notice_open(const world *w)
{
    if (!w->using_mpi || notices != MPI_COMM_NULL) return 0;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &notices) != MPI_SUCCESS)
        return error_set("rank %d: cannot make the communicator of the notices between ranks", w->rank);
    return 0;
}

void world_notice_close(void)
{
    if (notices == MPI_COMM_NULL) return;
    int64_t values[2];
    while (world_notice_poll(values)) continue;
    MPI_Comm_free(&notices);
    notices = MPI_COMM_NULL;
}

int world_notice_send(int to, const int64_t values[2])
{
    if (notices == MPI_COMM_NULL) return 0;
    if (MPI_Send(values, 2, MPI_INT64_T, to, TAG_NOTICE, notices) != MPI_SUCCESS)
        return error_set("cannot send a notice to rank %d", to);
    return 0;
}

int world_notice_poll(int64_t values[2])
{
    if (notices == MPI_COMM_NULL) return 0;
    int arrived = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_NOTICE, notices, &arrived, &status) != MPI_SUCCESS || !arrived) return 0;
    return MPI_Recv(values, 2, MPI_INT64_T, status.MPI_SOURCE, TAG_NOTICE, notices, MPI_STATUS_IGNORE) == MPI_SUCCESS;
}
