//! One thin file per subcommand, and the exit codes they return.

pub mod init;
pub mod send;

/// Process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every valid recipient was sent (or written, for outbox and dry runs).
    Success = 0,
    /// The run finished, but some recipients failed or were deferred.
    SomeFailed = 1,
    /// Nothing was sent: bad configuration or input, or the relay could not be used.
    CouldNotStart = 2,
    /// The run stopped part-way (authentication or TLS failure, unreadable input); the
    /// report says which recipients were not attempted.
    Stopped = 3,
}
