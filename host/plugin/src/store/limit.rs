//! `store_dir_limit_size`: the most bytes an instance's store folder may hold before new
//! data is refused (Fluent Bit keeps it and sends it again), said once when the limit is
//! reached and once when there is room again.

use super::Store;
use crate::log::Logger;

/// The limit, and whether it was reached at the last check.
#[derive(Debug)]
pub struct StoreLimit {
    bytes: Option<u64>,
    reached: bool,
}

/// The store folder is at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// Bytes the folder holds.
    pub used: u64,
    /// The limit.
    pub limit: u64,
}

impl StoreLimit {
    /// A limit of `bytes`; None: no limit.
    pub fn new(bytes: Option<u64>) -> StoreLimit {
        StoreLimit {
            bytes,
            reached: false,
        }
    }

    /// Whether `store` has room for more data; logs when that changes.
    ///
    /// # Errors
    ///
    /// When it is at the limit.
    pub fn check(&mut self, store: &Store, log: &Logger) -> Result<(), Reached> {
        let Some(limit) = self.bytes else {
            return Ok(());
        };
        let used = store.used_bytes();
        if used >= limit {
            if !self.reached {
                log.warn(format_args!(
                    "store_dir {} holds {used} bytes, at store_dir_limit_size {limit}: flushes \
                     return RETRY and Fluent Bit keeps the data until deliveries free space \
                     (said once until then)",
                    store.root().display()
                ));
                self.reached = true;
            }
            return Err(Reached { used, limit });
        }
        if self.reached {
            log.info(format_args!(
                "store_dir is below store_dir_limit_size again ({used} of {limit} bytes); \
                 accepting data"
            ));
            self.reached = false;
        }
        Ok(())
    }
}
