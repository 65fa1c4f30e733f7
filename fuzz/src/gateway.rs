//! The oracle for requests built from a gateway's CGI variables (`segue::gateway::request`),
//! shared by the uwsgi and FastCGI targets.

use segue::gateway::Head;

/// What every request from a proxy's variables must be: no HTTPS claimed for an untrusted
/// peer, nor its scheme variables passed on; at most one Host field; a Content-Length field
/// exactly when there is a body, equal to its length; never a Transfer-Encoding.
pub fn check_head(req: &Head, trusted: bool) {
    if !trusted {
        assert!(!req.gateway.https, "HTTPS claimed for an untrusted peer");
        assert!(
            req.gateway
                .extra
                .iter()
                .all(|(k, _)| !["HTTPS", "REQUEST_SCHEME", "UWSGI_SCHEME"].contains(&k.as_str())),
            "scheme variables passed on from an untrusted peer"
        );
    }
    assert!(req.headers.get_all(http::header::HOST).iter().count() <= 1);
    let lengths: Vec<_> = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    if req.content_length > 0 {
        assert_eq!(lengths.len(), 1);
        assert_eq!(lengths[0].to_str().unwrap(), req.content_length.to_string());
    } else {
        assert!(lengths.is_empty());
    }
    assert!(req.headers.get(http::header::TRANSFER_ENCODING).is_none());
}
