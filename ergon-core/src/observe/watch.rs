//! The engine's side of observation: guards that report a watched thing's start when made
//! and its end when dropped, so a step cut off by a budget still ends — but for a
//! transaction, whose end the loop reports explicitly, with the transaction its settlement
//! hands back (or, cut off by a drain, before it is requeued).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{AttemptEnd, LoopInfo, Observer, Scope, StepInfo, TransactionEnd, current};
use crate::error::Category;
use crate::transaction::Transaction;

/// A watched thing (a loop, a transaction, the current scope) and who watches it: what
/// the things below it start under. [`Lifecycle::run`](crate::lifecycle::Lifecycle::run)
/// takes one to observe a transaction's steps under a scope of the caller's.
#[derive(Clone, Copy)]
pub struct Watched<'a> {
    pub(crate) observer: &'a dyn Observer,
    pub(crate) scope: &'a Scope,
}

impl<'a> Watched<'a> {
    /// `scope`, watched by `observer`.
    pub fn new(observer: &'a dyn Observer, scope: &'a Scope) -> Watched<'a> {
        Watched { observer, scope }
    }
}

impl std::fmt::Debug for Watched<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("scope", self.scope)
            .finish()
    }
}

/// A watched consume loop; it ends when dropped.
pub(crate) struct LoopWatch {
    observer: Arc<dyn Observer>,
    scope: Scope,
}

impl LoopWatch {
    /// The loop `info` starting under the current scope, if `observer` watches it.
    pub(crate) fn start(observer: Arc<dyn Observer>, info: &LoopInfo<'_>) -> Option<LoopWatch> {
        let scope = observer.loop_started(current().as_ref(), info)?;
        Some(LoopWatch { observer, scope })
    }

    /// What its batches and fetches start under.
    pub(crate) fn watched(&self) -> Watched<'_> {
        Watched {
            observer: &*self.observer,
            scope: &self.scope,
        }
    }
}

impl Drop for LoopWatch {
    fn drop(&mut self) {
        self.observer.loop_ended(self.scope);
    }
}

/// A watched batch; it ends when dropped.
pub(crate) struct BatchWatch<'a> {
    parent: Watched<'a>,
    scope: Scope,
    size: usize,
}

impl<'a> BatchWatch<'a> {
    /// A batch of `size` fetched under the loop `parent`, if the observer watches it.
    pub(crate) fn start(parent: Watched<'a>, size: usize) -> Option<BatchWatch<'a>> {
        let scope = parent.observer.batch_started(parent.scope, size)?;
        Some(BatchWatch {
            parent,
            scope,
            size,
        })
    }

    /// Its scope.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl Drop for BatchWatch<'_> {
    fn drop(&mut self) {
        let observer = self.parent.observer;
        observer.batch_ended(self.scope, self.parent.scope, self.size);
    }
}

/// A watched transaction. Its end is reported explicitly ([`TransactionWatch::end`]), not
/// when dropped: the transaction is back in hand only once its settlement has consumed
/// the delivery, and an end needs it. (A transaction whose future is dropped mid-flight,
/// its worker aborted, is not reported as ended.)
pub(crate) struct TransactionWatch<'a> {
    parent: Watched<'a>,
    scope: Scope,
    settlement: Option<&'static str>,
    error: Option<Category>,
}

impl<'a> TransactionWatch<'a> {
    /// `tx` of `batch` (when watched) starting in the loop `parent`, if the observer
    /// watches it.
    ///
    /// Boxed: it lives in the transaction's future, and every byte there is copied when
    /// the future moves (an unwatched transaction's carries one word).
    pub(crate) fn start(
        parent: Watched<'a>,
        tx: &Transaction,
        batch: Option<&Scope>,
    ) -> Option<Box<TransactionWatch<'a>>> {
        let scope = parent
            .observer
            .transaction_started(tx, batch, parent.scope)?;
        Some(Box::new(TransactionWatch {
            parent,
            scope,
            settlement: None,
            error: None,
        }))
    }

    /// Its scope.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// What its steps start under.
    pub(crate) fn watched(&self) -> Watched<'_> {
        Watched {
            observer: self.parent.observer,
            scope: &self.scope,
        }
    }

    /// Records how it ended: its settlement, and its error category if it failed.
    pub(crate) fn record(&mut self, settlement: &'static str, error: Option<Category>) {
        self.settlement = Some(settlement);
        self.error = error;
    }

    /// It ended: `tx`, a transaction of the `operation` kind.
    pub(crate) fn end(&self, tx: &Transaction, operation: &'static str) {
        let end = TransactionEnd {
            tx,
            parent: self.parent.scope,
            operation,
            settlement: self.settlement,
            error: self.error,
        };
        self.parent.observer.transaction_ended(self.scope, &end);
    }
}

/// A watched step and its attempt under way; it ends when dropped.
///
/// Compact: it lives inline in every step's future, watched or not (`None`), and each
/// byte there is copied when the futures move.
pub(crate) struct StepWatch<'a> {
    parent: Watched<'a>,
    scope: Scope,
    name: &'static str,
    timeout: Duration,
    max_attempts: u32,
    /// [`StepInfo::fetch_size`], `0` for none.
    fetch_size: u32,
    /// The number of the attempt under way, `0` for none.
    attempt: u32,
    error: Option<Category>,
}

impl<'a> StepWatch<'a> {
    /// The step `info` starting under `parent`, if the observer watches it.
    pub(crate) fn start(parent: Watched<'a>, info: StepInfo) -> Option<StepWatch<'a>> {
        let scope = parent.observer.step_started(parent.scope, &info)?;
        let fetch_size = info
            .fetch_size
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Some(StepWatch {
            parent,
            scope,
            name: info.name,
            timeout: info.timeout,
            max_attempts: info.max_attempts,
            fetch_size,
            attempt: 0,
            error: None,
        })
    }

    /// The step, as its observer was told when it started.
    fn info(&self) -> StepInfo {
        StepInfo {
            name: self.name,
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            fetch_size: (self.fetch_size > 0).then_some(self.fetch_size as usize),
        }
    }

    /// Attempt `number` starts: its scope, to make current while it runs.
    pub(crate) fn attempt_started(&mut self, number: u32) -> Scope {
        let attempt = self
            .parent
            .observer
            .attempt_started(&mut self.scope, number);
        self.attempt = number;
        attempt
    }

    /// The attempt under way ended, failed with `error` if it did, `retrying` or not.
    pub(crate) fn attempt_ended(&mut self, error: Option<Category>, retrying: bool) {
        let number = std::mem::take(&mut self.attempt);
        if number > 0 {
            let end = AttemptEnd {
                number,
                error,
                retrying,
            };
            self.parent.observer.attempt_ended(&mut self.scope, &end);
        }
    }

    /// Ends the step, failed for good with `error` if it did.
    pub(crate) fn end(mut self, error: Option<Category>) {
        self.error = error;
    }
}

impl Drop for StepWatch<'_> {
    fn drop(&mut self) {
        // Cut off mid-attempt: that attempt ends with the step.
        self.attempt_ended(None, false);
        let observer = self.parent.observer;
        observer.step_ended(self.scope, self.parent.scope, &self.info(), self.error);
    }
}

pin_project_lite::pin_project! {
    /// A watched loop's future, each poll announced to its observer
    /// ([`Observer::poll_started`]).
    pub(crate) struct Polled<'a, F> {
        #[pin]
        inner: F,
        observer: &'a dyn Observer,
    }
}

impl<'a, F> Polled<'a, F> {
    pub(crate) fn new(inner: F, observer: &'a dyn Observer) -> Polled<'a, F> {
        Polled { inner, observer }
    }
}

impl<F: Future> Future for Polled<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.observer.poll_started();
        let _ended = PollEnded(*this.observer);
        this.inner.poll(cx)
    }
}

/// Tells the observer the poll returned, even when it unwinds.
struct PollEnded<'a>(&'a dyn Observer);

impl Drop for PollEnded<'_> {
    fn drop(&mut self) {
        self.0.poll_ended();
    }
}
