//! The pure domain: certificate facts, records, status, the fleet. No IO, no terminal.

pub mod cert;
pub mod fleet;
pub mod keyaudit;
pub mod keyreuse;
pub mod places;
pub mod record;
pub mod status;
pub mod text;
pub mod view;

pub use cert::{CertError, CertFacts, San};
pub use fleet::Fleet;
pub use record::{
    CertManagerInfo, Extra, K8sCondition, K8sInfo, Record, Revocation, RevocationState, SourceKind,
    TlsInfo, Verification,
};
pub use status::{assess, Assessment, Lifetime, Status, Thresholds};
