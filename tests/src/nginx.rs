//! A private nginx serving directories over HTTP on loopback addresses:
//! its own config, pid file and logs in a temp dir, `daemon off;`, killed by
//! PID on drop (through [`Proc`]).
//!
//! nginx started as root runs its workers as `nobody`: every served
//! directory and its parents must be readable by others (the caller's
//! temp dir needs mode 0755).

use crate::agents::{free_port, fresh_ip, wait_for, Proc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Nginx {
    pub proc: Proc,
    pub dir: PathBuf,
    /// One listen address per served root, in the order given.
    pub servers: Vec<SocketAddr>,
}

impl Nginx {
    /// Starts nginx with one `server` per entry of `roots`, each on a fresh
    /// 127.x.y.1 address; its files go to `dir/<name>/`.
    pub fn start(dir: &Path, name: &str, roots: &[&Path]) -> Nginx {
        let n = dir.join(name);
        std::fs::create_dir_all(n.join("logs")).unwrap();
        let mut servers = Vec::new();
        let mut server_conf = String::new();
        for root in roots {
            let ip = fresh_ip();
            let addr = SocketAddr::new(ip, free_port(ip));
            server_conf.push_str(&format!(
                "  server {{\n    listen {addr};\n    root {};\n    autoindex off;\n  }}\n",
                root.display()
            ));
            servers.push(addr);
        }
        let conf = n.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nworker_processes 1;\n\
                 events {{ worker_connections 512; }}\nhttp {{\n  include /etc/nginx/mime.types;\n  \
                 default_type application/octet-stream;\n  access_log {d}/logs/access.log;\n  \
                 sendfile on;\n  keepalive_timeout 10;\n  \
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n{server_conf}}}\n",
                d = n.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&n)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(n.join("logs/error.log"))
            .args(["-g", "daemon off;"]);
        let proc = Proc::spawn(name, cmd, &n.join("stdout.log"));
        let ng = Nginx {
            proc,
            dir: n,
            servers,
        };
        for s in &ng.servers {
            wait_for(
                &format!("nginx to listen on {s}"),
                Duration::from_secs(30),
                || std::net::TcpStream::connect(s).is_ok(),
            );
        }
        ng
    }

    /// Base URL of the i-th server.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.servers[i])
    }

    /// The access log (every request with its status code).
    pub fn access_log(&self) -> PathBuf {
        self.dir.join("logs/access.log")
    }
}
