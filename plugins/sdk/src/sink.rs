//! Sinks: batches of records delivered somewhere, in place of rustsink's object engine.

use std::cell::RefCell;

use crate::{Description, Error, Options, Record, batch};

/// A sink component.
///
/// ```no_run
/// use rustsink_sdk::{Description, Error, OptionSpec, Options, Record, Sink};
///
/// /// Logs how many records each batch has; delivers nothing.
/// struct Count {
///     every: usize,
/// }
///
/// impl Sink for Count {
///     fn describe() -> Description {
///         Description {
///             name: "count".into(),
///             summary: "Logs the size of every n-th batch".into(),
///             options: vec![OptionSpec::with_default("every", "log every n-th batch", "1")],
///         }
///     }
///
///     fn new(options: &Options) -> Result<Self, Error> {
///         Ok(Count { every: options.parse("every")?.unwrap_or(1) })
///     }
///
///     fn deliver(&mut self, tag: &str, records: Vec<Record>) -> Result<(), Error> {
///         rustsink_sdk::info!("{tag}: {} records", records.len());
///         Ok(())
///     }
/// }
///
/// rustsink_sdk::export_sink!(Count);
/// ```
pub trait Sink: Sized + 'static {
    /// What the sink is and which options it accepts; called before [`Sink::new`].
    fn describe() -> Description;

    /// Builds the sink from its options (every declared option with a default or a
    /// value is present). An error stops Fluent Bit's start and is shown to the user.
    ///
    /// # Errors
    ///
    /// An option that cannot be used; say which and why.
    fn new(options: &Options) -> Result<Self, Error>;

    /// Delivers the records of one batch, all of tag `tag`. `Ok` hands them over for
    /// good.
    ///
    /// # Errors
    ///
    /// [`Error::retryable`] when a later attempt may succeed (Fluent Bit keeps the batch
    /// and retries it), [`Error::fatal`] when none will (Fluent Bit drops it).
    fn deliver(&mut self, tag: &str, records: Vec<Record>) -> Result<(), Error>;
}

/// Exports a [`Sink`] as the component's implementation of the sink world.
#[macro_export]
macro_rules! export_sink {
    ($sink:ty) => {
        struct __RustsinkSink;

        impl $crate::bindings::sink::Guest for __RustsinkSink {
            fn describe() -> $crate::Description {
                <$sink as $crate::Sink>::describe()
            }

            fn init(options: Vec<(String, String)>) -> Result<(), $crate::Error> {
                $crate::__private::init_sink::<$sink>(options)
            }

            fn deliver(tag: String, events: Vec<u8>) -> Result<(), $crate::Error> {
                $crate::__private::deliver(&tag, &events)
            }
        }

        $crate::bindings::sink::export_sink_world!(__RustsinkSink);
    };
}

type Deliver = Box<dyn FnMut(&str, Vec<Record>) -> Result<(), Error>>;

thread_local! {
    /// The sink built by `init` (a component runs on one thread).
    static SINK: RefCell<Option<Deliver>> = const { RefCell::new(None) };
}

/// Builds the sink `init` asks for; used by [`export_sink!`](crate::export_sink).
#[doc(hidden)]
pub fn init<S: Sink>(options: Vec<(String, String)>) -> Result<(), Error> {
    crate::report_panics_in_one_line();
    let mut sink = S::new(&Options::new(options))?;
    SINK.with(|slot| {
        *slot.borrow_mut() = Some(Box::new(move |tag, records| sink.deliver(tag, records)));
    });
    Ok(())
}

/// Decodes a batch and hands it to the sink; used by [`export_sink!`](crate::export_sink).
#[doc(hidden)]
pub fn deliver(tag: &str, events: &[u8]) -> Result<(), Error> {
    let records = batch::records(tag, events)?;
    SINK.with(|slot| {
        let mut slot = slot.borrow_mut();
        let deliver = slot
            .as_mut()
            .ok_or_else(|| Error::fatal("deliver was called before init"))?;
        deliver(tag, records)
    })
}
