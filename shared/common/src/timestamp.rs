//! Conversions between `time::OffsetDateTime` and protobuf timestamps at the gRPC edge.
use prost_types::Timestamp;
use time::OffsetDateTime;

pub fn to_proto(t: OffsetDateTime) -> Timestamp {
    Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

pub fn from_proto(t: &Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        + time::Duration::nanoseconds(t.nanos.into())
}

/// RFC 3339, as the REST API shows times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
