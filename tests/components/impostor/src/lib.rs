//! A filter of a contract changed without a new version number: it calls itself
//! `rustsink:plugin@0.2.0`, but its `host.log` and `process` are not those of 0.2.0.

wit_bindgen::generate!({
    inline: r#"
        package rustsink:plugin@0.2.0;

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

struct Impostor;

impl Guest for Impostor {
    fn process(events: Vec<u8>) -> Vec<u8> {
        rustsink::plugin::host::log("an impostor");
        events
    }
}

export!(Impostor);
