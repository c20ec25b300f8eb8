/*
 * The Fluent Bit proxy-plugin ABI as rustsink uses it.
 *
 * This header is the single declaration of the ABI: bindgen turns it into the Rust
 * bindings of `host/plugin/src/ffi/`, and the harness in `host/cli/src/harness/` builds the
 * Fluent Bit side of every call from the same declarations. Offsets in the comments are
 * for LP64 targets (x86_64, aarch64) and are asserted at compile time in Rust.
 *
 * Layout facts (see docs/abi.md for the versions each one was checked against):
 *  - Fluent Bit allocates the definition with malloc(32) up to 4.2.2 and in AWS's 1.9.10
 *    build, so a plugin may write only the first five fields.
 *  - The API table has one slot in 1.9.x, seven from 2.0.0 and nine from 4.0.3. Slots
 *    past the first must not be read before the host has been probed.
 *  - One `flbgo_output_plugin` exists per loaded library; one proxy context per
 *    [OUTPUT] instance.
 */
#ifndef RUSTSINK_FLB_PROXY_ABI_H
#define RUSTSINK_FLB_PROXY_ABI_H

#include <stddef.h>

/* Return codes of init and flush. Any other flush value counts as FLB_ERROR. */
#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

/* `type` of the definition. */
#define FLB_PROXY_INPUT_PLUGIN 1
#define FLB_PROXY_OUTPUT_PLUGIN 2

/* `proxy` of the definition: the only proxy kind Fluent Bit knows. */
#define FLB_PROXY_GOLANG 11

/* Instance log levels, as `output_log_check` takes them. */
#define FLB_LOG_OFF 0
#define FLB_LOG_ERROR 1
#define FLB_LOG_WARN 2
#define FLB_LOG_INFO 3
#define FLB_LOG_DEBUG 4
#define FLB_LOG_TRACE 5

/* Opaque host objects: the plugin only passes their pointers back. */
struct flb_output_instance;
struct flb_input_instance;
struct flb_custom_instance;

/*
 * Filled in by FLBPluginRegister. Only these five fields exist on every host; newer
 * hosts append `event_type` (offset 32) and `config_map` (offset 40), which a plugin
 * must not write without knowing the block is large enough.
 */
struct flb_plugin_proxy_def {
    int type;          /* 0: FLB_PROXY_OUTPUT_PLUGIN */
    int proxy;         /* 4: FLB_PROXY_GOLANG */
    int flags;         /* 8: copied into the output plugin's flags */
    char *name;        /* 16: kept by pointer up to 2.1.x: must be static */
    char *description; /* 24: kept by pointer on every version: must be static */
};

/* The size of the definition block that every host allocates. */
#define FLB_PROXY_DEF_SIZE 32

/* `output_get_property`: the only slot of the 1.9.x table. */
typedef const char *(*flb_output_get_property_fn)(const char *key,
                                                  struct flb_output_instance *ins);
/* `log_print`: printf-style, about 4 KiB per message. */
typedef void (*flb_log_print_fn)(int level, const char *file, int line, const char *fmt,
                                 ...);
/* `output_log_check`: non-zero when the instance's log_level admits `level`. */
typedef int (*flb_output_log_check_fn)(struct flb_output_instance *ins, int level);

/* The host API table. Slots 1 to 6 exist from 2.0.0, slots 7 and 8 from 4.0.3. */
struct flb_api {
    flb_output_get_property_fn output_get_property;                          /* 0 */
    const char *(*input_get_property)(const char *, struct flb_input_instance *); /* 8 */
    void *(*output_get_cmt_instance)(struct flb_output_instance *);            /* 16 */
    void *(*input_get_cmt_instance)(struct flb_input_instance *);              /* 24 */
    flb_log_print_fn log_print;                                                /* 32 */
    int (*input_log_check)(struct flb_input_instance *, int);                  /* 40 */
    flb_output_log_check_fn output_log_check;                                  /* 48 */
    const char *(*custom_get_property)(const char *, struct flb_custom_instance *); /* 56 */
    int (*custom_log_check)(struct flb_custom_instance *, int);                /* 64 */
};

/* How many slots of `struct flb_api` each host generation allocates. */
#define FLB_API_SLOTS_V1_9 1
#define FLB_API_SLOTS_V2_0 7
#define FLB_API_SLOTS_V4_0_3 9

/* One per [OUTPUT] instance; `remote_context` belongs to the plugin. */
struct flb_plugin_proxy_context {
    void *remote_context; /* 0 */
    void *proxy;          /* 8: struct flb_plugin_proxy *, host-owned */
};

struct flbgo_output_plugin;

/* The signatures of the plugin's exports, which Fluent Bit finds with dlsym. */
typedef int (*flb_plugin_register_fn)(struct flb_plugin_proxy_def *def);
typedef int (*flb_plugin_init_fn)(struct flbgo_output_plugin *plugin);
typedef int (*flb_plugin_flush_fn)(const void *data, size_t len, const char *tag);
typedef int (*flb_plugin_flush_ctx_fn)(void *remote_context, const void *data, size_t len,
                                       char *tag);
typedef int (*flb_plugin_exit_fn)(void);
typedef int (*flb_plugin_exit_ctx_fn)(void *remote_context);
typedef void (*flb_plugin_unregister_fn)(struct flb_plugin_proxy_def *def);

/*
 * Passed to FLBPluginInit. One per loaded library, shared by all instances: `o_ins` and
 * `context` point at the instance being initialised only for the duration of the call.
 */
struct flbgo_output_plugin {
    char *name;                               /* 0 */
    struct flb_api *api;                      /* 8 */
    struct flb_output_instance *o_ins;        /* 16 */
    struct flb_plugin_proxy_context *context; /* 24 */
    flb_plugin_init_fn cb_init;               /* 32 */
    flb_plugin_flush_fn cb_flush;             /* 40 */
    flb_plugin_flush_ctx_fn cb_flush_ctx;     /* 48 */
    flb_plugin_exit_fn cb_exit;               /* 56 */
    flb_plugin_exit_ctx_fn cb_exit_ctx;       /* 64 */
};

/*
 * Internal host functions that every supported version exports (Fluent Bit links with
 * ENABLE_EXPORTS), found with dlsym(RTLD_DEFAULT, ...). They are probes, not API: when one
 * is missing the plugin falls back.
 */
/* All versions: the instance's alias, or its numbered name ("rustsink.0"). */
typedef const char *(*flb_output_name_fn)(struct flb_output_instance *ins);
#define FLB_SYMBOL_OUTPUT_NAME "flb_output_name"
/* From 2.0.0: present exactly when the API table has slots 1 to 6. */
#define FLB_SYMBOL_OUTPUT_LOG_CHECK "flb_output_log_check"

/* The plugin's exports, called by Fluent Bit (FLBPluginUnregister is optional). */
int FLBPluginRegister(struct flb_plugin_proxy_def *def);
int FLBPluginInit(struct flbgo_output_plugin *plugin);
int FLBPluginFlushCtx(void *remote_context, const void *data, size_t len, char *tag);
int FLBPluginFlush(const void *data, size_t len, const char *tag);
int FLBPluginExitCtx(void *remote_context);
int FLBPluginExit(void);
void FLBPluginUnregister(struct flb_plugin_proxy_def *def);

#endif /* RUSTSINK_FLB_PROXY_ABI_H */
