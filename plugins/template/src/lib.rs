//! A filter to start from: removes the fields named in its `fields` option.
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then use
//! `target/wasm32-wasip2/release/<crate name>.wasm`:
//!
//! ```text
//! [OUTPUT]
//!     Name             rustsink
//!     filter.1         /path/to/template.wasm
//!     filter.1.fields  password,token
//! ```
//!
//! Try it without Fluent Bit: `rustsink filter <crate name>.wasm --option fields=token
//! --input records.ndjson`, and test it natively with `cargo test`.

use rustsink_sdk::{Description, Error, Filter, OptionSpec, Options, Record, Verdict};

struct RemoveFields {
    fields: Vec<String>,
}

impl Filter for RemoveFields {
    /// Tell rustsink who you are and which `filter.N.<option>` keys you read.
    fn describe() -> Description {
        Description {
            name: "remove-fields".into(),
            summary: "Removes the named fields from every record".into(),
            options: vec![OptionSpec::required(
                "fields",
                "the fields to remove, comma-separated",
            )],
        }
    }

    /// Check the options once; an error stops Fluent Bit's start with your message.
    fn new(options: &Options) -> Result<Self, Error> {
        let fields: Vec<String> = options
            .require("fields")?
            .split(',')
            .map(|field| field.trim().to_owned())
            .filter(|field| !field.is_empty())
            .collect();
        if fields.is_empty() {
            return Err(Error::fatal("option 'fields': name at least one field"));
        }
        Ok(RemoveFields { fields })
    }

    /// Called for every record: change it, then keep it, drop it, replace it, or fail it
    /// (`Verdict::Fail`: the user's `on_error` decides about that record alone).
    /// `record.tag()` is its batch's tag.
    fn process(&mut self, record: &mut Record) -> Verdict {
        for field in &self.fields {
            record.remove(field);
        }
        Verdict::Keep
    }
}

rustsink_sdk::export_filter!(RemoveFields);

// `cargo test` runs these natively: no Fluent Bit, no WebAssembly.
#[cfg(test)]
mod tests {
    use rustsink_sdk::testing::{records_from_json_lines, run_filter};

    use super::*;

    #[test]
    fn the_named_fields_are_removed_and_the_rest_kept() {
        let records =
            records_from_json_lines("{\"user\":\"ann\",\"token\":\"t0k\",\"password\":\"pw\"}")
                .unwrap();
        let out = run_filter::<RemoveFields>(&[("fields", "password, token")], records).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to_json(None), "{\"user\":\"ann\"}");
    }

    #[test]
    fn no_field_named_is_an_error_that_says_so() {
        let error = run_filter::<RemoveFields>(&[("fields", " , ")], vec![]).unwrap_err();
        assert!(
            error.message.contains("option 'fields'"),
            "{}",
            error.message
        );
        assert!(run_filter::<RemoveFields>(&[], vec![]).is_err());
    }
}
