//! A span recorded by hand, for what the engine does not observe itself (the runner's task
//! run): it ends, and goes to its sink, when dropped.

use ergon_core::observe::Scope;

use super::clock::Tick;
use super::ids::SpanIds;
use super::record::{Fields, Parent, SpanRecord};
use super::sink::Spans;

/// A span being recorded; it ends, and goes to its sink, when dropped.
///
/// # Examples
///
/// ```
/// use ergon_telemetry::{ActiveSpan, Fields, Parent, SpanIds, Spans};
/// # use ergon_telemetry::{SpanBatch, SpanSink};
/// # struct Discard; impl SpanSink for Discard { fn accept(&self, b: &mut SpanBatch) { b.clear() } }
/// let spans = Spans::new(Discard);
/// let run = ActiveSpan::start(&spans, "task_run", SpanIds::new_trace(), Parent::Root, Fields::Attributes(vec![]));
/// let scope = run.scope(); // make it the parent of the loops it runs: ergon_core::observe::InScope
/// # let _ = scope;
/// ```
#[derive(Debug)]
pub struct ActiveSpan {
    spans: Spans,
    record: SpanRecord,
}

impl ActiveSpan {
    /// Starts a span named `name` with `ids` under `parent`, now.
    pub fn start(
        spans: &Spans,
        name: &'static str,
        ids: SpanIds,
        parent: Parent,
        fields: Fields,
    ) -> ActiveSpan {
        let start = Tick::now();
        ActiveSpan {
            spans: spans.clone(),
            record: SpanRecord {
                ids,
                parent,
                name,
                start,
                end: start,
                fields,
                error: None,
            },
        }
    }

    /// Its ids.
    pub fn ids(&self) -> &SpanIds {
        &self.record.ids
    }

    /// It, as the engine's current scope for work done under it
    /// ([`InScope`](ergon_core::observe::InScope)).
    pub fn scope(&self) -> Scope {
        self.record.ids.scope(self.record.start, [0, 0])
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        let fields = std::mem::replace(&mut self.record.fields, Fields::Attributes(Vec::new()));
        self.spans.record(SpanRecord {
            fields,
            end: Tick::now(),
            ..self.record
        });
    }
}
