//! A `serde` deserializer over a parsed table that accepts only well-formed values.
//!
//! `serde_json::Value`'s own deserializer lets a derived struct be read from a sequence
//! (`loop = [1, 2]` became `concurrency = 1, limit = 2`). [`Strict`] reads a struct only
//! from a table and otherwise behaves the same, at every depth, so the one
//! [`decode`](super::decode) path refuses what a user could not have meant.

use serde::de::value::{MapDeserializer, SeqDeserializer, StringDeserializer};
use serde::de::{self, Error as _, IntoDeserializer, Unexpected};
use serde_json::{Map, Value};

/// Errors of a [`Strict`] deserialization: a message, as serde builds it.
pub(crate) type Error = de::value::Error;

/// A value that deserializes strictly; see the module docs.
pub(crate) struct Strict(pub(crate) Value);

impl<'de> IntoDeserializer<'de, Error> for Strict {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

fn seq<'de, V: de::Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let mut items = SeqDeserializer::new(items.into_iter().map(Strict));
    let value = visitor.visit_seq(&mut items)?;
    items.end()?;
    Ok(value)
}

fn map<'de, V: de::Visitor<'de>>(table: Map<String, Value>, visitor: V) -> Result<V::Value, Error> {
    let mut entries = MapDeserializer::new(table.into_iter().map(|(k, v)| (k, Strict(v))));
    let value = visitor.visit_map(&mut entries)?;
    entries.end()?;
    Ok(value)
}

impl<'de> de::Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(Error::custom(format!("unreadable number {n}"))),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => seq(items, visitor),
            Value::Object(table) => map(table, visitor),
        }
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            value => visitor.visit_some(Strict(value)),
        }
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A struct comes from a table only: never from a sequence of its fields in order.
    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(table) => map(table, visitor),
            Value::Array(_) => Err(Error::custom(format!(
                "invalid type: array, expected a table with the keys {}",
                fields
                    .iter()
                    .map(|field| format!("`{field}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            other => Strict(other).deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(variant) => {
                let variant: StringDeserializer<Error> = variant.into_deserializer();
                visitor.visit_enum(variant)
            }
            Value::Object(table) if table.len() == 1 => {
                let (variant, content) = table.into_iter().next().expect("one entry");
                visitor.visit_enum(Variant { variant, content })
            }
            Value::Object(_) => Err(Error::invalid_value(
                Unexpected::Map,
                &"a string or a table with exactly one key",
            )),
            other => Strict(other).deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// An enum written as a one-key table: `{ variant = content }`.
struct Variant {
    variant: String,
    content: Value,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Strict;

    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Strict), Error> {
        let name: StringDeserializer<Error> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, Strict(self.content)))
    }
}

impl<'de> de::VariantAccess<'de> for Strict {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
        b: Option<u64>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Sized(u32),
        Shaped { side: u8 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        kinds: Vec<Kind>,
        pair: (u8, String),
    }

    fn strict<T: de::DeserializeOwned>(value: Value) -> Result<T, Error> {
        T::deserialize(Strict(value))
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let value = json!({
            "inner": { "a": 1 },
            "list": [{ "a": 2, "b": 3 }],
            "kinds": ["plain", { "sized": 4 }, { "shaped": { "side": 5 } }],
            "pair": [6, "x"],
        });
        let expected: Outer = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(strict::<Outer>(value).unwrap(), expected);
    }

    #[test]
    fn refuses_a_struct_written_as_an_array_at_any_depth() {
        let err = strict::<Inner>(json!([1, 2])).unwrap_err().to_string();
        assert!(err.contains("invalid type: array"), "{err}");
        assert!(err.contains("`a`, `b`"), "{err}");
        let nested =
            json!({ "inner": { "a": 1 }, "list": [[2, 3]], "kinds": [], "pair": [1, "x"] });
        assert!(strict::<Outer>(nested).is_err());
        let variant = json!({ "inner": { "a": 1 }, "list": [], "kinds": [{ "shaped": [5] }], "pair": [1, "x"] });
        assert!(strict::<Outer>(variant).is_err());
    }

    #[test]
    fn refuses_extra_tuple_elements_and_numbers_out_of_range() {
        assert!(strict::<(u8, u8)>(json!([1, 2, 3])).is_err());
        assert!(strict::<u8>(json!(256)).is_err());
        assert!(strict::<u32>(json!(-1)).is_err());
        assert_eq!(strict::<f64>(json!(2)).unwrap(), 2.0);
    }
}
