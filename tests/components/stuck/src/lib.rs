//! A filter whose `describe` never returns: what every command that loads a component
//! must stop at its deadline.

use rustsink_sdk::{Description, Error, Filter, Options, Record, Verdict};

struct Stuck;

impl Filter for Stuck {
    fn describe() -> Description {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn new(_: &Options) -> Result<Self, Error> {
        Ok(Stuck)
    }

    fn process(&mut self, _: &mut Record) -> Verdict {
        Verdict::Keep
    }
}

rustsink_sdk::export_filter!(Stuck);
