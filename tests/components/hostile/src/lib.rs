//! A filter that misbehaves as `behaviour` says, on records whose `log` contains
//! `poison` (others pass untouched):
//! - `loop`: never returns;
//! - `memory`: allocates without end;
//! - `trap`: panics (a trap, mid-batch);
//! - `fail`: fails the record (`Verdict::Fail`), with the reason "poison";
//! - `inflate`: turns each record into one with a field 100 times its size;
//! - `files`, `env`, `clock`, `network`, `http`: tries to read them (`http`: a request
//!   through wasi:http, which a filter imports like a sink), and writes what it got into
//!   the record's `got` field;
//! - `chatty`: prints 8 KiB for every record, poison or not;
//! - `sleep`: sleeps for an hour, and writes how long it slept by its own clock into
//!   `got`.
//!
//! With option `mark` set, every other record it keeps gets the field `marked` with that
//! value: what shows that a record went through the filter.

use rustsink_sdk::{Description, Error, Filter, OptionSpec, Options, Record, Verdict};

struct Hostile {
    behaviour: String,
    mark: Option<String>,
    hoard: Vec<Vec<u8>>,
}

impl Filter for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            summary: "misbehaves on purpose".into(),
            options: vec![
                OptionSpec::required(
                    "behaviour",
                    "loop, memory, trap, fail, inflate, files, env, clock, network, http, \
                     chatty, sleep",
                ),
                OptionSpec {
                    name: "mark".into(),
                    description: "a value for the field `marked` of the other records".into(),
                    default_value: None,
                    required: false,
                },
            ],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        Ok(Hostile {
            behaviour: options.require("behaviour")?.to_owned(),
            mark: options.get("mark").map(str::to_owned),
            hoard: Vec::new(),
        })
    }

    fn process(&mut self, record: &mut Record) -> Verdict {
        if self.behaviour == "chatty" {
            for line in 0..80 {
                println!("chatty line {line}: {}", "y".repeat(90));
            }
            return Verdict::Keep;
        }
        if !record
            .get_str("log")
            .is_some_and(|log| log.contains("poison"))
        {
            if let Some(mark) = &self.mark {
                record.set("marked", mark.as_str());
            }
            return Verdict::Keep;
        }
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
            "trap" => panic!("a record it cannot stand"),
            "fail" => return Verdict::Fail("poison".into()),
            "inflate" => {
                let size = record.get_str("log").map_or(0, str::len) * 100;
                record.set("inflated", "x".repeat(size));
            }
            "files" => {
                let got = std::fs::read_to_string("/etc/passwd")
                    .unwrap_or_else(|e| format!("refused: {e}"));
                record.set("got", got);
            }
            "env" => {
                let got = std::env::vars()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>();
                record.set("got", format!("{got:?}"));
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                record.set("got", now);
            }
            "sleep" => {
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(3600));
                record.set("got", started.elapsed().as_secs());
            }
            "network" => {
                let got = std::net::TcpStream::connect("127.0.0.1:1")
                    .map_or_else(|e| format!("refused: {e}"), |_| "connected".to_owned());
                record.set("got", got);
            }
            "http" => {
                let url = rustsink_sdk::http::Url::parse("http://127.0.0.1:9/").unwrap();
                let got = rustsink_sdk::http::post(&url, &[], b"poison").map_or_else(
                    |e| format!("refused: {e}"),
                    |r| format!("answered {}", r.status),
                );
                record.set("got", got);
            }
            _ => {}
        }
        Verdict::Keep
    }
}

rustsink_sdk::export_filter!(Hostile);
