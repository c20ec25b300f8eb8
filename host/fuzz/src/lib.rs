//! What the fuzz targets share.

/// Panics unless `line` is one JSON value, however deeply it nests: records may nest 256
/// levels, past serde_json's default limit of 128.
pub fn assert_json(line: &[u8]) {
    let mut json = serde_json::Deserializer::from_slice(line);
    json.disable_recursion_limit();
    serde::Deserialize::deserialize(&mut json)
        .map(|_: serde::de::IgnoredAny| ())
        .expect("valid JSON");
}
