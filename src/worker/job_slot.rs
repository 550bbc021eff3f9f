//! The one background-job slot both workers keep: the running job's cancel token and a done
//! marker the job sets when it ends, so "is a job running" is asked of the job itself rather
//! than read from reference counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A job's cancel request, shared by whoever may cancel it and the job that polls it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The plain flag, for the domain code (shared with the command line) that polls one.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// The slot: empty, or the latest job claimed (running until its ticket is gone).
#[derive(Debug, Default)]
pub struct JobSlot {
    current: Option<Claimed>,
}

#[derive(Debug)]
struct Claimed {
    cancel: CancelToken,
    done: Arc<AtomicBool>,
}

impl JobSlot {
    /// Whether a claimed job has not finished yet.
    pub fn is_busy(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|job| !job.done.load(Ordering::SeqCst))
    }

    /// Claims the slot for a new job, or `None` while another job is running.
    pub fn claim(&mut self) -> Option<JobTicket> {
        if self.is_busy() {
            return None;
        }
        let cancel = CancelToken::new();
        let done = Arc::new(AtomicBool::new(false));
        self.current = Some(Claimed {
            cancel: cancel.clone(),
            done: done.clone(),
        });
        Some(JobTicket { cancel, done })
    }

    /// Cancels the running job, if any (a finished one is left as it ended).
    pub fn cancel(&self) {
        if let Some(job) = &self.current
            && !job.done.load(Ordering::SeqCst)
        {
            job.cancel.cancel();
        }
    }
}

/// What a claimed job holds: its cancel token, and the slot's claim, given up by
/// [`JobTicket::finish`] or when dropped (a panic included).
#[derive(Debug)]
pub struct JobTicket {
    cancel: CancelToken,
    done: Arc<AtomicBool>,
}

impl JobTicket {
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Frees the slot; a job calls this before its final answer, so that whoever reads that
    /// answer can start the next job at once.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_until_its_ticket_is_finished_or_dropped() {
        let mut slot = JobSlot::default();
        assert!(!slot.is_busy());
        let first = slot.claim().expect("an empty slot");
        assert!(slot.is_busy());
        assert!(slot.claim().is_none());
        // A clone of the token kept elsewhere does not keep the slot busy.
        let kept = first.cancel_token().clone();
        slot.cancel();
        assert!(kept.is_cancelled());
        first.finish();
        assert!(!slot.is_busy());
        let second = slot.claim().expect("free again");
        assert!(!second.cancel_token().is_cancelled());
        // Cancelling the finished job's token does not reach the new one.
        kept.cancel();
        assert!(!second.cancel_token().is_cancelled());
        drop(second);
        assert!(!slot.is_busy());
        // Cancelling an empty or finished slot does nothing.
        slot.cancel();
    }
}
