//! Any bytes as a journal file: opening it never panics, never allocates without bound,
//! and what it reads folds into a state; the file it leaves opens again with the same
//! records and no damage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustsink::store::journal::{Journal, fold};

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::write(&path, bytes).unwrap();
    let Ok((_, records, _)) = Journal::open(&path, true) else {
        return;
    };
    let state = fold(records.clone());
    let (_, again, damage) = Journal::open(&path, true).expect("a journal it wrote opens");
    assert_eq!(damage, None, "a journal it wrote is whole");
    assert_eq!(fold(again), state);
});
