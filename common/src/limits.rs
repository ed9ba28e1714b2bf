//! Limits on what clients send, the same on every surface (REST, gRPC, grpc-web).

use serde_json::Value;

/// Deepest nesting of arrays and objects a JSON value (a `json` field, a record) may
/// have. Records travel as `google.protobuf.Struct`, where each level of an object costs
/// three protobuf message levels (Struct, map entry, Value); 32 keeps the deepest record
/// within prost's decode recursion limit of 100.
pub const MAX_JSON_DEPTH: usize = 32;

/// The largest integer a double holds exactly. Every number in a record travels as one
/// (a `Struct` number, a JavaScript number), so integers past it travel as strings.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Whether `n` is within ±[`MAX_SAFE_INTEGER`] (`i64::MIN` included, without overflow).
pub fn is_safe_integer(n: i64) -> bool {
    n.unsigned_abs() <= MAX_SAFE_INTEGER.unsigned_abs()
}

/// How many levels of arrays and objects `value` nests: `1` is 0, `[1]` is 1.
/// Iterative, so hostile input cannot exhaust the stack here.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// The field error for a value nested past [`MAX_JSON_DEPTH`].
pub fn too_deep() -> String {
    format!("nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_levels_of_arrays_and_objects() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!([])), 1);
        assert_eq!(json_depth(&serde_json::json!({ "a": [1, { "b": [] }] })), 4);
        let mut deep = serde_json::json!(0);
        for _ in 0..100 {
            deep = serde_json::json!([deep]);
        }
        assert_eq!(json_depth(&deep), 100);
    }
}
