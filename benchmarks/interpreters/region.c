/* The measured region. callgrind is run with --collect-atstart=no; bench_region() switches
   collection on (client request CALLGRIND_TOGGLE_COLLECT) around the Python callback, so only
   the instructions the callback executes (in this thread) are counted. Outside valgrind the
   client requests are no-ops. */
#include <valgrind/callgrind.h>
typedef void (*callback_t)(void);
__attribute__((noinline)) void bench_region(callback_t cb) {
    CALLGRIND_TOGGLE_COLLECT;
    cb();
    CALLGRIND_TOGGLE_COLLECT;
}
