//! Where finished spans go: a [`SpanSink`] (the runner's exporter), reached through
//! [`Spans`]. [`Spans::layer`] puts them in a `tracing` subscriber, with the
//! [`SpanObserver`](crate::SpanObserver) that records the engine's spans into them — so a
//! test's or a run's subscriber decides, like for log lines.
//!
//! On the hot path a span is not handed to the sink one by one: while a consume loop is
//! polled ([`Spans::poll_started`] .. [`Spans::poll_ended`]), its spans are staged in a
//! thread-local buffer and given to the sink in one call when the poll returns (one lock
//! per poll rather than per span).

use std::cell::RefCell;
use std::sync::Arc;

use ergon_core::observe::ObserverLayer;
use tracing::Subscriber;
use tracing_subscriber::Layer;

use opentelemetry::KeyValue;

use super::record::{Fields, SpanRecord};
use super::step::StepRecord;
use crate::observer::SpanObserver;

/// Takes finished spans. Called from the engine's threads: it must not block for long.
pub trait SpanSink: Send + Sync + 'static {
    /// Takes the spans in `batch`, leaving it empty: best by swapping it whole for an
    /// empty one with room (no span is copied, no memory freed on this thread).
    fn accept(&self, batch: &mut SpanBatch);
}

/// Finished spans on their way to a sink: steps apart, in their compact form, with the
/// shared attributes of the loops their transactions belong to.
#[derive(Debug, Default)]
pub struct SpanBatch {
    /// Every span but steps.
    pub spans: Vec<SpanRecord>,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// The shared transaction attributes of each loop named by a transaction in `spans`
    /// ([`Fields::Transaction`](crate::Fields::Transaction)), by the loop span's id.
    pub loops: Vec<(u64, Arc<[KeyValue]>)>,
}

impl SpanBatch {
    /// An empty batch, with no room yet.
    pub const fn new() -> SpanBatch {
        SpanBatch {
            spans: Vec::new(),
            steps: Vec::new(),
            loops: Vec::new(),
        }
    }

    /// The attributes the transactions of the loop `loop_id` share (none when the batch
    /// does not carry them).
    pub fn shared(&self, loop_id: u64) -> &[KeyValue] {
        self.loops
            .iter()
            .find(|(id, _)| *id == loop_id)
            .map_or(&[], |(_, shared)| shared)
    }

    /// `span`'s attributes ([`SpanRecord::attributes`], a transaction's with its loop's).
    pub fn attributes(&self, span: &SpanRecord) -> Vec<KeyValue> {
        let shared = match &span.fields {
            Fields::Transaction { loop_id, .. } => self.shared(*loop_id),
            _ => &[],
        };
        span.attributes(shared)
    }

    /// Spans in the batch.
    pub fn len(&self) -> usize {
        self.spans.len() + self.steps.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.steps.is_empty()
    }

    /// Drops them all, keeping the room.
    pub fn clear(&mut self) {
        self.spans.clear();
        self.steps.clear();
        self.loops.clear();
    }
}

/// A handle on a [`SpanSink`]: cheap to clone.
#[derive(Clone)]
pub struct Spans(Arc<dyn SpanSink>);

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spans")
    }
}

/// Spans staged before they are handed on even though the poll goes on.
const STAGE_LIMIT: usize = 256;

/// The spans of the loop being polled on this thread, and where they go.
struct Stage {
    /// The sink of the loop being polled, if one is.
    owner: Option<Spans>,
    /// Polls of that sink's loops under way (one loop polled inside another's poll).
    depth: u32,
    staged: SpanBatch,
}

impl Stage {
    /// Hands what is staged to its sink.
    fn hand_on(&mut self) {
        match &self.owner {
            Some(owner) if !self.staged.is_empty() => owner.0.accept(&mut self.staged),
            _ => {}
        }
    }
}

thread_local! {
    static STAGE: RefCell<Stage> = const {
        RefCell::new(Stage {
            owner: None,
            depth: 0,
            staged: SpanBatch::new(),
        })
    };
}

impl Spans {
    /// Spans going to `sink`.
    pub fn new(sink: impl SpanSink) -> Spans {
        Spans(Arc::new(sink))
    }

    /// Spans going to `sink`, which the caller keeps a handle on too.
    pub fn shared(sink: Arc<dyn SpanSink>) -> Spans {
        Spans(sink)
    }

    /// The spans of the current `tracing` subscriber: its [`SpanLayer`], if it has one.
    /// None means nothing records spans (no subscriber, or one without the layer).
    pub fn current() -> Option<Spans> {
        tracing::dispatcher::get_default(|dispatch| {
            dispatch.downcast_ref::<SpanLayer>().map(|l| l.0.clone())
        })
    }

    /// The layers that make these spans the current subscriber's: the engine's
    /// observations recorded as spans ([`SpanObserver`]), and [`Spans::current`].
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber,
    {
        let observer = ObserverLayer::new(Arc::new(SpanObserver::new(self.clone())));
        SpanLayer(self.clone()).and_then(observer)
    }

    /// Records a finished span: staged when a loop of the same sink is being polled on
    /// this thread, straight to the sink otherwise.
    #[inline]
    pub fn record(&self, span: SpanRecord) {
        self.stage(move |staged| staged.spans.push(span));
    }

    /// Records a finished transaction of the loop `loop_id`, whose shared attributes
    /// `shared` gives when the batch it lands in does not carry them yet.
    pub fn record_transaction(
        &self,
        span: SpanRecord,
        loop_id: u64,
        shared: impl FnOnce() -> Arc<[KeyValue]>,
    ) {
        self.stage(move |staged| {
            if staged.loops.iter().all(|(id, _)| *id != loop_id) {
                staged.loops.push((loop_id, shared()));
            }
            staged.spans.push(span);
        });
    }

    /// Records a finished step.
    #[inline]
    pub fn record_step(&self, step: StepRecord) {
        self.stage(move |staged| staged.steps.push(step));
    }

    #[inline(always)]
    fn stage(&self, push: impl FnOnce(&mut SpanBatch)) {
        STAGE.with_borrow_mut(|stage| match &stage.owner {
            Some(owner) if self.same_sink(owner) => {
                push(&mut stage.staged);
                // A loop may run many transactions in one poll: hand them on in bounded
                // batches rather than growing the stage.
                if stage.staged.len() >= STAGE_LIMIT {
                    self.0.accept(&mut stage.staged);
                }
            }
            _ => {
                let mut one = SpanBatch::new();
                push(&mut one);
                self.0.accept(&mut one);
            }
        });
    }

    /// A loop of these spans is being polled on this thread: stage its spans until
    /// [`Spans::poll_ended`].
    pub fn poll_started(&self) {
        STAGE.with_borrow_mut(|stage| match &stage.owner {
            Some(owner) if self.same_sink(owner) => stage.depth += 1,
            _ => {
                // Another sink's loop is polled around this one: its staged spans go now,
                // its later ones straight to its sink.
                stage.hand_on();
                stage.owner = Some(self.clone());
                stage.depth = 1;
            }
        });
    }

    /// The poll [`Spans::poll_started`] announced returned: hand the staged spans on.
    pub fn poll_ended(&self) {
        STAGE.with_borrow_mut(|stage| {
            if stage
                .owner
                .as_ref()
                .is_some_and(|owner| self.same_sink(owner))
            {
                stage.depth -= 1;
                if stage.depth == 0 {
                    stage.hand_on();
                    stage.owner = None;
                }
            }
        });
    }

    fn same_sink(&self, other: &Spans) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

/// The `tracing` layer carrying [`Spans`]: it sees no callback, it is found by type
/// ([`Spans::current`]).
#[derive(Clone, Debug)]
pub struct SpanLayer(Spans);

impl<S: Subscriber> Layer<S> for SpanLayer {}
