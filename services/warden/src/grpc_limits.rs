//! An oversized gRPC message: tonic refuses it while decoding with `OUT_OF_RANGE`, where
//! grpc-core (and SPEC §4) answer `RESOURCE_EXHAUSTED`. This layer rewrites that one answer to
//! `RESOURCE_EXHAUSTED` with the usual `google.rpc.ErrorInfo { reason: "validation_error" }`, so
//! clients see the same code and reason from every Warden service. Nothing else is touched:
//! Warden itself never answers `OUT_OF_RANGE`.
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http::Response;
use tower::util::MapResponseLayer;
use warden_common::Error;

type Rewrite = fn(Response<Body>) -> Response<Body>;

/// The layer for `tonic::transport::Server::builder().layer(…)`.
pub(crate) fn layer() -> MapResponseLayer<Rewrite> {
    MapResponseLayer::new(oversized_is_resource_exhausted as Rewrite)
}

fn oversized_is_resource_exhausted(mut response: Response<Body>) -> Response<Body> {
    // A refusal while decoding the request is a trailers-only answer: the status is in the headers.
    let Some(status) = tonic::Status::from_header_map(response.headers()) else { return response };
    if status.code() != Code::OutOfRange || !status.message().contains("message length too large") {
        return response;
    }
    let refused: tonic::Status = Error::validation(format!("the request is too large: {}", status.message())).into();
    let rewritten =
        tonic::Status::with_details(Code::ResourceExhausted, refused.message(), refused.details().to_vec().into());
    let mut status_headers = tonic::codegen::http::HeaderMap::new();
    if rewritten.add_header(&mut status_headers).is_err() {
        // Cannot happen for this ASCII message; keep tonic's own answer rather than none.
        return response;
    }
    let headers = response.headers_mut();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    headers.extend(status_headers);
    response
}
