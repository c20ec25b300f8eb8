//! The process's wasmtime engine and the epoch ticker.
//!
//! One engine serves every component of every instance. Calls are bounded by epoch
//! interruption: a ticker thread advances the epoch every [`TICK`], and each call gets a
//! deadline of so many ticks. The ticker runs only while some filter chain holds a
//! [`TickerGuard`], so that no thread outlives the plugin when Fluent Bit unloads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances: the resolution of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// The engine, configured for components with epoch interruption.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        Engine::new(&config).expect("the engine configuration is valid")
    })
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
