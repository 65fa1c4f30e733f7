//! One FastCGI connection's protocol state, as a pure state machine: it takes the records the
//! web server sends and says what to do ([`Step`]): start serving a request, pass body bytes
//! on, abort, or write a reply record. The worker's `fastcgi` module runs the steps.
//!
//! segue is a Responder that serves one request per connection at a time
//! (`FCGI_MPXS_CONNS=0`, as the specification allows): a `FCGI_BEGIN_REQUEST` for a second
//! request while one is active is answered with `FCGI_CANT_MPX_CONN`. With `FCGI_KEEP_CONN`
//! (nginx's `fastcgi_keep_conn on`) the connection carries request after request. Records for
//! request ids that are not active are ignored, as the specification says; records only an
//! application sends, or that break the order of a request's streams, are malformed and end
//! the connection.

use bytes::Bytes;

use super::params::{self, ParamsError};
use super::record::{self, ProtocolStatus, Record};

/// What `FCGI_GET_VALUES` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Values {
    /// `FCGI_MAX_CONNS`: connections one worker holds at once.
    pub max_conns: usize,
    /// `FCGI_MAX_REQS`: requests at once (one per connection, so the same number).
    pub max_reqs: usize,
}

/// A request whose params are complete: what the service needs to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Its request id, for every record of the response.
    pub id: u16,
    /// Whether the web server keeps the connection afterwards.
    pub keep_conn: bool,
    /// The params stream, whole (name-value pairs, [`params::parse`]).
    pub params: Vec<u8>,
}

/// What the connection does after a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing (a record for an inactive request, or more params).
    Nothing,
    /// Write these records now (management answers, refusals).
    Reply(Vec<u8>),
    /// Serve this request.
    Start(Start),
    /// Bytes of the active request's body.
    Stdin(Bytes),
    /// The active request's body is complete.
    StdinEnd,
    /// The web server gave up on the request being served: stop it and end it.
    Abort,
    /// A request ended before it started (aborted during its params): write `reply`, then
    /// close the connection if `close`.
    Ended {
        /// Its `FCGI_END_REQUEST`.
        reply: Vec<u8>,
        /// The web server did not ask to keep the connection.
        close: bool,
    },
}

/// Why the records are not a FastCGI conversation segue can follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A `FCGI_BEGIN_REQUEST` whose body is not 8 bytes.
    #[error("FastCGI BEGIN_REQUEST with a {0}-byte body (expected 8)")]
    BadBegin(usize),
    /// A second `FCGI_BEGIN_REQUEST` for the request that is active.
    #[error("FastCGI BEGIN_REQUEST for request {0}, which is already active")]
    Repeated(u16),
    /// The params stream is larger than the limit.
    #[error(
        "FastCGI params larger than {0} bytes: raise --buffer-size (uWSGI's buffer-size) up to 65535"
    )]
    TooLarge(usize),
    /// A record out of the order PARAMS, then STDIN, for the active request.
    #[error("FastCGI {what} record for request {id} out of order")]
    OutOfOrder {
        /// The record's type.
        what: &'static str,
        /// Its request id.
        id: u16,
    },
    /// A record type only an application sends.
    #[error("FastCGI record of type {0} from the web server (only an application sends it)")]
    Unexpected(u8),
    /// A `FCGI_GET_VALUES` whose body is not name-value pairs.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// Not a FastCGI record at all.
    #[error(transparent)]
    Record(#[from] super::record::RecordError),
}

#[derive(Debug)]
enum State {
    Idle,
    /// Between `FCGI_BEGIN_REQUEST` and the empty `FCGI_PARAMS`.
    Params {
        id: u16,
        keep_conn: bool,
        params: Vec<u8>,
    },
    /// Being served; the body may still be arriving.
    Serving {
        id: u16,
        stdin_open: bool,
    },
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    state: State,
    params_limit: usize,
    values: Values,
}

impl Session {
    /// A connection whose params may take up to `params_limit` bytes.
    pub fn new(params_limit: usize, values: Values) -> Self {
        Session {
            state: State::Idle,
            params_limit,
            values,
        }
    }

    /// Whether no request is active (between requests, or before the first).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The active request's response has been ended (its `FCGI_END_REQUEST` is about to be
    /// written): the connection may take the next request. Called before the record is
    /// written, so that a web server answering it at once never finds the request active.
    pub fn finished(&mut self) {
        self.state = State::Idle;
    }

    /// What to do with `rec`.
    pub fn on_record(&mut self, rec: Record) -> Result<Step, SessionError> {
        if rec.request_id == 0 {
            return self.management(&rec);
        }
        let id = rec.request_id;
        let active = match &self.state {
            State::Idle => None,
            State::Params { id, .. } | State::Serving { id, .. } => Some(*id),
        };
        let order = |what| SessionError::OutOfOrder { what, id };
        match rec.kind {
            record::BEGIN_REQUEST => {
                let body: [u8; 8] = rec.content[..]
                    .try_into()
                    .map_err(|_| SessionError::BadBegin(rec.content.len()))?;
                match active {
                    Some(a) if a == id => Err(SessionError::Repeated(id)),
                    Some(_) => Ok(Step::Reply(record::end_request(
                        id,
                        0,
                        ProtocolStatus::CantMpxConn,
                    ))),
                    None if u16::from_be_bytes([body[0], body[1]]) != record::ROLE_RESPONDER => Ok(
                        Step::Reply(record::end_request(id, 0, ProtocolStatus::UnknownRole)),
                    ),
                    None => {
                        self.state = State::Params {
                            id,
                            keep_conn: body[2] & record::FLAG_KEEP_CONN != 0,
                            params: Vec::new(),
                        };
                        Ok(Step::Nothing)
                    }
                }
            }
            _ if active != Some(id) => Ok(Step::Nothing),
            record::PARAMS => match &mut self.state {
                State::Params {
                    keep_conn, params, ..
                } => {
                    if rec.content.is_empty() {
                        let start = Start {
                            id,
                            keep_conn: *keep_conn,
                            params: std::mem::take(params),
                        };
                        self.state = State::Serving {
                            id,
                            stdin_open: true,
                        };
                        return Ok(Step::Start(start));
                    }
                    if params.len() + rec.content.len() > self.params_limit {
                        return Err(SessionError::TooLarge(self.params_limit));
                    }
                    params.extend_from_slice(&rec.content);
                    Ok(Step::Nothing)
                }
                _ => Err(order("PARAMS")),
            },
            record::STDIN => match &mut self.state {
                State::Serving { stdin_open, .. } if *stdin_open => {
                    if rec.content.is_empty() {
                        *stdin_open = false;
                        Ok(Step::StdinEnd)
                    } else {
                        Ok(Step::Stdin(rec.content))
                    }
                }
                _ => Err(order("STDIN")),
            },
            record::ABORT_REQUEST => match &self.state {
                State::Params { keep_conn, .. } => {
                    let close = !*keep_conn;
                    self.state = State::Idle;
                    Ok(Step::Ended {
                        reply: record::end_request(id, 0, ProtocolStatus::Complete),
                        close,
                    })
                }
                _ => Ok(Step::Abort),
            },
            record::END_REQUEST
            | record::STDOUT
            | record::STDERR
            | record::GET_VALUES_RESULT
            | record::UNKNOWN_TYPE => Err(SessionError::Unexpected(rec.kind)),
            // FCGI_DATA belongs to the Filter role; later types are not known.
            _ => Ok(Step::Nothing),
        }
    }

    /// A record with request id 0.
    fn management(&self, rec: &Record) -> Result<Step, SessionError> {
        if rec.kind != record::GET_VALUES {
            return Ok(Step::Reply(record::unknown_type(rec.kind)));
        }
        let mut out = Vec::new();
        let mut answered: Vec<&[u8]> = Vec::new();
        for (name, _) in params::parse(&rec.content)? {
            let value = match name {
                b"FCGI_MAX_CONNS" => self.values.max_conns.to_string(),
                b"FCGI_MAX_REQS" => self.values.max_reqs.to_string(),
                b"FCGI_MPXS_CONNS" => "0".to_owned(),
                // Variables segue does not know are left out, as the specification says.
                _ => continue,
            };
            if !answered.contains(&name) {
                answered.push(name);
                params::encode(name, value.as_bytes(), &mut out);
            }
        }
        Ok(Step::Reply(record::encode(
            record::GET_VALUES_RESULT,
            0,
            &out,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: Values = Values {
        max_conns: 100,
        max_reqs: 100,
    };

    fn rec(kind: u8, id: u16, content: &[u8]) -> Record {
        Record {
            kind,
            request_id: id,
            content: Bytes::copy_from_slice(content),
        }
    }

    fn begin(id: u16, role: u16, keep: bool) -> Record {
        let r = role.to_be_bytes();
        rec(
            record::BEGIN_REQUEST,
            id,
            &[r[0], r[1], u8::from(keep), 0, 0, 0, 0, 0],
        )
    }

    fn pair(name: &str, value: &str) -> Vec<u8> {
        let mut v = Vec::new();
        params::encode(name.as_bytes(), value.as_bytes(), &mut v);
        v
    }

    #[test]
    fn a_request_runs_through_params_and_stdin() {
        let mut s = Session::new(1000, VALUES);
        assert!(s.is_idle());
        assert_eq!(s.on_record(begin(1, 1, true)), Ok(Step::Nothing));
        let p = pair("REQUEST_METHOD", "POST");
        assert_eq!(s.on_record(rec(record::PARAMS, 1, &p)), Ok(Step::Nothing));
        let Ok(Step::Start(start)) = s.on_record(rec(record::PARAMS, 1, b"")) else {
            panic!("no start");
        };
        assert_eq!((start.id, start.keep_conn, &start.params), (1, true, &p));
        assert_eq!(
            s.on_record(rec(record::STDIN, 1, b"body")),
            Ok(Step::Stdin(Bytes::from_static(b"body")))
        );
        // Records of other requests are ignored while this one is served.
        assert_eq!(s.on_record(rec(record::STDIN, 2, b"x")), Ok(Step::Nothing));
        assert_eq!(s.on_record(rec(record::STDIN, 1, b"")), Ok(Step::StdinEnd));
        assert!(!s.is_idle());
        s.finished();
        assert!(s.is_idle());
        // The next request on a kept connection may reuse the id.
        assert_eq!(s.on_record(begin(1, 1, false)), Ok(Step::Nothing));
    }

    #[test]
    fn a_second_request_at_once_is_refused_as_multiplexing() {
        let mut s = Session::new(1000, VALUES);
        s.on_record(begin(1, 1, true)).unwrap();
        assert_eq!(
            s.on_record(begin(2, 1, true)),
            Ok(Step::Reply(record::end_request(
                2,
                0,
                ProtocolStatus::CantMpxConn
            )))
        );
        assert_eq!(
            s.on_record(begin(1, 1, true)),
            Err(SessionError::Repeated(1))
        );
    }

    #[test]
    fn other_roles_are_refused() {
        let mut s = Session::new(1000, VALUES);
        assert_eq!(
            s.on_record(begin(5, 2, false)),
            Ok(Step::Reply(record::end_request(
                5,
                0,
                ProtocolStatus::UnknownRole
            )))
        );
        assert!(s.is_idle());
        assert_eq!(
            s.on_record(rec(record::BEGIN_REQUEST, 1, b"short")),
            Err(SessionError::BadBegin(5))
        );
    }

    #[test]
    fn params_are_bounded() {
        let mut s = Session::new(10, VALUES);
        s.on_record(begin(1, 1, false)).unwrap();
        s.on_record(rec(record::PARAMS, 1, &[b'a'; 6])).unwrap();
        assert_eq!(
            s.on_record(rec(record::PARAMS, 1, &[b'a'; 6])),
            Err(SessionError::TooLarge(10))
        );
    }

    #[test]
    fn streams_out_of_order_are_malformed() {
        let mut s = Session::new(100, VALUES);
        s.on_record(begin(1, 1, false)).unwrap();
        assert!(matches!(
            s.on_record(rec(record::STDIN, 1, b"early")),
            Err(SessionError::OutOfOrder { what: "STDIN", .. })
        ));
        let mut s = Session::new(100, VALUES);
        s.on_record(begin(1, 1, false)).unwrap();
        s.on_record(rec(record::PARAMS, 1, b"")).unwrap();
        s.on_record(rec(record::STDIN, 1, b"")).unwrap();
        assert!(s.on_record(rec(record::STDIN, 1, b"late")).is_err());
        assert!(s.on_record(rec(record::PARAMS, 1, b"late")).is_err());
        assert_eq!(
            s.on_record(rec(record::STDOUT, 1, b"x")),
            Err(SessionError::Unexpected(record::STDOUT))
        );
    }

    #[test]
    fn aborts_end_the_request() {
        let mut s = Session::new(100, VALUES);
        s.on_record(begin(1, 1, false)).unwrap();
        assert_eq!(
            s.on_record(rec(record::ABORT_REQUEST, 1, b"")),
            Ok(Step::Ended {
                reply: record::end_request(1, 0, ProtocolStatus::Complete),
                close: true
            })
        );
        assert!(s.is_idle());
        s.on_record(begin(1, 1, true)).unwrap();
        s.on_record(rec(record::PARAMS, 1, b"")).unwrap();
        assert_eq!(
            s.on_record(rec(record::ABORT_REQUEST, 1, b"")),
            Ok(Step::Abort)
        );
        // An abort for a request that is not active is ignored.
        assert_eq!(
            s.on_record(rec(record::ABORT_REQUEST, 7, b"")),
            Ok(Step::Nothing)
        );
    }

    #[test]
    fn management_records_are_answered() {
        let mut s = Session::new(100, VALUES);
        let mut ask = pair("FCGI_MPXS_CONNS", "");
        ask.extend(pair("FCGI_MAX_CONNS", ""));
        ask.extend(pair("UNKNOWN", ""));
        ask.extend(pair("FCGI_MAX_CONNS", ""));
        let Ok(Step::Reply(r)) = s.on_record(rec(record::GET_VALUES, 0, &ask)) else {
            panic!("no reply");
        };
        assert_eq!(r[1], record::GET_VALUES_RESULT);
        let len = usize::from(u16::from_be_bytes([r[4], r[5]]));
        let got = params::parse(&r[8..8 + len]).unwrap();
        assert_eq!(
            got,
            vec![
                (&b"FCGI_MPXS_CONNS"[..], &b"0"[..]),
                (&b"FCGI_MAX_CONNS"[..], &b"100"[..])
            ]
        );
        assert_eq!(
            s.on_record(rec(42, 0, b"")),
            Ok(Step::Reply(record::unknown_type(42)))
        );
        assert!(s.on_record(rec(record::GET_VALUES, 0, &[9])).is_err());
    }
}
