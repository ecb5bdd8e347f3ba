//! Future plumbing: catching panics and racing the deadline.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

// ---------------------------------------------------------------------------
// Futures plumbing (no runtime needed)
// ---------------------------------------------------------------------------

pub(crate) struct Panicked;

/// Polls the inner future inside `catch_unwind`, turning a panic into
/// `Err(Panicked)`. After a panic it is never polled again.
///
/// Dropping it drops the inner future inside `catch_unwind` as well: a
/// handler cut short by the deadline runs its destructors then.
pub(crate) struct CatchUnwind<F> {
    pub(crate) inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.get_mut().inner.as_mut() else {
            return Poll::Ready(Err(Panicked));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(_payload) => Poll::Ready(Err(Panicked)),
        }
    }
}

impl<F> Drop for CatchUnwind<F> {
    fn drop(&mut self) {
        let inner = self.inner.take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(inner)));
    }
}

pub(crate) enum Raced<T> {
    Done(T),
    Deadline,
}

/// Runs `work` until it completes or `deadline` does, whichever is first
/// (`work` wins a tie).
pub(crate) async fn race<F, D>(work: F, deadline: D) -> Raced<F::Output>
where
    F: Future,
    D: Future<Output = ()>,
{
    let mut work = pin!(work);
    let mut deadline = pin!(deadline);
    poll_fn(move |cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Raced::Done(value));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Raced::Deadline);
        }
        Poll::Pending
    })
    .await
}

/// A deadline that may be awaited again once it passed (it then stays
/// passed), so one timer bounds every phase of a request.
pub(crate) struct Fused<D> {
    inner: Option<Pin<Box<D>>>,
}

impl<D: Future<Output = ()>> Fused<D> {
    pub(crate) fn new(inner: D) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<D: Future<Output = ()>> Future for Fused<D> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(());
        };
        if inner.as_mut().poll(cx).is_ready() {
            this.inner = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Runs `work` to completion, polling `side` beside it until `side` ends.
pub(crate) async fn alongside<F, S>(work: F, side: S) -> F::Output
where
    F: Future,
    S: Future<Output = ()>,
{
    let mut work = pin!(work);
    let mut side = Some(Box::pin(side));
    poll_fn(move |cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        if let Some(running) = side.as_mut()
            && running.as_mut().poll(cx).is_ready()
        {
            side = None;
        }
        Poll::Pending
    })
    .await
}
