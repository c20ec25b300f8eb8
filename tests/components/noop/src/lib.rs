//! A filter that returns each batch untouched, written on the bindings alone: what the
//! component boundary costs, without the SDK's decoding. It is of contract 0.1, whose
//! filters answer with a batch: one of 0.2 answers with an outcome per event, which
//! takes decoding to count them.

wit_bindgen::generate!({
    path: "../../../wit/released/0.1.0",
    world: "filter",
});

struct Noop;

impl Guest for Noop {
    fn describe() -> Description {
        Description {
            name: "noop".into(),
            summary: "returns each batch as it came".into(),
            options: Vec::new(),
        }
    }

    fn init(_options: Vec<(String, String)>) -> Result<(), Error> {
        Ok(())
    }

    fn process(events: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(events)
    }
}

export!(Noop);
