//! Just enough Kubernetes protobuf decoding for `SelfSubjectAccessReview` requests, which
//! kubectl's typed client (`kubectl auth can-i`) sends as `application/vnd.kubernetes.protobuf`.
//! Responses are always JSON (kubectl's Accept header allows it).

use serde_json::{json, Map, Value};

/// Length-delimited fields (wire type 2) of one message, by field number; others are skipped.
fn fields(mut buf: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match key & 7 {
            0 => {
                varint(&mut buf)?;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                out.push((key >> 3, value));
                buf = rest;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn field<'a>(fs: &[(u64, &'a [u8])], n: u64) -> Option<&'a [u8]> {
    fs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

fn strings(msg: &[u8], names: &[&str]) -> Option<Value> {
    let fs = fields(msg)?;
    let mut m = Map::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(v) = field(&fs, i as u64 + 1) {
            m.insert((*name).to_string(), json!(String::from_utf8_lossy(v)));
        }
    }
    Some(Value::Object(m))
}

/// Decodes `k8s\0` + runtime.Unknown{raw: SelfSubjectAccessReview} into its JSON `spec`.
pub fn self_subject_access_review_spec(body: &[u8]) -> Option<Value> {
    let unknown = fields(body.strip_prefix(b"k8s\0")?)?;
    let review = fields(field(&unknown, 2)?)?;
    let spec = fields(field(&review, 2).unwrap_or_default())?;
    let mut out = json!({});
    if let Some(ra) = field(&spec, 1) {
        out["resourceAttributes"] = strings(
            ra,
            &[
                "namespace",
                "verb",
                "group",
                "version",
                "resource",
                "subresource",
                "name",
            ],
        )?;
    }
    if let Some(nra) = field(&spec, 2) {
        out["nonResourceAttributes"] = strings(nra, &["path", "verb"])?;
    }
    Some(out)
}
