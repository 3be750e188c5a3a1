//! Rules about ports: listen addresses are `ADDR:PORT` with a fixed port,
//! the BitTorrent port is not the HTTP port, the web port is a port, and no
//! two services on one machine (a host, or hosts with the same `address` or
//! specific listen IP) share a port.

use super::{Entry, Got, Resolve, Validator};
use crate::site::file::Params;
use crate::site::Host;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

/// One port a host listens on, with the key it comes from.
struct Sock {
    /// Index of the host.
    host: usize,
    what: &'static str,
    addr: SocketAddr,
    path: String,
}

impl Validator {
    /// `listen` (default `0.0.0.0:8780`) and `peer_listen`; `None` where
    /// they are unusable.
    pub(super) fn listen(&mut self, e: &Resolve) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let listen_got = pick!(e, listen).unwrap_or(Got {
            value: "0.0.0.0:8780".into(),
            path: format!("{}.listen", e.path),
        });
        let listen = self.sock(&listen_got);
        let peer_listen = pick!(e, peer_listen).and_then(|g| self.sock(&g));
        if let Some(l) = listen {
            if peer_listen.is_none()
                && e.p.peer_listen.is_none()
                && e.d.peer_listen.is_none()
                && l.port() == u16::MAX
            {
                self.err(
                    &listen_got.path,
                    "port 65535 leaves no room for the BitTorrent port (listen port + 1); use a lower port or set peer_listen",
                );
            }
            if peer_listen == Some(l) {
                let from = self.src(e.path, "peer_listen", e.p);
                self.err(&from, "is the same as listen; HTTP and BitTorrent need separate ports (remove peer_listen to use listen port + 1)");
            }
        }
        (listen, peer_listen)
    }

    /// An `ADDR:PORT` with a port other than 0.
    fn sock(&mut self, g: &Got<String>) -> Option<SocketAddr> {
        match g.value.parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => {
                self.err(
                    &g.path,
                    format!("'{}' has port 0; pick a fixed port such as 8780", g.value),
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    &g.path,
                    format!(
                        "'{}' is not ADDR:PORT; write an IP address and a port, such as 0.0.0.0:8780 or [::]:8780",
                        g.value
                    ),
                );
                None
            }
        }
    }

    /// `web_port` (default 80), from 1 to 65535.
    pub(super) fn web_port(&mut self, g: Option<Got<u16>>) -> u16 {
        match g {
            None => 80,
            Some(g) if g.value == 0 => {
                self.err(&g.path, "must be a port from 1 to 65535, such as 80");
                80
            }
            Some(g) => g.value,
        }
    }

    /// Port clashes: on one host between its HTTP, BitTorrent and web ports,
    /// and between hosts that are one machine (same `address`, or the same
    /// specific non-loopback listen IP). Hosts in `skip` have no usable
    /// listen address.
    pub(super) fn ports(
        &mut self,
        entries: &[Entry],
        hosts: &[Host],
        d: &Params,
        skip: &HashSet<usize>,
    ) {
        let mut socks: Vec<Sock> = Vec::new();
        for (i, (h, e)) in hosts.iter().zip(entries).enumerate() {
            if skip.contains(&i) || h.host.is_empty() {
                continue;
            }
            socks.extend(self.sockets(i, h, e, d));
        }
        let mut reported = HashSet::new();
        for j in 0..socks.len() {
            for i in 0..j {
                let (a, b) = (&socks[i], &socks[j]);
                if a.addr.port() != b.addr.port() || !ip_overlap(a.addr.ip(), b.addr.ip()) {
                    continue;
                }
                let (ha, hb) = (&hosts[a.host], &hosts[b.host]);
                if a.host != b.host && !same_machine(ha, hb) {
                    continue;
                }
                if !reported.insert(b.path.clone()) {
                    continue;
                }
                let msg = self.clash(a, b, ha, hb);
                self.err(&b.path, msg);
            }
        }
    }

    /// The ports host `i` listens on: HTTP, BitTorrent and (with
    /// `manage_web`) nginx's.
    fn sockets(&self, i: usize, h: &Host, e: &Entry, d: &Params) -> Vec<Sock> {
        let (path, p) = (&e.path, &e.params);
        let listen_path = if p.listen.is_none() && d.listen.is_none() {
            path.clone()
        } else {
            self.src(path, "listen", p)
        };
        let mut socks = vec![Sock {
            host: i,
            what: "HTTP port (listen)",
            addr: h.listen,
            path: listen_path.clone(),
        }];
        if let Some(peer) = h.peer_addr() {
            let (what, ppath) = if h.peer_listen.is_some() {
                (
                    "BitTorrent port (peer_listen)",
                    self.src(path, "peer_listen", p),
                )
            } else {
                ("BitTorrent port (listen port + 1)", listen_path)
            };
            socks.push(Sock {
                host: i,
                what,
                addr: peer,
                path: ppath,
            });
        }
        if h.manage_web {
            let wpath = if p.web_port.is_some() || d.web_port.is_some() {
                self.src(path, "web_port", p)
            } else {
                self.src(path, "manage_web", p)
            };
            let any = if h.listen.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([0u16; 8])
            };
            socks.push(Sock {
                host: i,
                what: "web port (web_port, nginx)",
                addr: SocketAddr::new(any, h.web_port),
                path: wpath,
            });
        }
        socks
    }

    /// What to say about two sockets on one port.
    fn clash(&self, a: &Sock, b: &Sock, ha: &Host, hb: &Host) -> String {
        let port = b.addr.port();
        let suggestion = port.saturating_add(10);
        if a.host == b.host {
            return format!(
                "port clash on '{}': port {port} is both its {} and its {}; give one of them another port, \
                 such as {suggestion}",
                hb.host, a.what, b.what
            );
        }
        let line = self.line_of(&a.path);
        format!(
            "port clash: '{}' and '{}' are the same machine ({}) and both use port {port}: '{}' for its {} \
             (line {line}) and '{}' for its {}; agents on one machine need distinct ports, such as \
             listen: {}:{suggestion} here (its BitTorrent port is then {})",
            ha.host,
            hb.host,
            if ha.address == hb.address {
                ha.address.clone()
            } else {
                ha.listen.ip().to_string()
            },
            ha.host,
            a.what,
            hb.host,
            b.what,
            hb.listen.ip(),
            suggestion.saturating_add(1),
        )
    }
}

/// Two hosts are one machine: the same `address`, or the same specific
/// (not wildcard, not loopback) listen IP.
fn same_machine(a: &Host, b: &Host) -> bool {
    if a.address == b.address {
        return true;
    }
    let specific = |ip: IpAddr| !ip.is_unspecified() && !ip.is_loopback();
    a.listen.ip() == b.listen.ip() && specific(a.listen.ip())
}

/// Two bind addresses collide: equal, or either a wildcard.
pub(in crate::site) fn ip_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}
