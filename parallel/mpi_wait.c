/* Waiting for the other ranks with a timeout; see mpi_wait.h. */
#include "parallel/mpi_wait.h"

#include "core/error.h"
#include "core/timer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LONGEST_NAP 0.004    /* the naps grow to this */
#define GRACE_SECONDS 2.0    /* for the answers to a probe */
#define QUIET_SECONDS 20.0   /* a quiet rank waits this long for the reporting rank's abort */
#define TAG_PROBE 1
#define TAG_ALIVE 2

static MPI_Comm probes = MPI_COMM_NULL; /* the world's ranks, for probes and their answers only */
static double timeout_seconds = MPI_WAIT_DEFAULT_TIMEOUT;
static int world_rank, world_size;
static int probe_round; /* sent with a probe, echoed by the answer */
static int gave_up;     /* a wait ran past the timeout and failed */
static void (*idle_work)(void *user);
static void *idle_user;

void mpi_wait_set_idle(void (*idle)(void *user), void *user)
{
    idle_work = idle;
    idle_user = user;
}

int mpi_wait_init(void)
{
    const char *text = getenv("MOEDIT_COLLECTIVE_TIMEOUT");
    if (text && *text) {
        char *end = NULL;
        errno = 0;
        double seconds = strcmp(text, "off") ? strtod(text, &end) : 0;
        if (strcmp(text, "off") && (errno || end == text || *end || !isfinite(seconds) || seconds < 0))
            return error_set("MOEDIT_COLLECTIVE_TIMEOUT=%s: give the seconds a collective may wait for its ranks "
                             "(0 or off: no limit)", text);
        timeout_seconds = seconds;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (MPI_Comm_dup(MPI_COMM_WORLD, &probes) != MPI_SUCCESS)
        return error_set("rank %d: cannot make the communicator of the collective timeout", world_rank);
    return 0;
}

void mpi_wait_finalize(void)
{
    if (probes != MPI_COMM_NULL) MPI_Comm_free(&probes);
    probes = MPI_COMM_NULL;
}

double mpi_wait_timeout(void) { return timeout_seconds; }

static void nap(double seconds)
{
    struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&t, NULL);
}

void mpi_wait_answer_probes(void)
{
    if (probes == MPI_COMM_NULL) return;
    for (;;) {
        int arrived = 0, round;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_PROBE, probes, &arrived, &status);
        if (!arrived) return;
        MPI_Recv(&round, 1, MPI_INT, status.MPI_SOURCE, TAG_PROBE, probes, MPI_STATUS_IGNORE);
        /* Small enough to go eagerly: the prober is alive and collects it. */
        MPI_Send(&round, 1, MPI_INT, status.MPI_SOURCE, TAG_ALIVE, probes);
    }
}

/* Marks alive[q] for every answer of this round that arrived. */
static void collect_answers(char *alive)
{
    for (;;) {
        int arrived = 0, round;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_ALIVE, probes, &arrived, &status);
        if (!arrived) return;
        MPI_Recv(&round, 1, MPI_INT, status.MPI_SOURCE, TAG_ALIVE, probes, MPI_STATUS_IGNORE);
        if (round == probe_round) alive[status.MPI_SOURCE] = 1;
    }
}

/* "1", "1, 3", "1, 3, 5 and 2 more" (ranks q of the list with !alive[q]); returns the count. */
static int list_missing(const char *alive, const int *ranks, int count, char *text, size_t size)
{
    int missing = 0;
    size_t used = 0;
    text[0] = '\0';
    for (int i = 0; i < count; i++) {
        int q = ranks ? ranks[i] : i;
        if (q == world_rank || alive[q]) continue;
        if (missing < 8 && used < size)
            used += (size_t)snprintf(text + used, size - used, "%s%d", missing ? ", " : "", q);
        missing++;
    }
    if (missing > 8 && used < size) snprintf(text + used, size - used, " and %d more", missing - 8);
    return missing;
}

/* The wait ran past the timeout: probe, then report or stay quiet (see the top of mpi_wait.h). */
static int timed_out(MPI_Request *request, const mpi_wait_site *site, double waited)
{
    char *alive = probes == MPI_COMM_NULL ? NULL : calloc((size_t)world_size, 1);
    if (!alive) return error_set("rank %d: %s of %s waited %.0f s for its ranks", world_rank, site->operation,
                                 site->group, waited);
    alive[world_rank] = 1;
    static int round_sent;
    round_sent = ++probe_round;
    for (int q = 0; q < world_size; q++) {
        if (q == world_rank) continue;
        MPI_Request sent;
        MPI_Isend(&round_sent, 1, MPI_INT, q, TAG_PROBE, probes, &sent);
        MPI_Request_free(&sent); /* a stopped rank never takes it */
    }
    double start = timer_seconds(), grace = timeout_seconds < GRACE_SECONDS ? timeout_seconds : GRACE_SECONDS;
    while (timer_seconds() - start < grace) {
        int done = 0;
        MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (done) {
            free(alive);
            return 0; /* the late rank arrived after all */
        }
        mpi_wait_answer_probes();
        collect_answers(alive);
        nap(0.001);
    }
    int lowest_waiting = world_rank;
    for (int q = 0; q < world_rank; q++)
        if (alive[q]) {
            lowest_waiting = q;
            break;
        }
    char in_group[256], anywhere[256];
    int group_missing = list_missing(alive, site->members, site->members ? site->member_count : world_size, in_group,
                                     sizeof in_group);
    int world_missing = list_missing(alive, NULL, world_size, anywhere, sizeof anywhere);
    free(alive);
    if (group_missing)
        error_set("rank%s %s did not reach %s of %s within %g s (stopped, hung or dead?); rank %d waited for it "
                  "(MOEDIT_COLLECTIVE_TIMEOUT)",
                  group_missing > 1 ? "s" : "", in_group, site->operation, site->group, timeout_seconds, world_rank);
    else if (world_missing)
        error_set("rank%s %s did not reach a collective within %g s (stopped, hung or dead?); rank %d waited in %s "
                  "of %s (MOEDIT_COLLECTIVE_TIMEOUT)",
                  world_missing > 1 ? "s" : "", anywhere, timeout_seconds, world_rank, site->operation, site->group);
    else
        error_set("%s of %s did not finish within %g s although every rank waits in a collective (the ranks run "
                  "different collectives?); rank %d gave up (MOEDIT_COLLECTIVE_TIMEOUT)",
                  site->operation, site->group, timeout_seconds, world_rank);
    if (lowest_waiting == world_rank) return -1;
    /* Another waiting rank reports and aborts the run; answer its probes meanwhile. */
    char message[1024];
    snprintf(message, sizeof message, "%s", error_message());
    for (start = timer_seconds(); timer_seconds() - start < QUIET_SECONDS;) {
        int done = 0;
        MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (done) return 0;
        mpi_wait_answer_probes();
        nap(LONGEST_NAP);
    }
    error_set("%s", message);
    error_mark_quiet();
    return -1;
}

int mpi_wait(MPI_Request *request, const mpi_wait_site *site)
{
    double start = timer_seconds(), pause = 0;
    double spin = site->spin_seconds > 0 ? site->spin_seconds : MPI_WAIT_SPIN_SECONDS;
    for (;;) {
        int done = 0;
        MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (done) return 0;
        mpi_wait_answer_probes();
        double waited = timer_seconds() - start;
        if (timeout_seconds > 0 && waited > timeout_seconds) {
            if (!timed_out(request, site, waited)) return 0;
            gave_up = 1;
            return -1;
        }
        if (waited < spin) continue;
        pause = pause == 0 ? 50e-6 : (pause * 2 < LONGEST_NAP ? pause * 2 : LONGEST_NAP);
        if (idle_work) idle_work(idle_user);
        nap(pause);
    }
}

int mpi_wait_gave_up(void) { return gave_up; }

int mpi_wait_arrival(MPI_Comm comm, const mpi_wait_site *site)
{
    MPI_Request request;
    if (MPI_Ibarrier(comm, &request) != MPI_SUCCESS)
        return error_set("rank %d: %s of %s: MPI_Ibarrier failed", world_rank, site->operation, site->group);
    return mpi_wait(&request, site);
}
