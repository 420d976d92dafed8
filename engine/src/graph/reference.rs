//! Input references: where a node's input fields come from.
//!
//! `$item` / `$item.FIELD[.SUB…]` take (part of) the item; `NODE` /
//! `NODE.FIELD[.SUB…]` take (part of) another node's output, which makes an
//! edge of the DAG.

use serde_json::Value;

/// Top-level fields every item document has (see [`crate::data::Item`]).
pub const ITEM_FIELDS: &[&str] = &["item_id", "user", "history", "candidate", "task"];

/// A parsed input reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRef {
    /// The item document, optionally a path into it.
    Item(Vec<String>),
    /// Another node's output, optionally a path into it.
    Node {
        /// The node producing the value.
        node: String,
        /// Path into its output document.
        path: Vec<String>,
    },
}

impl InputRef {
    /// Parses a reference; errors say what is malformed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split('.');
        let head = parts.next().unwrap_or_default();
        let path: Vec<String> = parts.map(str::to_string).collect();
        if head.is_empty() || path.iter().any(String::is_empty) {
            return Err(format!("`{text}` is not a reference (expected `$item.FIELD`, `NODE` or `NODE.FIELD`)"));
        }
        if let Some(rest) = head.strip_prefix('$') {
            if rest != "item" {
                return Err(format!("`{text}`: unknown variable `${rest}` (only `$item` exists)"));
            }
            return Ok(InputRef::Item(path));
        }
        Ok(InputRef::Node { node: head.to_string(), path })
    }

    /// Picks the referenced value out of a document; `None` when a field on
    /// the path is absent.
    pub fn select<'a>(path: &[String], document: &'a Value) -> Option<&'a Value> {
        path.iter().try_fold(document, |value, key| match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

impl std::fmt::Display for InputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (head, path) = match self {
            InputRef::Item(path) => ("$item", path),
            InputRef::Node { node, path } => (node.as_str(), path),
        };
        write!(f, "{head}")?;
        for part in path {
            write!(f, ".{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_item_and_node_references() {
        assert_eq!(InputRef::parse("$item.user").unwrap(), InputRef::Item(vec!["user".into()]));
        assert_eq!(InputRef::parse("$item").unwrap(), InputRef::Item(vec![]));
        assert_eq!(
            InputRef::parse("profile.summary").unwrap(),
            InputRef::Node { node: "profile".into(), path: vec!["summary".into()] }
        );
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(InputRef::parse("").is_err());
        assert!(InputRef::parse("a..b").is_err());
        assert!(InputRef::parse("$items.user").unwrap_err().contains("$items"));
    }

    #[test]
    fn selects_nested_values() {
        let doc = json!({"a": {"b": [10, 20]}});
        let path: Vec<String> = vec!["a".into(), "b".into(), "1".into()];
        assert_eq!(InputRef::select(&path, &doc), Some(&json!(20)));
        assert_eq!(InputRef::select(&["x".to_string()], &doc), None);
    }
}
