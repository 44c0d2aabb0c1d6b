//! Heads: the request head written once per connection, the response head
//! parsed with `httparse`, and the body framing it announces.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use reqwest::Url;

use super::Http1Error;
use super::body::{Chunk, Framing};

/// Largest response head accepted (status line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most response headers accepted (`httparse` needs a fixed array).
const MAX_HEADERS: usize = 100;

/// The request head: request line, `Host`, the given headers and the body
/// length. Written once and dropped: the connection keeps no write buffer.
pub(crate) fn request(
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.path().as_bytes());
    if let Some(q) = url.query() {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if !headers.contains_key(HOST) {
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => line(b"host", format!("{host}:{port}").as_bytes()),
            None => line(b"host", host.as_bytes()),
        }
    }
    for (name, value) in headers {
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            line(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if let Some(body) = body {
        line(b"content-length", body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// Its length in bytes: the body starts after it.
    pub(crate) len: usize,
}

/// Parses a response head at the start of `buf`: `None` while incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Head>, Http1Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Http1Error::Head(e.to_string())),
    };
    let malformed = |what: &str| Http1Error::Head(what.to_owned());
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| malformed("invalid status code"))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| malformed("invalid header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers,
        len,
    }))
}

/// How the body after `head` is delimited (RFC 9112, section 6.3).
pub(crate) fn framing(head: &Head, method: &Method) -> Result<Framing, Http1Error> {
    let status = head.status;
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    let mut codings = Vec::new();
    for value in head.headers.get_all(TRANSFER_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| Http1Error::TransferCoding("(not text)".into()))?;
        codings.extend(value.split(',').map(str::trim).filter(|c| !c.is_empty()));
    }
    if !codings.is_empty() {
        // The request asks for no coding: anything but plain `chunked`
        // could not be decoded here.
        return match codings[..] {
            [c] if c.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked(Chunk::Size)),
            _ => Err(Http1Error::TransferCoding(codings.join(", "))),
        };
    }
    let mut length = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        for part in value
            .to_str()
            .map_err(|_| Http1Error::ContentLength)?
            .split(',')
        {
            let n: u64 = part.trim().parse().map_err(|_| Http1Error::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(Http1Error::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn request_head_has_host_headers_and_length() {
        let url = Url::parse("http://example.com:8080/a%20b/c?topic=x&y").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/event-stream"));
        headers.append("x-two", HeaderValue::from_static("1"));
        headers.append("x-two", HeaderValue::from_static("2"));
        let head = request(
            &Method::POST,
            &url,
            &headers,
            Some(&Bytes::from_static(b"{}")),
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /a%20b/c?topic=x&y HTTP/1.1\r\nhost: example.com:8080\r\naccept: text/event-stream\r\n\
             x-two: 1\r\nx-two: 2\r\ncontent-length: 2\r\n\r\n"
        );
        let url = Url::parse("http://[::1]/").unwrap();
        let head = request(&Method::GET, &url, &HeaderMap::new(), None);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET / HTTP/1.1\r\nhost: [::1]\r\n\r\n"
        );
    }

    #[test]
    fn response_head_is_parsed_only_when_complete() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: 1\r\n\r\ndata";
        for cut in 0..text.len() - 4 {
            assert!(parse(&text.as_bytes()[..cut]).unwrap().is_none(), "{cut}");
        }
        let h = head(text);
        assert_eq!(
            (h.status, h.version, h.len),
            (StatusCode::OK, Version::HTTP_11, text.len() - 4)
        );
        assert_eq!(h.headers["content-type"], "text/event-stream");
        assert!(matches!(
            parse(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(Http1Error::Head(_))
        ));
        assert!(matches!(
            parse(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Http1Error::Head(_))
        ));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |text: &str| framing(&head(text), &Method::GET);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 4\r\n\r\n")
                .unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n").unwrap(),
            Framing::Length(4)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n").unwrap(),
            Framing::Length(4)
        );
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n").unwrap(), Framing::Close);
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n").unwrap(),
            Framing::Length(0)
        );
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\n"),
            Err(Http1Error::ContentLength)
        ));
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(Http1Error::ContentLength)
        ));
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(Http1Error::TransferCoding(_))
        ));
    }
}
