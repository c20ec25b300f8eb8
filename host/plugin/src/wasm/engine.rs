//! The process's wasmtime engine and the epoch ticker.
//!
//! One engine serves every component of every instance. Its instances come from
//! wasmtime's pooling allocator: slots for [`POOL_INSTANCES`] instances are reserved up
//! front (address space only, about 2 TiB), so that starting an instance, as after a
//! failure, reuses a slot instead of mapping memory afresh. With `RUSTSINK_WASM_POOL=off`
//! instances are allocated on demand. Where the address space cannot be reserved (a
//! `ulimit -v`), they are allocated on demand without guard regions, so that each memory
//! takes only the address space it uses.
//!
//! Calls are bounded by epoch interruption: a ticker thread advances the epoch every
//! [`TICK`], and each call gets a deadline of so many ticks. The ticker runs only while
//! some loaded component holds a [`TickerGuard`] (each component's sandbox does), so that
//! no thread outlives the plugin when Fluent Bit unloads it, and so that no component runs
//! without its deadline, in the plugin or in the command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// How many component instances the pool holds: every filter and sink of every output
/// at once (16 filters and a sink for each of 15 outputs).
pub const POOL_INSTANCES: u32 = 256;
/// The largest linear memory a pooled instance may have: the highest `memory_limit`.
const POOL_MEMORY: usize = 4 << 30;

/// How the engine allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// From a pool reserved up front.
    Pooling,
    /// Each one as it is made.
    OnDemand,
}

/// The engine, configured for components with epoch interruption.
pub fn engine() -> &'static Engine {
    &engine_and_allocator().0
}

/// Which allocator the engine uses.
pub fn allocator() -> Allocator {
    engine_and_allocator().1
}

fn engine_and_allocator() -> &'static (Engine, Allocator) {
    static ENGINE: OnceLock<(Engine, Allocator)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        if std::env::var("RUSTSINK_WASM_POOL").is_ok_and(|v| v == "off") {
            let engine = Engine::new(&config).expect("the engine configuration is valid");
            return (engine, Allocator::OnDemand);
        }
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
        if let Ok(engine) = Engine::new(&pooled) {
            return (engine, Allocator::Pooling);
        }
        // The address space is limited: memories reserve only what they use, and bounds
        // are checked by code instead of by guard pages.
        config.memory_reservation(0).memory_guard_size(0);
        let engine = Engine::new(&config).expect("the engine configuration is valid");
        (engine, Allocator::OnDemand)
    })
}

/// The pool: room for [`POOL_INSTANCES`] components, each with a few core instances
/// (a Rust component has its module and the adapter's shims).
fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_memories_per_component(4)
        .max_memory_size(POOL_MEMORY);
    pool
}

/// The number of ticks that cover `timeout`.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
}

struct Ticker {
    users: usize,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

static TICKER: Mutex<Ticker> = Mutex::new(Ticker {
    users: 0,
    running: None,
});

/// Keeps the ticker running while it lives.
#[derive(Debug)]
pub struct TickerGuard(());

impl TickerGuard {
    /// Starts the ticker if this is its first user.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub fn acquire() -> std::io::Result<TickerGuard> {
        let mut ticker = TICKER.lock().unwrap_or_else(PoisonError::into_inner);
        if ticker.users == 0 {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let engine = engine().weak();
            let thread = std::thread::Builder::new()
                .name("rustsink:wasm-ticker".into())
                .spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => return,
                        }
                    }
                })?;
            ticker.running = Some((stop, thread));
        }
        ticker.users += 1;
        Ok(TickerGuard(()))
    }
}

impl Drop for TickerGuard {
    fn drop(&mut self) {
        let thread = {
            let mut ticker = TICKER.lock().unwrap_or_else(PoisonError::into_inner);
            ticker.users -= 1;
            if ticker.users > 0 {
                return;
            }
            ticker.running.take()
        };
        if let Some((stop, thread)) = thread {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_used_where_the_address_space_allows_it() {
        // "Max address space  unlimited  unlimited  bytes", or a number of bytes.
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let soft = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max address space"))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the address space limit is listed");
        let room = soft == "unlimited" || soft.parse::<u64>().is_ok_and(|bytes| bytes >= 4 << 40);
        let pool_off = std::env::var("RUSTSINK_WASM_POOL").is_ok_and(|v| v == "off");
        let expected = if room && !pool_off {
            Allocator::Pooling
        } else {
            Allocator::OnDemand
        };
        assert_eq!(allocator(), expected);
    }
}
