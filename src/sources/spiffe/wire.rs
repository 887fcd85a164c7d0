//! The Workload API on the wire: `FetchX509SVID` (a server stream) over the gRPC channel
//! `spiffe::transport::connect` opens on the agent's socket, with the `workload.spiffe.io:
//! true` metadata every SPIFFE agent requires.
//!
//! The messages are ours (the fields of `workload.proto` certdeck reads) rather than the
//! `spiffe` crate's client, for two reasons: the crate rejects a whole answer when one SVID
//! does not parse, where a dashboard shows the others and an error row for that one; and the
//! SVID private key (field 3 of `X509SVID`) is not a field here, so it is skipped by the
//! decoder and never held in certdeck's memory.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;

use super::error::SpiffeError;
use super::settings::SpiffeSettings;

/// `X509SVIDRequest`: no parameters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidRequest {}

/// `X509SVIDResponse`, without the CRLs (field 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidResponse {
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    /// Bundles of foreign trust domains, keyed by the trust domain's SPIFFE ID.
    #[prost(btree_map = "string, bytes", tag = "3")]
    pub federated_bundles: BTreeMap<String, Vec<u8>>,
}

/// `X509SVID`, without its private key (field 3).
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509Svid {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// DER certificates, concatenated, the SVID first.
    #[prost(bytes = "vec", tag = "2")]
    pub x509_svid: Vec<u8>,
    /// DER CA certificates of the SVID's trust domain, concatenated.
    #[prost(bytes = "vec", tag = "4")]
    pub bundle: Vec<u8>,
    #[prost(string, tag = "5")]
    pub hint: String,
}

const FETCH_X509_SVID: &str = "/SpiffeWorkloadAPI/FetchX509SVID";

/// The update stream of one Workload API.
pub type Updates = tonic::Streaming<X509SvidResponse>;

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Connect to the socket once ourselves, to tell a missing socket, a denied one and one
/// nobody listens on apart (the gRPC channel's own error says only "transport error").
async fn check_socket(s: &SpiffeSettings) -> Result<(), SpiffeError> {
    let spiffe::transport::Endpoint::Unix(path) = &s.endpoint else {
        return Ok(());
    };
    let socket = s.socket.clone();
    let attempt = tokio::time::timeout(s.timeout, tokio::net::UnixStream::connect(path)).await;
    let e = match attempt {
        Err(_) => {
            return Err(SpiffeError::Timeout {
                socket,
                what: "accept a connection",
                secs: secs(s.timeout),
            })
        }
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
    };
    Err(match e.kind() {
        std::io::ErrorKind::NotFound => SpiffeError::SocketMissing { socket },
        std::io::ErrorKind::PermissionDenied => SpiffeError::SocketPermission {
            detail: permission_detail(path),
            socket,
        },
        std::io::ErrorKind::ConnectionRefused => SpiffeError::NotListening { socket },
        _ => SpiffeError::Connect {
            socket,
            detail: e.to_string(),
        },
    })
}

/// Who may use the socket and who we are, for the health line of a denied connection.
fn permission_detail(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self")
        .map(|m| format!("uid {}", m.uid()))
        .unwrap_or_else(|_| "this user".to_owned());
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "certdeck runs as {me}; the socket is owned by uid {} gid {} with mode {:o}, and \
             connecting needs write permission on it (add this user to the socket's group, or \
             run as the workload whose identities you want to see)",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(_) => format!(
            "certdeck runs as {me} and may not reach the socket's directory (search permission \
             on every directory of the path is needed)"
        ),
    }
}

/// Open `FetchX509SVID` on the agent: the stream whose first message is the current state and
/// every further one an update (a rotation, a new or removed identity).
pub async fn open(s: &SpiffeSettings) -> Result<Updates, SpiffeError> {
    check_socket(s).await?;
    let socket = s.socket.clone();
    let channel =
        match tokio::time::timeout(s.timeout, spiffe::transport::connect(&s.endpoint)).await {
            Err(_) => {
                return Err(SpiffeError::Timeout {
                    socket,
                    what: "accept a connection",
                    secs: secs(s.timeout),
                })
            }
            Ok(Err(e)) => {
                return Err(SpiffeError::Connect {
                    socket,
                    detail: crate::model::text::clean(&e.to_string()).into_owned(),
                })
            }
            Ok(Ok(c)) => c,
        };
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut req = tonic::Request::new(X509SvidRequest {});
    req.metadata_mut()
        .insert("workload.spiffe.io", MetadataValue::from_static("true"));
    let codec = tonic_prost::ProstCodec::<X509SvidRequest, X509SvidResponse>::default();
    let call = async {
        grpc.ready().await.map_err(|e| SpiffeError::Connect {
            socket: socket.clone(),
            detail: crate::model::text::clean(&e.to_string()).into_owned(),
        })?;
        grpc.server_streaming(req, PathAndQuery::from_static(FETCH_X509_SVID), codec)
            .await
            .map_err(|st| SpiffeError::from_status(&socket, &st))
    };
    match tokio::time::timeout(s.timeout, call).await {
        Err(_) => Err(SpiffeError::Timeout {
            socket: socket.clone(),
            what: "answer FetchX509SVID",
            secs: secs(s.timeout),
        }),
        Ok(r) => r.map(tonic::Response::into_inner),
    }
}

/// The next message of the stream: `Ok(None)` when the agent closed it. No time limit (an
/// update comes when the agent rotates); wrap it in one for a first answer.
pub async fn next(socket: &str, u: &mut Updates) -> Result<Option<X509SvidResponse>, SpiffeError> {
    u.message()
        .await
        .map_err(|st| SpiffeError::from_status(socket, &st))
}

/// The first message within the time limit (a round's read).
pub async fn first(s: &SpiffeSettings, u: &mut Updates) -> Result<X509SvidResponse, SpiffeError> {
    match tokio::time::timeout(s.timeout, next(&s.socket, u)).await {
        Err(_) => Err(SpiffeError::Timeout {
            socket: s.socket.clone(),
            what: "send its X.509 SVIDs",
            secs: secs(s.timeout),
        }),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(SpiffeError::StreamEnded {
            socket: s.socket.clone(),
        }),
        Ok(Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// The private key field is skipped on decode: it is not in our message at all.
    #[test]
    fn the_private_key_field_is_never_decoded() {
        // X509SVID { spiffe_id = "spiffe://td/a", x509_svid = [1], x509_svid_key = [9,9], bundle = [2], hint = "h" }
        let mut svid = Vec::new();
        prost::encoding::string::encode(1, &"spiffe://td/a".to_owned(), &mut svid);
        prost::encoding::bytes::encode(2, &vec![1u8], &mut svid);
        prost::encoding::bytes::encode(3, &vec![9u8, 9], &mut svid);
        prost::encoding::bytes::encode(4, &vec![2u8], &mut svid);
        prost::encoding::string::encode(5, &"h".to_owned(), &mut svid);
        let mut resp = Vec::new();
        prost::encoding::bytes::encode(1, &svid, &mut resp);
        let m = X509SvidResponse::decode(resp.as_slice()).unwrap();
        assert_eq!(
            m.svids,
            vec![X509Svid {
                spiffe_id: "spiffe://td/a".into(),
                x509_svid: vec![1],
                bundle: vec![2],
                hint: "h".into(),
            }]
        );
        assert!(!format!("{m:?}").contains("9, 9"));
    }
}
