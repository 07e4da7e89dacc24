//! Where finished spans go: a [`SpanSink`] (the runner's exporter), reached through
//! [`Spans`], which the engine finds in the current `tracing` subscriber as a layer
//! ([`SpanLayer`]) — so a test's or a run's subscriber decides, like for log lines.
//!
//! On the hot path a span is not handed to the sink one by one: while a consume loop is
//! polled ([`Spans::staged`]), its spans are staged in a thread-local buffer and given to
//! the sink in one call when the poll returns (one lock per poll rather than per span).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Subscriber;
use tracing_subscriber::Layer;

use super::record::SpanRecord;
use super::step::StepRecord;

/// Takes finished spans. Called from the engine's threads: it must not block for long.
pub trait SpanSink: Send + Sync + 'static {
    /// Takes the spans in `batch`, leaving it empty: best by swapping it whole for an
    /// empty one with room (no span is copied, no memory freed on this thread).
    fn accept(&self, batch: &mut SpanBatch);
}

/// Finished spans on their way to a sink: steps apart, in their compact form.
#[derive(Debug, Default)]
pub struct SpanBatch {
    /// Every span but steps.
    pub spans: Vec<SpanRecord>,
    /// Steps.
    pub steps: Vec<StepRecord>,
}

impl SpanBatch {
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

thread_local! {
    /// The spans of the consume loop being polled on this thread, and where they go.
    static STAGE: RefCell<Option<(Spans, SpanBatch)>> = const { RefCell::new(None) };
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
    /// None means ergon records no span (no subscriber, or one without the layer).
    pub fn current() -> Option<Spans> {
        tracing::dispatcher::get_default(|dispatch| {
            dispatch.downcast_ref::<SpanLayer>().map(|l| l.0.clone())
        })
    }

    /// The layer that makes these spans the current subscriber's.
    pub fn layer(&self) -> SpanLayer {
        SpanLayer(self.clone())
    }

    /// Records a finished span: staged when a loop of the same sink is being polled on
    /// this thread, straight to the sink otherwise. (Boxed until it lands in the stage:
    /// the span is copied once, from its box into the stage.)
    pub fn record(&self, span: Box<SpanRecord>) {
        self.stage(move |staged| staged.spans.push(*span));
    }

    /// Records a finished step.
    pub fn record_step(&self, step: StepRecord) {
        self.stage(move |staged| staged.steps.push(step));
    }

    #[inline(always)]
    fn stage(&self, push: impl FnOnce(&mut SpanBatch)) {
        STAGE.with_borrow_mut(|stage| match stage {
            Some((owner, staged)) if self.same_sink(owner) => {
                push(staged);
                // A loop may run many transactions in one poll: hand them on in bounded
                // batches rather than growing the stage.
                if staged.len() >= STAGE_LIMIT {
                    self.0.accept(staged);
                }
            }
            _ => {
                let mut one = SpanBatch::default();
                push(&mut one);
                self.0.accept(&mut one);
            }
        });
    }

    /// `future`, with the spans ended while it is polled handed to the sink together
    /// after each poll.
    pub fn staged<F: Future>(&self, future: F) -> Staged<F> {
        Staged {
            inner: future,
            spans: self.clone(),
            buffer: SpanBatch::default(),
        }
    }

    fn same_sink(&self, other: &Spans) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

/// The `tracing` layer carrying ergon's [`Spans`]: it sees no callback, it is found by
/// type ([`Spans::current`]).
#[derive(Clone, Debug)]
pub struct SpanLayer(Spans);

impl<S: Subscriber> Layer<S> for SpanLayer {}

pin_project_lite::pin_project! {
    /// A future whose ended spans are staged while it is polled ([`Spans::staged`]).
    pub struct Staged<F> {
        #[pin]
        inner: F,
        spans: Spans,
        buffer: SpanBatch,
    }
}

impl<F: Future> Future for Staged<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let own = (this.spans.clone(), std::mem::take(this.buffer));
        let outer = STAGE.replace(Some(own));
        let polled = this.inner.poll(cx);
        if let Some((spans, mut staged)) = STAGE.replace(outer) {
            if !staged.is_empty() {
                spans.0.accept(&mut staged);
            }
            *this.buffer = staged;
        }
        polled
    }
}
