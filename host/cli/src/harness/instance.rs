//! The harness's `struct flb_output_instance`: what the plugin's `o_ins` points at.
//!
//! The plugin treats it as opaque and hands it back to the host functions below, so its
//! layout is the harness's own.

use std::ffi::{CStr, CString, c_char, c_int};

use anyhow::{Context, Result};

use super::OutputSection;
use rustsink::abi::flb_output_instance;
use rustsink::config::keys;

pub(super) struct HarnessInstance {
    /// `rustsink.N`.
    name: CString,
    alias: Option<CString>,
    /// Fluent Bit's level number: messages at or below it are logged.
    log_level: c_int,
    properties: Vec<(String, CString)>,
}

impl HarnessInstance {
    pub(super) fn new(plugin: &str, number: usize, section: &OutputSection) -> Result<Self> {
        let log_level = match section
            .get("log_level")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("off") => 0,
            Some("error") => 1,
            Some("warn" | "warning") => 2,
            Some("debug") => 4,
            Some("trace") => 5,
            _ => 3,
        };
        let mut properties = Vec::new();
        for (key, value) in &section.properties {
            if !keys::consumed_by_fluent_bit(key) {
                let value = CString::new(value.as_str())
                    .with_context(|| format!("the value of '{key}' contains a NUL byte"))?;
                properties.push((key.clone(), value));
            }
        }
        Ok(HarnessInstance {
            name: CString::new(format!("{plugin}.{number}"))?,
            alias: section.get("alias").map(CString::new).transpose()?,
            log_level,
            properties,
        })
    }

    pub(super) fn display_name(&self) -> String {
        self.alias
            .as_ref()
            .unwrap_or(&self.name)
            .to_string_lossy()
            .into_owned()
    }

    pub(super) fn as_host_pointer(&self) -> *mut flb_output_instance {
        std::ptr::from_ref(self).cast_mut().cast()
    }

    /// # Safety
    ///
    /// `ins` must come from [`Self::as_host_pointer`] of a live instance.
    unsafe fn from_host_pointer<'a>(ins: *mut flb_output_instance) -> &'a HarnessInstance {
        // SAFETY: guaranteed by the caller.
        unsafe { &*ins.cast::<HarnessInstance>() }
    }
}

/// `api->output_get_property`: a case-insensitive lookup; the last value wins.
pub(super) unsafe extern "C" fn get_property(
    key: *const c_char,
    ins: *mut flb_output_instance,
) -> *const c_char {
    // SAFETY: the plugin passes a NUL-terminated key and the o_ins it was given.
    let (key, instance) = unsafe { (CStr::from_ptr(key), HarnessInstance::from_host_pointer(ins)) };
    let key = key.to_string_lossy();
    instance
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
}

/// `flb_output_name`: the alias, or the numbered name.
pub(super) unsafe extern "C" fn output_name(ins: *mut flb_output_instance) -> *const c_char {
    // SAFETY: the plugin passes the o_ins it was given.
    let instance = unsafe { HarnessInstance::from_host_pointer(ins) };
    instance.alias.as_ref().unwrap_or(&instance.name).as_ptr()
}

/// `api->output_log_check` and `flb_output_log_check`.
pub(super) unsafe extern "C" fn log_check(ins: *mut flb_output_instance, level: c_int) -> c_int {
    // SAFETY: the plugin passes the o_ins it was given.
    let instance = unsafe { HarnessInstance::from_host_pointer(ins) };
    c_int::from(level <= instance.log_level)
}
