//! Bindings generated from `fluent-bit/include/flb_proxy_abi.h`, plus layout assertions
//! that pin every field to the offsets Fluent Bit uses on LP64 hosts.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    reason = "generated from a C header"
)]
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::allow_attributes_without_reason,
    reason = "bindgen's layout tests are generated code"
)]

include!(concat!(env!("OUT_DIR"), "/flb_proxy_abi.rs"));

use std::mem::{offset_of, size_of};

// The offsets every supported Fluent Bit version uses (docs/abi.md). bindgen's own layout
// tests check the generated structs against the header; these check the header against
// Fluent Bit.
const _: () = {
    assert!(size_of::<flb_plugin_proxy_def>() == FLB_PROXY_DEF_SIZE as usize);
    assert!(offset_of!(flb_plugin_proxy_def, type_) == 0);
    assert!(offset_of!(flb_plugin_proxy_def, proxy) == 4);
    assert!(offset_of!(flb_plugin_proxy_def, flags) == 8);
    assert!(offset_of!(flb_plugin_proxy_def, name) == 16);
    assert!(offset_of!(flb_plugin_proxy_def, description) == 24);

    assert!(size_of::<flb_api>() == 9 * 8);
    assert!(offset_of!(flb_api, output_get_property) == 0);
    assert!(offset_of!(flb_api, log_print) == 32);
    assert!(offset_of!(flb_api, output_log_check) == 48);
    assert!(offset_of!(flb_api, custom_log_check) == 64);

    assert!(size_of::<flb_plugin_proxy_context>() == 16);
    assert!(offset_of!(flb_plugin_proxy_context, remote_context) == 0);
    assert!(offset_of!(flb_plugin_proxy_context, proxy) == 8);

    assert!(size_of::<flbgo_output_plugin>() == 72);
    assert!(offset_of!(flbgo_output_plugin, name) == 0);
    assert!(offset_of!(flbgo_output_plugin, api) == 8);
    assert!(offset_of!(flbgo_output_plugin, o_ins) == 16);
    assert!(offset_of!(flbgo_output_plugin, context) == 24);
    assert!(offset_of!(flbgo_output_plugin, cb_init) == 32);
    assert!(offset_of!(flbgo_output_plugin, cb_flush) == 40);
    assert!(offset_of!(flbgo_output_plugin, cb_flush_ctx) == 48);
    assert!(offset_of!(flbgo_output_plugin, cb_exit) == 56);
    assert!(offset_of!(flbgo_output_plugin, cb_exit_ctx) == 64);

    assert!(FLB_ERROR == 0 && FLB_OK == 1 && FLB_RETRY == 2);
    assert!(FLB_PROXY_GOLANG == 11 && FLB_PROXY_OUTPUT_PLUGIN == 2);
    assert!(FLB_API_SLOTS_V1_9 == 1 && FLB_API_SLOTS_V2_0 == 7 && FLB_API_SLOTS_V4_0_3 == 9);
};
