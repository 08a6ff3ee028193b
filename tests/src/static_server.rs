//! The built web UI (`dist/`) over HTTP on 127.0.0.1, on a free port.
//!
//! hyper's HTTP/1 server with `hyper-staticfile` doing the file serving:
//! it sanitises the request path (percent-decoded, `..` and absolute parts
//! dropped), so nothing outside the root is ever served; it answers GET and
//! HEAD (and ranges); and it takes content types from `mime_guess`
//! (`.wasm` is `application/wasm`, `.js` is `text/javascript`). Every
//! answer says `Cache-Control: no-store`, so a reload fetches the build
//! again.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_staticfile::{Body, Resolver, ResponseBuilder};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running static server; it stops (with every connection it has open)
/// when dropped.
pub struct StaticServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StaticServer {
    /// Serves `root` on 127.0.0.1 on a free port, on the current Tokio
    /// runtime.
    pub async fn start(root: &Path) -> Result<StaticServer> {
        let root = root
            .canonicalize()
            .with_context(|| format!("no directory {}", root.display()))?;
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the static server")?;
        let addr = listener.local_addr().context("static server address")?;
        let task = tokio::spawn(accept(listener, Resolver::new(root)));
        Ok(StaticServer { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, files: Resolver) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // E.g. out of file descriptors: try again shortly.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Forget the connections that are done.
        while connections.try_join_next().is_some() {}
        let files = files.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(files.clone(), request));
            // A client that goes away mid-request is not our problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request: the file, a redirect for a directory without its slash,
/// 404, or 500 if the file system fails in an unexpected way.
async fn respond(files: Resolver, request: Request<Incoming>) -> io::Result<Response<Body>> {
    let response = match files.resolve_request(&request).await {
        Ok(resolved) => ResponseBuilder::new()
            .request(&request)
            .build(resolved)
            .ok(),
        Err(_) => None,
    };
    let mut response = match response {
        Some(response) => response,
        None => {
            let mut error = Response::new(Body::Empty);
            *error.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            error
        }
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper::header::CONTENT_TYPE;
    use hyper::Method;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    type HttpClient = Client<HttpConnector, Empty<Bytes>>;

    /// Status, content type and body of `method path`.
    async fn fetch(
        client: &HttpClient,
        addr: SocketAddr,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Empty::new())?;
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(10), client.request(request))
                .await??;
        let status = response.status();
        let mime = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, mime, body))
    }

    #[tokio::test]
    async fn serves_the_build_with_its_content_types_and_nothing_outside() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("dist");
        std::fs::create_dir(&root)?;
        std::fs::write(root.join("index.html"), "<!doctype html>")?;
        std::fs::write(root.join("app.js"), "export {}")?;
        std::fs::write(root.join("app_bg.wasm"), b"\0asm\x01\0\0\0")?;
        std::fs::write(root.join("style.css"), "body {}")?;
        std::fs::write(dir.path().join("secret.txt"), "outside the root")?;

        let server = StaticServer::start(&root).await?;
        assert!(server.addr().ip().is_loopback());
        let client = Client::builder(TokioExecutor::new()).build_http();
        let addr = server.addr();

        let (status, mime, body) = fetch(&client, addr, Method::GET, "/?relay=x").await?;
        assert_eq!(status, StatusCode::OK);
        assert!(mime.is_some_and(|m| m.starts_with("text/html")));
        assert_eq!(body, b"<!doctype html>");

        for (path, want) in [
            ("/app.js", "text/javascript"),
            ("/app_bg.wasm", "application/wasm"),
            ("/style.css", "text/css"),
        ] {
            let (status, mime, _) = fetch(&client, addr, Method::GET, path).await?;
            assert_eq!(status, StatusCode::OK, "{path}");
            let mime = mime.unwrap_or_default();
            assert!(
                mime == want || mime.starts_with(&format!("{want};")),
                "{path}: {mime}"
            );
        }

        let (status, _, body) = fetch(&client, addr, Method::HEAD, "/app.js").await?;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());

        for path in [
            "/nope.js",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/a/../../secret.txt",
        ] {
            let (status, _, body) = fetch(&client, addr, Method::GET, path).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(body.is_empty(), "{path}");
        }
        Ok(())
    }
}
