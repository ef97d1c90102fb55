//! Blocking work off the async runtime.
//!
//! Tree walks, hashing, payload copies and `git` block the thread they run on. Run on the
//! runtime's own threads they would serialise steps that should overlap and delay the reaction
//! to a cancellation until the walk ends; here they run on tokio's blocking pool instead, and
//! the caller stops waiting as soon as the run is cancelled.

use crate::error::Error;
use std::panic::AssertUnwindSafe;
use tokio_util::sync::CancellationToken;

/// [`Error::Cancelled`] once `cancel` is cancelled: what blocking work checks between units
/// (files).
///
/// # Errors
///
/// [`Error::Cancelled`] when `cancel` is cancelled.
pub fn check(cancel: &CancellationToken) -> Result<(), Error> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// Run `f` on tokio's blocking pool for `step`.
///
/// `f` gets a clone of `cancel` and should check [`CancellationToken::is_cancelled`] between
/// units of work (files), returning [`Error::Cancelled`]; the runtime can only shut down once
/// it has returned.
///
/// # Errors
///
/// `f`'s error; [`Error::Cancelled`] as soon as `cancel` is cancelled (without waiting for
/// `f`); [`Error::Internal`] naming `step` when `f` panicked.
pub async fn blocking<T, F>(step: &str, cancel: &CancellationToken, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(CancellationToken) -> Result<T, Error> + Send + 'static,
{
    let token = cancel.clone();
    let handle = tokio::task::spawn_blocking(move || f(token));
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Cancelled),
        joined = handle => joined.map_err(|e| Error::join(step, e))?,
    }
}

/// Run `f`, which writes into the build dir, on tokio's blocking pool and wait until it has
/// returned, also when `cancel` fires: `f` gets the token and must check it between units of
/// work (files) and stop before it commits anything (the rename into place). Unlike
/// [`blocking`], the caller never returns while `f` still writes, so the build dir's lock is
/// never released under a running writer.
///
/// # Errors
///
/// `f`'s error; [`Error::Internal`] naming `step` when `f` panicked.
pub async fn blocking_write<T, F>(step: &str, cancel: &CancellationToken, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(CancellationToken) -> Result<T, Error> + Send + 'static,
{
    let token = cancel.clone();
    tokio::task::spawn_blocking(move || f(token))
        .await
        .map_err(|e| Error::join(step, e))?
}

/// Run the future of `step`, turning a panic inside it into [`Error::Internal`] naming the
/// step, so that one broken step is reported like any failure (the others are cancelled and
/// awaited, containers removed) instead of unwinding through the pipeline.
pub async fn catch_panic<T>(
    step: &str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use futures_util::FutureExt;
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            Err(Error::internal(
                step,
                Error::panic_message(payload.as_ref()),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_panic_on_the_blocking_pool_is_an_internal_error_naming_the_step() {
        let err = blocking(
            "payload/peer",
            &CancellationToken::new(),
            |_| -> Result<(), Error> { panic!("index out of bounds") },
        )
        .await
        .unwrap_err();
        match &err {
            Error::Internal { step, message } => {
                assert_eq!(step, "payload/peer");
                assert!(message.contains("index out of bounds"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.exit_code(), 1);
        assert!(err
            .to_string()
            .starts_with("internal error in payload/peer"));
    }

    #[tokio::test]
    async fn cancelling_stops_the_wait_at_once_and_the_work_sees_it() {
        let cancel = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let t0 = Instant::now();
        let err = blocking("fingerprint", &cancel, move |token| -> Result<(), Error> {
            // a long walk that checks the token between files
            for _ in 0..1000 {
                if token.is_cancelled() {
                    tx.send("saw it").unwrap();
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        // the work itself stopped too (within one unit)
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("saw it"));
    }

    #[tokio::test]
    async fn a_panicking_future_is_an_internal_error() {
        let err = catch_panic("compile/peer", async {
            if true {
                panic!("{}", String::from("broken invariant"));
            }
            Ok(())
        })
        .await
        .unwrap_err();
        match err {
            Error::Internal { step, message } => {
                assert_eq!(step, "compile/peer");
                assert_eq!(message, "panicked: broken invariant");
            }
            other => panic!("{other:?}"),
        }
    }
}
