//! A sink that misbehaves as `behaviour` says when a batch holds a record whose `log`
//! contains `poison`, and otherwise takes the batch (logging the `n` of each record):
//! - `loop`: never returns;
//! - `memory`: allocates without end;
//! - `trap`: panics;
//! - `busy`: answers with a retryable error;
//! - `broken`: answers with a fatal error.

use rustsink_sdk::{Description, Error, OptionSpec, Options, Record, Sink};

struct HostileSink {
    behaviour: String,
    hoard: Vec<Vec<u8>>,
}

impl Sink for HostileSink {
    fn describe() -> Description {
        Description {
            name: "hostile-sink".into(),
            summary: "misbehaves on purpose".into(),
            options: vec![OptionSpec::required(
                "behaviour",
                "loop, memory, trap, busy, broken",
            )],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        Ok(HostileSink {
            behaviour: options.require("behaviour")?.to_owned(),
            hoard: Vec::new(),
        })
    }

    fn deliver(&mut self, tag: &str, records: Vec<Record>) -> Result<(), Error> {
        let poisoned = records
            .iter()
            .any(|r| r.get_str("log").is_some_and(|log| log.contains("poison")));
        if poisoned {
            match self.behaviour.as_str() {
                "loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "memory" => loop {
                    self.hoard.push(vec![1; 1 << 20]);
                },
                "trap" => panic!("a batch it cannot stand"),
                "busy" => return Err(Error::retryable("busy, try later")),
                "broken" => return Err(Error::fatal("this batch can never be taken")),
                _ => {}
            }
        }
        let numbers: Vec<String> = records
            .iter()
            .filter_map(|r| r.get("n").map(ToString::to_string))
            .collect();
        rustsink_sdk::info!("took {tag}: {}", numbers.join(","));
        Ok(())
    }
}

rustsink_sdk::export_sink!(HostileSink);
