//! The listening sockets. The master binds them (or takes them from systemd) once and holds them
//! for its whole life: workers come and go, the kernel accept queue stays open, so a connection
//! that arrives while no worker accepts waits in the backlog instead of being refused.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::config::{Endpoint, ListenAddr, Protocol};

/// One listening socket and the address it really has (a `:0` port resolved).
#[derive(Debug)]
pub struct Listener {
    /// The bound address, as logged and sent to workers.
    pub addr: ListenAddr,
    /// What its clients speak; workers are told it with each socket. Sockets from systemd
    /// speak HTTP unless `--socket` names their address.
    pub protocol: Protocol,
    /// The socket. CLOEXEC: it reaches workers only by SCM_RIGHTS.
    pub fd: OwnedFd,
    /// A unix socket file this master created and removes at exit.
    owned_path: Option<PathBuf>,
    /// `Some` for a socket from systemd (with its `FileDescriptorName=`, possibly empty).
    pub systemd_name: Option<String>,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `bind` or `listen` failed.
    #[error("cannot bind {addr}: {source}{hint}")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// The OS error.
        source: io::Error,
        /// How to fix it.
        hint: &'static str,
    },
    /// A live server already answers on the unix socket path.
    #[error("cannot bind {0}: another server is accepting on it (stop it, or choose another path)")]
    UnixInUse(ListenAddr),
    /// systemd's sockets and `--http` disagree.
    #[error(
        "systemd passed sockets for {inherited} but --http asks for {requested} (make ListenStream= in the .socket unit match --http, or drop --http)"
    )]
    Mismatch {
        /// What systemd passed.
        inherited: String,
        /// What --http said.
        requested: String,
    },
    /// A systemd-passed fd is not a listening stream socket.
    #[error("inherited fd {fd} from LISTEN_FDS is not a listening stream socket: {why}")]
    BadInherited {
        /// The fd number.
        fd: RawFd,
        /// What is wrong with it.
        why: String,
    },
}

fn hint(addr: &ListenAddr, err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied if matches!(addr, ListenAddr::Unix(_)) => {
            " (the socket's directory must be writable by this user)"
        }
        io::ErrorKind::PermissionDenied => " (use a port above 1024, or systemd socket activation)",
        io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it or pick another port; `ss -ltnp` shows who)"
        }
        io::ErrorKind::AddrNotAvailable => " (the address is not on this machine)",
        _ => "",
    }
}

impl Listener {
    /// Binds `addr` with SO_REUSEADDR and an explicit backlog; a unix socket gets `mode` as
    /// its permissions before it listens.
    pub fn bind(addr: &ListenAddr, backlog: u32, mode: Option<u32>) -> Result<Listener, Error> {
        let fail = |source: io::Error| Error::Bind {
            addr: addr.clone(),
            hint: hint(addr, &source),
            source,
        };
        match addr {
            ListenAddr::Tcp(sa) => {
                let socket =
                    Socket::new(Domain::for_address(*sa), Type::STREAM, None).map_err(fail)?;
                socket.set_reuse_address(true).map_err(fail)?;
                if sa.is_ipv6() {
                    // `[::]:80` should not silently also claim IPv4.
                    socket.set_only_v6(true).map_err(fail)?;
                }
                socket.bind(&(*sa).into()).map_err(fail)?;
                socket.listen(backlog_i32(backlog)).map_err(fail)?;
                let local = socket
                    .local_addr()
                    .map_err(fail)?
                    .as_socket()
                    .unwrap_or(*sa);
                Ok(Listener {
                    addr: ListenAddr::Tcp(local),
                    protocol: Protocol::Http,
                    fd: socket.into(),
                    owned_path: None,
                    systemd_name: None,
                })
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(addr, path)?;
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
                socket
                    .bind(&SockAddr::unix(path).map_err(fail)?)
                    .map_err(fail)?;
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(fail)?;
                }
                socket.listen(backlog_i32(backlog)).map_err(fail)?;
                Ok(Listener {
                    addr: addr.clone(),
                    protocol: Protocol::Http,
                    fd: socket.into(),
                    owned_path: Some(path.clone()),
                    systemd_name: None,
                })
            }
        }
    }

    /// Binds `endpoint` as [`Listener::bind`] does; the listener speaks its protocol.
    pub fn bind_endpoint(
        endpoint: &Endpoint,
        backlog: u32,
        mode: Option<u32>,
    ) -> Result<Listener, Error> {
        let mut l = Listener::bind(&endpoint.addr, backlog, mode)?;
        l.protocol = endpoint.protocol;
        Ok(l)
    }

    /// The listener as status and the log show it (`uwsgi://` before a uwsgi one's address).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr.clone(),
            protocol: self.protocol,
        }
    }

    /// Takes back a listener the previous image of this master handed over across exec.
    pub fn handed(
        fd: OwnedFd,
        addr: ListenAddr,
        protocol: Protocol,
        systemd_name: Option<String>,
    ) -> Listener {
        let _ = crate::protocol::set_cloexec(fd.as_raw_fd(), true);
        // A unix socket file this master created is still this master's to remove.
        let owned_path = match (&addr, &systemd_name) {
            (ListenAddr::Unix(path), None) => Some(path.clone()),
            _ => None,
        };
        Listener {
            addr,
            protocol,
            fd,
            owned_path,
            systemd_name,
        }
    }

    /// Adopts a socket passed by systemd (`LISTEN_FDS`); it stays the master's for life.
    pub fn inherited(fd: OwnedFd, name: Option<String>) -> Result<Listener, Error> {
        let raw = fd.as_raw_fd();
        crate::protocol::set_cloexec(raw, true).map_err(|e| Error::BadInherited {
            fd: raw,
            why: e.to_string(),
        })?;
        let socket = Socket::from(fd);
        let bad = |why: String| Error::BadInherited { fd: raw, why };
        if !socket.is_listener().map_err(|e| bad(e.to_string()))? {
            return Err(bad(
                "it is not listening (use ListenStream= in the .socket unit)".into(),
            ));
        }
        let local = socket.local_addr().map_err(|e| bad(e.to_string()))?;
        let addr = if let Some(sa) = local.as_socket() {
            ListenAddr::Tcp(sa)
        } else if let Some(path) = local.as_pathname() {
            ListenAddr::Unix(path.to_owned())
        } else {
            return Err(bad("unsupported socket family".into()));
        };
        Ok(Listener {
            addr,
            protocol: Protocol::Http,
            fd: socket.into(),
            owned_path: None,
            systemd_name: Some(name.unwrap_or_default()),
        })
    }

    /// Adopts the listening socket this process inherited as fd `fd` (gunicorn's
    /// `--bind fd://N`, for a parent that bound it, such as circus or a wrapper script).
    pub fn inherited_fd(fd: RawFd) -> Result<Listener, Error> {
        // Own the fd only if it is open: from_raw_fd on a closed number would later close
        // whatever else gets that number.
        // SAFETY: borrowed only for this one fcntl(2), which fails harmlessly on a closed fd.
        let open = nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .is_ok();
        if !open || fd <= 2 {
            return Err(Error::BadInherited {
                fd,
                why: "no listening socket is open under that number in segue (did the parent pass it? 0-2 are stdio)".into(),
            });
        }
        // SAFETY: the fd is open and nothing else in this process owns it: it came from the
        // parent, and the master opened nothing under that number before binding.
        let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut l = Listener::inherited(owned, None)?;
        l.systemd_name = None;
        Ok(l)
    }

    /// The raw fd, for SCM_RIGHTS.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The TCP address, if this is a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self.addr {
            ListenAddr::Tcp(a) => Some(a),
            ListenAddr::Unix(_) => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.owned_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn backlog_i32(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

/// A socket file left by a crashed server is removed; one that still accepts is an error, so two
/// servers never fight over a path.
fn remove_stale_socket(addr: &ListenAddr, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(Error::Bind {
            addr: addr.clone(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket exists there",
            ),
            hint: " (remove it or choose another path)",
        });
    }
    if StdUnixStream::connect(path).is_ok() {
        return Err(Error::UnixInUse(addr.clone()));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
