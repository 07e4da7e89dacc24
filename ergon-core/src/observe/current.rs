//! The scope whose work this thread is doing now: set while an [`InScope`] future is
//! polled, and on a blocking pool's thread while it runs a call for one ([`on_thread`]).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Scope;

thread_local! {
    /// The scope whose work this thread is doing now.
    static CURRENT: Cell<Option<Scope>> = const { Cell::new(None) };
}

/// The scope this thread is working in: an attempt's while the task's code runs, `None`
/// outside any watched work.
pub fn current() -> Option<Scope> {
    CURRENT.get()
}

/// Runs `call` on this thread as the work of `scope` (a blocking task's call on its pool
/// thread, sent there by an attempt).
pub fn on_thread<R>(scope: Option<Scope>, call: impl FnOnce() -> R) -> R {
    let _restore = Restore(CURRENT.replace(scope));
    call()
}

pin_project_lite::pin_project! {
    /// A future polled as the work of a scope (or of none: then it is polled as is).
    pub struct InScope<F> {
        #[pin]
        inner: F,
        scope: Option<Scope>,
    }
}

impl<F> InScope<F> {
    /// `inner`, polled as the work of `scope` when there is one.
    pub fn new(inner: F, scope: Option<Scope>) -> InScope<F> {
        InScope { inner, scope }
    }
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(scope) = *this.scope else {
            return this.inner.poll(cx);
        };
        let _restore = Restore(CURRENT.replace(Some(scope)));
        this.inner.poll(cx)
    }
}

/// Puts the outer current scope back, even when the poll panics.
struct Restore(Option<Scope>);

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use super::*;

    #[tokio::test]
    async fn a_scope_is_current_while_its_work_runs_and_not_after() {
        let scope = Scope::new([7; 6]);
        assert_eq!(current(), None);
        let seen = InScope::new(async { current() }, Some(scope)).await;
        assert_eq!(seen, Some(scope));
        assert_eq!(current(), None);
        assert_eq!(InScope::new(ready(current()), None).await, None);
        assert_eq!(on_thread(Some(scope), current), Some(scope));
        assert_eq!(current(), None);
    }
}
