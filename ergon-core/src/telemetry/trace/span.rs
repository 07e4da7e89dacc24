//! Spans being recorded: [`ActiveSpan`], recorded when dropped (so a step cut off by a
//! budget or a drain still ends its span), and [`InSpan`], which makes a span the
//! current one while a future is polled (for log lines, user spans and outbound trace
//! context: [`current`]).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::clock::Tick;
use super::ids::SpanIds;
use super::record::{Fields, Parent, SpanRecord};
use super::sink::Spans;
use crate::error::Category;

/// Where a traced transaction's steps go, and the span they hang under.
#[derive(Clone, Copy, Debug)]
pub struct Traced<'a> {
    /// Where their spans go.
    pub spans: &'a Spans,
    /// Their parent.
    pub parent: &'a SpanIds,
}

/// A span being recorded; it ends, and goes to its sink, when dropped.
///
/// It borrows its sink on the hot path (no reference count to touch per span);
/// [`ActiveSpan::into_owned`] makes one that outlives the borrow (a task run's).
#[derive(Debug)]
pub struct ActiveSpan<'a> {
    spans: SpansRef<'a>,
    /// Always `Some` until it ends. Boxed: a span lives in the futures of a transaction,
    /// and every byte there is copied when they move (none when it is not traced).
    record: Option<Box<SpanRecord>>,
}

impl<'a> ActiveSpan<'a> {
    /// Starts a span named `name` with `ids` under `parent`, now.
    pub fn start(
        spans: &'a Spans,
        name: &'static str,
        ids: SpanIds,
        parent: Parent,
        fields: Fields,
    ) -> ActiveSpan<'a> {
        ActiveSpan::start_at(spans, name, ids, parent, fields, Tick::now())
    }

    /// Starts a span at `start` (a tick read for something else starting then).
    pub fn start_at(
        spans: &'a Spans,
        name: &'static str,
        ids: SpanIds,
        parent: Parent,
        fields: Fields,
        start: Tick,
    ) -> ActiveSpan<'a> {
        ActiveSpan {
            spans: SpansRef::Borrowed(spans),
            record: Some(Box::new(SpanRecord {
                ids,
                parent,
                name,
                start,
                end: start,
                fields,
                error: None,
            })),
        }
    }

    /// Starts a child of `parent` (a span of this process), now.
    pub fn child(
        spans: &'a Spans,
        name: &'static str,
        parent: &SpanIds,
        fields: Fields,
    ) -> ActiveSpan<'a> {
        ActiveSpan::child_at(spans, name, parent, fields, Tick::now())
    }

    /// Starts a child of `parent` at `start`.
    pub fn child_at(
        spans: &'a Spans,
        name: &'static str,
        parent: &SpanIds,
        fields: Fields,
        start: Tick,
    ) -> ActiveSpan<'a> {
        ActiveSpan::start_at(
            spans,
            name,
            parent.child(),
            Parent::Local(parent.span_id),
            fields,
            start,
        )
    }

    /// The span that `self`'s steps hang under.
    pub fn traced(&self) -> Traced<'_> {
        Traced {
            spans: self.spans(),
            parent: self.ids(),
        }
    }

    /// The same span, holding its sink rather than borrowing it.
    pub fn into_owned(mut self) -> ActiveSpan<'static> {
        ActiveSpan {
            spans: SpansRef::Owned(self.spans().clone()),
            record: self.record.take(),
        }
    }

    /// When it started.
    pub fn started(&self) -> Tick {
        self.record().start
    }

    /// Ends it at `end` (a tick read for something else ending then).
    pub fn end_at(mut self, end: Tick) {
        if let Some(mut record) = self.record.take() {
            record.end = end;
            self.spans().record(record);
        }
    }

    /// Where its spans go.
    pub fn spans(&self) -> &Spans {
        match &self.spans {
            SpansRef::Borrowed(spans) => spans,
            SpansRef::Owned(spans) => spans,
        }
    }

    /// Its ids.
    pub fn ids(&self) -> &SpanIds {
        &self.record().ids
    }

    /// Marks it failed with `category`.
    pub fn fail(&mut self, category: Category) {
        self.record_mut().error = Some(category);
    }

    /// Its fields, to complete before it ends (a transaction's settlement).
    pub fn fields_mut(&mut self) -> &mut Fields {
        &mut self.record_mut().fields
    }

    fn record(&self) -> &SpanRecord {
        self.record
            .as_ref()
            .expect("a span is recorded only when dropped")
    }

    fn record_mut(&mut self) -> &mut SpanRecord {
        self.record
            .as_mut()
            .expect("a span is recorded only when dropped")
    }
}

impl Drop for ActiveSpan<'_> {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.end = Tick::now();
            self.spans().record(record);
        }
    }
}

/// A span's sink, borrowed (the hot path) or held.
#[derive(Debug)]
enum SpansRef<'a> {
    Borrowed(&'a Spans),
    Owned(Spans),
}

thread_local! {
    /// The span whose work this thread is doing now (set while an [`InSpan`] is polled).
    static CURRENT: Cell<Option<SpanIds>> = const { Cell::new(None) };
}

/// The ergon span this thread is working in: an attempt while the task's code runs.
/// Log lines carry its ids, a user's `tracing` spans become its children, and the
/// dispatch step stamps outbound transactions with it.
pub fn current() -> Option<SpanIds> {
    CURRENT.get()
}

pin_project_lite::pin_project! {
    /// A future polled as the work of a span (or of none: then it is polled as is).
    pub struct InSpan<F> {
        #[pin]
        inner: F,
        ids: Option<SpanIds>,
    }
}

impl<F> InSpan<F> {
    /// `inner`, polled as the work of the span `ids` when there is one.
    pub fn new(inner: F, ids: Option<SpanIds>) -> InSpan<F> {
        InSpan { inner, ids }
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(ids) = *this.ids else {
            return this.inner.poll(cx);
        };
        let _restore = Restore(CURRENT.replace(Some(ids)));
        this.inner.poll(cx)
    }
}

/// Puts the outer current span back, even when the poll panics.
struct Restore(Option<SpanIds>);

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}
