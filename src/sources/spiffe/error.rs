//! Why a Workload API could not be read, typed; [`SpiffeError::class`] gives the health line's
//! kind. Messages name the socket and say what to do, and never carry key material.

use crate::sources::ProblemKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error(
        "no Workload API socket at {socket} (is the SPIRE agent running, and is the socket \
         mounted into this host or pod?)"
    )]
    SocketMissing { socket: String },
    #[error("permission denied on the Workload API socket {socket}: {detail}")]
    SocketPermission { socket: String, detail: String },
    #[error("nothing listens on the Workload API socket {socket} (a stale socket file?)")]
    NotListening { socket: String },
    #[error("cannot connect to the Workload API at {socket}: {detail}")]
    Connect { socket: String, detail: String },
    #[error(
        "the agent issued no identity to this workload ({detail}): no registration entry \
         matches certdeck's process (uid, path, pod...) on {socket}"
    )]
    NoIdentity { socket: String, detail: String },
    #[error("the Workload API at {socket} answered {code}: {message}")]
    Status {
        socket: String,
        code: String,
        message: String,
    },
    #[error("the Workload API at {socket} did not {what} within {secs} s")]
    Timeout {
        socket: String,
        what: &'static str,
        secs: u64,
    },
    #[error("the agent at {socket} closed the update stream")]
    StreamEnded { socket: String },
    #[error("the connection to the agent at {socket} broke: {detail}")]
    Broken { socket: String, detail: String },
}

impl SpiffeError {
    pub fn class(&self) -> ProblemKind {
        match self {
            SpiffeError::SocketMissing { .. }
            | SpiffeError::NotListening { .. }
            | SpiffeError::Connect { .. }
            | SpiffeError::StreamEnded { .. }
            | SpiffeError::Broken { .. } => ProblemKind::Unreachable,
            SpiffeError::SocketPermission { .. } | SpiffeError::NoIdentity { .. } => {
                ProblemKind::Forbidden
            }
            SpiffeError::Status { code, .. } if code == "Unauthenticated" => {
                ProblemKind::Unauthorized
            }
            SpiffeError::Status { code, .. } if code == "Unavailable" => ProblemKind::Unreachable,
            SpiffeError::Status { .. } => ProblemKind::Other,
            SpiffeError::Timeout { .. } => ProblemKind::Timeout,
        }
    }

    /// The error of a gRPC status the agent answered with. SPIRE answers PermissionDenied
    /// "no identity issued" to a workload no registration entry matches.
    pub fn from_status(socket: &str, s: &tonic::Status) -> SpiffeError {
        let message: String = crate::model::text::clean(s.message())
            .chars()
            .take(300)
            .collect();
        match s.code() {
            tonic::Code::PermissionDenied => SpiffeError::NoIdentity {
                socket: socket.to_owned(),
                detail: format!("PermissionDenied: {message}"),
            },
            // tonic's word for a connection lost under a call (the agent restarting).
            tonic::Code::Unknown | tonic::Code::Cancelled
                if message.contains("h2 protocol error") || message.contains("transport error") =>
            {
                SpiffeError::Broken {
                    socket: socket.to_owned(),
                    detail: message,
                }
            }
            code => SpiffeError::Status {
                socket: socket.to_owned(),
                code: format!("{code:?}"),
                message,
            },
        }
    }
}
