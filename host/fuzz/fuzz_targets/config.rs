//! Any text as a Fluent Bit configuration file: reading it and every rustsink output in
//! it never panics; an error names a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustsink::config::Config;
use rustsink_cli::fluent_conf;

fuzz_target!(|text: &str| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fluent-bit.conf");
    std::fs::write(&path, text).unwrap();
    let Ok(sections) = fluent_conf::read(&path) else {
        return;
    };
    for section in &sections {
        let read = Config::from_lookup(|key| section.entries.get(key).map(str::to_owned));
        if let Err(error) = read {
            assert!(error.to_string().contains("key '"), "{error}");
        }
    }
});
