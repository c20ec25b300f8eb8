//! Filters: one record at a time, kept, dropped, replaced or failed.

use std::cell::RefCell;

use crate::bindings::filter::Processed;
use crate::{Description, Error, Options, Record, batch};

/// What happens to a record after the filter has seen it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It goes on, with the changes the filter made.
    Keep,
    /// It is dropped.
    Drop,
    /// These records go on in its place, in order: none, several (a record split in
    /// parts), or it and more (`record.clone()` first, then new ones). Start new records
    /// with [`Record::derived`] or [`Record::new`].
    Replace(Vec<Record>),
    /// The filter cannot process this record, for the reason given. The filter's
    /// `on_error` decides what becomes of it: with `skip_record` it goes on as it came,
    /// with `drop_record` it is dropped, and the other records of the batch are not
    /// affected.
    Fail(String),
}

/// A filter component.
pub trait Filter: Sized + 'static {
    /// What the filter is and which options it accepts; called before [`Filter::new`].
    fn describe() -> Description;

    /// Builds the filter from its options (every declared option with a default or a
    /// value is present). An error stops Fluent Bit's start and is shown to the user.
    ///
    /// # Errors
    ///
    /// An option that cannot be used; say which and why.
    fn new(options: &Options) -> Result<Self, Error>;

    /// Sees one record: change it, and keep it, drop it, replace it with others, or fail
    /// it. [`Record::tag`] is the tag of its batch.
    fn process(&mut self, record: &mut Record) -> Verdict;
}

/// Exports a [`Filter`] as the component's implementation of the filter world.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        struct __RustsinkFilter;

        impl $crate::bindings::filter::Guest for __RustsinkFilter {
            fn describe() -> $crate::Description {
                <$filter as $crate::Filter>::describe()
            }

            fn init(options: Vec<(String, String)>) -> Result<(), $crate::Error> {
                $crate::__private::init_filter::<$filter>(options)
            }

            fn process(
                tag: String,
                events: Vec<u8>,
            ) -> Result<$crate::bindings::filter::Processed, $crate::Error> {
                $crate::__private::process_filter(&tag, &events)
            }
        }

        $crate::bindings::filter::export_filter_world!(__RustsinkFilter);
    };
}

type Process = Box<dyn FnMut(&mut Record) -> Verdict>;

thread_local! {
    /// The filter built by `init` (a component runs on one thread).
    static FILTER: RefCell<Option<Process>> = const { RefCell::new(None) };
}

/// Builds the filter `init` asks for; used by [`export_filter!`](crate::export_filter).
#[doc(hidden)]
pub fn init<F: Filter>(options: Vec<(String, String)>) -> Result<(), Error> {
    crate::report_panics_in_one_line();
    let mut filter = F::new(&Options::new(options))?;
    FILTER.with(|slot| {
        *slot.borrow_mut() = Some(Box::new(move |record| filter.process(record)));
    });
    Ok(())
}

/// Runs a batch of `tag` through the filter; used by
/// [`export_filter!`](crate::export_filter).
#[doc(hidden)]
pub fn process(tag: &str, events: &[u8]) -> Result<Processed, Error> {
    FILTER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let process = slot
            .as_mut()
            .ok_or_else(|| Error::fatal("process was called before init"))?;
        batch::filter(tag, events, process)
    })
}
