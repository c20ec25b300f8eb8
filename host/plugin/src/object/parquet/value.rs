//! A record's field values as its JSON line writes them, read without building value trees:
//! objects and arrays stay the text they are, so a `json` column holds them as written.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean(bool),
    /// An integer within i64's range.
    Int(i64),
    /// Any other number: a fraction or an exponent (an integer beyond i64 is text).
    Float(f64),
    /// A string, unescaped.
    String(String),
    /// An object, an array, or an integer beyond i64: its JSON text.
    Text(&'a str),
}

impl<'a> FieldValue<'a> {
    /// Reads the JSON text of one value, which the line's parser found valid.
    pub fn read(json: &'a str) -> FieldValue<'a> {
        match json.as_bytes().first() {
            Some(b'n') => FieldValue::Null,
            Some(b't') => FieldValue::Boolean(true),
            Some(b'f') => FieldValue::Boolean(false),
            Some(b'"') => {
                serde_json::from_str(json).map_or(FieldValue::Text(json), FieldValue::String)
            }
            Some(b'{' | b'[') | None => FieldValue::Text(json),
            Some(_) if json.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => json
                .parse()
                .map_or(FieldValue::Text(json), FieldValue::Float),
            Some(_) => json.parse().map_or(FieldValue::Text(json), FieldValue::Int),
        }
    }
}

/// A record's fields, in the order its line gives them, each value as its JSON text.
#[derive(Debug)]
pub struct Fields<'a>(pub Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields<'de>, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_by_kind_and_nested_ones_kept_as_written() {
        let line = r#"{"a":null,"b":true,"c":-7,"d":2.5e3,"e":"x\"y","f":{"z":1,"a":[2]},"g":18446744073709551615}"#;
        let fields: Fields<'_> = serde_json::from_str(line).unwrap();
        let values: Vec<_> = fields
            .0
            .iter()
            .map(|(name, raw)| (name.as_str(), FieldValue::read(raw.get())))
            .collect();
        assert_eq!(
            values,
            [
                ("a", FieldValue::Null),
                ("b", FieldValue::Boolean(true)),
                ("c", FieldValue::Int(-7)),
                ("d", FieldValue::Float(2500.0)),
                ("e", FieldValue::String("x\"y".to_owned())),
                ("f", FieldValue::Text(r#"{"z":1,"a":[2]}"#)),
                ("g", FieldValue::Text("18446744073709551615")),
            ]
        );
    }
}
