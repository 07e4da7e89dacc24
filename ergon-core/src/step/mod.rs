//! The steps of a transaction's life, each run in the step envelope.
//!
//! `fetch` brings a batch in; then, per transaction, the role's steps (`process`,
//! `prepare`, `dispatch`, `success` | `exception`, see [`lifecycle`](crate::lifecycle)) and
//! finally `settle` (see [`settle`](crate::settle)).

pub(crate) mod dispatch;
pub(crate) mod fetch;

/// One step of the lifecycle; its name is what an observer hears
/// ([`StepInfo::name`](crate::observe::StepInfo)) and the `ergon.step` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Fetching a batch from the input connector.
    Fetch,
    /// `process_transaction`.
    Process,
    /// `prepare_transaction` (producer and hybrid).
    Prepare,
    /// Dispatching through the output connector (producer and hybrid).
    Dispatch,
    /// `handle_process_success` / `handle_prepare_success`.
    Success,
    /// `handle_process_exception` / `handle_prepare_exception`.
    Exception,
    /// Settling through the input connector.
    Settle,
}

impl Step {
    /// Every step, in [`Step::index`] order.
    pub const ALL: [Step; 7] = [
        Step::Fetch,
        Step::Process,
        Step::Prepare,
        Step::Dispatch,
        Step::Success,
        Step::Exception,
        Step::Settle,
    ];

    /// The step called `name` ([`Step::as_str`]), if any.
    pub fn named(name: &str) -> Option<Step> {
        Some(match name {
            "fetch" => Step::Fetch,
            "process" => Step::Process,
            "prepare" => Step::Prepare,
            "dispatch" => Step::Dispatch,
            "success" => Step::Success,
            "exception" => Step::Exception,
            "settle" => Step::Settle,
            _ => return None,
        })
    }

    /// The step's position in [`Step::ALL`], for per-step counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The step's lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Fetch => "fetch",
            Step::Process => "process",
            Step::Prepare => "prepare",
            Step::Dispatch => "dispatch",
            Step::Success => "success",
            Step::Exception => "exception",
            Step::Settle => "settle",
        }
    }
}
