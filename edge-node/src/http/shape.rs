//! Objects stay objects: serde's derived `Deserialize` also accepts a JSON *array* for a
//! struct and maps it onto the fields by position, so `"consent": [true]` would turn e-mail
//! consent on. Before a body is deserialized, its nested values are walked along the request
//! type's own OpenAPI schema (the declaration that documents it) and an array where the schema
//! expects an object is refused, naming the field.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayItems, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use super::error::ApiError;

type Defs = HashMap<String, RefOr<Schema>>;

/// A request type's schema and the schemas it references, built once per type.
type Shape = Arc<(RefOr<Schema>, Defs)>;

fn shape_of<T: ToSchema>() -> Shape {
    static SHAPES: OnceLock<RwLock<HashMap<&'static str, Shape>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Default::default);
    let key = std::any::type_name::<T>();
    if let Some(shape) = shapes.read().unwrap_or_else(PoisonError::into_inner).get(key) {
        return shape.clone();
    }
    let mut named = Vec::new();
    T::schemas(&mut named);
    let shape: Shape = Arc::new((T::schema(), named.into_iter().collect()));
    shapes.write().unwrap_or_else(PoisonError::into_inner).insert(key, shape.clone());
    shape
}

/// Refuses an array wherever `T`'s schema expects an object (at any depth).
pub fn check<T: ToSchema>(body: &Value) -> Result<(), ApiError> {
    let shape = shape_of::<T>();
    walk(body, &shape.0, &shape.1, "", 0)
}

fn resolve<'a>(schema: &'a RefOr<Schema>, defs: &'a Defs) -> Option<&'a Schema> {
    match schema {
        RefOr::T(s) => Some(s),
        RefOr::Ref(r) => {
            let name = r.ref_location.rsplit('/').next()?;
            match defs.get(name)? {
                RefOr::T(s) => Some(s),
                RefOr::Ref(_) => None,
            }
        }
    }
}

fn is_object(schema: &Schema) -> bool {
    match schema {
        Schema::Object(o) => {
            matches!(o.schema_type, SchemaType::Type(Type::Object)) || !o.properties.is_empty()
        }
        _ => false,
    }
}

fn allows_array(schema: &Schema, defs: &Defs) -> bool {
    match schema {
        Schema::Array(_) => true,
        Schema::Object(o) => match &o.schema_type {
            SchemaType::Type(t) => matches!(t, Type::Array),
            SchemaType::Array(types) => types.contains(&Type::Array),
            SchemaType::AnyValue => !is_object(schema),
        },
        Schema::OneOf(one) => {
            one.items.iter().any(|s| resolve(s, defs).is_none_or(|s| allows_array(s, defs)))
        }
        Schema::AnyOf(any) => {
            any.items.iter().any(|s| resolve(s, defs).is_none_or(|s| allows_array(s, defs)))
        }
        _ => true,
    }
}

fn walk(
    value: &Value,
    schema: &RefOr<Schema>,
    defs: &Defs,
    path: &str,
    depth: usize,
) -> Result<(), ApiError> {
    let Some(schema) = resolve(schema, defs) else { return Ok(()) };
    if depth > 16 {
        return Ok(());
    }
    let field =
        |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    match (value, schema) {
        (Value::Array(_), s) if !allows_array(s, defs) => Err(ApiError::invalid_field(
            if path.is_empty() { "body" } else { path },
            "expected an object, not a list",
        )),
        (Value::Object(map), Schema::Object(o)) => {
            for (name, v) in map {
                if let Some(p) = o.properties.get(name) {
                    walk(v, p, defs, &field(name), depth + 1)?;
                }
            }
            Ok(())
        }
        (Value::Array(items), Schema::Array(a)) => match &a.items {
            ArrayItems::RefOrSchema(item) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, item, defs, &format!("{path}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            ArrayItems::False => Ok(()),
        },
        (v, Schema::OneOf(one)) => {
            // The alternative that fits the value's kind (`T | null` is a one-of).
            for alt in &one.items {
                if let Some(s) = resolve(alt, defs)
                    && (is_object(s) && v.is_object()
                        || matches!(s, Schema::Array(_)) && v.is_array())
                {
                    return walk(v, alt, defs, path, depth + 1);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use utoipa::ToSchema;

    use super::*;

    #[derive(Debug, Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Consent {
        email: Option<bool>,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Room {
        adults: i64,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[allow(dead_code)]
    struct Body {
        consent: Option<Consent>,
        rooms: Option<Vec<Room>>,
        tags: Vec<String>,
    }

    #[test]
    fn an_array_where_an_object_belongs_is_refused_by_its_field() {
        let err = check::<Body>(&serde_json::json!({ "consent": [true], "tags": [] }))
            .expect_err("array");
        assert!(format!("{err}").starts_with("422 validation_failed: consent:"), "{err}");
        let err =
            check::<Body>(&serde_json::json!({ "rooms": [[2]], "tags": [] })).expect_err("array");
        assert!(format!("{err}").starts_with("422 validation_failed: rooms[0]:"), "{err}");
        let fine = serde_json::json!({ "consent": { "email": true }, "rooms": [{ "adults": 2 }], "tags": ["a"] });
        check::<Body>(&fine).expect("objects and real lists pass");
        check::<Body>(&serde_json::json!({ "consent": null, "tags": [] })).expect("null passes");
    }
}
