//! A run's shape: its definition decoded, its plan validated (ordered), and the JSON it
//! is stored as — made once and shared by every commit that advances the run.
//!
//! Each commit that advances a run reads its row back. Decoding the definition (the
//! plan and the input: most of the row), validating the plan again and encoding it to
//! write the row back cost more than the rest of the transition (measured in the
//! `dag_runs_local` bench), yet the definition only changes when the run is extended.
//! So the thread that advances runs (the SQLite journal's writer) keeps the shapes it
//! made last, keyed by their stored text: the key is the content, not the run, so a
//! definition another process wrote (an extension) is decoded afresh, and two runs
//! stored alike share one shape. The cache holds at most [`CACHED_BYTES`] of stored
//! text; when a shape would pass that, it starts over.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use ergon_core::journal::dag::ValidPlan;

use super::revalidate;
use super::state::Definition;

/// The most stored text the cache of one thread holds (the decoded shapes take about
/// as much again).
const CACHED_BYTES: usize = 8 * 1024 * 1024;

/// A definition with its validated plan and its stored JSON.
pub(crate) struct Shape {
    pub definition: Definition,
    pub plan: ValidPlan,
    /// The definition as stored.
    pub json: String,
}

/// The shapes this thread made, by stored text, and the bytes of text held.
#[derive(Default)]
struct Cache {
    shapes: HashMap<String, Arc<Shape>>,
    bytes: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

impl Shape {
    /// The shape of `definition` (a run starting, or extended).
    ///
    /// # Errors
    ///
    /// Its plan is not valid.
    pub fn of(definition: Definition) -> Result<Arc<Self>, String> {
        let plan = revalidate(&definition.plan)?;
        let json = serde_json::to_string(&definition).map_err(|err| err.to_string())?;
        Ok(remembered(Self {
            definition,
            plan,
            json,
        }))
    }

    /// The shape stored as `json` by run `run_id`: the one made before, else decoded.
    ///
    /// # Errors
    ///
    /// `json` does not decode, or its plan is not valid.
    pub fn stored(run_id: &str, json: &str) -> Result<Arc<Self>, String> {
        if let Some(shape) = CACHE.with_borrow(|cache| cache.shapes.get(json).cloned()) {
            return Ok(shape);
        }
        let definition: Definition = serde_json::from_str(json)
            .map_err(|err| format!("run {run_id}: its stored definition does not decode: {err}"))?;
        let plan = revalidate(&definition.plan)?;
        Ok(remembered(Self {
            definition,
            plan,
            json: json.to_owned(),
        }))
    }
}

/// `shape`, shared and kept for the next commits of this thread.
fn remembered(shape: Shape) -> Arc<Shape> {
    let shape = Arc::new(shape);
    CACHE.with_borrow_mut(|cache| {
        if cache.bytes + shape.json.len() > CACHED_BYTES {
            *cache = Cache::default();
        }
        if cache
            .shapes
            .insert(shape.json.clone(), shape.clone())
            .is_none()
        {
            cache.bytes += shape.json.len();
        }
    });
    shape
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ergon_core::journal::dag::{PlannedNode, RunPlan};
    use serde_json::json;

    use super::{Definition, Shape};

    fn definition(input: serde_json::Value) -> Definition {
        Definition {
            workflow: "w".into(),
            plan: RunPlan::new(vec![
                PlannedNode::new("a", "t"),
                PlannedNode::new("b", "t").after(["a"]),
            ]),
            input,
            on_complete: None,
            max_parallel: None,
        }
    }

    #[test]
    fn a_stored_definition_is_decoded_once_and_shared_by_content() {
        let made = Shape::of(definition(json!({"n": 1}))).unwrap();
        let read = Shape::stored("r1", &made.json).unwrap();
        assert!(Arc::ptr_eq(&made, &read), "the shape made when stored");
        assert_eq!(read.plan.nodes().len(), 2);
        let other = Shape::of(definition(json!({"n": 2}))).unwrap();
        assert!(!Arc::ptr_eq(&made, &other), "another input, another shape");
        // Text written elsewhere (another process extended the run) is decoded afresh.
        let json = made.json.replace(r#""n":1"#, r#""n":3"#);
        let fresh = Shape::stored("r1", &json).unwrap();
        assert_eq!(fresh.definition.input, json!({"n": 3}));
        let Err(err) = Shape::stored("r9", "{") else {
            panic!("a definition that does not decode");
        };
        assert!(
            err.starts_with("run r9: its stored definition does not decode"),
            "{err}"
        );
    }
}
