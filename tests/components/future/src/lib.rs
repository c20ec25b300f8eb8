//! A filter of `rustsink:plugin@0.3.0`, a contract version this host does not speak.

wit_bindgen::generate!({
    inline: r#"
        package rustsink:plugin@0.3.0;

        interface host {
            log: func(message: string);
        }

        world filter {
            import host;
            export process: func(events: list<u8>) -> list<u8>;
        }
    "#,
    world: "filter",
});

struct Future;

impl Guest for Future {
    fn process(events: Vec<u8>) -> Vec<u8> {
        rustsink::plugin::host::log("from the future");
        events
    }
}

export!(Future);
