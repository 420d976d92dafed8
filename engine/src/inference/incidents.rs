//! Host panics, remembered so that an infrastructure failure is reported
//! once with its cause. A model engine (mistral.rs) runs on threads of its
//! own; when one panics, every request in flight sees only a closed channel.
//! [`install_panic_recorder`] keeps the standard panic output and also
//! records each panic's message and location, so that
//! [`super::ResilientBackend`] can name the panic in the error it finally
//! gives and a run summary can list each distinct panic once.

use std::sync::{Mutex, Once, OnceLock};

/// One distinct panic seen in this process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PanicRecord {
    /// The panic message.
    pub message: String,
    /// `file:line:column` where it was raised, when known.
    pub location: Option<String>,
    /// The thread that panicked, when named.
    pub thread: Option<String>,
    /// How many times this message and location were seen.
    pub count: u64,
}

impl std::fmt::Display for PanicRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(location) = &self.location {
            write!(f, " (at {location})")?;
        }
        if self.count > 1 {
            write!(f, " [{} times]", self.count)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Recorded {
    distinct: Vec<PanicRecord>,
    /// Index in `distinct` of the latest panic.
    latest: Option<usize>,
    /// Panics seen, repeats included.
    total: u64,
}

fn recorded() -> &'static Mutex<Recorded> {
    static RECORDED: OnceLock<Mutex<Recorded>> = OnceLock::new();
    RECORDED.get_or_init(|| Mutex::new(Recorded::default()))
}

/// Installs (once per process) a panic hook that records every panic and
/// then runs the hook that was there before (which prints it).
pub fn install_panic_recorder() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = if let Some(text) = info.payload().downcast_ref::<&str>() {
                (*text).to_string()
            } else if let Some(text) = info.payload().downcast_ref::<String>() {
                text.clone()
            } else {
                "(a panic without a message)".to_string()
            };
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let thread = std::thread::current().name().map(str::to_string);
            record_panic(message, location, thread);
            previous(info);
        }));
    });
}

/// Records a panic (the hook's work; also usable by tests).
pub fn record_panic(message: String, location: Option<String>, thread: Option<String>) {
    let Ok(mut recorded) = recorded().lock() else { return };
    recorded.total += 1;
    match recorded.distinct.iter().position(|r| r.message == message && r.location == location) {
        Some(index) => {
            recorded.distinct[index].count += 1;
            recorded.latest = Some(index);
        }
        None => {
            recorded.distinct.push(PanicRecord { message, location, thread, count: 1 });
            recorded.latest = Some(recorded.distinct.len() - 1);
        }
    }
}

/// Every distinct panic recorded so far, in order of first appearance.
pub fn panics() -> Vec<PanicRecord> {
    recorded().lock().map(|r| r.distinct.clone()).unwrap_or_default()
}

/// How many panics (with repeats) have been recorded so far: a mark to pass
/// to [`panics_since`].
pub fn panic_mark() -> u64 {
    recorded().lock().map(|r| r.total).unwrap_or(0)
}

/// The most recent distinct panic, if any panic happened after `mark`.
pub fn panics_since(mark: u64) -> Option<PanicRecord> {
    let recorded = recorded().lock().ok()?;
    if recorded.total <= mark {
        return None;
    }
    recorded.latest.and_then(|index| recorded.distinct.get(index).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_distinct_panic_once_with_a_count() {
        let mark = panic_mark();
        record_panic("boom-incidents-test".into(), Some("a.rs:1:1".into()), None);
        record_panic("boom-incidents-test".into(), Some("a.rs:1:1".into()), None);
        let seen: Vec<PanicRecord> = panics().into_iter().filter(|p| p.message == "boom-incidents-test").collect();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].count, 2);
        assert!(panics_since(mark).is_some());
        assert!(seen[0].to_string().contains("a.rs:1:1"));
    }
}
