/*
 * Host-side symbols of Fluent Bit, for the harness.
 *
 * Fluent Bit exports its internal functions, and rustsink probes two of them with
 * dlsym(RTLD_DEFAULT, ...): flb_output_name (every version) and flb_output_log_check
 * (2.0.0 and later). The harness loads one build of this file with RTLD_GLOBAL before it
 * loads the plugin, so that the probes see the host version being played. Built twice by
 * host/cli/build.rs: without HOST_HAS_LOG_API for 1.9, with it for 2.0 and later.
 *
 * The functions forward to callbacks that the harness sets, so the instance layout lives
 * in Rust only. harness_log_print is C because it is variadic, like Fluent Bit's
 * log_print; it formats the message and hands the text over.
 */
#include <stdarg.h>
#include <stdio.h>

struct flb_output_instance;

const char *(*rustsink_harness_output_name)(struct flb_output_instance *ins) = 0;
int (*rustsink_harness_log_check)(struct flb_output_instance *ins, int level) = 0;
void (*rustsink_harness_log_write)(int level, const char *file, int line,
                                   const char *message) = 0;

const char *flb_output_name(struct flb_output_instance *ins)
{
    return rustsink_harness_output_name(ins);
}

#ifdef HOST_HAS_LOG_API
int flb_output_log_check(struct flb_output_instance *ins, int level)
{
    return rustsink_harness_log_check(ins, level);
}
#endif

void rustsink_harness_log_print(int level, const char *file, int line, const char *fmt, ...)
{
    char message[4096];
    va_list args;

    va_start(args, fmt);
    vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    rustsink_harness_log_write(level, file, line, message);
}
